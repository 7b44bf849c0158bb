#!/usr/bin/env python3
"""How long a near-match search can stall while entries are added one by one.

Builds a ``HammingIndex`` of N random (dHash, pHash) pairs, then one thread adds new entries
one at a time, as fast as it can (``--merges`` times the recent buffer, so that it is merged
into main that often), while this thread searches at the default thresholds without pause.
Prints the searches' wall-clock latencies (median, p99, max: the longest stall) and the adds'
(the slowest add is the one that merges).

    .venv/bin/python bench/search_stall.py --n 10000000
"""

from __future__ import annotations

import argparse
import sys
import threading
import time

import numpy as np
from numpy.typing import NDArray

from imagewatchd.hashindex import HammingIndex

Hashes = NDArray[np.uint64]


def build(n: int, rng: np.random.Generator) -> tuple[HammingIndex, Hashes, Hashes]:
    dhashes = rng.integers(0, 2**64, n, dtype=np.uint64)
    phashes = rng.integers(0, 2**64, n, dtype=np.uint64)
    index = HammingIndex()
    index.add_many(np.arange(n), dhashes, phashes)
    return index, dhashes, phashes


def add_one_by_one(index: HammingIndex, first: int, count: int, took: list[float]) -> None:
    rng = np.random.default_rng(2)
    hashes = rng.integers(0, 2**64, (count, 2), dtype=np.uint64).tolist()
    for key, (dhash, phash) in enumerate(hashes, start=first):
        start = time.perf_counter()
        index.add(key, dhash, phash)
        took.append(time.perf_counter() - start)


def summary(name: str, seconds: list[float]) -> str:
    ms = np.array(seconds) * 1000
    return (
        f"{name}: {len(ms):,}, median {np.median(ms):.3f} ms, p99 {np.percentile(ms, 99):.3f} ms,"
        f" max {ms.max():.1f} ms"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1_000_000, help="stored hash pairs")
    parser.add_argument("--merges", type=int, default=3, help="recent buffers to fill")
    parser.add_argument("--dhash", type=int, default=6)
    parser.add_argument("--phash", type=int, default=4)
    args = parser.parse_args()
    rng = np.random.default_rng(1)
    start = time.perf_counter()
    index, dhashes, phashes = build(args.n, rng)
    print(f"built {args.n:,} in {time.perf_counter() - start:.1f} s", file=sys.stderr)
    adds: list[float] = []
    count = args.merges * HammingIndex.recent_capacity
    adder = threading.Thread(target=add_one_by_one, args=(index, args.n, count, adds))
    searches: list[float] = []
    queries = rng.integers(0, args.n, 100_000).tolist()
    adder.start()
    while adder.is_alive():
        row = queries[len(searches) % len(queries)]
        start = time.perf_counter()
        found = index.search(int(dhashes[row]) ^ 1, int(phashes[row]), args.dhash, args.phash)
        searches.append(time.perf_counter() - start)
        assert any(key == row for key, _, _ in found)
    adder.join()
    print(summary(f"N={args.n:,}: searches during the adds", searches))
    print(summary(f"N={args.n:,}: adds", adds))
    return 0


if __name__ == "__main__":
    sys.exit(main())
