"""The daemon's housekeeping thread: moves recorded late, retries copied for ``status``, the WAL
kept small; and the last attempt at exit.

It runs on its own database connection, so that a locked or full database never holds the main
thread (signals, watchdog pings) or the workers.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from imagewatchd.act import Backlog
from imagewatchd.retry import Retries
from imagewatchd.store import Location, Store

log = logging.getLogger(__name__)

HOUSEKEEPING = 0.1  # seconds between rounds: lagging journal entries, retries, the WAL's size
WAL_TRIM_AT = 1 << 20  # bytes: a WAL grown past this is checkpointed and truncated
FINAL_TRIES = 5  # at exit, tries to record moves not yet recorded, FINAL_PAUSE apart
FINAL_PAUSE = 0.5


def keep_house(
    db_path: Location, backlog: Backlog, retries: Retries, stop: threading.Event
) -> None:
    """Until ``stop``: record what the journal lags behind, copy retries, trim the WAL.

    SQLite's own checkpoints never reset the WAL while some reader is always open (the daemon's
    threads overlap under load), so without this the WAL would grow with every write.
    """
    store = Store(db_path)
    try:
        best_effort(store.clear_retries)  # left by a previous run
        while not stop.wait(HOUSEKEEPING):
            if len(backlog):
                backlog.flush(store)
            retries.save(store)
            best_effort(lambda: store.trim_wal(WAL_TRIM_AT))
    finally:
        store.close()


def record_the_rest(store: Store, backlog: Backlog) -> None:
    """At exit: moves not yet recorded are recorded now, or left to start-up recovery."""
    for attempt in range(FINAL_TRIES):
        if not backlog.flush(store):
            break
        if attempt < FINAL_TRIES - 1:
            time.sleep(FINAL_PAUSE)
    else:
        backlog.abandon()
    best_effort(store.clear_retries)  # the next start's reconcile finds those files again
    best_effort(store.checkpoint)


def best_effort(write: Callable[[], object]) -> None:
    try:
        write()
    except Exception as exc:  # tried again later; the database may be full or locked
        log.debug("%s: %r", getattr(write, "__name__", write), exc)
