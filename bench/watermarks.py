#!/usr/bin/env python3
"""Watermarks (issue 8): main's rule for list entries against the same with the second stage
(imagewatchd/verify.py), on evaluation set v2, with the originals split in two halves.

The second stage's parameters were chosen on half A (the photos whose name's sha256 starts with
an even byte); half B is held out: both are reported. Recall per kind for both rules (the
``crops`` and ``verified`` matchers of bench/matchers.py, on the same fingerprints); false
matches the second stage adds among different photos (every pair of originals, and every
original against every other photo's variants; consecutive video frames left out, as in
bench/evaluate.py), with the closest pair the grid refused and its margin: how many times the
disagreement allowed (1 - correlation, levels or edges, the larger), > 1 refused.
"""

from __future__ import annotations

import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import argparse
import hashlib
import pickle
from pathlib import Path

import numpy as np
from evaluate import FRAMES, Set, load, pct, table
from matchers import CropsRule, VerifiedRule

from imagewatchd import blockgrid, verify
from imagewatchd.hashindex import hamming
from imagewatchd.models import Fingerprint

KINDS = ("wm_corner", "wm_diagonal")


def half(photo_id: str) -> str:
    return "B" if hashlib.sha256(photo_id.encode()).digest()[0] & 1 else "A"


def recall(s: Set, photos: list[str]) -> None:
    base, verified = CropsRule(), VerifiedRule()
    rows: list[list[object]] = []
    for kind in [k["name"] for k in s.kinds]:
        cells: list[object] = [kind]
        changed = False
        for side in "AB":
            mine = [p for p in photos if half(p) == side]
            a = sum(_match(base, s.fp[p], s.vfp[p, kind]) for p in mine)
            b = sum(_match(verified, s.fp[p], s.vfp[p, kind]) for p in mine)
            changed |= a != b
            cells += [f"{a}/{len(mine)} ({pct(a, len(mine))})", f"{b} ({pct(b, len(mine))})"]
        if kind in KINDS or changed:
            rows.append(cells)
    print("## Recall: main's rule (crops) and with the second stage (verified)\n")
    print("Kinds the second stage changes, and the watermarks.\n")
    table(["kind", "A: main", "A: verified", "B: main", "B: verified"], rows)


def ranks(s: Set, photos: list[str]) -> None:
    """The list lookup compares only the ``verify.CANDIDATES`` closest candidates: with the
    325 originals as the list, how often is a copy's own original further down than that?"""
    fps = {p: s.fp[p] for p in photos if isinstance(s.fp[p], Fingerprint)}
    rows: list[list[object]] = []
    for kind in KINDS:
        beyond, worst = 0, 0
        for p, own in fps.items():
            query = s.vfp[p, kind]
            if not isinstance(query, Fingerprint) or not isinstance(own, Fingerprint):
                continue
            mine = hamming(own.dhash, query.dhash) + hamming(own.phash, query.phash)
            closer = sum(1 for o, a in fps.items() if o != p and isinstance(a, Fingerprint)
                         and hamming(a.dhash, query.dhash) <= verify.WIDER_DHASH
                         and hamming(a.phash, query.phash) <= verify.WIDER_PHASH
                         and hamming(a.dhash, query.dhash) + hamming(a.phash, query.phash)
                         <= mine)  # fmt: skip
            worst = max(worst, closer)
            beyond += closer >= verify.CANDIDATES
        rows.append([kind, worst, beyond])
    print(f"Copies whose own original is not among the {verify.CANDIDATES} closest candidates "
          "(ties counted against it), with the 325 originals as the list:\n")  # fmt: skip
    table(["kind", "most others as close or closer", f"beyond the {verify.CANDIDATES} closest"],
          rows)  # fmt: skip


def _match(rule: CropsRule, a: object, b: object) -> bool:
    return not isinstance(a, str) and not isinstance(b, str) and rule.compare(a, b).match


def negatives(s: Set, photos: list[str]) -> None:
    """Pairs the second stage looks at (within the wider radius): which it matches that main's
    rule does not, and the closest it refuses."""
    group = {str(m["photo_id"]): str(m["group"]) for m in s.originals}
    queries = [(f"{pid}/{kind}", pid, fp) for (pid, kind), fp in s.vfp.items()]
    queries += [(pid, pid, s.fp[pid]) for pid in photos]
    fps = [(n, p, fp) for n, p, fp in queries if isinstance(fp, Fingerprint) and not fp.flat]
    dh = np.array([fp.dhash for _, _, fp in fps], dtype=np.uint64)
    ph = np.array([fp.phash for _, _, fp in fps], dtype=np.uint64)
    base = CropsRule()
    added, refused, looked = [], [], 0
    for other in photos:
        a = s.fp[other]
        if not isinstance(a, Fingerprint) or a.flat or not a.grid:
            continue
        near = (np.bitwise_count(dh ^ np.uint64(a.dhash)) <= verify.WIDER_DHASH) & (
            np.bitwise_count(ph ^ np.uint64(a.phash)) <= verify.WIDER_PHASH
        )
        for i in np.flatnonzero(near):
            name, pid, b = fps[i]
            if pid == other or (group[pid].startswith(FRAMES) and group[pid] == group[other]):
                continue
            looked += 1
            levels, edges = blockgrid.agreement(a.grid, b.grid)
            margin = max((1 - levels) / (1 - blockgrid.LEVELS), (1 - edges) / (1 - blockgrid.EDGES))
            pair = (round(margin, 2), other, name, round(levels, 5), round(edges, 5))
            if margin > 1:
                refused.append(pair)
            elif not base.compare(a, b).match:
                added.append(pair)
    print("## False matches the second stage adds\n")
    print(f"Pairs of different photos within the wider radius (dH <= {verify.WIDER_DHASH}, "
          f"pH <= {verify.WIDER_PHASH}; consecutive video frames left out): {looked:,}. "
          f"Matched by the grid where main's rule does not: **{len(added)}**.\n")  # fmt: skip
    rows = [[*pair[1:3], pair[3], pair[4], pair[0]] for pair in sorted(added)[:10]]
    rows += [[*pair[1:3], pair[3], pair[4], pair[0]] for pair in sorted(refused)[:8]]
    table(["listed", "query", "levels", "edges", "margin (x allowed)"], rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--cache", type=Path, help="keep the fingerprints in this file")
    args = parser.parse_args()
    if args.cache and args.cache.exists():
        s = pickle.loads(args.cache.read_bytes())
    else:
        s = load(VerifiedRule(), args.jobs)
        if args.cache:
            args.cache.write_bytes(pickle.dumps(s))
    photos = [str(m["photo_id"]) for m in s.originals if m["category"] == "photo"]
    sides = {side: sum(half(p) == side for p in photos) for side in "AB"}
    print(f"# Watermarks: {len(photos)} photos, half A {sides['A']}, half B {sides['B']}\n")
    recall(s, photos)
    ranks(s, photos)
    negatives(s, photos)


if __name__ == "__main__":
    main()
