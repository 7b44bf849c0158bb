#!/usr/bin/env python3
"""Near-match lookup latency and memory of ``HammingIndex`` at a million stored hash pairs.

The index holds N (dHash, pHash) pairs: uniform random pairs, plus planted near-neighbours of
the query pairs (0-3 copies each, every hash 0-8 bits away) and decoys just outside (9-12 bits
away in one hash). Each query asks for every entry within 8 bits on both hashes, as the matcher
does; results are checked against a brute-force scan on a sample of queries.

Memory per stored pair is reported three ways: ``nbytes / N`` (what the index says it holds),
the growth of the process's resident set over the build (VmRSS; glibc keeps some freed build
temporaries until ``malloc_trim``), and what tracemalloc saw allocated (still held, and at the
peak of the build).

Then: single ``add`` calls (each merge of the recent buffer shows as the max), searches again,
and searches at other thresholds. Latencies are wall-clock and this thread's CPU time; the
latter is blind to preemption by other processes, whose CPU use is printed too
(``--wait-quiet S`` waits for a quiet machine first).
"""

from __future__ import annotations

import argparse
import ctypes
import gc
import os
import sys
import time
import tracemalloc
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from imagewatchd.hashindex import HammingIndex

Hashes = NDArray[np.uint64]


@dataclass(frozen=True)
class Data:
    keys: NDArray[np.int64]
    dhashes: Hashes
    phashes: Hashes
    queries: list[tuple[int, int]]


def rss_bytes() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError("no VmRSS in /proc/self/status")


def busy_seconds() -> float:
    """CPU time used by every process since boot, from /proc/stat, in seconds."""
    fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    return (sum(fields) - fields[3] - fields[4]) / os.sysconf("SC_CLK_TCK")  # minus idle, iowait


def wait_quiet(limit: float, max_wait: float) -> float:
    """Wait (up to ``max_wait`` s) until other processes use < ``limit`` cores over 2 s."""
    deadline = time.monotonic() + max_wait
    while True:
        before = busy_seconds()
        time.sleep(2.0)
        load = (busy_seconds() - before) / 2.0
        if load < limit or time.monotonic() > deadline:
            return load
        print(f"(waiting: other processes use {load:.2f} cores)", file=sys.stderr)


def flipped(rng: np.random.Generator, hashes: Hashes, low: int, high: int) -> Hashes:
    """Each hash with ``low``..``high`` distinct random bits flipped."""
    counts = rng.integers(low, high + 1, len(hashes))
    order = rng.permuted(np.tile(np.arange(64, dtype=np.uint64), (len(hashes), 1)), axis=1)
    bits = np.where(np.arange(64) < counts[:, None], np.uint64(1) << order, np.uint64(0))
    out: Hashes = hashes ^ np.bitwise_or.reduce(bits, axis=1)
    return out


def make_data(n: int, queries: int, seed: int) -> Data:
    rng = np.random.default_rng(seed)
    qd = rng.integers(0, 2**64, queries, dtype=np.uint64)
    qp = rng.integers(0, 2**64, queries, dtype=np.uint64)
    near = np.repeat(np.arange(queries), rng.integers(0, 4, queries))  # 0-3 copies per query
    decoy = np.flatnonzero(rng.random(queries) < 0.5)
    dhashes = [flipped(rng, qd[near], 0, 8), flipped(rng, qd[decoy], 9, 12)]
    phashes = [flipped(rng, qp[near], 0, 8), qp[decoy]]
    planted = len(near) + len(decoy)
    dhashes.append(rng.integers(0, 2**64, n - planted, dtype=np.uint64))
    phashes.append(rng.integers(0, 2**64, n - planted, dtype=np.uint64))
    keys = rng.permutation(n).astype(np.int64)
    pairs = list(zip(qd.tolist(), qp.tolist(), strict=True))
    return Data(keys, np.concatenate(dhashes), np.concatenate(phashes), pairs)


Limits = tuple[int, int]  # the thresholds on dHash and on pHash


def brute_force(data: Data, dhash: int, phash: int, limit: Limits) -> list[tuple[int, int, int]]:
    dd = np.bitwise_count(data.dhashes ^ np.uint64(dhash)).astype(np.int64)
    pd = np.bitwise_count(data.phashes ^ np.uint64(phash)).astype(np.int64)
    rows = np.flatnonzero((dd <= limit[0]) & (pd <= limit[1]))
    found = zip(data.keys[rows].tolist(), dd[rows].tolist(), pd[rows].tolist(), strict=True)
    return sorted(found, key=lambda f: (f[1] + f[2], f[0]))


@dataclass
class Timings:
    """Microseconds per call: wall-clock, and CPU time of this thread (blind to preemption)."""

    wall: list[float] = field(default_factory=list)
    cpu: list[float] = field(default_factory=list)

    def time(self, call: Callable[[], object]) -> None:
        wall, cpu = time.perf_counter_ns(), time.thread_time_ns()
        call()
        self.cpu.append((time.thread_time_ns() - cpu) / 1000)
        self.wall.append((time.perf_counter_ns() - wall) / 1000)

    def row(self, name: str) -> str:
        """A Markdown table row: wall-clock median, p90, p99 and max, then CPU median and p99."""
        wall, cpu = self.wall, self.cpu
        cells = [np.median(wall), pct(wall, 90), pct(wall, 99), max(wall)]
        cells += [np.median(cpu), pct(cpu, 99)]
        return f"| {name} | {len(wall)} | " + " | ".join(f"{c:,.1f}" for c in cells) + " |"


def latencies(index: HammingIndex, queries: list[tuple[int, int]], limit: Limits) -> Timings:
    """Timings of searches, after a few warm-up searches."""
    for dhash, phash in queries[:50]:
        index.search(dhash, phash, *limit)
    timings = Timings()
    for dhash, phash in queries:
        timings.time(partial(index.search, dhash, phash, *limit))
    return timings


def pct(values: list[float], q: float) -> float:
    return float(np.percentile(values, q))


def build(data: Data) -> tuple[HammingIndex, dict[str, float]]:
    gc.collect()
    rss0 = rss_bytes()
    tracemalloc.start()
    start = time.perf_counter()
    index = HammingIndex()
    index.add_many(data.keys, data.dhashes, data.phashes)
    seconds = time.perf_counter() - start
    held, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    gc.collect()
    n, rss1 = len(data.keys), rss_bytes()
    ctypes.CDLL("libc.so.6").malloc_trim(0)  # hand freed build temporaries back to the OS
    return index, {
        "build s": seconds,
        "nbytes / N": index.nbytes / n,
        "RSS growth / N": (rss1 - rss0) / n,
        "RSS growth after malloc_trim / N": (rss_bytes() - rss0) / n,
        "tracemalloc held / N": held / n,
        "tracemalloc peak / N": peak / n,
    }


def incremental(index: HammingIndex, data: Data, adds: int, seed: int) -> Timings:
    """Timings of single ``add`` calls of new keys (merges of the recent buffer included)."""
    rng = np.random.default_rng(seed + 1)
    first = len(data.keys)
    dhashes = rng.integers(0, 2**64, adds, dtype=np.uint64).tolist()
    phashes = rng.integers(0, 2**64, adds, dtype=np.uint64).tolist()
    timings = Timings()
    for key, dhash, phash in zip(range(first, first + adds), dhashes, phashes, strict=True):
        timings.time(partial(index.add, key, dhash, phash))
    return timings


def own_cpu() -> float:
    times = os.times()
    return times.user + times.system


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1_000_000, help="stored hash pairs")
    parser.add_argument("--queries", type=int, default=2000, help="timed near-match queries")
    parser.add_argument("--distance", type=int, default=8, help="threshold on both hashes")
    parser.add_argument("--dhash", type=int, help="threshold on dHash (default: --distance)")
    parser.add_argument("--phash", type=int, help="threshold on pHash (default: --distance)")
    parser.add_argument("--check", type=int, default=200, help="queries checked by brute force")
    parser.add_argument("--adds", type=int, default=20_000, help="single adds after the build")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--wait-quiet", type=float, default=0, metavar="S",
        help="before measuring, wait up to S seconds for other processes to use < 0.2 cores",
    )  # fmt: skip
    return parser.parse_args()


def main() -> int:
    args = parse_args()
    data = make_data(args.n, args.queries, args.seed)
    quiet = wait_quiet(0.2, args.wait_quiet) if args.wait_quiet else float("nan")
    busy, own, wall = busy_seconds(), own_cpu(), time.perf_counter()
    index, memory = build(data)
    limit = (
        args.distance if args.dhash is None else args.dhash,
        args.distance if args.phash is None else args.phash,
    )
    checked = data.queries[: args.check]
    wrong = sum(index.search(d, p, *limit) != brute_force(data, d, p, limit) for d, p in checked)
    hits = sum(bool(index.search(d, p, *limit)) for d, p in data.queries)
    table = [latencies(index, data.queries, limit).row("search, after the bulk build")]
    adds = incremental(index, data, args.adds, args.seed)
    table.append(adds.row(f"add, one at a time ({args.adds:,} new keys)"))
    table.append(latencies(index, data.queries[:500], limit).row("search, after the adds"))
    for other in (0, 4, 6, 10, 12, 16):
        sweep = latencies(index, data.queries[:300], (other, other))
        table.append(sweep.row(f"search, distance <= {other}"))
    others = (busy_seconds() - busy - (own_cpu() - own)) / (time.perf_counter() - wall)

    print(f"# HammingIndex lookup, N = {args.n:,}, dHash <= {limit[0]} and pHash <= {limit[1]}\n")
    print(f"{os.cpu_count()} CPUs; other processes used {others:.2f} cores on average while this "
          f"ran ({quiet:.2f} just before); numpy {np.__version__}, Python {sys.version.split()[0]}."
          "\n")  # fmt: skip
    print("| memory per stored pair | bytes |\n|---|---|")
    print("\n".join(f"| {name} | {value:.1f} |" for name, value in memory.items() if "/" in name))
    print(f"\nBuild (`add_many` of {args.n:,} pairs): {memory['build s']:.2f} s. "
          f"Queries with at least one match: {hits} of {len(data.queries)}. "
          f"Brute-force check: {len(checked) - wrong} of {len(checked)} equal.\n")  # fmt: skip
    print("| operation | count | median µs | p90 µs | p99 µs | max µs | CPU median µs "
          "| CPU p99 µs |\n|---|---|---|---|---|---|---|---|")  # fmt: skip
    print("\n".join(table))
    return 1 if wrong else 0


if __name__ == "__main__":
    sys.exit(main())
