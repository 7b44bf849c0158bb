"""The WAL stays bounded under continuous writes while readers are always open (issue 7, #7).

SQLite resets its WAL only when no reader holds an old snapshot; the daemon's threads overlap,
so without the housekeeper's checkpoints the WAL grows with every write (it filled a 4 MiB
filesystem). Real database, real threads: a writer, overlapping readers, and the daemon's
housekeeping policy at the daemon's period.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Callable
from pathlib import Path

from imagewatchd.housekeeping import HOUSEKEEPING, WAL_TRIM_AT
from imagewatchd.models import FileStat, Fingerprint, Role
from imagewatchd.store import Store

WRITES = 2000
BOUND = 12 << 20  # what the WAL may reach between two housekeeping rounds, with margin


def overlapping_readers(db: Path, stop: threading.Event) -> None:
    """Two connections taking turns, so that a read transaction is open at every instant."""
    conns = [sqlite3.connect(db, isolation_level=None) for _ in range(2)]
    try:
        turn = 0
        while not stop.is_set():
            current, other = conns[turn % 2], conns[(turn + 1) % 2]
            current.execute("BEGIN")
            current.execute("SELECT COUNT(*) FROM files").fetchone()
            if other.in_transaction:
                other.execute("COMMIT")
            time.sleep(0.002)
            turn += 1
    finally:
        for conn in conns:
            conn.close()


def peak_wal(db: Path, housekeeping: Callable[[Store], object] | None) -> int:
    """The largest the WAL grew while WRITES file rows were saved, one transaction each."""
    Store(db).close()
    stop = threading.Event()
    peak = 0

    def housekeeper() -> None:
        with Store(db) as store:
            while not stop.wait(HOUSEKEEPING):
                if housekeeping is not None:
                    housekeeping(store)

    threads = [
        threading.Thread(target=overlapping_readers, args=(db, stop)),
        threading.Thread(target=housekeeper),
    ]
    for thread in threads:
        thread.start()
    try:
        with Store(db) as writer:
            for n in range(WRITES):
                fp = Fingerprint(f"{n:064x}", n, n, 10, 10, "PNG", False)
                writer.save_file(f"/w/{n}.png", FileStat(1, n, 100, n), Role.INCOMING, fp, 1.0)
                peak = max(peak, writer.wal_size())
                time.sleep(0.0005)  # the daemon writes between fingerprints, not back to back
    finally:
        stop.set()
        for thread in threads:
            thread.join()
    return peak


def test_the_wal_stays_bounded_while_readers_are_always_open(tmp_path: Path) -> None:
    unbounded = peak_wal(tmp_path / "plain.db", None)
    assert unbounded > 2 * BOUND, "the set-up no longer makes the WAL grow: the test proves nothing"
    bounded = peak_wal(tmp_path / "kept.db", lambda store: store.trim_wal(WAL_TRIM_AT))
    assert bounded < BOUND, f"WAL peaked at {bounded >> 10} KiB"


def test_the_wal_is_truncated_after_a_checkpoint(tmp_path: Path) -> None:
    with Store(tmp_path / "t.db") as store:
        for n in range(300):
            fp = Fingerprint(f"{n:064x}", n, n, 10, 10, "PNG", False)
            store.save_file(f"/w/{n}.png", FileStat(1, n, 100, n), Role.INCOMING, fp, 1.0)
        assert store.wal_size() > WAL_TRIM_AT
        assert store.trim_wal(WAL_TRIM_AT)
        assert store.wal_size() == 0
