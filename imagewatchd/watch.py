"""Watch stage: watchdog events → candidates on a bounded queue.

The handler runs on watchdog's observer thread and only enqueues; it never blocks. When the
queue is full, or the kernel's inotify queue overflowed (watchdog logs it, and has dropped
events), the watcher raises its ``overflowed`` flag and the daemon rescans.
"""

from __future__ import annotations

import errno
import logging
import os
import queue
import threading
from dataclasses import dataclass
from pathlib import Path

from watchdog.events import (
    DirCreatedEvent,
    DirDeletedEvent,
    DirMovedEvent,
    FileAttribEvent,
    FileClosedEvent,
    FileCreatedEvent,
    FileDeletedEvent,
    FileModifiedEvent,
    FileMovedEvent,
    FileSystemEvent,
    FileSystemEventHandler,
)  # fmt: skip
from watchdog.observers import Observer
from watchdog.observers.api import BaseObserver, ObservedWatch
from watchdog.observers.inotify_move_event_grouper import InotifyMoveEventGrouper
from watchdog.observers.polling import PollingObserver

from imagewatchd.config import Config, Watch
from imagewatchd.filters import Selection
from imagewatchd.models import Arrival, Candidate

log = logging.getLogger(__name__)

# watchdog holds an IN_MOVED_FROM at the head of its queue for 0.5 s, waiting for the matching
# IN_MOVED_TO; every later event waits behind it. Each quarantine or move is a rename out of a
# watched tree, so that would delay the next file by half a second. Pairs that arrive together
# are still paired; an unpaired one reaches us as a delete and a create, which we handle alike.
MOVE_PAIRING_DELAY = 0.02
if hasattr(InotifyMoveEventGrouper, "delay"):
    InotifyMoveEventGrouper.delay = MOVE_PAIRING_DELAY

POLL_INTERVAL = 1.0
ROOT_CHECK = 0.2  # the supervisor compares each watch root's identity this often (seconds)
INOTIFY_SYSCTL = "fs.inotify.max_user_watches"


@dataclass(frozen=True, slots=True)
class Gone:
    """A file or directory was deleted or moved away."""

    path: str


@dataclass(frozen=True, slots=True)
class Rescan:
    """A directory appeared or moved within a tree: walk it, events may not cover it."""

    watch: int
    path: str


@dataclass(frozen=True, slots=True)
class Renamed:
    """A file or directory was renamed within a watched tree: its rows follow it."""

    src: str
    dest: str


Event = Candidate | Gone | Renamed | Rescan


def selection_of(watch: Watch) -> Selection:
    return Selection(include=watch.include, exclude=watch.exclude)


class _Handler(FileSystemEventHandler):
    """Turns one watch's events into queue items. Runs on the observer thread: enqueue only."""

    def __init__(self, index: int, watch: Watch, events: queue.Queue[Event], full: threading.Event):
        self.index = index
        self.root = str(watch.path)
        self.recursive = watch.recursive
        self.selection = selection_of(watch)
        self.events = events
        self.full = full

    def on_any_event(self, event: FileSystemEvent) -> None:
        for item in self._items(event):
            try:
                self.events.put_nowait(item)
            except queue.Full:
                self.full.set()

    def _items(self, event: FileSystemEvent) -> list[Event]:
        src = os.fsdecode(event.src_path)
        if isinstance(event, DirMovedEvent):
            dest = os.fsdecode(event.dest_path)
            return [self._moved(src, dest), *self._rescan(dest)]
        if isinstance(event, DirCreatedEvent):
            return self._rescan(src)
        if isinstance(event, DirDeletedEvent | FileDeletedEvent):
            return [Gone(src)]
        if isinstance(event, FileMovedEvent):
            dest = os.fsdecode(event.dest_path)
            return [self._moved(src, dest), *self._candidate(dest, Arrival.MOVED)]
        arrival = _ARRIVALS.get(type(event))
        return self._candidate(src, arrival) if arrival is not None else []

    def _moved(self, src: str, dest: str) -> Event:
        """Within the tree a rename keeps what we know of the file; out of it, it is gone."""
        return Renamed(src, dest) if self._inside(dest) else Gone(src)

    def _rescan(self, directory: str) -> list[Event]:
        """A directory appeared: its files matter only to a recursive watch."""
        return [Rescan(self.index, directory)] if self.recursive and self._inside(directory) else []

    def _inside(self, path: str) -> bool:
        return path == self.root or path.startswith(self.root.rstrip("/") + "/")

    def _candidate(self, path: str, arrival: Arrival) -> list[Event]:
        if not self._inside(path) or not self.selection.wants(os.path.relpath(path, self.root)):
            return []
        return [Candidate(path, self.index, arrival)]


_ARRIVALS: dict[type, Arrival] = {
    FileAttribEvent: Arrival.ATTRIB,
    FileCreatedEvent: Arrival.CREATED,
    FileModifiedEvent: Arrival.MODIFIED,
    FileClosedEvent: Arrival.CLOSED,
}


def count_directories(root: Path, recursive: bool) -> int:
    """The directories an inotify watch of ``root`` needs, symlinks not followed."""
    if not recursive:
        return 1
    count = 1
    for top, dirs, _ in os.walk(root):
        count += sum(not os.path.islink(os.path.join(top, name)) for name in dirs)
    return count


def inotify_watches() -> int:
    """How many inotify watches this process holds (from /proc/self/fdinfo), or -1."""
    total = 0
    try:
        for fd in os.listdir("/proc/self/fdinfo"):
            try:
                with open(f"/proc/self/fdinfo/{fd}", encoding="ascii", errors="replace") as f:
                    total += sum(line.startswith("inotify wd:") for line in f)
            except OSError:
                continue  # closed meanwhile
    except OSError:
        return -1
    return total


class _OverflowLog(logging.Handler):
    """watchdog reports a kernel queue overflow only in its log: listen for it."""

    def __init__(self, flag: threading.Event) -> None:
        super().__init__(logging.WARNING)
        self.flag = flag

    def emit(self, record: logging.LogRecord) -> None:
        if "overflow" in record.getMessage().lower():
            self.flag.set()


@dataclass
class _Root:
    """One watch's root directory as attached: a root that is unmounted, removed or replaced
    leaves the inotify watch deaf, so the supervisor compares it with this every ROOT_CHECK."""

    identity: tuple[int, int] | None = None  # (st_dev, st_ino) when attached
    mount_point: bool = False  # then it is back only once something is mounted there again
    handle: tuple[BaseObserver, ObservedWatch] | None = None
    away: str | None = None  # why it is not watched now


class Watcher:
    """The observers for every configured watch."""

    def __init__(self, config: Config, events: queue.Queue[Event]) -> None:
        self.config = config
        self.events = events
        self.overflowed = threading.Event()
        self.inotify: BaseObserver = Observer()
        self.polling: BaseObserver = PollingObserver(timeout=POLL_INTERVAL)
        self.polled: set[int] = set()
        self.roots: dict[int, _Root] = {}
        self._overflow_log = _OverflowLog(self.overflowed)

    def start(self) -> None:
        logging.getLogger("watchdog").addHandler(self._overflow_log)
        self.inotify.start()
        self.polling.start()
        for index, watch in enumerate(self.config.watches):
            self._install(index, watch)

    def _install(self, index: int, watch: Watch) -> bool:
        try:
            info = os.stat(watch.path)
        except OSError:
            info = None
        if info is None or not watch.path.is_dir():
            log.error("watches[%d].path: %s: no such directory; watched as soon as it appears "
                      "(checked every %.1f s)", index, watch.path, ROOT_CHECK)  # fmt: skip
            self.roots[index] = _Root(away="no such directory")
            return False
        root = _Root((info.st_dev, info.st_ino), os.path.ismount(watch.path))
        self.roots[index] = root
        handler = _Handler(index, watch, self.events, self.overflowed)
        path = str(watch.path)
        self.polled.discard(index)
        if not watch.polling:
            observed = self._watch_with_inotify(index, watch, handler)
            if observed is not None:
                root.handle = (self.inotify, observed)
                return True
        root.handle = (
            self.polling,
            self.polling.schedule(handler, path, recursive=watch.recursive),
        )
        self.polled.add(index)
        return True

    def _watch_with_inotify(
        self, index: int, watch: Watch, handler: _Handler
    ) -> ObservedWatch | None:
        """Schedule on inotify; None (nothing left scheduled) when the watch limit is hit.

        watchdog raises only when the root cannot be watched and silently skips directories
        below it, so the kernel's count of our watches is compared with the directories.
        """
        path = str(watch.path)
        wanted = count_directories(watch.path, watch.recursive)
        before = inotify_watches()
        try:
            observed = self.inotify.schedule(handler, path, recursive=watch.recursive)
        except OSError as exc:
            if exc.errno not in (errno.ENOSPC, errno.EMFILE):
                raise
            self._limit_reached(index, path, exc.strerror or str(exc))
            return None
        added = inotify_watches() - before
        if before >= 0 and added < wanted:
            self.inotify.unschedule(observed)
            self._limit_reached(index, path, f"{added} of {wanted} directories watched")
            return None
        return observed

    def _limit_reached(self, index: int, path: str, detail: str) -> None:
        log.error(
            "watches[%d]: %s: the inotify watch limit is reached (%s); polling instead. "
            "Raise it with: sysctl -w %s=524288", index, path, detail, INOTIFY_SYSCTL,
        )  # fmt: skip

    def check_roots(self) -> list[int]:
        """Detach watches whose root went away, re-attach those that are back: the supervisor
        calls this every ROOT_CHECK. Returns the watches attached again, to be reconciled."""
        back = []
        for index, root in list(self.roots.items()):
            path = self.config.watches[index].path
            if root.away is None:
                reason = _gone(path, root)
                if reason is not None:
                    log.warning("watches[%d]: %s: the watch root went away (%s): not watched "
                                "until it is back", index, path, reason)  # fmt: skip
                    self._detach(root)
                    root.away = reason
            elif _back(path, root) and self._install(index, self.config.watches[index]):
                log.info("watches[%d]: %s: the watch root is back: watched again, and "
                         "rescanned", index, path)  # fmt: skip
                back.append(index)
        return back

    def _detach(self, root: _Root) -> None:
        if root.handle is not None:
            observer, observed = root.handle
            root.handle = None
            try:
                observer.unschedule(observed)
            except (KeyError, OSError) as exc:  # its inotify watch may be gone already
                log.debug("unschedule %s: %r", observed.path, exc)

    def away(self) -> dict[int, str]:
        """The watches not watched now, and why: the daemon is degraded while there are any."""
        return {i: root.away for i, root in self.roots.items() if root.away is not None}

    def drained(self) -> bool:
        """No event read from the kernel is still on its way to our queue."""
        return all(o.event_queue.empty() for o in (self.inotify, self.polling))

    def has_close_events(self, index: int) -> bool:
        return index not in self.polled

    def alive(self) -> bool:
        """Every observer and emitter thread is running."""
        observers = (self.inotify, self.polling)
        return all(o.is_alive() and all(e.is_alive() for e in o.emitters) for o in observers)

    def stop(self) -> None:
        logging.getLogger("watchdog").removeHandler(self._overflow_log)
        for observer in (self.inotify, self.polling):
            observer.stop()
        for observer in (self.inotify, self.polling):
            if observer.is_alive():
                observer.join(timeout=5)


def _gone(path: Path, root: _Root) -> str | None:
    """Why an attached root is no longer the directory that was watched, or None."""
    try:
        info = os.stat(path)
    except OSError as exc:
        return exc.strerror or "cannot be read"
    if (info.st_dev, info.st_ino) == root.identity:
        return None
    if root.mount_point and not os.path.ismount(path):
        return "unmounted"
    return "replaced by another directory"


def _back(path: Path, root: _Root) -> bool:
    """A root that was a mount point is back once something is mounted there again."""
    return path.is_dir() and (not root.mount_point or os.path.ismount(path))
