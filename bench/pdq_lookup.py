#!/usr/bin/env python3
"""PDQ near-match lookup at a million stored hashes: ``PdqIndex`` vs a linear numpy scan.

The index holds N PDQ hashes: random 256-bit hashes with exactly 128 bits set (PDQ thresholds
at the median, so every PDQ has 128 ones), plus planted near neighbours of the queries (0-3
each, 0-31 bits away) and decoys just outside (32-40 bits away). Each query asks for every
hash within the threshold; answers are checked against the scan on a sample of queries.
"""

from __future__ import annotations

import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import argparse
import statistics
import time

import numpy as np

from imagewatchd.pdqindex import PdqIndex, words


def balanced(rng: np.random.Generator, n: int) -> list[int]:
    """``n`` random 256-bit values with exactly 128 bits set."""
    keys = rng.random((n, 256)).argsort(axis=1) < 128
    packed = np.packbits(keys, axis=1)
    return [int.from_bytes(row.tobytes(), "big") for row in packed]


def flip(rng: np.random.Generator, value: int, low: int, high: int) -> int:
    bits = rng.choice(256, size=int(rng.integers(low, high + 1)), replace=False)
    for b in bits:
        value ^= 1 << int(b)
    return value


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=1_000_000)
    parser.add_argument("--queries", type=int, default=500)
    parser.add_argument("--thresholds", type=int, nargs="+", default=[31])
    args = parser.parse_args()
    rng = np.random.default_rng(8)
    queries = balanced(rng, args.queries)
    planted = [flip(rng, q, 0, 31) for q in queries for _ in range(int(rng.integers(0, 4)))]
    decoys = [flip(rng, q, 32, 40) for q in queries]
    hashes = balanced(rng, args.n - len(planted) - len(decoys)) + planted + decoys
    start = time.perf_counter()
    index = PdqIndex()
    index.add_many(range(len(hashes)), hashes)
    built = time.perf_counter() - start
    held = sum(a.nbytes for a in (index._rows, index._starts, index._hashes, index._keys))
    print(f"# PDQ lookup, N = {len(hashes):,}\n")
    print(f"build {built:.1f} s, {held / len(hashes):.0f} bytes per hash held by the index\n")
    all_words = words(hashes)
    print("| threshold | index median ms | p99 ms | scan median ms | found per query |")
    print("|---|---|---|---|---|")
    for t in args.thresholds:
        index.search(queries[0], t)  # warm the probe masks
        lat, scan, found = [], [], []
        for n, q in enumerate(queries):
            t0 = time.perf_counter()
            got = index.search(q, t)
            lat.append(time.perf_counter() - t0)
            found.append(len(got))
            if n < 50:
                t0 = time.perf_counter()
                qw = words([q])
                d = np.bitwise_count(all_words ^ qw).sum(axis=1)
                want = sorted((int(k), int(d[k])) for k in np.flatnonzero(d <= t))
                scan.append(time.perf_counter() - t0)
                assert sorted(got) == want, (t, n)
        p99 = float(np.percentile(lat, 99)) * 1000
        print(f"| {t} | {statistics.median(lat) * 1000:.3f} | {p99:.3f} | "
              f"{statistics.median(scan) * 1000:.1f} | {statistics.mean(found):.2f} |")  # fmt: skip


if __name__ == "__main__":
    main()
