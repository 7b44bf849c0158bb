#!/usr/bin/env python3
"""``dupes`` over a store: the index load and the grouping, time and peak memory.

``arrays`` is today's grouping (``dupes.duplicate_groups``: a self-join of the index, one
grouped query for exact copies, an array union-find); ``per-row`` the former one (one index
search and one SQL query per library file, kept in ``tests/test_dupes.py`` as the reference).
Each runs in a fresh process; both print how many groups and files they found.

    .venv/bin/python bench/dupes.py bench/data/store-1m.db --ways arrays
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

from imagewatchd.dupes import duplicate_groups
from imagewatchd.match import Matcher
from imagewatchd.models import Thresholds
from imagewatchd.store import Store

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the reference is in tests/
from tests.test_dupes import reference_groups

THRESHOLDS = Thresholds(dhash=6, phash=4)


def cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def measure(db: Path, way: str) -> dict[str, float]:
    start, cpu0 = time.perf_counter(), cpu()
    with Store(db) as store:
        matcher = Matcher.load(store, THRESHOLDS)
        loaded, load_cpu = time.perf_counter(), cpu()
        group = duplicate_groups if way == "arrays" else reference_groups
        groups = group(matcher)
    return {
        "load s": loaded - start,
        "load cpu s": load_cpu - cpu0,
        "group s": time.perf_counter() - loaded,
        "group cpu s": cpu() - load_cpu,
        "groups": len(groups),
        "files": sum(len(g.files) for g in groups),
        "peak MiB": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("db", type=Path)
    parser.add_argument("--ways", default="arrays,per-row")
    parser.add_argument("--one", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        print(json.dumps(measure(args.db, args.one)))
        return 0
    print("| grouping | load s (CPU) | grouping s (CPU) | groups | files in groups "
          "| peak RSS MiB |\n|---|---|---|---|---|---|")  # fmt: skip
    for way in args.ways.split(","):
        command = [sys.executable, __file__, str(args.db), "--one", way]
        r = json.loads(subprocess.run(command, capture_output=True, check=True).stdout)
        print(f"| {way} | {r['load s']:.1f} ({r['load cpu s']:.1f}) | {r['group s']:.1f} "
              f"({r['group cpu s']:.1f}) | {r['groups']:,} | {r['files']:,} "
              f"| {r['peak MiB']:,.0f} |")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
