#!/usr/bin/env python3
"""What holding the entries' grids in memory costs a start: ``Matcher.load`` over a SQLite store
of N listed pictures, each with its grid (random hashes, random grids, as bench/list_lookup.py
makes them), in a fresh process: the seconds until the entry indexes are ready, and the
process's resident memory before and after. With ``--main DIR`` (a tree holding main's
``imagewatchd``), main's load runs too, alternately, for the difference.

    OPENBLAS_NUM_THREADS=1 .venv/bin/python bench/grid_load.py --store /tmp/grids-1m.db \\
        -n 1000000 --main /tmp/main
"""

from __future__ import annotations

import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np


def _rss() -> int:
    """Resident bytes now (not the peak)."""
    pages = int(Path("/proc/self/statm").read_text().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE")


def _child(path: Path) -> None:
    from imagewatchd.config import Matching  # noqa: PLC0415 (the package under test)
    from imagewatchd.match import Matcher  # noqa: PLC0415
    from imagewatchd.store import Store  # noqa: PLC0415

    store = Store(path)
    before, started = _rss(), time.perf_counter()
    matcher = Matcher.load(store, Matching().thresholds)
    took, after = time.perf_counter() - started, _rss()
    grids = getattr(matcher.indexes, "grids", None)
    print(json.dumps({"seconds": took, "before": before, "after": after, "entries":
                      len(matcher.entries), "grids": 0 if grids is None else len(grids),
                      "grid_bytes": 0 if grids is None else grids.nbytes}))  # fmt: skip
    store.close()


def _build(path: Path, n: int) -> None:
    sys.path.insert(0, str(Path(__file__).parent))
    from list_lookup import _random, _store  # noqa: PLC0415

    rng = np.random.default_rng(8)
    _store(path, _random(rng, n), _random(rng, n)).close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--store", type=Path, required=True)
    parser.add_argument("-n", type=int, default=1_000_000)
    parser.add_argument("--main", type=Path)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        return _child(args.store)
    if not args.store.exists():
        _build(args.store, args.n)
    trees = [("main", args.main), ("this tree", None)] if args.main else [("this tree", None)]
    print("| package | seconds | RSS before MB | RSS after MB | entries | grids | grid MB |")
    print("|---|---|---|---|---|---|---|")
    for _ in range(args.runs):
        for name, tree in trees:
            env = dict(os.environ, **({"PYTHONPATH": str(tree)} if tree else {}))
            command = [sys.executable, __file__, "--child", "--store", str(args.store)]
            out = subprocess.run(command, env=env, capture_output=True, text=True, check=True)
            r = json.loads(out.stdout)
            print(f"| {name} | {r['seconds']:.2f} | {r['before'] / 2**20:.0f} | "
                  f"{r['after'] / 2**20:.0f} | {r['entries']:,} | {r['grids']:,} | "
                  f"{r['grid_bytes'] / 2**20:.0f} |")  # fmt: skip


if __name__ == "__main__":
    main()
