#!/usr/bin/env python3
"""Benign and letterbox misses on evaluation set v2 (issue 8), and PDQ quality floors.

Reads a pickled ``evaluate.Set`` (``evaluate.py --cache``, or ``watermarks.py --cache``: the
fingerprints of ``VerifiedRule.prepare``) and measures main's rule for list entries (the
``crops`` and ``verified`` matchers of bench/matchers.py) with the corrected labels (bench/photos.py
``RECOLOURED_PHOTOS``: one scan recoloured is not a negative). Then PDQ's quality floors: a
match by PDQ needs the entry's quality >= E and the query's >= Q (today E = Q = 50). A lower
floor can only add PDQ matches, so each (E, Q) is measured exactly as main's matches plus the
pairs whose PDQ (the query in its 8 orientations, as match.py searches it) is within the
threshold with both sides past the floors and neither flat. Halves of the photos by the first
byte of sha256(photo id): A (even) to choose on, B (odd) held out; negatives are split the same
way (both photos in A; else B). Prints Markdown.
"""

from __future__ import annotations

import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import argparse
import pickle
from collections import Counter
from pathlib import Path

import numpy as np
from evaluate import FRAMES, SCAN_OF, Set, pct, table
from matchers import CropsRule, VerifiedRule
from numpy.typing import NDArray
from watermarks import half

from imagewatchd.hashindex import hamming
from imagewatchd.models import Fingerprint

FLOORS = (50, 40, 30, 20, 10, 5)
MAIN_FLOOR = 50  # both floors before this study
THRESHOLD = 31
MYPAINT = "mypaint-"
Bits = NDArray[np.uint64]


def words(pdq: int | None) -> list[int]:
    value = 0 if pdq is None else pdq
    return [(value >> (64 * i)) & ((1 << 64) - 1) for i in range(4)]


def views(fp: Fingerprint) -> list[int | None]:
    """The query's PDQs in its 8 orientations, as it is first (match.py's views)."""
    return [fp.pdq, *(t.pdq for t in fp.turned)][:8]


class Pdq:
    """The originals' PDQs against every query's 8 views, as arrays."""

    def __init__(self, s: Set, photos: list[str]) -> None:
        self.photos = photos
        self.names = [*photos, *(f"{p}/{k}" for p, k in s.vfp)]
        fps = [s.fp[p] for p in photos] + list(s.vfp.values())
        assert all(isinstance(fp, Fingerprint) for fp in fps)
        self.fps: list[Fingerprint] = [fp for fp in fps if isinstance(fp, Fingerprint)]
        self.owner = np.array([n.split("/", 1)[0] for n in self.names])
        self.quality = np.array([fp.pdq_quality for fp in self.fps])
        self.usable = np.array([not fp.flat and fp.pdq is not None for fp in self.fps])
        grid = [[words(v) for v in (views(fp) + [None] * 8)[:8]] for fp in self.fps]
        self.bits: Bits = np.array(grid, dtype=np.uint64)  # queries x 8 views x 4 words
        present = [[v is not None for v in (views(fp) + [None] * 8)[:8]] for fp in self.fps]
        self.present = np.array(present)

    def distances(self, entry: Fingerprint) -> NDArray[np.int64]:
        """The closest of each query's views to ``entry``'s PDQ (999: none)."""
        target = np.array(words(entry.pdq), dtype=np.uint64)
        d = np.bitwise_count(self.bits ^ target).sum(axis=2).astype(np.int64)
        closest: NDArray[np.int64] = np.where(self.present, d, 999).min(axis=1)
        return closest


def base_decisions(s: Set, photos: list[str]) -> dict[str, dict[tuple[str, str], bool]]:
    """Main's decisions, at main's floors (50 and 50), whatever today's defaults say."""
    rules = {"crops": CropsRule(), "verified": VerifiedRule()}
    for rule in rules.values():
        rule.pdq_min_quality = rule.pdq_query_quality = MAIN_FLOOR
    return {
        name: {(p, k): rule.compare(s.fp[p], s.vfp[p, k]).match for p, k in s.vfp}
        for name, rule in rules.items()
    }


def negatives_ok(s: Set, entry: str, owner: str) -> bool:
    """Whether (entry, a query of photo ``owner``) is a pair of different photographs."""
    if entry == owner:
        return False
    scan = SCAN_OF.get(entry)
    return not (scan and scan == SCAN_OF.get(owner))


Decisions = dict[str, dict[tuple[str, str], bool]]
Negative = tuple[int, str, str, int, int]  # (PDQ distance, entry, query, qualities)


def study(s: Set, args: argparse.Namespace) -> None:
    photos = [str(m["photo_id"]) for m in s.originals if m["category"] == "photo"]
    sides = {side: sum(half(p) == side for p in photos) for side in "AB"}
    print(f"# Paper scans, benign kinds and letterboxes: {len(photos)} photos, "
          f"half A {sides['A']}, B {sides['B']}\n")  # fmt: skip
    # the negatives take in the synthetic gradients too, as evaluate.py's pairs of originals do
    originals = [str(m["photo_id"]) for m in s.originals if m["category"] != "recolour-only"]
    pdq = Pdq(s, originals)
    pos_d, neg = distances(s, originals, pdq, args.near)
    base = base_decisions(s, photos)
    klass = {k["name"]: k["class"] for k in s.kinds}
    report_floors(s, photos, base, klass, pos_d, neg)
    e, q = args.chosen
    report_chosen(s, photos, base["verified"], klass, pos_d, (e, q))
    report_misses(s, photos, base["verified"], klass, pos_d, args.kinds, (e, q))


def distances(
    s: Set, originals: list[str], pdq: Pdq, near: int
) -> tuple[dict[tuple[str, str], int], list[Negative]]:
    """Each variant's PDQ distance to its original (8 views), and the negatives within
    ``near``: different photographs, video frames and recoloured scans left out."""
    group = {str(m["photo_id"]): str(m["group"]) for m in s.originals}
    pos_d: dict[tuple[str, str], int] = {}
    neg: list[Negative] = []
    for i, entry in enumerate(originals):
        a = s.fp[entry]
        assert isinstance(a, Fingerprint)
        if a.flat or a.pdq is None:
            continue
        d = pdq.distances(a)
        for j in np.flatnonzero(pdq.owner == entry):
            if "/" in pdq.names[j]:
                pos_d[entry, pdq.names[j].split("/", 1)[1]] = int(d[j])
        for j in np.flatnonzero((pdq.owner != entry) & pdq.usable & (d <= near)):
            owner = str(pdq.owner[j])
            video = group[owner].startswith(FRAMES) and group[owner] == group[entry]
            if video or not negatives_ok(s, entry, owner):
                continue
            if "/" not in pdq.names[j] and originals.index(owner) < i:
                continue  # a pair of originals once (as the other way round)
            neg.append((int(d[j]), entry, pdq.names[j], a.pdq_quality, int(pdq.quality[j])))
    return pos_d, neg


def neg_side(pair: Negative) -> str:
    """A negative pair is half A's when both photos are in A, else held out (B)."""
    both = half(pair[1]) == half(pair[2].split("/", 1)[0]) == "A"
    return "A" if both else "B"


def pdq_match(s: Set, entry: str, kind: str, d: int, floors: tuple[int, int]) -> bool:
    a, b = s.fp[entry], s.vfp[entry, kind]
    assert isinstance(a, Fingerprint) and isinstance(b, Fingerprint)
    if a.flat or b.flat or d > THRESHOLD:
        return False
    return a.pdq_quality >= floors[0] and b.pdq_quality >= floors[1]


def matched(
    s: Set, base: dict[tuple[str, str], bool], pos_d: dict[tuple[str, str], int],
    floors: tuple[int, int],
) -> set[tuple[str, str]]:  # fmt: skip
    """The (photo, kind) pairs main's rule matches, or PDQ at these floors."""
    return {key for key, hit in base.items()
            if hit or pdq_match(s, *key, pos_d.get(key, 999), floors)}  # fmt: skip


def report_floors(
    s: Set,
    photos: list[str],
    base: Decisions,
    klass: dict[str, str],
    pos_d: dict[tuple[str, str], int],
    neg: list[Negative],
) -> None:
    print("## PDQ quality floors: entry >= E, query >= Q (main: E = Q = 50)\n")
    print(f"Negatives within PDQ {max(d for d, *_ in neg)} bits: {len(neg)} (pairs of different "
          "photographs; consecutive video frames and recoloured scans left out). A: positives "
          "of half A's photos, negatives with both photos in A; B: the rest.\n")  # fmt: skip
    rows: list[list[object]] = []
    for e in FLOORS:
        for q in (x for x in FLOORS if x <= e):
            cells: list[object] = [e, q]
            for side in "AB":
                mine = {p for p in photos if half(p) == side}
                for rule in ("crops", "verified"):
                    hits = [k for p, k in matched(s, base[rule], pos_d, (e, q)) if p in mine]
                    cells.append(f"{sum(klass[k] == 'benign' for k in hits)}/{len(mine) * 27}")
                cells.append(len(hits))
                eligible = [x for x in neg if x[3] >= e and x[4] >= q and neg_side(x) == side]
                closest = min(eligible, default=None)
                fresh = min((x for x in eligible if min(x[3], x[4]) < 50), default=None)
                cells.append(sum(x[0] <= THRESHOLD for x in eligible))
                cells += [_shown(closest), _shown(fresh)]
            rows.append(cells)
    head = ["E", "Q"]
    for side in "AB":
        head += [f"{side}: benign (crops)", "benign (verified)", "all kinds (verified)",
                 "false", "closest PDQ", "closest below 50"]  # fmt: skip
    table(head, rows)


def _shown(pair: Negative | None) -> str:
    return "-" if pair is None else f"{pair[0]}: {pair[1]} / {pair[2]} ({pair[3]}, {pair[4]})"


def report_chosen(
    s: Set,
    photos: list[str],
    base: dict[tuple[str, str], bool],
    klass: dict[str, str],
    pos_d: dict[tuple[str, str], int],
    floors: tuple[int, int],
) -> None:
    print(f"## Per class: main (verified) and with PDQ floors E = {floors[0]}, Q = {floors[1]}\n")
    new = matched(s, base, pos_d, floors)
    rows: list[list[object]] = []
    for name in dict.fromkeys(klass.values()):
        kinds = [k for k in klass if klass[k] == name]
        cells: list[object] = [name]
        for chosen in (
            [p for p in photos if half(p) == "A"],
            [p for p in photos if half(p) == "B"],
            photos,
            [p for p in photos if not p.startswith(MYPAINT)],
        ):
            n = len(kinds) * len(chosen)
            was = sum(base[p, k] for p in chosen for k in kinds)
            now = sum((p, k) in new for p in chosen for k in kinds)
            cells.append(f"{was} → {now}/{n} ({pct(now, n)})")
        rows.append(cells)
    table(["class", "half A", "half B (held out)", "all 325", "without the paper scans"], rows)
    for kind in ("letterbox", "border4", "square"):
        n_all = sum((p, kind) in new for p in photos)
        others = [p for p in photos if not p.startswith(MYPAINT)]
        n_o = sum((p, kind) in new for p in others)
        print(f"- `{kind}`: {n_all}/{len(photos)} ({pct(n_all, len(photos))}); without the "
              f"paper scans {n_o}/{len(others)} ({pct(n_o, len(others))})")  # fmt: skip
    print()


def report_misses(
    s: Set,
    photos: list[str],
    base: dict[tuple[str, str], bool],
    klass: dict[str, str],
    pos_d: dict[tuple[str, str], int],
    kinds: list[str],
    floors: tuple[int, int],
) -> None:
    print(f"## Misses at E = {floors[0]}, Q = {floors[1]} other than the paper scans'\n")
    new = matched(s, base, pos_d, floors)
    scans = [p for p in photos if p.startswith(MYPAINT)]
    for want in ("benign", *kinds):
        chosen = [k for k in klass if klass[k] == want or k == want]
        gone = Counter(k for p in scans for k in chosen if (p, k) not in new)
        flat = sum(1 for p in scans for k in chosen if (p, k) not in new
                   and getattr(s.vfp[p, k], "flat", False))  # fmt: skip
        listed = ", ".join(f"{k} {v}" for k, v in gone.most_common())
        print(f"- **{want}**: the paper scans miss {sum(gone.values())} ({flat} of them flat "
              f"variants): {listed}\n")  # fmt: skip
        rows: list[list[object]] = []
        for p in (p for p in photos if not p.startswith(MYPAINT)):
            for k in (k for k in chosen if (p, k) not in new):
                a, b = s.fp[p], s.vfp[p, k]
                assert isinstance(a, Fingerprint) and isinstance(b, Fingerprint)
                rows.append([p, k, hamming(a.dhash, b.dhash), hamming(a.phash, b.phash),
                             pos_d.get((p, k), "-"), a.pdq_quality, b.pdq_quality,
                             CropsRule().compare(a, b).shown()])  # fmt: skip
        table(["photo", "kind", "dH", "pH", "PDQ (8 views)", "quality: entry", "query",
               "closest evidence (crops)"], rows)  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cache", type=Path, required=True, help="a pickled evaluate.Set")
    parser.add_argument("--near", type=int, default=64, help="negatives kept up to this PDQ")
    parser.add_argument("--kinds", nargs="*", default=["letterbox"], help="misses listed too")
    parser.add_argument("--chosen", nargs=2, type=int, default=[50, 50], metavar=("E", "Q"),
                        help="the floors whose per-class figures and misses are shown")  # fmt: skip
    args = parser.parse_args()
    study(pickle.loads(args.cache.read_bytes()), args)


if __name__ == "__main__":
    main()
