"""Failed work tried again with backoff, per file: 5 s, then doubling, at most 5 minutes apart.

A move that failed (a full disk, a permission, an I/O error) or a file not processed (the
database locked or full) is offered to the settler again when its retry is due, and goes
through the whole pipeline again: fingerprinted, matched and checked to be the same file before
anything is moved. The periodic rescan still finds such files too. Pending retries are copied to
the database for ``imagewatchd status``.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from imagewatchd.models import Arrival, Candidate, SettledFile
from imagewatchd.rows import RetryRow
from imagewatchd.store import Store
from imagewatchd.watch import Gone, Renamed

log = logging.getLogger(__name__)

FIRST_DELAY = 5.0
MAX_DELAY = 300.0

Work = Candidate | Gone | Renamed
Key = tuple[str, str]


def key_of(item: Work | SettledFile) -> Key:
    if isinstance(item, Gone):
        return "gone", item.path
    if isinstance(item, Renamed):
        return "renamed", item.src
    return "file", item.path


@dataclass(frozen=True, slots=True)
class _Pending:
    item: Work
    attempts: int
    delay: float
    due: float  # on the monotonic clock
    reason: str


class Retries:
    """The retry schedule; shared by the workers (which fail) and the main thread (which
    re-offers due work)."""

    def __init__(
        self,
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
        first: float = FIRST_DELAY,
        cap: float = MAX_DELAY,
    ) -> None:
        self.clock = clock
        self.wall = wall
        self.first = first
        self.cap = cap
        self._lock = threading.Lock()
        self._pending: dict[Key, _Pending] = {}
        self._dirty: set[Key] = set()

    def later(self, item: Work | SettledFile, reason: str) -> float:
        """Schedule another try of ``item``; returns the delay in seconds."""
        if isinstance(item, SettledFile):
            item = Candidate(item.path, item.watch, Arrival.SCAN, item.act)
        key = key_of(item)
        with self._lock:
            old = self._pending.get(key)
            attempts = old.attempts + 1 if old else 1
            delay = min(self.cap, old.delay * 2) if old else self.first
            self._pending[key] = _Pending(item, attempts, delay, self.clock() + delay, reason)
            self._dirty.add(key)
        return delay

    def done(self, item: Work | SettledFile) -> None:
        """The work succeeded, or is no longer wanted: no more retries."""
        key = key_of(item)
        with self._lock:
            if self._pending.pop(key, None) is not None:
                self._dirty.add(key)

    def due(self) -> list[Work]:
        """The work whose retry is due now. Each stays scheduled one delay later, in case the
        retry never reports back (a file that vanished before it settled)."""
        now = self.clock()
        ready: list[Work] = []
        with self._lock:
            for key, item in self._pending.items():
                if item.due <= now:
                    ready.append(item.item)
                    self._pending[key] = _Pending(
                        item.item, item.attempts, item.delay, now + item.delay, item.reason
                    )
                    self._dirty.add(key)
        return ready

    def summary(self) -> str:
        """For the service manager's STATUS line: how many, and when the next one is."""
        with self._lock:
            if not self._pending:
                return "no retries"
            soonest = min(p.due for p in self._pending.values())
        wait = max(0.0, soonest - self.clock())
        return f"{len(self._pending)} retries pending, next in {wait:.0f} s"

    def __len__(self) -> int:
        with self._lock:
            return len(self._pending)

    def save(self, store: Store) -> None:
        """Copy what changed to the database (for ``status``); kept dirty if that fails."""
        with self._lock:
            if not self._dirty:
                return
            offset = self.wall() - self.clock()
            changed = [
                RetryRow(kind, path, p.attempts, p.due + offset, p.reason)
                for (kind, path), p in ((k, self._pending.get(k)) for k in self._dirty)
                if p is not None
            ]
            over = [key for key in self._dirty if key not in self._pending]
            dirty, self._dirty = self._dirty, set()
        try:
            store.save_retries(changed, over)
        except Exception as exc:  # the database may be the very thing failing
            log.debug("pending retries not saved: %r", exc)
            with self._lock:
                self._dirty |= dirty
