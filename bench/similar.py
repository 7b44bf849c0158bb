#!/usr/bin/env python3
"""The similar band (issue 10, item 4): burst shots and near frames, beyond the duplicate rule.

Pairs of originals from bench/data: *look-alikes* are different photographs of one moment or
place (stereo pairs, video frames, an exposure series, viewpoints, the same subject or place:
the groups in ``SIMILAR``), which the band should report; *different* pairs (different groups,
or no group) should stay out of it; the other look-alike groups (textures, paper scans,
deep-sky photographs, gradients, wallpaper series, two fruits) are counted on their own. The
band is chosen on one half of the photographs (groups kept whole) and reported on the other.
Each photo's benign variants (the hardest kinds; ``--all-kinds``: all) check that no duplicate
is merely similar. Prints Markdown; fingerprints are cached in bench/results/similar-cache.json.
"""

from __future__ import annotations

import argparse
import json
import zlib
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import numpy.typing as npt

from imagewatchd.config import DEFAULT_DHASH_THRESHOLD, DEFAULT_PHASH_THRESHOLD
from imagewatchd.errors import FingerprintError
from imagewatchd.fingerprint import fingerprint_file

DATA = Path(__file__).resolve().parent / "data"
CACHE = Path(__file__).resolve().parent / "results" / "similar-cache.json"
SIMILAR = ("stereo", "video frames", "same view", "same page", "chessboard", "aerial",
           "graffiti", "same subject", "same place")  # fmt: skip
# the benign kinds farthest from their original (docs/BENCHMARKS.md): checked by default
HARD_KINDS = ("scale25", "jpeg50", "webp80", "heic80", "avif60", "gif", "bright+30", "bright-30",
              "contrast+30", "contrast-30", "blur", "noise", "grey", "thumb", "social")  # fmt: skip
MAX_DIFFERENT = 0.0001  # at most this share of different pairs in the band (tuning half)
I64 = npt.NDArray[np.int64]
Hashes = tuple[int, int, bool] | None


def _fp(path: str) -> Hashes:
    try:
        _, fp = fingerprint_file(Path(path))
    except FingerprintError:
        return None
    return fp.dhash, fp.phash, fp.flat


def fingerprints(paths: Sequence[Path], jobs: int) -> dict[str, Hashes]:
    cache: dict[str, Hashes] = {}
    if CACHE.exists():
        stored = json.loads(CACHE.read_text())
        cache = {k: (v[0], v[1], v[2]) if v else None for k, v in stored.items()}
    todo = [str(p) for p in paths if str(p) not in cache]
    with ProcessPoolExecutor(max_workers=jobs) as pool:
        cache.update(zip(todo, pool.map(_fp, todo, chunksize=16), strict=True))
    CACHE.parent.mkdir(exist_ok=True)
    CACHE.write_text(json.dumps(cache))
    return cache


def dist(a: npt.NDArray[np.uint64], b: npt.NDArray[np.uint64]) -> I64:
    return np.bitwise_count(np.bitwise_xor(a, b)).astype(np.int64)


def pair_class(a: str, b: str) -> str:
    if not a or not b or a != b:
        return "different"
    return "look-alike" if a.startswith(SIMILAR) else "other look-alike"


def in_band(d: I64, p: I64, td: int, tp: int) -> npt.NDArray[np.bool_]:
    duplicate = (d <= DEFAULT_DHASH_THRESHOLD) & (p <= DEFAULT_PHASH_THRESHOLD)
    return (d <= td) & (p <= tp) & ~duplicate


def choose(d: I64, p: I64, cls: npt.NDArray[np.str_]) -> tuple[int, int]:
    """The band with the most look-alikes in it while few different pairs are."""
    different = int(np.count_nonzero(cls == "different"))
    best = (-1, 0, 0)
    for td in range(DEFAULT_DHASH_THRESHOLD, 33):
        for tp in range(DEFAULT_PHASH_THRESHOLD, 33, 2):
            band = in_band(d, p, td, tp)
            if np.count_nonzero(band & (cls == "different")) > MAX_DIFFERENT * different:
                continue
            hits = int(np.count_nonzero(band & (cls == "look-alike")))
            if hits > best[0] or (hits == best[0] and td + tp < best[1] + best[2]):
                best = (hits, td, tp)
    return best[1], best[2]


def report(name: str, d: I64, p: I64, cls: npt.NDArray[np.str_], td: int, tp: int) -> None:
    band = in_band(d, p, td, tp)
    dup = (d <= DEFAULT_DHASH_THRESHOLD) & (p <= DEFAULT_PHASH_THRESHOLD)
    print(f"**{name}** at dHash <= {td}, pHash <= {tp}:\n")
    print("| pairs | count | duplicate | similar | neither |\n|---|---|---|---|---|")
    for c in ("look-alike", "other look-alike", "different"):
        sel = cls == c
        n, s, u = (int(np.count_nonzero(x & sel)) for x in (sel, band, dup))
        print(f"| {c} | {n} | {u} | {s} ({100 * s / max(n, 1):.2f}%) | {n - s - u} |")
    print()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--jobs", type=int, default=1)
    parser.add_argument("--all-kinds", action="store_true", help="every benign variant kind")
    args = parser.parse_args()
    manifest = json.loads((DATA / "originals" / "manifest.json").read_text())
    manifest = [m for m in manifest if m.get("category") != "recolour-only"]
    variants = json.loads((DATA / "variants" / "manifest.json").read_text())
    ids = [str(m["photo_id"]) for m in manifest]
    paths = [DATA / "originals" / str(m["file"]) for m in manifest]
    extra = [
        (i, k, DATA / "variants" / i / f)
        for i in ids
        for k, f in variants["files"].get(i, {}).items()
        if k in (variants["target_kinds"] if args.all_kinds else HARD_KINDS)
    ]
    fingerprints(paths, args.jobs)  # the originals first: cached on their own
    prints = fingerprints(paths + [e[2] for e in extra], args.jobs)
    ok = [k for k, path in enumerate(paths) if (h := prints[str(path)]) is not None and not h[2]]
    dh = np.array([prints[str(paths[k])][0] for k in ok], dtype=np.uint64)  # type: ignore[index]
    ph = np.array([prints[str(paths[k])][1] for k in ok], dtype=np.uint64)  # type: ignore[index]
    group = [str(manifest[k]["group"]) for k in ok]
    # halves: a group goes whole to one half; ungrouped photos alternate
    half = np.array(
        [zlib.crc32((g or ids[k]).encode()) % 2 for g, k in zip(group, ok, strict=True)]
    )
    iu, ju = np.triu_indices(len(ok), 1)
    d, p = dist(dh[iu], dh[ju]), dist(ph[iu], ph[ju])
    cls = np.array([pair_class(group[a], group[b]) for a, b in zip(iu, ju, strict=True)])
    tune, test = (half[iu] == 0) & (half[ju] == 0), (half[iu] == 1) & (half[ju] == 1)
    td, tp = choose(d[tune], p[tune], cls[tune])
    print(f"# The similar band on {len(ok)} originals ({len(paths) - len(ok)} flat or failed)\n")
    print(f"Chosen on the tuning half: the most look-alike pairs with at most "
          f"{100 * MAX_DIFFERENT:.2f}% of different pairs in the band.\n")  # fmt: skip
    report("tuning half", d[tune], p[tune], cls[tune], td, tp)
    report("test half", d[test], p[test], cls[test], td, tp)
    report("all pairs", d, p, cls, td, tp)
    variant_check(prints, dict(zip(ids, map(str, paths), strict=True)), extra, td, tp)


def variant_check(
    prints: dict[str, Hashes], original: dict[str, str], extra: list[tuple[str, str, Path]],
    td: int, tp: int,
) -> None:  # fmt: skip
    """Variants against their own original: duplicate, merely similar, or neither, per kind."""
    counts: dict[str, dict[str, int]] = {}
    for photo, kind, path in extra:
        orig, var = prints[original[photo]], prints[str(path)]
        if orig is None or var is None or orig[2] or var[2]:
            continue
        dd, pd = bin(orig[0] ^ var[0]).count("1"), bin(orig[1] ^ var[1]).count("1")
        if dd <= DEFAULT_DHASH_THRESHOLD and pd <= DEFAULT_PHASH_THRESHOLD:
            outcome = "duplicate"
        else:
            outcome = "similar" if dd <= td and pd <= tp else "neither"
        row = counts.setdefault(kind, {"duplicate": 0, "similar": 0, "neither": 0})
        row[outcome] += 1
    print("**Variants against their original** (a variant the duplicate rule matches is a")
    print("duplicate, never similar; the band catches some the rule misses):\n")
    print("| kind | duplicate | merely similar | neither |\n|---|---|---|---|")
    for kind, row in sorted(counts.items()):
        print(f"| {kind} | {row['duplicate']} | {row['similar']} | {row['neither']} |")
    total = {k: sum(r[k] for r in counts.values()) for k in ("duplicate", "similar", "neither")}
    print(f"| all | {total['duplicate']} | {total['similar']} | {total['neither']} |\n")


if __name__ == "__main__":
    main()
