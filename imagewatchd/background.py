"""The daemon's upkeep in the background, each in a thread at low priority (nice +10), started
once the daemon is ready.

``BackgroundCheck``: before it acts, the daemon checks only what start-up reads
(``Store.startup_check``), so that READY does not wait for a scan of every page of a large
library. The rest, what ``imagewatchd db check --quick`` checks (``PRAGMA quick_check``, the
foreign keys, the schema, every value's type), runs here once, on its own read-only connection.
Damage found is handed once to ``on_damage``; the daemon then stops acting and exits as it does
for damage any other thread finds.

``SnapshotKeeper``: every few minutes, ``snapshot.keep`` rewrites the library index snapshot
once the change log past it outgrows its bound, so that neither the log nor the next start-up's
work grows with the daemon's uptime.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable

from imagewatchd import snapshot
from imagewatchd.errors import DatabaseDamaged, StoreError
from imagewatchd.store import Checker, Store, Where, damage

log = logging.getLogger(__name__)

NICE = 10  # added to these threads' niceness: file processing goes first, the upkeep still ends
KEEP_EVERY = 600.0  # seconds between two looks at the library change log


class BackgroundCheck:
    """One run of the quick check of ``db_path`` in a thread; ``stop`` interrupts it."""

    def __init__(self, db_path: Where, on_damage: Callable[[DatabaseDamaged], None]) -> None:
        self.db_path = db_path
        self.on_damage = on_damage
        self.done = threading.Event()
        self._stopping = threading.Event()
        self._checker = Checker(db_path)
        self._thread = threading.Thread(target=self._run, name="database-check", daemon=True)

    def start_once(self) -> None:
        """Start the check, unless it has been started already (a reload does not repeat it)."""
        if self._thread.ident is None:
            self._thread.start()

    def stop(self) -> None:
        """Interrupt the check (a stopping daemon does not wait for it) and wait for the thread."""
        self._stopping.set()
        self._checker.interrupt()
        if self._thread.is_alive():
            self._thread.join(timeout=10)

    def _run(self) -> None:
        try:
            _lower_priority()
            started = time.monotonic()
            problems = self._check()
            if problems is None or self._stopping.is_set():
                return  # not run, or interrupted: its "problems" say so, and mean nothing
            if problems:
                more = f" and {len(problems) - 1} more problem(s)" if len(problems) > 1 else ""
                self.on_damage(DatabaseDamaged(self.db_path, problems[0] + more))
            else:
                log.info("database check: ok (%.1f s)", time.monotonic() - started)
        finally:
            self.done.set()

    def _check(self) -> list[str] | None:
        """The problems found; None if the check could not run (said in one line)."""
        try:
            return self._checker.run(thorough=False)
        except StoreError as exc:
            log.warning("database check: not run: %s", exc)
            return None


def _lower_priority() -> None:
    """Raise this thread's niceness (on Linux, a thread id names one thread)."""
    try:
        tid = threading.get_native_id()
        os.setpriority(os.PRIO_PROCESS, tid, min(19, os.getpriority(os.PRIO_PROCESS, tid) + NICE))
    except OSError as exc:  # e.g. a seccomp filter: the check runs at normal priority
        log.debug("database check: priority not lowered: %s", exc)


class SnapshotKeeper:
    """Looks at the library change log every ``every`` seconds (``snapshot.keep``)."""

    def __init__(
        self, db_path: Where, on_damage: Callable[[DatabaseDamaged], None],
        every: float = KEEP_EVERY,
    ) -> None:  # fmt: skip
        self.db_path = db_path
        self.on_damage = on_damage
        self.every = every
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name="snapshot-keeper", daemon=True)

    def start_once(self) -> None:
        if self._thread.ident is None:
            self._thread.start()

    def stop(self) -> None:
        """Stop looking; a rewrite under way is waited for a while (it is atomic either way)."""
        self._stopping.set()
        if self._thread.is_alive():
            self._thread.join(timeout=10)

    def _run(self) -> None:
        _lower_priority()
        while not self._stopping.wait(self.every):
            try:
                with Store(self.db_path) as store:
                    snapshot.keep(store)
            except DatabaseDamaged as exc:
                self.on_damage(exc)
                return
            except Exception as exc:  # e.g. the database busy: the next look tries again
                detail = damage(exc)
                if detail is not None:
                    self.on_damage(DatabaseDamaged(self.db_path, detail))
                    return
                log.warning("library index snapshot not kept: %s", exc)
                log.debug("traceback", exc_info=True)
