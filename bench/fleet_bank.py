#!/usr/bin/env python3
"""A large bank on PostgreSQL: a host's start from its bank snapshot plus the changes since,
and the memory its entry index takes.

A throwaway cluster (``tests/pgcluster.py``); ``--entries`` random dHash+pHash entries written
by binary COPY (made with numpy, in chunks of a million: the change log's trigger logs each
chunk); host ``b`` starts once (the bank loaded whole, its snapshot written), then host ``a``
adds ``--changes`` entries and disables a tenth as many, and ``b`` starts again: the snapshot
memory-mapped plus those changes applied. Each start runs in a fresh process, which reports the
time until its entry index is ready and its RSS before and after.

    OPENBLAS_NUM_THREADS=1 PYTHONPATH=. python bench/fleet_bank.py [--entries 10000000]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import psycopg

from imagewatchd.models import ListKind
from imagewatchd.rows import NewEntry
from imagewatchd.store import Location, Store
from tests.pgcluster import Cluster

CHUNK = 1_000_000
ROW = np.dtype([("fields", ">i2"), ("l1", ">i4"), ("id", ">i8"), ("l2", ">i4"), ("list", ">i8"),
                ("l3", ">i4"), ("dhash", ">i8"), ("l4", ">i4"), ("phash", ">i8"),
                ("l5", ">i4"), ("added", ">f8")])  # fmt: skip
HEADER = b"PGCOPY\n\xff\r\n\x00" + bytes(8)


def copy_rows(first: int, count: int, list_id: int, rng: np.random.Generator) -> bytes:
    """Binary COPY data of ``count`` entries (id, list_id, dhash, phash, added)."""
    rows = np.zeros(count, ROW)
    rows["fields"] = 5
    for name in ("l1", "l2", "l3", "l4", "l5"):
        rows[name] = 8
    rows["id"] = np.arange(first, first + count)
    rows["list"] = list_id
    rows["dhash"] = rng.integers(-(1 << 63), (1 << 63) - 1, count, dtype=np.int64)
    rows["phash"] = rng.integers(-(1 << 63), (1 << 63) - 1, count, dtype=np.int64)
    rows["added"] = time.time()
    return HEADER + rows.tobytes() + b"\xff\xff"


def build(url: str, base: Path, entries: int) -> float:
    """The bank, by COPY; seconds taken."""
    started = time.monotonic()
    with Store(Location(base / "a" / "postgresql", url, "a")) as store:
        list_id = store.create_list("big", ListKind.BLOCK, "", now=time.time())
    rng = np.random.default_rng(1)
    with psycopg.connect(url, autocommit=True) as db:
        for first in range(1, entries + 1, CHUNK):
            count = min(CHUNK, entries + 1 - first)
            with (
                db.transaction(),
                db.cursor().copy(
                    "COPY entries (id, list_id, dhash, phash, added) FROM STDIN (FORMAT BINARY)"
                ) as copy,
            ):
                copy.write(copy_rows(first, count, list_id, rng))
            print(f"  {first + count - 1} entries", file=sys.stderr, flush=True)
        db.execute("SELECT setval(pg_get_serial_sequence('entries', 'id'), %s)", (entries,))
        db.execute("VACUUM ANALYZE entries")
    return time.monotonic() - started


def change(url: str, base: Path, added: int) -> None:
    """Host a adds ``added`` entries one import and disables a tenth as many."""
    rng = np.random.default_rng(2)
    with Store(Location(base / "a" / "postgresql", url, "a")) as store:
        list_id = store.create_list("more", ListKind.BLOCK, "", now=time.time())
        hashes = rng.integers(0, (1 << 63) - 1, (added, 2), dtype=np.int64).tolist()
        store.add_entries(list_id, [NewEntry(None, d, p) for d, p in hashes], now=time.time())
        store.set_entries_enabled(list(range(1, added // 10 + 1)), False)


def start(url: str, state: Path) -> dict[str, float]:
    """In this process: a host's start; (seconds to index ready, RSS before and after)."""
    from imagewatchd.match import Matcher  # noqa: PLC0415
    from imagewatchd.models import Thresholds  # noqa: PLC0415

    def rss() -> int:
        with open("/proc/self/status") as status:
            line = next(x for x in status if x.startswith("VmRSS:"))
        return int(line.split()[1]) * 1024

    before = rss()
    started = time.monotonic()
    with Store(Location(state / "postgresql", url, "b")) as store:
        matcher = Matcher.load(store, Thresholds(dhash=8, phash=8))
        took = time.monotonic() - started
        after = rss()
        entries = len(matcher.entries)
        probe = time.monotonic()
        for d in range(200):  # a few searches, so that the mapped pages they need are in
            matcher.entries.search(d * 7919, d * 104729, 8, 8)
        searching = (time.monotonic() - probe) / 200
        return {"seconds": took, "rss_before": before, "rss_after": after, "rss_searched": rss(),
                "entries": entries, "nbytes": matcher.entries.nbytes, "search_ms":
                searching * 1000, "whole_loads": matcher.indexes.rebuilds,
                "maxrss": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024}  # fmt: skip


def host_start(url: str, state: Path) -> dict[str, float]:
    done = subprocess.run(
        [sys.executable, __file__, "--start", url, str(state)], capture_output=True, text=True,
        check=True, env={**os.environ, "OPENBLAS_NUM_THREADS": "1"},
    )  # fmt: skip
    result: dict[str, float] = json.loads(done.stdout)
    return result


def report(name: str, r: dict[str, float]) -> None:
    per = (r["rss_after"] - r["rss_before"]) / max(1, r["entries"])
    print(f"{name}: index ready in {r['seconds']:.1f} s, {r['entries']:.0f} entries, RSS delta "
          f"{per:.0f} B/entry ({(r['rss_searched'] - r['rss_before']) / max(1, r['entries']):.0f}"
          f" after 200 searches; peak {r['maxrss'] / max(1, r['entries']):.0f}), index "
          f"{r['nbytes'] / max(1, r['entries']):.0f} B/entry, search {r['search_ms']:.2f} ms, "
          f"whole loads {r['whole_loads']:.0f}")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--entries", type=int, default=10_000_000)
    parser.add_argument("--changes", type=int, default=10_000)
    parser.add_argument("--start", nargs=2, metavar=("URL", "STATE"))
    args = parser.parse_args()
    if args.start:
        print(json.dumps(start(args.start[0], Path(args.start[1]))))
        return
    cluster = Cluster()
    try:
        with tempfile.TemporaryDirectory() as name:
            base = Path(name)
            url = cluster.database()
            built = build(url, base, args.entries)
            print(f"bank of {args.entries} entries built by COPY in {built:.0f} s")
            (base / "b").mkdir()
            report("first start (whole bank, snapshot written)", host_start(url, base / "b"))
            change(url, base, args.changes)
            report(f"restart (snapshot + {args.changes * 11 // 10} changes)",
                   host_start(url, base / "b"))  # fmt: skip
    finally:
        cluster.stop()


if __name__ == "__main__":
    main()
