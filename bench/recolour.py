#!/usr/bin/env python3
"""Recoloured versions (issue 8): what a list that ignores recoloured copies still matches, on
evaluation set v2, against main's rule for list entries (``count``, the default).

A list set to ``ignore`` refuses a near match when the entry's colour signature and the
query's disagree (imagewatchd/colours.py); it never adds one. So, per variant kind, the copies
it loses are the matched copies whose colours disagree with their original's. Two passes:

1. the colour signature of every original and variant (decoded as the fingerprint stage does:
   JPEGs drafted as YCbCr, transparency on white), per kind how many disagree, and the true
   copies (every kind but ``recolour``) closest to disagreeing;
2. main's rule for list entries (bench/matchers.py ``verified``: crops, orientations, PDQ and
   the block grid's second stage; 512 MiB to decode GNOME's 4K artworks) on the originals, the
   ``recolour`` kind and a sample of other kinds, whose fingerprints also carry the signature
   pass 1 computed (checked equal): the recolour category both ways.
"""

from __future__ import annotations

import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import argparse
import json
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

from evaluate import DATA, pct, table
from matchers import VerifiedRule
from photos import RECOLOURED
from PIL import Image

from imagewatchd import colours
from imagewatchd.fingerprint import ALLOWED_FORMATS, WORKING_SIZE, Limits, _to_grey
from imagewatchd.models import Fingerprint

Key = tuple[str, str]  # (photo id, kind); kind "" for the original
LIMITS = Limits(memory_bytes=512 << 20)
CHECKED = ("recolour", "grey", "jpeg50", "heic80", "bright+30", "mirror", "caption")


def signature(path: Path) -> bytes | None:
    """The colour signature as the fingerprint stage makes it (None: unreadable)."""
    try:
        with Image.open(path, formats=ALLOWED_FORMATS) as img:
            if img.format in ("JPEG", "MPO"):
                img.draft("YCbCr", (WORKING_SIZE, WORKING_SIZE))
            img.load()
            return _to_grey(img, colours=True)[1]
    except Exception:  # a bench: unreadable files are counted, never hidden
        return None


def prepare(rule: VerifiedRule, path: Path) -> Fingerprint | str:
    try:
        fp = rule.prepare(path)
    except Exception as exc:
        return f"error: {exc}"
    assert isinstance(fp, Fingerprint)
    return fp


def files() -> tuple[list[dict[str, object]], dict[Key, Path]]:
    originals = json.loads((DATA / "originals" / "manifest.json").read_text())
    variants = json.loads((DATA / "variants" / "manifest.json").read_text())
    paths = {(str(m["photo_id"]), ""): DATA / "originals" / str(m["file"]) for m in originals}
    for pid, named in variants["files"].items():
        for kind, name in named.items():
            paths[pid, kind] = DATA / "variants" / pid / name
    return originals, paths


def by_kind(sigs: dict[Key, bytes], photos: list[str], kinds: list[str], errors: int) -> None:
    print("## Colours that disagree with the original's, per kind (pass 1)\n")
    colourful = sum(colours.chroma(sigs.get((p, ""), b"")) >= colours.GREY for p in photos)
    print(f"{errors} files unreadable. Colourful originals (mean chroma >= {colours.GREY}): "
          f"{colourful}/{len(photos)}.\n")  # fmt: skip
    rows = []
    for kind in kinds:
        n = sum(not colours.agrees(sigs[p, ""], sigs[p, kind]) for p in photos
                if (p, kind) in sigs and (p, "") in sigs)  # fmt: skip
        rows.append([kind, f"{n}/{len(photos)}"])
    table(["kind", "colours disagree"], rows)
    near = []
    for p in photos:
        for kind in kinds:
            a, b = sigs.get((p, "")), sigs.get((p, kind))
            if kind != "recolour" and a is not None and b is not None:
                near.append((*colours.distance(a, b), p, kind))
    print("True copies closest to disagreeing (hue distance as they are / best turned; "
          f"agree when <= {colours.NEAR}, or <= {colours.FAR} and turned x {colours.RATIO} "
          "is not smaller):\n")  # fmt: skip
    table(["photo", "kind", "moved", "turned", "agrees"],
          [[p, k, f"{m:.3f}", f"{t:.3f}", "yes" if (m <= colours.NEAR or (
              m <= colours.FAR and t * colours.RATIO >= m)) else "NO"]
           for m, t, p, k in sorted(near, reverse=True)[:8]])  # fmt: skip
    recoloured = [(*colours.distance(sigs[p, ""], sigs[p, "recolour"]), p) for p in photos
                  if (p, "") in sigs and (p, "recolour") in sigs
                  and colours.chroma(sigs[p, ""]) >= colours.GREY
                  and colours.agrees(sigs[p, ""], sigs[p, "recolour"])]  # fmt: skip
    print(
        "Colourful originals whose `recolour` copy still agrees: "
        + (", ".join(f"{p} ({m:.3f}/{t:.3f})" for m, t, p in recoloured) or "none")
        + "\n"
    )


def rule_pass(
    rule: VerifiedRule, fps: dict[Key, Fingerprint | str], sigs: dict[Key, bytes],
    photos: list[str],
) -> None:  # fmt: skip
    print(f"## Main's rule, `count` and `ignore` (pass 2: {rule.name})\n")
    solid = [(key, fp) for key, fp in fps.items() if isinstance(fp, Fingerprint) and not fp.flat]
    same = sum(fp.colours == sigs.get(key) for key, fp in solid)
    print(f"Fingerprints (not flat) whose signature equals pass 1's: {same}/{len(solid)}.\n")
    rows = []
    for kind in CHECKED:
        count, ignore, colourful = 0, 0, []
        for p in photos:
            a, b = fps[p, ""], fps[p, kind]
            if isinstance(a, str) or isinstance(b, str) or not rule.compare(a, b).match:
                continue
            count += 1
            kept = a.sha256 == b.sha256 or colours.agrees(a.colours, b.colours)
            ignore += kept
            if kept and colours.chroma(a.colours) >= colours.GREY:
                colourful.append(p)
        rows.append([kind, f"{count}/{len(photos)}", pct(count, len(photos)),
                     f"{ignore}/{len(photos)}", pct(ignore, len(photos)),
                     f"{len(colourful)}: {', '.join(colourful[:4])}"])  # fmt: skip
    table(["kind", "count: matched", "recall", "ignore: matched", "recall",
           "ignore: matched, colourful originals"], rows)  # fmt: skip
    print("Recoloured versions of one artwork (both directions: each listed, the other queried):\n")
    pairs: list[list[object]] = []
    for group, (x, y) in sorted(RECOLOURED.items()):
        cells: list[object] = [group]
        for a, b in ((fps[x, ""], fps[y, ""]), (fps[y, ""], fps[x, ""])):
            if isinstance(a, str) or isinstance(b, str):
                cells.append("unreadable")
                continue
            hit = rule.compare(a, b).match
            kept = hit and colours.agrees(a.colours, b.colours)
            moved, turned = colours.distance(a.colours, b.colours)
            cells.append(f"{'match' if hit else 'no'} / {'match' if kept else 'no'} "
                         f"({moved:.3f}/{turned:.3f})")  # fmt: skip
        pairs.append(cells)
    table(["artwork", "listed 1st: count / ignore (moved/turned)", "listed 2nd"], pairs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=2, help="decoding processes")
    args = parser.parse_args()
    start = time.monotonic()
    originals, paths = files()
    photos = [str(m["photo_id"]) for m in originals if m["category"] == "photo"]
    kinds = sorted({kind for _, kind in paths if kind})
    with ProcessPoolExecutor(args.jobs) as pool:
        keys = list(paths)
        found_sigs = pool.map(signature, [paths[k] for k in keys], chunksize=32)
        sigs = {k: v for k, v in zip(keys, found_sigs, strict=True) if v is not None}
        first = time.monotonic() - start
        rule = VerifiedRule()
        rule.limits = LIMITS
        wanted = [k for k in keys if not k[1] or k[1] in CHECKED]
        found = pool.map(prepare, [rule] * len(wanted), [paths[k] for k in wanted], chunksize=8)
        fps = dict(zip(wanted, found, strict=True))
    print("# Recoloured versions: evaluation set v2\n")
    print(f"{len(originals)} originals ({len(photos)} photos), {len(kinds)} kinds; pass 1 "
          f"{first:.0f} s, pass 2 {time.monotonic() - start - first:.0f} s, {args.jobs} "
          "processes.\n")  # fmt: skip
    by_kind(sigs, photos, kinds, len(keys) - len(sigs))
    rule_pass(rule, fps, sigs, photos)


if __name__ == "__main__":
    main()
