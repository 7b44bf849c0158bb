"""The daemon's whole-database check, run in the background once the daemon is ready.

Before it acts, the daemon checks only what start-up reads (``Store.startup_check``), so that
READY does not wait for a scan of every page of a large library. The rest, what
``imagewatchd db check --quick`` checks (``PRAGMA quick_check``, the foreign keys, the schema,
every value's type), runs here: one thread at low priority (nice +10), on its own read-only
connection. Damage found is handed once to ``on_damage``; the daemon then stops acting and
exits as it does for damage any other thread finds.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import threading
import time
from collections.abc import Callable
from pathlib import Path

from imagewatchd import store_check
from imagewatchd.errors import DatabaseDamaged

log = logging.getLogger(__name__)

NICE = 10  # added to this thread's niceness: file processing goes first, the check still ends


class BackgroundCheck:
    """One run of the quick check of ``db_path`` in a thread; ``stop`` interrupts it."""

    def __init__(self, db_path: Path, on_damage: Callable[[DatabaseDamaged], None]) -> None:
        self.db_path = db_path
        self.on_damage = on_damage
        self.done = threading.Event()
        self._stopping = threading.Event()
        self._lock = threading.Lock()
        self._db: sqlite3.Connection | None = None
        self._thread = threading.Thread(target=self._run, name="database-check", daemon=True)

    def start_once(self) -> None:
        """Start the check, unless it has been started already (a reload does not repeat it)."""
        if self._thread.ident is None:
            self._thread.start()

    def stop(self) -> None:
        """Interrupt the check (a stopping daemon does not wait for it) and wait for the thread."""
        self._stopping.set()
        with self._lock:
            if self._db is not None:
                self._db.interrupt()
        if self._thread.is_alive():
            self._thread.join(timeout=10)

    def _run(self) -> None:
        try:
            _lower_priority()
            started = time.monotonic()
            problems = self._check()
            if self._stopping.is_set():
                return  # interrupted: its "problems" say so, and mean nothing
            if problems:
                more = f" and {len(problems) - 1} more problem(s)" if len(problems) > 1 else ""
                self.on_damage(DatabaseDamaged(self.db_path, problems[0] + more))
            else:
                log.info("database check: ok (%.1f s)", time.monotonic() - started)
        finally:
            self.done.set()

    def _check(self) -> list[str]:
        try:
            db = store_check.open_for_checking(self.db_path)
        except store_check.DAMAGE_ERRORS as exc:
            detail = store_check.damage(exc)
            if detail is None:
                log.warning("database check: not run: cannot open %s: %s", self.db_path, exc)
                return []
            return [f"cannot be opened: {detail}"]
        with self._lock:
            self._db = db
        try:
            if self._stopping.is_set():
                return []
            return store_check.check(db, thorough=False)
        finally:
            with self._lock:
                self._db = None
            db.close()


def _lower_priority() -> None:
    """Raise this thread's niceness (on Linux, a thread id names one thread)."""
    try:
        tid = threading.get_native_id()
        os.setpriority(os.PRIO_PROCESS, tid, min(19, os.getpriority(os.PRIO_PROCESS, tid) + NICE))
    except OSError as exc:  # e.g. a seccomp filter: the check runs at normal priority
        log.debug("database check: priority not lowered: %s", exc)
