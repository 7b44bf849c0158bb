#!/usr/bin/env python3
"""The list lookup's decisions on the evaluation set, to compare two versions of the code.

The originals of a cached evaluation set (``bench/watermarks.py --cache``) become one block
list in a real SQLite store, as ``known add`` leaves them (hashes, PDQ, centre crops, grids);
every fingerprint (originals, variants, natural copies) is then looked up with the real
``Matcher.list_matches``, turned and not. ``--filler N`` adds N random hash-only entries in a
second list (searches then probe the indexes instead of scanning them). The answers are written
to ``--out`` (a pickle of their reprs); ``--compare A B`` says whether two such files are
identical, and where not. Run it once with main's package first on ``PYTHONPATH`` and once
with this tree's.
"""

from __future__ import annotations

import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import argparse
import pickle
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

from imagewatchd import verify
from imagewatchd.config import Matching
from imagewatchd.match import Matcher
from imagewatchd.models import Fingerprint, ListKind
from imagewatchd.rows import NewEntry
from imagewatchd.store import Store


def _entry(photo: str, fp: Fingerprint) -> NewEntry:
    entry = NewEntry(fp.sha256, fp.dhash, fp.phash, photo, photo, flat=fp.flat, pdq=fp.pdq,
                     pdq_quality=fp.pdq_quality, regions=fp.crops)  # fmt: skip
    if "grid" in NewEntry.__dataclass_fields__:  # this tree: kept with the entry
        entry = replace(entry, grid=fp.grid)  # type: ignore[call-arg,unused-ignore]
    return entry


def _filler(count: int) -> list[NewEntry]:
    """Random hash-only entries (dHash, pHash, PDQ), as an imported list: a larger index, so
    that searches probe instead of scanning, and candidates without a grid."""
    rng = np.random.default_rng(7)
    d, p = (rng.integers(0, 2**64, count, dtype=np.uint64, endpoint=False) for _ in "dp")
    pdqs = [int.from_bytes(rng.bytes(32), "big") for _ in range(count)]
    return [NewEntry(None, int(a), int(b), "filler", pdq=q, pdq_quality=100)
            for a, b, q in zip(d.tolist(), p.tolist(), pdqs, strict=True)]  # fmt: skip


def decisions(cache: Path, filler: int) -> dict[str, str]:
    sys.path.insert(0, str(Path(__file__).parent))  # the pickle's classes (evaluate.Set)
    s = pickle.loads(cache.read_bytes())
    originals = {p: fp for p, fp in s.fp.items() if isinstance(fp, Fingerprint)}
    queries = [(f"original {p}", fp) for p, fp in originals.items()]
    queries += [(f"{p} {k}", fp) for (p, k), fp in s.vfp.items() if isinstance(fp, Fingerprint)]
    queries += [(f"natural {i}", fp) for i, (_, fp) in enumerate(s.natural)
                if isinstance(fp, Fingerprint)]  # fmt: skip
    found: dict[str, str] = {}
    with tempfile.TemporaryDirectory() as tmp:
        store = Store(Path(tmp) / "list.db")
        list_id = store.create_list("banned", ListKind.BLOCK, "", 1.0)
        entries = [_entry(p, fp) for p, fp in originals.items()]
        added, _ = store.add_entries(list_id, entries, 1.0)
        if hasattr(verify, "keep_grids"):  # main's package: the grids are kept apart
            verify.keep_grids(store, added, {fp.sha256: fp.grid for fp in originals.values()})
        if filler:
            store.add_entries(store.create_list("imported", ListKind.BLOCK, "", 1.0),
                              _filler(filler), 1.0)  # fmt: skip
        matcher = Matcher.load(store, Matching().thresholds)
        started = time.perf_counter()
        for name, fp in queries:
            for turned in (True, False):
                found[f"{name} turned={turned}"] = repr(matcher.list_matches(fp, turned=turned))
        took = time.perf_counter() - started
        store.close()
    matched = sum(text != "()" for text in found.values())
    print(f"{len(found)} lookups of {len(queries)} fingerprints against {len(added)} entries: "
          f"{matched} matched anything; {took:.1f} s")  # fmt: skip
    return found


def compare(a: Path, b: Path) -> int:
    first, second = (pickle.loads(p.read_bytes()) for p in (a, b))
    differ = sorted(k for k in first.keys() | second.keys() if first.get(k) != second.get(k))
    print(f"{len(first)} and {len(second)} lookups; {len(differ)} differ")
    for key in differ[:20]:
        print(f"{key}:\n  {first.get(key)}\n  {second.get(key)}")
    return 1 if differ else 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cache", type=Path, default=Path("/tmp/evalset-v2.pkl"))
    parser.add_argument("--out", type=Path)
    parser.add_argument("--compare", type=Path, nargs=2)
    parser.add_argument("--filler", type=int, default=0, help="random hash-only entries too")
    args = parser.parse_args()
    if args.compare:
        sys.exit(compare(*args.compare))
    found = decisions(args.cache, args.filler)
    if args.out:
        args.out.write_bytes(pickle.dumps(found))


if __name__ == "__main__":
    main()
