#!/usr/bin/env python3
"""A list lookup with the query in 8 orientations, at a million listed pictures (issue 8).

What ``Matcher.list_matches`` asks the indexes for a picture that matches nothing (the common
case: every orientation is searched): for each orientation, the (dHash, pHash) index at the
default thresholds (6, 4) and the PDQ index at 31 bits. The indexes hold N random entries
(``HammingIndex``: random pairs; ``PdqIndex``: random PDQs with 128 bits set); each query is 8
unrelated random views. Timed: the picture as it is (1 view), all 8 one search each, and all 8
with the PDQ index's one pass (``PdqIndex.search_many``, what match.py does). Times are
this thread's CPU time (``time.thread_time``): on the shared machine a wall-clock sum of 8
sub-millisecond searches mostly measures waiting for a core (``--wall`` shows it).
"""

from __future__ import annotations

import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import argparse
import importlib.util
import statistics
import time
from pathlib import Path
from types import ModuleType

import numpy as np
from pdq_lookup import balanced

from imagewatchd.hashindex import HammingIndex
from imagewatchd.pdqindex import PdqIndex

VIEWS = 8


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=1_000_000)
    parser.add_argument("--queries", type=int, default=300)
    parser.add_argument("--wall", action="store_true", help="wall-clock time instead of CPU")
    parser.add_argument(
        "--before",
        type=Path,
        help="another pdqindex.py (git show "
        "main:imagewatchd/pdqindex.py > FILE) timed too, one search per view",
    )
    args = parser.parse_args()
    clock = time.perf_counter if args.wall else time.thread_time
    rng = np.random.default_rng(8)
    pairs = HammingIndex()
    keys = np.arange(args.n, dtype=np.int64)
    pairs.add_many(keys, *(rng.integers(0, 2**63, args.n, dtype=np.int64) for _ in range(2)))
    hashes = balanced(rng, args.n)
    pdqs = PdqIndex()
    pdqs.add_many(range(args.n), hashes)
    before = _module(args.before).PdqIndex() if args.before else None
    if before is not None:
        before.add_many(range(args.n), hashes)
    views = [
        [(int(rng.integers(0, 2**63)), int(rng.integers(0, 2**63)), q) for q in balanced(rng, 8)]
        for _ in range(args.queries)
    ]
    print(f"# List lookup in 8 orientations, N = {args.n:,}, {'wall' if args.wall else 'CPU'}\n")
    print("| views searched | dHash+pHash median ms | PDQ median ms | both median ms | p90 ms |")
    print("|---|---|---|---|---|")
    ways = [(1, False, pdqs), (VIEWS, False, pdqs), (VIEWS, True, pdqs)]
    ways += [(n, False, before) for n in (1, VIEWS)] if before is not None else []
    for count, one_pass, index in ways:
        pair_t, pdq_t, both_t = [], [], []
        for query in views:
            t0 = clock()
            for i, (dhash, phash, _) in enumerate(query[:count]):
                pairs.search(dhash, phash, *((5, 2) if i else (6, 4)))  # Thresholds.turned
            t1 = clock()
            if one_pass:
                index.search_many([pdq for _, _, pdq in query[:count]], 31)
            else:
                for _, _, pdq in query[:count]:
                    index.search(pdq, 31)
            t2 = clock()
            pair_t.append(t1 - t0)
            pdq_t.append(t2 - t1)
            both_t.append(t2 - t0)
        p90 = float(np.percentile(both_t, 90)) * 1000
        shown = f"{count} (PDQ in one pass)" if one_pass else str(count)
        shown += f" ({args.before.name})" if index is before else ""
        print(f"| {shown} | {statistics.median(pair_t) * 1000:.3f} | "
              f"{statistics.median(pdq_t) * 1000:.3f} | {statistics.median(both_t) * 1000:.3f} | "
              f"{p90:.3f} |")  # fmt: skip


def _module(path: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location("before", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


if __name__ == "__main__":
    main()
