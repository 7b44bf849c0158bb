#!/usr/bin/env python3
"""CPU time and peak memory of two whole-table reads: ``scan``'s choice of the scanned trees'
library files, and a full list reload (``Matcher.refresh_entries``).

    .venv/bin/python bench/column_reads.py scanned STORE.db /synthetic/lib [--rows]
    .venv/bin/python bench/column_reads.py make-entries ENTRIES.db 1000000
    .venv/bin/python bench/column_reads.py refresh ENTRIES.db

``scanned`` reads column-wise (``Among.under``), or with ``--rows`` a ``FileRow`` per library
file as ``scan`` did before. ``make-entries`` writes a store with one block list of N entries,
each with random dHash, pHash and PDQ (quality 90), in one bulk insert.
"""

from __future__ import annotations

import argparse
import os
import resource
import sqlite3
import sys
import time
from pathlib import Path

import numpy as np

from imagewatchd.dupes import Among
from imagewatchd.match import Matcher
from imagewatchd.models import ListKind, Thresholds
from imagewatchd.store import Store


def scanned(db: Path, root: Path, rows: bool) -> str:
    with Store(db) as store:
        if rows:
            chosen = [r for r in store.library_files() if Path(r.path).is_relative_to(root)]
            return f"{len(Among.of_rows(chosen).ids):,} files, a FileRow each"
        return f"{len(Among.under(store, [root]).ids):,} files, column-wise"


def make_entries(db: Path, n: int) -> str:
    with Store(db) as store:
        list_id = store.create_list("big", ListKind.BLOCK, "", 1.0)
    rng = np.random.default_rng(1)
    signed = [rng.integers(0, 2**64, n, dtype=np.uint64).view(np.int64).tolist() for _ in "dp"]
    insert = (
        "INSERT INTO entries (list_id, sha256, dhash, phash, added, pdq, pdq_quality)"
        " VALUES (?, ?, ?, ?, 1.0, ?, 90)"
    )
    con = sqlite3.connect(db, isolation_level=None)
    con.execute("BEGIN")
    con.executemany(
        insert,
        ((list_id, os.urandom(32).hex(), signed[0][i], signed[1][i], os.urandom(32))
         for i in range(n)),
    )  # fmt: skip
    con.execute("COMMIT")
    con.close()
    return f"{n:,} entries written"


def refresh(db: Path) -> str:
    with Store(db) as store:
        matcher = Matcher(store, Thresholds(6, 4))
        matcher.refresh_entries()
        return f"{len(matcher.entries):,} entries, {len(matcher.indexes.pdq):,} PDQs loaded"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("what", choices=("scanned", "make-entries", "refresh"))
    parser.add_argument("db", type=Path)
    parser.add_argument("arg", nargs="?", help="the scanned root, or how many entries")
    parser.add_argument("--rows", action="store_true", help="a FileRow per file (the old way)")
    args = parser.parse_args()
    wall, cpu = time.perf_counter(), time.process_time()
    if args.what == "scanned":
        done = scanned(args.db, Path(args.arg), args.rows)
    elif args.what == "make-entries":
        done = make_entries(args.db, int(args.arg))
    else:
        done = refresh(args.db)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"{args.what}: {done}: {time.perf_counter() - wall:.2f} s wall, "
          f"{time.process_time() - cpu:.2f} s CPU, peak RSS {peak:.0f} MiB")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
