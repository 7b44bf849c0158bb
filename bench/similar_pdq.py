#!/usr/bin/env python3
"""Would PDQ widen the similar band (issue 10, item 4)? The pairs of ``bench/similar.py`` (the
same originals, classes and halves), with each photo's PDQ: the band (dHash <= 14 and pHash
<= 12, not a duplicate) or PDQ within T bits (both qualities at least Q), for T in 40..128.

    OPENBLAS_NUM_THREADS=1 .venv/bin/python bench/similar_pdq.py [--jobs 2]

Prints Markdown; fingerprints are cached in bench/results/similar-pdq-cache.json.
"""

from __future__ import annotations

import argparse
import json
import sys
import zlib
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import numpy.typing as npt

sys.path.insert(0, str(Path(__file__).resolve().parent))
from similar import DATA, dist, pair_class

from imagewatchd.config import DEFAULT_DHASH_THRESHOLD, DEFAULT_PHASH_THRESHOLD
from imagewatchd.errors import FingerprintError
from imagewatchd.fingerprint import fingerprint_file

CACHE = Path(__file__).resolve().parent / "results" / "similar-pdq-cache.json"
Prints = tuple[int, int, bool, int | None, int] | None
Mask = npt.NDArray[np.bool_]


def _fp(path: str) -> Prints:
    try:
        _, fp = fingerprint_file(Path(path))
    except FingerprintError:
        return None
    return fp.dhash, fp.phash, fp.flat, fp.pdq, fp.pdq_quality


def fingerprints(paths: list[str], jobs: int) -> dict[str, Prints]:
    if CACHE.exists():
        cached: dict[str, Prints] = json.loads(CACHE.read_text())
        if all(p in cached for p in paths):
            return cached
    with ProcessPoolExecutor(jobs) as pool:
        prints = dict(zip(paths, pool.map(_fp, paths, chunksize=8), strict=True))
    CACHE.parent.mkdir(exist_ok=True)
    CACHE.write_text(json.dumps(prints))
    return prints


def row(name: str, band: Mask, cls: npt.NDArray[np.str_], halves: list[Mask]) -> str:
    cells = []
    for sel in halves:
        found = [int(np.count_nonzero(band & sel & (cls == c))) for c in _CLASSES]
        total = [int(np.count_nonzero(sel & (cls == c))) for c in _CLASSES]
        cells.append(" / ".join(f"{f}/{t}" for f, t in zip(found, total, strict=True)))
    return f"| {name} | " + " | ".join(cells) + " |"


_CLASSES = ("look-alike", "other look-alike", "different")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=1)
    args = parser.parse_args()
    manifest = json.loads((DATA / "originals" / "manifest.json").read_text())
    manifest = [m for m in manifest if m.get("category") != "recolour-only"]
    paths = [str(DATA / "originals" / str(m["file"])) for m in manifest]
    prints = fingerprints(paths, args.jobs)
    ok = [k for k, p in enumerate(paths) if (h := prints[p]) and not h[2] and h[3] is not None]
    got = [prints[paths[k]] for k in ok]
    ids = [str(manifest[k]["photo_id"]) for k in ok]
    group = [str(manifest[k]["group"]) for k in ok]
    half = np.array([zlib.crc32((g or i).encode()) % 2 for g, i in zip(group, ids, strict=True)])
    dh = np.array([h[0] for h in got if h], np.uint64)
    ph = np.array([h[1] for h in got if h], np.uint64)
    pdq = [int(h[3] or 0) for h in got if h]
    quality = np.array([h[4] for h in got if h])
    iu, ju = np.triu_indices(len(ok), 1)
    d, p = dist(dh[iu], dh[ju]), dist(ph[iu], ph[ju])
    pq = np.array([bin(pdq[a] ^ pdq[b]).count("1") for a, b in zip(iu, ju, strict=True)])
    floor = np.minimum(quality[iu], quality[ju])
    cls = np.array([pair_class(group[a], group[b]) for a, b in zip(iu, ju, strict=True)])
    dup = (d <= DEFAULT_DHASH_THRESHOLD) & (p <= DEFAULT_PHASH_THRESHOLD)
    band = (d <= 14) & (p <= 12) & ~dup
    halves = [(half[iu] == h) & (half[ju] == h) for h in (0, 1)] + [np.ones(len(d), bool)]
    print(f"# The similar band with PDQ, {len(ok)} originals\n")
    print("Look-alike / other look-alike / different pairs in the band, of all such pairs.\n")
    print("| band | tuning half | test half | all |\n|---|---|---|---|")
    print(row("dHash <= 14, pHash <= 12", band, cls, halves))
    for bits in range(40, 129, 8):
        wider = (band | ((pq <= bits) & (floor >= 50))) & ~dup
        print(row(f"... or PDQ <= {bits} (quality >= 50)", wider, cls, halves))
    return 0


if __name__ == "__main__":
    sys.exit(main())
