"""A PostgreSQL host that loses its database keeps processing (docs/FLEET.md, "Outages").

The first connection error (``DatabaseUnreachable``: the connection failed or was lost, not a
refusal such as a constraint error) starts an outage: one WARNING line, and the workers process
on the local spool (``store/spool.py``: a SQLite store in the state directory, with SQLite's
journal and its never-lose-a-file protocol) while the in-memory index keeps enforcing the bank
it holds. A background thread tries the database every ``RECONNECT`` seconds; once it answers,
it waits for the workers to leave the spool, copies the spool's journal into the database
(``spool.catch_up``), logs one INFO line, and asks for a rescan (the files the spool saw are
recorded under the database's ids). While the database is there, the spool keeps a copy of the
bank (``spool.mirror_bank``) for matching to read during the next outage.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Generic, TypeVar

from imagewatchd import offline
from imagewatchd.act import Backlog
from imagewatchd.errors import DatabaseUnreachable
from imagewatchd.housekeeping import record_the_rest
from imagewatchd.match import Matcher
from imagewatchd.models import Fingerprint
from imagewatchd.store import Location, Store
from imagewatchd.store import spool as spooling

log = logging.getLogger(__name__)
T = TypeVar("T")
R = TypeVar("R")

RECONNECT = 2.0  # seconds between tries while the database is away
MIRROR = 2.0  # seconds between looks at the bank, to copy its changes into the spool


class Outage:
    """One session's view of the database: reachable or not, and the spool used meanwhile."""

    def __init__(self, where: Location, on_return: Callable[[], None]) -> None:
        """``on_return``: called once the spool is copied (the session rescans)."""
        self.where = where
        self.on_return = on_return
        self.down = threading.Event()
        self.since: float | None = None
        self.reason = ""
        self.generation = 0  # returns so far: a connection opened before the last is stale
        self.mirrored = (-1, -1)  # the bank's counters when last copied into the spool
        self.last_entry = 0
        self.backlog = Backlog()  # moves done on the spool whose journal entry waits
        self._returns: list[threading.Event] = []  # set when the database returns
        self._lock = threading.Lock()
        self._users = 0  # workers processing on the spool now
        self._idle = threading.Condition(self._lock)

    @property
    def enabled(self) -> bool:
        """Only a shared database has a spool: SQLite is local, it has no outage."""
        return self.where.shared

    def lost(self, exc: DatabaseUnreachable, opened: int) -> bool:
        """A connection opened at generation ``opened`` failed: the database is unreachable
        (logged once per outage), unless the connection is one from before the database
        returned (then False: the caller opens a new one)."""
        with self._lock:
            if opened < self.generation:
                return False
            if self.down.is_set():
                return True
            self.down.set()
            self.since = time.time()
            self.reason = str(exc)
        log.warning(
            "%s: the database is unreachable (%s); enforcing the bank held in memory, "
            "journalling in %s until it returns",
            self.where, self.reason.removeprefix(f"{self.where}: "),
            spooling.spool_path(self.where),
        )  # fmt: skip
        return True

    def start_down(self, reason: str) -> None:
        """A start while the database is unreachable: the outage is on from the first file
        (its one line was said by ``offline.announce``)."""
        with self._lock:
            self.down.set()
            self.since = time.time()
            self.reason = reason

    @contextmanager
    def spool_turn(self) -> Iterator[bool]:
        """Around one item's processing: yields True if it is to be processed on the spool."""
        with self._lock:
            on_spool = self.down.is_set()
            self._users += on_spool
        try:
            yield on_spool
        finally:
            if on_spool:
                with self._lock:
                    self._users -= 1
                    self._idle.notify_all()

    def status(self) -> str:
        """For ``status``: "" while the database is there."""
        since = self.since
        if not self.down.is_set() or since is None:
            return ""
        when = time.strftime("%H:%M:%S", time.localtime(since))
        return f"; database unreachable since {when}, journalling locally"

    def until_return(self, stop: threading.Event) -> threading.Event:
        """An event set at the database's next return or at ``stop`` (``close``), for a loop
        that must then open a new connection; ``stop`` itself without outages (SQLite)."""
        if not self.enabled:
            return stop
        returned = threading.Event()
        with self._lock:
            self._returns.append(returned)
        return returned

    def release(self) -> None:
        """At the session's stop: the loops waiting for a return end."""
        self._returned()

    def close(self) -> None:
        """At the session's end: the spool's unrecorded moves are recorded in the spool, or
        left to the next start-up's recovery of the spool."""
        if len(self.backlog):
            with spooling.open_spool(self.where) as spool:
                record_the_rest(spool, self.backlog)

    def _returned(self) -> None:
        with self._lock:
            returns, self._returns = self._returns, []
        for returned in returns:
            returned.set()

    def through(self, stop: threading.Event, body: Callable[[], None]) -> None:
        """``body`` until it returns (or ``stop``): an outage makes it wait for the database
        and start again, on new connections."""
        while not stop.is_set():
            opened = self.generation
            try:
                body()
                return
            except DatabaseUnreachable as exc:
                if not self.enabled:
                    raise
                if self.lost(exc, opened):
                    while self.down.is_set() and not stop.wait(RECONNECT / 4):
                        pass

    def watch(self, stop: threading.Event) -> None:
        """The background thread: mirror the bank while up, reconnect and catch up while down."""
        while True:
            try:
                if self.down.is_set():
                    self._try_return()
                else:
                    self._mirror()
            except DatabaseUnreachable as exc:
                self.lost(exc, self.generation)  # opened just now
            except Exception as exc:  # the spool's problem is logged, not fatal
                log.error("%s: the local spool: %s", spooling.spool_path(self.where), exc)
                log.debug("traceback", exc_info=True)
            if stop.wait(RECONNECT if self.down.is_set() else MIRROR):
                return

    def _mirror(self) -> None:
        """Copy the bank's changes into the spool, for matching to read during an outage."""
        with Store(self.where) as primary, spooling.open_spool(self.where) as spool:
            counters = primary.entry_counters()
            if counters == self.mirrored:
                return
            since = self.last_entry if counters[1] == self.mirrored[1] else 0
            self.last_entry = spooling.mirror_bank(primary, spool, since)
            level = logging.INFO if since == 0 else logging.DEBUG
            log.log(level, "%s: the bank copied into the local spool (entries up to %d)",
                    spool, self.last_entry)  # fmt: skip
            self.mirrored = counters

    def _try_return(self) -> None:
        """The database answers again: copy the spool's journal, then switch back."""
        with Store(self.where) as primary, spooling.open_spool(self.where) as spool:
            with self._lock:
                self.generation += 1
                self.down.clear()  # new items go to the database from now on
                while self._users:  # the spool's last items finish there
                    self._idle.wait()
            try:
                self.backlog.flush(spool)  # moves done on the spool, recorded there first
                copied = spooling.catch_up(spool, primary)
            except Exception:
                self.down.set()
                raise
        seconds = time.time() - (self.since or time.time())
        log.info(
            "%s: the database is back after %.0f s: %d action(s) journalled locally copied",
            self.where, seconds, copied,
        )  # fmt: skip
        self.since = None
        self._returned()
        self.on_return()


class SpoolMatcher(Matcher):
    """Matching during an outage: the bank's index as it is; the library's index is not
    changed (the spool's file ids are not the database's: the return's rescan records them)."""

    def add_library_file(self, file_id: int, fp: Fingerprint) -> None:
        return

    def remove_library_file(self, file_id: int) -> None:
        return


def recover_spool(where: Location, recover: Callable[[Store], int]) -> None:
    """At start-up: finish what a crash left under way in the spool (``recover``, the journal's
    own recovery), then copy the spool's journal into the database. Nothing if no spool."""
    if not where.shared or not spooling.spool_path(where).exists():
        return
    with spooling.open_spool(where) as spool:
        recover(spool)
        if spooling.spooled(spool) == 0:
            return
        with Store(where) as primary:
            copied = spooling.catch_up(spool, primary)
    log.info("%s: %d action(s) journalled locally during an outage copied", where, copied)


def start_offline(
    where: Location, exc: DatabaseUnreachable, recover: Callable[[Store], int]
) -> None:
    """At start-up, the database unreachable: with a local copy of the bank to enforce (the
    bank snapshot, or the spool's copy: ``offline.py``), finish what a crash left under way in
    the spool and go on (the session starts with the outage on); else fail with one line."""
    if not offline.available(where):
        raise offline.no_bank(where, exc) from exc
    if spooling.spool_path(where).exists():
        with spooling.open_spool(where) as spool:
            recover(spool)


class Lanes(Generic[T]):
    """A worker's two ways to a store: the database, and the spool during an outage. Each lane
    (a store with what is built on it: ``build(store, on_spool)``) is opened when first used;
    the database's is dropped when its connection is lost, and opened again after."""

    def __init__(self, outage: Outage, build: Callable[[Store, bool], T]) -> None:
        self.outage = outage
        self.build = build
        self._lanes: dict[bool, tuple[Store, T]] = {}
        self._opened = 0  # the outage generation when the database's lane was opened

    def run(self, step: Callable[[T], R]) -> R:
        """``step`` on the database's lane, or on the spool's when the database is away (and
        again there when the database is lost under it: nothing is done twice, since a lost
        connection commits nothing more)."""
        while True:
            with self.outage.spool_turn() as on_spool:
                try:
                    return step(self._lane(on_spool))
                except DatabaseUnreachable as exc:
                    if on_spool or not self.outage.enabled:
                        raise
                    self._drop(on_spool=False)
                    self.outage.lost(exc, self._opened)

    def _lane(self, on_spool: bool) -> T:
        if not on_spool and self._opened < self.outage.generation:
            self._drop(on_spool=False)  # a connection from before the database returned
        if on_spool not in self._lanes:
            where = self.outage.where
            if not on_spool:
                self._opened = self.outage.generation
            store = spooling.open_spool(where) if on_spool else Store(where)
            self._lanes[on_spool] = (store, self.build(store, on_spool))
        return self._lanes[on_spool][1]

    def _drop(self, *, on_spool: bool) -> None:
        lane = self._lanes.pop(on_spool, None)
        if lane is not None:
            lane[0].close()

    def close(self) -> None:
        for store, _ in self._lanes.values():
            store.close()
        self._lanes.clear()
