#!/usr/bin/env python3
"""How long a new ban takes to reach the matching files among N stored incoming files.

The store is ``synth_store.py``'s, turned into N uploads: role ``incoming``, each with a random
PDQ of quality 80 (made once, kept: pass the same path again to reuse it). Each trial adds one
block entry made from a stored row (1-2 bits flipped in its dHash, pHash and PDQ; another
sha256), then times what the daemon does: ``NewBans.look`` and the matcher's
``refresh_entries`` (notice it), then ``retroactive.find`` over the daemon's in-memory copy of
the stored hashes (``incoming.StoredHashes``: topped up with new rows, then XOR and popcount,
then each file found checked against its row), and the other way, the hashes read from the
store at each ban (what the CLI does to count; one query per hash kind into arrays). The entry
is removed after each trial. ``--entries K`` adds K entries at once (an import) instead of one.

    .venv/bin/python bench/retro_ban.py --n 1000000 /tmp/retro-1m.db
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import sqlite3
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar, cast

import numpy as np

from imagewatchd import retroactive
from imagewatchd.fingerprint import fingerprint_bytes
from imagewatchd.incoming import Columns, StoredHashes
from imagewatchd.match import Matcher
from imagewatchd.models import Fingerprint, ListKind, Thresholds
from imagewatchd.rows import NewEntry
from imagewatchd.store import Store

sys.path.insert(0, str(Path(__file__).resolve().parent))
import synth_store
from daemon_latency import Daemon, jpeg, photo

THRESHOLDS = Thresholds(dhash=6, phash=4, pdq=31, pdq_quality=50)
T = TypeVar("T")


def make(path: Path, n: int) -> None:
    """synth_store's library, made incoming uploads with a PDQ each."""
    synth_store.generate(path, n, seed=1)
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("PRAGMA synchronous = OFF")
    (trigger,) = db.execute(
        "SELECT sql FROM sqlite_master WHERE name = 'files_library_update'"
    ).fetchone()
    db.execute("DROP TRIGGER files_library_update")  # no library change log for these rows
    db.execute("UPDATE files SET role = 'incoming', pdq = randomblob(32), pdq_quality = 80")
    db.execute(trigger)
    db.execute("DELETE FROM watches")
    db.close()


def columns_mib(stored: StoredHashes, store: Store) -> float:
    columns = stored.columns(store)
    parts = (columns.ids, columns.dhashes, columns.phashes, columns.pdq_ids, columns.pdqs)
    return sum(part.nbytes for part in parts) / 2**20


def timed(what: Callable[[], T]) -> tuple[T, float]:
    start = time.perf_counter()
    value = what()
    return value, time.perf_counter() - start


def entry_from(store: Store, file_id: int, rng: np.random.Generator) -> NewEntry:
    row = store.files_by_id([file_id])[file_id]
    assert row.dhash is not None and row.phash is not None and row.pdq is not None
    flips = [1 << int(bit) for bit in rng.integers(0, 64, 2)]
    return NewEntry(os.urandom(32).hex(), row.dhash ^ flips[0], row.phash ^ flips[1],
                    label="bench", pdq=row.pdq ^ (1 << int(rng.integers(0, 256))),
                    pdq_quality=90)  # fmt: skip


def trial(
    store: Store, list_id: int, rng: np.random.Generator, k: int, stored: StoredHashes
) -> dict[str, float]:
    matcher = Matcher(store, THRESHOLDS)
    matcher.refresh_entries()
    bans = retroactive.NewBans(store, THRESHOLDS.pdq_quality)
    count = int(store.count_files()["incoming"])
    picked = rng.integers(1, count + 1, k)
    added, _ = store.add_entries(list_id, [entry_from(store, int(i), rng) for i in picked], 1.0)
    start = time.perf_counter()
    ids = bans.look()
    matcher.refresh_entries()
    noticed = time.perf_counter() - start
    columns, topped = timed(lambda: stored.columns(store))
    hits, found = timed(lambda: retroactive.find(store, THRESHOLDS, ids, columns))
    _, read = timed(lambda: Columns.read(store, THRESHOLDS.pdq_quality))
    sql, by_sql = timed(lambda: retroactive.find(store, THRESHOLDS, ids))
    assert {int(i) for i in picked} <= {hit.row.id for hit in hits}, "a ban missed its file"
    assert sql == hits
    store.remove_entries(added)
    return {"look + refresh": noticed, "copy: top up": topped, "copy: find": found,
            "copy: total": noticed + topped + found, "store: read": read,
            "store: find (read included)": by_sql, "store: total": noticed + by_sql,
            "hits": len(hits)}  # fmt: skip


def daemon_trials(db: Path, uploads: int) -> list[float]:
    """The real daemon on a copy of the store, with ``uploads`` real pictures in its incoming
    watch: each is banned in turn (a near entry, as ``known add`` of the same picture in another
    encoding makes); seconds from the entry's commit to the journal's ``finished`` time of its
    quarantine."""
    with tempfile.TemporaryDirectory(dir="/tmp") as tmp:
        base = Path(tmp)
        (base / "db").mkdir()
        shutil.copyfile(db, base / "db" / "imagewatchd.db")
        watched = base / "uploads"
        watched.mkdir()
        pictures = {}
        for seed in range(uploads):
            path = watched / f"upload-{seed}.jpg"
            path.write_bytes(jpeg(photo(seed, (800, 600)), 85))
            pictures[path] = fingerprint_bytes(jpeg(photo(seed, (800, 600)), 60))
        with Store(base / "db" / "imagewatchd.db") as store:
            list_id = store.create_list("banned", ListKind.BLOCK, "", 1.0)
        daemon = Daemon(base, watched)
        daemon.start()
        while "stored incoming file hashes in memory" not in daemon.log.read_text():
            time.sleep(0.05)  # a daemon that has been running a while
        try:
            return [_one_ban(daemon, list_id, path, fp) for path, fp in pictures.items()]
        finally:
            daemon.stop()


def _one_ban(daemon: Daemon, list_id: int, path: Path, fp: Fingerprint) -> float:
    entry = NewEntry(fp.sha256, fp.dhash, fp.phash, pdq=fp.pdq, pdq_quality=fp.pdq_quality)
    with Store(daemon.db) as store:
        store.add_entries(list_id, [entry], 1.0)
    committed = time.time()
    query = (
        "SELECT finished FROM actions WHERE state = 'done'"
        f" AND src_rel = CAST('{path.name}' AS BLOB)"
    )
    deadline = time.monotonic() + 30
    while not (rows := daemon.query(query)):
        if time.monotonic() > deadline:
            raise SystemExit(f"{path}: not quarantined:\n{daemon.log.read_text()}")
        time.sleep(0.01)
    return float(cast(float, rows[0][0])) - committed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1_000_000, help="incoming rows (a new store)")
    parser.add_argument("--entries", type=int, default=1, help="entries added at once")
    parser.add_argument("--trials", type=int, default=7)
    parser.add_argument("--daemon", type=int, default=0, metavar="K",
                        help="also: the real daemon, K uploads banned in turn")  # fmt: skip
    parser.add_argument("db", type=Path)
    args = parser.parse_args()
    if not args.db.exists():
        _, took = timed(lambda: make(args.db, args.n))
        print(f"made {args.db}: {args.n:,} incoming rows in {took:.0f} s", file=sys.stderr)
    rng = np.random.default_rng(7)
    with Store(args.db) as store:
        n = int(store.count_files()["incoming"])
        block = store.get_list("bench")
        list_id = block.id if block else store.create_list("bench", ListKind.BLOCK, "", 1.0)
        stored = StoredHashes(THRESHOLDS.pdq_quality)
        _, load = timed(lambda: stored.columns(store))
        rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        results = [trial(store, list_id, rng, args.entries, stored) for _ in range(args.trials)]
        mib = columns_mib(stored, store)
    print(f"{n:,} stored incoming files, {args.entries} new entr"
          f"{'y' if args.entries == 1 else 'ies'}, {args.trials} trials (seconds)\n")  # fmt: skip
    print("| step | median | max |\n|---|---|---|")
    for step in [name for name in results[0] if name != "hits"]:
        values = [r[step] for r in results]
        print(f"| {step} | {statistics.median(values):.3f} | {max(values):.3f} |")
    print(f"\nfiles matched per trial: {sorted(int(r['hits']) for r in results)}; the daemon's "
          f"copy loaded in {load:.2f} s, {mib:.0f} MiB of arrays, "
          f"peak RSS {rss:.0f} MiB")  # fmt: skip
    if args.daemon:
        delays = daemon_trials(args.db, args.daemon)
        each = ", ".join(f"{d:.2f}" for d in delays)
        print(f"\nthe daemon, ban to quarantine (s): median {statistics.median(delays):.3f}, "
              f"max {max(delays):.3f}, {len(delays)} bans: {each}")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
