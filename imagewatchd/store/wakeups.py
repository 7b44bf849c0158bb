"""Wake-ups when another host changes the shared bank (PostgreSQL's LISTEN/NOTIFY).

Every statement that adds, changes or removes entries notifies ``imagewatchd_bank`` at its
commit (PostgreSQL migration 2). ``BankWakeups`` listens on a connection of its own, in a thread,
and calls ``on_change``: the daemon then brings its index up to date at once instead of at its
next supervision tick. A wake-up can be lost (the connection drops, the thread is busy); the
tick's look at the bank's counters cannot, so nothing depends on a wake-up arriving. A SQLite
store has no other host: nothing listens.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

import psycopg

from imagewatchd.store.location import Location, Where

log = logging.getLogger(__name__)

CHANNEL = "imagewatchd_bank"
WAIT = 0.5  # seconds between two looks at the stop flag
RETRY = 5.0  # seconds before listening again after the connection failed


class BankWakeups:
    """Calls ``on_change`` soon after another connection changes the bank."""

    def __init__(self, where: Where, on_change: Callable[[], None]) -> None:
        self.url = where.url if isinstance(where, Location) else None
        self.name = str(where)
        self.on_change = on_change
        self.listening = threading.Event()  # set while a LISTEN is in place
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name="bank-wakeups", daemon=True)

    def start_once(self) -> None:
        if self.url is not None and self._thread.ident is None:
            self._thread.start()

    def stop(self) -> None:
        self._stopping.set()
        if self._thread.is_alive():
            self._thread.join(timeout=10)

    def _run(self) -> None:
        failed = False
        while not self._stopping.is_set():
            try:
                self._listen()
            except psycopg.Error as exc:
                self.listening.clear()
                if not failed:  # once per outage: the tick's polling goes on meanwhile
                    log.warning("%s: bank wake-ups stopped: %s", self.name, exc)
                failed = True
                self._stopping.wait(RETRY)
                continue

    def _listen(self) -> None:
        assert self.url is not None
        with psycopg.connect(self.url, autocommit=True, connect_timeout=10) as connection:
            connection.execute(f"LISTEN {CHANNEL}")
            self.listening.set()
            log.debug("%s: listening for bank changes", self.name)
            while not self._stopping.is_set():
                for _ in connection.notifies(timeout=WAIT, stop_after=1):
                    self.on_change()
