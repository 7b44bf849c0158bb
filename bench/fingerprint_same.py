#!/usr/bin/env python3
"""Whether the fingerprint of a git revision and today's agree, field by field, on files.

Loads ``imagewatchd`` of ``--before REV`` beside today's (bench/fingerprint_speed.py's
``before``) and fingerprints each file with both: prints how many differ, in which fields
(the turned hashes per orientation), and the largest Hamming distance seen per field.
"""

from __future__ import annotations

import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import argparse
from collections import Counter
from pathlib import Path
from typing import Any

from fingerprint_speed import before

from imagewatchd.fingerprint import fingerprint_file


def fields(fp: Any) -> dict[str, object]:  # either version's Fingerprint
    names = ("sha256", "dhash", "phash", "pdq", "pdq_quality", "flat", "width", "height",
             "format", "regions", "crops", "more_regions", "grid")  # fmt: skip
    out = {name: getattr(fp, name) for name in names}
    found = fp.provenance  # either version's class: compared by its fields
    out["provenance"] = (found.camera, found.captured, found.software, found.jpeg_quality)
    for turn in fp.turned:
        for what in ("dhash", "phash", "pdq"):
            out[f"{turn.turn} {what}"] = getattr(turn, what)
    return out


def outcome(fingerprint: Any, path: Path) -> dict[str, object] | str:
    """The fields of ``fingerprint(path)``'s fingerprint with crops, or why it was refused."""
    try:
        return fields(fingerprint(path, crops=True)[1])
    except Exception as exc:  # either version's FingerprintError (two classes)
        if "FingerprintError" not in type(exc).__name__:
            raise
        return str(getattr(exc, "reason", exc))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--before", required=True, metavar="REV")
    parser.add_argument("files", nargs="+", type=Path)
    args = parser.parse_args()
    old = before(args.before)
    differ: Counter[str] = Counter()
    refused: Counter[str] = Counter()
    worst: dict[str, int] = {}
    done = 0
    for path in args.files:
        a, b = outcome(old, path), outcome(fingerprint_file, path)
        if isinstance(a, str) or isinstance(b, str):  # refused: by both, for the same reason?
            refused["for the same reason" if a == b else "not alike"] += 1
            continue
        done += 1
        for key in a.keys() | b.keys():
            if a.get(key) != b.get(key):
                differ[key] += 1
                x, y = a.get(key), b.get(key)
                if isinstance(x, int) and isinstance(y, int):
                    worst[key] = max(worst.get(key, 0), (x ^ y).bit_count())
    print(f"{done} files fingerprinted by both; fields that differ: {dict(differ) or 'none'}")
    print(f"refused by either: {dict(refused) or 'none'}")
    if worst:
        print(f"largest distances: {worst}")


if __name__ == "__main__":
    main()
