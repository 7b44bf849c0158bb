#!/usr/bin/env python3
"""How long loading the library index takes over a store, and its peak memory.

Each way runs in a fresh process (so that peak RSS is its own): ``rows`` is the former load
(a ``FileRow`` per library row, then one ``add_many`` of lists); ``columns`` the column-wise
load alone (``Store.library_hashes``: one query into one array, one ``add_many``);
``snapshot-cold`` today's ``Matcher.load`` with no snapshot file (the column-wise load, then
the snapshot written); ``snapshot`` today's ``Matcher.load`` with the snapshot in place (the
file mapped, the changes since applied). Run the ways in this order: ``snapshot-cold`` removes
the snapshot first.

    .venv/bin/python bench/index_load.py bench/data/store-1m.db
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from imagewatchd import snapshot
from imagewatchd.hashindex import HammingIndex
from imagewatchd.match import Matcher
from imagewatchd.models import Thresholds
from imagewatchd.store import Store

THRESHOLDS = Thresholds(dhash=6, phash=4)


def load_rows(store: Store) -> int:
    """The load as it was before issue 9: a FileRow per row."""
    matcher = Matcher(store, THRESHOLDS)
    matcher.refresh_entries()
    ids: list[int] = []
    dhashes: list[int] = []
    phashes: list[int] = []
    for row in store.library_files():
        if row.dhash is not None and row.phash is not None and not row.flat:
            ids.append(row.id)
            dhashes.append(row.dhash)
            phashes.append(row.phash)
    matcher.library.add_many(ids, dhashes, phashes)
    return len(matcher.library)


def load_columns(store: Store) -> int:
    index = HammingIndex()
    index.add_many(*store.library_hashes())
    return len(index)


def load_cold(store: Store) -> int:
    snapshot.path_for(store).unlink(missing_ok=True)
    return len(Matcher.load(store, THRESHOLDS).library)


def load_today(store: Store) -> int:
    return len(Matcher.load(store, THRESHOLDS).library)


LOADS: dict[str, Callable[[Store], int]] = {
    "rows": load_rows,
    "columns": load_columns,
    "snapshot-cold": load_cold,
    "snapshot": load_today,
}


def measure(db: Path, way: str) -> dict[str, float]:
    """Run in this process: one load, its wall and CPU seconds and the peak RSS."""
    before = resource.getrusage(resource.RUSAGE_SELF)
    rss0 = before.ru_maxrss
    start = time.perf_counter()
    with Store(db) as store:
        count = LOADS[way](store)
    after = resource.getrusage(resource.RUSAGE_SELF)
    return {
        "rows": count,
        "wall s": time.perf_counter() - start,
        "cpu s": after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime,
        "peak RSS MiB": after.ru_maxrss / 1024,
        "RSS before MiB": rss0 / 1024,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("db", type=Path)
    parser.add_argument("--ways", default=",".join(LOADS))
    parser.add_argument("--one", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        print(json.dumps(measure(args.db, args.one)))
        return 0
    print("| load | rows | wall s | CPU s | peak RSS MiB |\n|---|---|---|---|---|")
    for way in args.ways.split(","):
        command = [sys.executable, __file__, str(args.db), "--one", way]
        found = json.loads(subprocess.run(command, capture_output=True, check=True).stdout)
        print(f"| {way} | {found['rows']:,} | {found['wall s']:.1f} | {found['cpu s']:.1f} "
              f"| {found['peak RSS MiB']:,.0f} |")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
