#!/usr/bin/env python3
"""Fingerprinting throughput on 2-megapixel JPEGs: threads in one process vs worker processes.

Side by side in one run, on the same files (1600 x 1200 photo-like JPEGs, quality 90, distinct
content), each way fed by as many threads as it has workers:

- ``threads``: ``fingerprint_path`` with the in-process decoder, as the daemon did before
  decoding moved into workers;
- ``pool``: ``fingerprint_path`` with a ``WorkerPool`` (the parent opens each file, passes the fd,
  the worker reads, hashes and answers).

Rounds alternate the order of the ways; files/s per round, best and median reported. The last
column is the CPU other processes used meanwhile (this machine is shared).

    OPENBLAS_NUM_THREADS=1 python bench/decoding.py [--files 300] [--rounds 5] [--workers 1 2]
"""

from __future__ import annotations

import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")  # before numpy is imported

import argparse
import statistics
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
from PIL import Image

from imagewatchd.decoding import Decoder, Settings, fingerprint_path
from imagewatchd.decoding.inline import InlineDecoder
from imagewatchd.decoding.pool import WorkerPool

SIZE = (1600, 1200)


def make_files(directory: Path, count: int) -> list[Path]:
    rng = np.random.default_rng(0)
    base = np.asarray(
        Image.fromarray((rng.random((12, 16, 3)) * 255).astype(np.uint8)).resize(
            SIZE, Image.Resampling.BICUBIC
        ),
        dtype=np.float32,
    )
    paths = []
    for n in range(count):
        noise = rng.normal(0, 4, base.shape)
        path = directory / f"{n:04d}.jpg"
        pixels = np.clip(base + noise + n % 50, 0, 255).astype(np.uint8)
        Image.fromarray(pixels).save(path, quality=90)
        paths.append(path)
    return paths


def busy_jiffies() -> int:
    fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    return sum(fields) - fields[3] - fields[4]  # minus idle and iowait


def own_jiffies() -> int:
    """CPU time of this process and its live children (the workers), in clock ticks."""
    pids = ["self"]
    for task in Path("/proc/self/task").iterdir():
        pids += (task / "children").read_text().split()
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])  # utime, stime
    return total


def run(decoder: Decoder, paths: list[Path], threads: int) -> float:
    started = time.perf_counter()
    with ThreadPoolExecutor(threads) as pool:
        for _ in pool.map(lambda p: fingerprint_path(decoder, p), paths):
            pass
    return len(paths) / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--files", type=int, default=300)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    args = parser.parse_args()
    directory = Path(tempfile.mkdtemp(prefix="iw-decoding-"))
    paths = make_files(directory, args.files)
    size = sum(p.stat().st_size for p in paths) / len(paths)
    print(f"{len(paths)} JPEGs of {SIZE[0]}x{SIZE[1]}, {size / 1e6:.2f} MB on average; "
          f"{os.cpu_count()} CPUs\n")  # fmt: skip
    print("| workers | way | files/s best | median | rounds | others' CPU |")
    print("|---|---|---|---|---|---|")
    for workers in args.workers:
        decoders: dict[str, Decoder] = {
            "threads": InlineDecoder(),
            "pool": _started(WorkerPool(Settings(workers=workers))),
        }
        ways = list(decoders)
        rates: dict[str, list[float]] = {name: [] for name in ways}
        others: dict[str, list[float]] = {name: [] for name in ways}
        try:
            run(decoders["threads"], paths[:20], workers)  # warm both up
            run(decoders["pool"], paths[:20], workers)
            for round_ in range(args.rounds):
                order = list(ways) if round_ % 2 == 0 else list(reversed(ways))
                for name in order:
                    busy, mine = busy_jiffies(), own_jiffies()
                    t0 = time.perf_counter()
                    rates[name].append(run(decoders[name], paths, workers))
                    wall = time.perf_counter() - t0
                    ticks = os.sysconf("SC_CLK_TCK")
                    other = (busy_jiffies() - busy - (own_jiffies() - mine)) / ticks
                    others[name].append(other / wall)
        finally:
            for decoder in decoders.values():
                decoder.close()
        for name in ways:
            print(f"| {workers} | {name} | {max(rates[name]):.1f} | "
                  f"{statistics.median(rates[name]):.1f} | {len(rates[name])} | "
                  f"{statistics.median(others[name]):.2f} CPU |")  # fmt: skip
    for path in paths:
        path.unlink()
    directory.rmdir()
    print("\nothers' CPU: what other processes used meanwhile, in cores (not our workers)")


def _started(pool: WorkerPool) -> WorkerPool:
    pool.start()
    return pool


if __name__ == "__main__":
    main()
