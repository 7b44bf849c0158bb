"""Settle stage: Candidate → SettledFile once the file is complete, or not yet.

Close-after-write is the fast path: the file is complete the moment its writer closes it.
A file that someone has open for writing (it was created or modified under an event watch) waits
for that close, however slowly it is written. Files that arrive with no writer — renamed into
place (upload servers, rsync), moved from elsewhere, hard-linked, found by a scan, or seen by a
polling watch, which reports no closes — settle after a quiet period in which their size and
mtime do not change. Time and ``stat`` are injected, so the rules are tested without sleeping.
"""

from __future__ import annotations

import math
import os
import stat as stat_module
from collections.abc import Callable
from dataclasses import dataclass

from imagewatchd.models import Arrival, Candidate, FileStat, SettledFile

StatFn = Callable[[str], os.stat_result | None]
Clock = Callable[[], float]

# A file still open for writing waits for its close, however long (a stalled upload may resume);
# only when events were lost (``closes_lost``) does it fall back to a quiet period. An empty
# file that nobody writes to settles after a minute.
EMPTY_WAIT = 60.0


def lstat_regular(path: str) -> os.stat_result | None:
    """The file's lstat if it is a regular file now; None if it vanished or is anything else."""
    try:
        info = os.lstat(path)
    except OSError:
        return None
    return info if stat_module.S_ISREG(info.st_mode) else None


@dataclass(slots=True)
class _Pending:
    watch: int
    identity: FileStat
    since: float  # when the identity last changed
    awaiting_close: bool
    act: bool


class Settler:
    """Tracks candidates until they are complete. Used by one thread."""

    def __init__(
        self,
        quiet: Callable[[int], float],
        has_close_events: Callable[[int], bool],
        clock: Clock,
        wall: Clock,
        stat: StatFn = lstat_regular,
    ) -> None:
        self.quiet = quiet
        self.has_close_events = has_close_events
        self.clock = clock
        self.wall = wall
        self.stat = stat
        self.pending: dict[str, _Pending] = {}
        self.lossy = False  # events were lost, and events read before the loss may still come

    def offer(self, candidate: Candidate) -> SettledFile | None:
        """Take an event or scan result; a closed file settles at once."""
        info = self.stat(candidate.path)
        if info is None:
            self.pending.pop(candidate.path, None)
            return None
        identity = FileStat.of(info)
        if candidate.arrival is Arrival.CLOSED:
            self.pending.pop(candidate.path, None)
            return SettledFile(candidate.path, candidate.watch, identity, candidate.act)
        # Written to under an event watch: its writer holds it open, so a close will come.
        # (A file moved in or hard-linked is only "created", with no writes after.)
        writer = candidate.arrival is Arrival.MODIFIED and not self.lossy
        awaiting_close = writer and self.has_close_events(candidate.watch)
        old = self.pending.get(candidate.path)
        if old is not None and not self.lossy:
            awaiting_close = awaiting_close or old.awaiting_close
        quiet = self.quiet(candidate.watch)
        if not awaiting_close and identity.size and self._still_since(info) >= quiet:
            self.pending.pop(candidate.path, None)  # untouched for a quiet period already
            return SettledFile(candidate.path, candidate.watch, identity, candidate.act)
        if old is not None and old.identity == identity:
            old.awaiting_close = awaiting_close
            return None
        act = candidate.act and (old.act if old is not None else True)
        self.pending[candidate.path] = _Pending(
            candidate.watch, identity, self.clock(), awaiting_close, act
        )
        return None

    def _still_since(self, info: os.stat_result) -> float:
        """Seconds since the file's last change, by its ctime and mtime (renames touch ctime)."""
        return self.wall() - max(info.st_mtime_ns, info.st_ctime_ns) / 1e9

    def closes_lost(self) -> None:
        """Events were lost: a close we wait for may never come, so fall back to quiet periods.

        The loss is noticed when the kernel reports it, while write events read before it may
        still be queued: their closes may be among the lost. Until ``closes_trusted`` says that
        every queue has drained, no write event is trusted to be followed by a close.
        """
        self.lossy = True
        for item in self.pending.values():
            item.awaiting_close = False

    def closes_trusted(self) -> None:
        """Every event read before the loss has been offered: a write's close will come again."""
        self.lossy = False

    def discard(self, path: str) -> None:
        """The file was deleted or moved away: forget it, and anything below it."""
        prefix = path.rstrip("/") + "/"
        for key in [k for k in self.pending if k == path or k.startswith(prefix)]:
            del self.pending[key]

    def due(self) -> list[SettledFile]:
        """Every pending file that has now settled; vanished files are dropped.

        A file is looked at only when its wait is over: unchanged since then, it settles;
        changed, its wait starts again.
        """
        now = self.clock()
        settled: list[SettledFile] = []
        for path, item in list(self.pending.items()):
            if now - item.since < self._wait(item):
                continue
            info = self.stat(path)
            if info is None:
                del self.pending[path]
                continue
            identity = FileStat.of(info)
            if identity != item.identity:
                item.identity, item.since = identity, now
                continue
            del self.pending[path]
            settled.append(SettledFile(path, item.watch, identity, item.act))
        return settled

    def next_due(self) -> float | None:
        """The earliest time at which ``due`` could settle something."""
        if not self.pending:
            return None
        return min(item.since + self._wait(item) for item in self.pending.values())

    def _wait(self, item: _Pending) -> float:
        if item.awaiting_close:
            return math.inf
        quiet = self.quiet(item.watch)
        return max(quiet, EMPTY_WAIT) if item.identity.size == 0 else quiet
