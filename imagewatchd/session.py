"""One configuration's run of the daemon: its threads, queues and per-file flow.

Threads: watchdog's observers (enqueue only) → the settler (one thread, owns the ``Settler``)
→ a bounded work queue → N workers (each with its own store connection and ``Pipeline``, all
sharing one pool of decoding processes). A rescanner walks the trees at start-up, on a timer
and after an overflow; a housekeeper records what the journal lags behind and keeps the WAL
small. A reload replaces the whole session (``daemon.py``).
"""

from __future__ import annotations

import errno
import logging
import os
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from imagewatchd import offline, retroactive, snapshot
from imagewatchd.act import Actor, Backlog
from imagewatchd.api.tally import Tally
from imagewatchd.config import Config
from imagewatchd.decoding import open_decoder
from imagewatchd.errors import DatabaseDamaged, DatabaseUnreachable
from imagewatchd.filters import walk
from imagewatchd.housekeeping import keep_house, record_the_rest
from imagewatchd.kin import Kin
from imagewatchd.match import Matcher
from imagewatchd.models import Arrival, Candidate, Outcome, SettledFile
from imagewatchd.outage import Lanes, Outage, SpoolMatcher
from imagewatchd.peers import Peers, inboxes_of
from imagewatchd.pipeline import Pipeline
from imagewatchd.reconcile import finish_first_index, reconcile
from imagewatchd.retry import Retries
from imagewatchd.settle import Settler
from imagewatchd.store import Location, Store, damage
from imagewatchd.watch import Event, Gone, Renamed, Rescan, Watcher, selection_of

log = logging.getLogger(__name__)

EVENT_QUEUE_SIZE = 100_000
TICK = 0.05  # the settler's longest sleep: settle deadlines are met within this
STALL = 60.0  # seconds without finishing a file, with files waiting: stalled, no more pings


@dataclass
class Stats:
    processed: int = 0
    matches: int = 0
    errors: int = 0
    last_reconcile: float | None = None


class Session:
    """Everything that runs for one configuration; a reload replaces the whole session."""

    def __init__(
        self, config: Config, db_path: Location, quarantine: Path, dry_run: bool,
        tally: Tally | None = None,
    ) -> None:  # fmt: skip
        """``tally`` counts decisions for the API; the daemon keeps one across reloads."""
        self.config = config
        self.db_path = db_path
        self.quarantine = quarantine
        self.dry_run = dry_run
        self.stop = threading.Event()
        self.events: queue.Queue[Event] = queue.Queue(EVENT_QUEUE_SIZE)
        self.reached: queue.SimpleQueue[SettledFile] = queue.SimpleQueue()  # by new bans
        self.work: queue.Queue[SettledFile | Gone | Renamed | None] = queue.Queue(
            config.workers * 4
        )
        self.in_flight: set[str] = set()
        self.again: set[str] = set()
        self.again_retro: dict[str, SettledFile] = {}  # reached by a ban while in flight
        self.lock = threading.Lock()
        self.library_turn = threading.Lock()  # library arrivals are decided one at a time
        self.kin = Kin()  # the library's groups as this run saw them (kin.py), under library_turn
        self.stats = Stats()
        self.tally = tally if tally is not None else Tally()
        self.rescan_request = threading.Event()
        self.closes_lost = threading.Event()
        self.last_progress = time.monotonic()
        self.retries = Retries()
        self.backlog = Backlog()  # moves done whose journal entry could not be written yet
        self.damaged: DatabaseDamaged | None = None
        self.watcher = Watcher(config, self.events)
        self.outage = Outage(db_path, self.rescan_request.set)  # a PostgreSQL store's outages
        self.offline = False  # started in an outage: the library's and inboxes' indexes wait
        self.store, self.matcher = self._open()
        # the inboxes' files, under library_turn
        self.peers = Peers(inboxes_of(config)) if self.offline else Peers.load(self.store, config)
        self.bans = retroactive.NewBans(
            self.store, config.matching.thresholds.pdq_query_quality, keep=not dry_run
        )
        self.decoder = open_decoder(config, start=True)  # worker processes
        self.threads: list[threading.Thread] = []
        self.store_opened = 0  # the outage generation when ``store`` was opened

    def _open(self) -> tuple[Store, Matcher]:
        """The database and the indexes loaded from it; in an outage, the spool and the bank
        this host last had (``offline.py``), the library's index empty until the return."""
        thresholds = self.config.matching.thresholds
        try:
            store = Store(self.db_path)
        except DatabaseUnreachable as exc:
            if not self.outage.enabled:
                raise
            spool, indexes = offline.begin(self.db_path, self.outage, exc, thresholds.pdq_quality)
            self.offline = True
            return spool, Matcher(spool, thresholds, indexes)
        return store, Matcher.load(store, thresholds)

    # -- lifecycle -----------------------------------------------------------------------

    def start(self) -> None:
        for number in range(self.config.workers):
            self._spawn(f"worker-{number}", self._work)
        self._spawn("settler", self._settle)
        self.watcher.start()
        self._spawn("rescanner", self._rescan_loop)
        self._spawn("housekeeper", self._keep_house)
        self._spawn("retroactive", self._retroactive)
        if self.outage.enabled:
            self._spawn("outage", lambda: self.outage.watch(self.stop))
        self.rescan_request.set()  # the start-up reconcile

    def _spawn(self, name: str, target: Callable[[], None]) -> None:
        thread = threading.Thread(target=target, name=name, daemon=True)
        thread.start()
        self.threads.append(thread)

    def alive(self) -> bool:
        dead = [t.name for t in self.threads if not t.is_alive()]
        if not self.watcher.alive():
            dead.append("watcher (was a watched directory removed?)")
        for name in dead:
            log.critical("thread %s is not running", name)
        return not dead

    def found_damage(self, exc: BaseException) -> bool:
        """True when ``exc`` means a damaged database: then nothing more is processed."""
        if isinstance(exc, DatabaseDamaged):
            damaged: DatabaseDamaged | None = exc
        else:
            detail = damage(exc)
            damaged = None if detail is None else DatabaseDamaged(self.db_path, detail)
        if damaged is None:
            return False
        with self.lock:
            if self.damaged is None:
                self.damaged = damaged
        self.stop.set()
        return True

    def moving(self) -> bool:
        """Files are being finished, or none are waiting."""
        return self.work.empty() or time.monotonic() - self.last_progress < STALL

    def status(self) -> str:
        s = self.stats
        when = (
            time.strftime("%H:%M:%S", time.localtime(s.last_reconcile))
            if s.last_reconcile
            else "running"
        )
        queued = self.events.qsize() + self.work.qsize()
        unrecorded = len(self.backlog)
        lagging = f"; {unrecorded} moves not yet recorded" if unrecorded else ""
        away = "".join(
            f"; degraded: {self.config.watches[i].path} not watched ({why})"
            for i, why in sorted(self.watcher.away().items())
        )
        return (
            f"{s.processed} files processed, {s.matches} matches, {s.errors} errors; "
            f"queue {queued}; {self.retries.summary()}{lagging}; last reconcile {when}{away}"
            f"{self.outage.status()}"
        )

    def shutdown(self) -> None:
        """Finish the files in hand; whatever is still queued is found by the next reconcile."""
        self.stop.set()
        self.outage.release()
        self.watcher.stop()
        while True:
            try:
                self.work.get_nowait()
            except queue.Empty:
                break
        for _ in range(self.config.workers):
            self.work.put(None)
        for thread in self.threads:
            thread.join(timeout=10)
        record_the_rest(self.store, self.backlog)
        self.outage.close()
        self.decoder.close()
        self.store.close()

    # -- main-thread duties ----------------------------------------------------------------

    def supervise(self) -> None:
        if not self.outage.down.is_set():  # meanwhile the index holds the bank it has
            try:
                self._look_at_the_bank()
            except DatabaseUnreachable as exc:
                self.outage.lost(exc, self.store_opened)
        if self.watcher.check_roots():
            self.rescan_request.set()  # what arrived while the root was away
        for item in self.retries.due():
            if isinstance(item, Candidate) and not os.path.lexists(item.path):
                self.retries.done(item)  # gone meanwhile: nothing to retry
                continue
            try:
                self.events.put_nowait(item)
            except queue.Full:  # a rescan finds it; the retry stays scheduled
                self.watcher.overflowed.set()
        if self.watcher.overflowed.is_set():
            self.watcher.overflowed.clear()
            log.warning("events were lost (queue overflow): rescanning every watch")
            self.closes_lost.set()
            self.rescan_request.set()

    def _look_at_the_bank(self) -> None:
        if self.store_opened < self.outage.generation:  # a connection from before an outage
            self.store.close()
            self.store_opened = self.outage.generation
            self.store = Store(self.db_path)
            self.bans.store = self.matcher.store = self.store
            if self.offline:  # started in the outage: the indexes kept by the database's ids
                self.offline = False
                self.matcher.indexes.library = snapshot.load_library(self.store)
                self.peers.indexes = Peers.load(self.store, self.config).indexes
        self.bans.look()  # before the refresh: every entry it finds is in the workers' index
        if self.matcher.refresh_entries():
            log.info("lists changed: %d near-match entries loaded", len(self.matcher.entries))
        self.matcher.record_bank()  # how far this host has got, for the fleet's staleness

    # -- threads -----------------------------------------------------------------------------

    def _settle(self) -> None:
        config = self.config
        settler = Settler(
            quiet=lambda i: config.watches[i].settle_seconds,
            has_close_events=self.watcher.has_close_events,
            clock=time.monotonic,
            wall=time.time,
        )
        while not self.stop.is_set():
            deadline = settler.next_due()
            wait = TICK if deadline is None else min(TICK, max(0.0, deadline - time.monotonic()))
            try:
                item = self.events.get(timeout=wait)
            except queue.Empty:
                item = None
            if isinstance(item, Candidate):
                if item.arrival is not Arrival.SCAN:
                    self.tally.arrived(item.path)
                self._dispatch(settler.offer(item))
            elif isinstance(item, Gone):
                settler.discard(item.path)
                self._put(item)
            elif isinstance(item, Renamed):
                settler.discard(item.src)
                self._put(item)
            elif isinstance(item, Rescan):
                for candidate in self._walk(item):
                    self._dispatch(settler.offer(candidate))
            if self.closes_lost.is_set():
                self.closes_lost.clear()
                settler.closes_lost()
            elif settler.lossy and self.events.empty() and self.watcher.drained():
                settler.closes_trusted()
            for settled in settler.due():
                self._dispatch(settled)
            while not self.reached.empty():  # files seen before, reached by a new ban
                self._dispatch(self.reached.get_nowait())

    def _walk(self, item: Rescan) -> list[Candidate]:
        """The files below a directory that appeared, as the watch's selection sees them.

        It is reached from the watch root one directory fd at a time: swapped for a symlink
        since its event, it is not followed.
        """
        watch = self.config.watches[item.watch]
        below = PurePosixPath(os.path.relpath(item.path, watch.path))
        if ".." in below.parts:
            return []

        def on_error(path: Path, exc: OSError) -> None:
            level = logging.DEBUG if exc.errno == errno.ENOENT else logging.WARNING
            log.log(level, "%s: not walked: %s", path, exc.strerror or exc)

        found = walk(watch.path, selection_of(watch), watch.recursive, on_error, top=below)
        return [Candidate(str(path), item.watch, Arrival.SCAN) for path, _ in found]

    def _dispatch(self, settled: SettledFile | None) -> None:
        if settled is None:
            return
        with self.lock:
            if settled.path in self.in_flight:
                if settled.retro:
                    self.again_retro[settled.path] = settled
                else:
                    self.again.add(settled.path)  # being processed: look again once it is done
                return
            self.in_flight.add(settled.path)
        self._put(settled)

    def _put(self, item: SettledFile | Gone | Renamed) -> None:
        while not self.stop.is_set():
            try:
                self.work.put(item, timeout=0.2)
                return
            except queue.Full:
                continue

    def _lane(self, store: Store, on_spool: bool) -> Pipeline:
        """A worker's pipeline on ``store``: the database's, or the spool's in an outage."""
        matcher = (SpoolMatcher if on_spool else Matcher)(
            store, self.matcher.thresholds, self.matcher.indexes
        )
        actor = Actor(
            store,
            self.config,
            self.quarantine,
            dry_run=self.dry_run,
            backlog=self.outage.backlog if on_spool else self.backlog,  # the spool's own ids
        )
        pipeline = Pipeline(
            store, matcher, actor, self.config, self.decoder, retry=self.retries.later
        )
        pipeline.serial = self.library_turn
        if not on_spool:  # the spool's ids are not the database's: its rescan tells them
            pipeline.saved = self.bans.stored.saved  # the hashes a new ban is compared with
            pipeline.kin = self.kin  # what the library's and inboxes' files are, by row id
            pipeline.peers = self.peers
        return pipeline

    def _work(self) -> None:
        lanes = Lanes(self.outage, self._lane)
        try:
            while True:
                item = self.work.get()
                if item is None:
                    return
                if self.damaged is not None:  # act on nothing read from a damaged database
                    continue
                if isinstance(item, Gone):
                    self._forget(lanes, item)
                    continue
                if isinstance(item, Renamed):
                    self._rename(lanes, item)
                    continue
                self._finish(item, self._process(lanes, item))
        finally:
            lanes.close()

    def _process(self, lanes: Lanes[Pipeline], settled: SettledFile) -> Outcome | None:
        try:
            return lanes.run(lambda pipeline: pipeline.process(settled, act=settled.act))
        except Exception as exc:  # one file's failure never stops the daemon
            if self.found_damage(exc):
                return None
            delay = self.retries.later(settled, repr(exc))
            log.error("%s: not processed: %r; retrying in %.0f s", settled.path, exc, delay)
            log.debug("traceback", exc_info=True)
            return None

    def _finish(self, settled: SettledFile, outcome: Outcome | None) -> None:
        self.tally.finished(settled.path, outcome)
        with self.lock:
            self.last_progress = time.monotonic()
            if outcome is not None and outcome.action not in ("unchanged", "vanished"):
                self.stats.processed += 1
                self.stats.matches += outcome.verdict in ("known", "duplicate")
                self.stats.errors += outcome.action == "error"
            self.in_flight.discard(settled.path)
            if outcome is not None and outcome.action != "error":
                self.retries.done(settled)  # a failed action has scheduled its retry
            again = settled.path in self.again or (
                outcome is not None and outcome.action == "changed"
            )
            self.again.discard(settled.path)
            retro = self.again_retro.pop(settled.path, None)
        if retro is not None:
            self.reached.put(retro)
        elif again:
            try:
                self.events.put_nowait(
                    Candidate(settled.path, settled.watch, Arrival.SCAN, settled.act)
                )
            except queue.Full:  # never block on the settler, which may be waiting on us
                self.watcher.overflowed.set()

    def _rename(self, lanes: Lanes[Pipeline], item: Renamed) -> None:
        try:
            lanes.run(lambda pipeline: pipeline.store.rename_paths(item.src, item.dest))
        except Exception as exc:
            if self.found_damage(exc):
                return
            delay = self.retries.later(item, repr(exc))
            log.error("%s: renamed to %s, not yet recorded: %r; retrying in %.0f s", item.src,
                      item.dest, exc, delay)  # fmt: skip
            return
        self.retries.done(item)

    def _forget(self, lanes: Lanes[Pipeline], item: Gone) -> None:
        """The rows under a path that left the watch, and their index entries.

        In the library's turn: a row's id may be taken again as soon as the row is deleted
        (SQLite reuses the highest), so ids read here and removed later could remove the
        newcomer that got one meanwhile (a better arrival moves the old copy, forgets its row,
        and is recorded under the id the old copy had; this file's Gone event came after).
        """

        def forget(pipeline: Pipeline) -> None:
            with self.library_turn:
                ids = [file_id for file_id, _ in pipeline.store.files_under(item.path)]
                for file_id in ids:
                    pipeline.matcher.remove_library_file(file_id)
                    self.peers.remove(file_id)  # out of an inbox: no longer matched
                pipeline.store.forget_files(ids)

        try:
            lanes.run(forget)
        except Exception as exc:  # e.g. the database locked for too long
            if self.found_damage(exc):
                return
            delay = self.retries.later(item, repr(exc))
            log.error("%s: gone, but not forgotten yet: %r; retrying in %.0f s", item.path, exc,
                      delay)  # fmt: skip
            return
        self.retries.done(item)

    def _keep_house(self) -> None:
        try:
            self.outage.through(self.stop, self._keep_house_until_stopped)
        except Exception as exc:
            if not self.found_damage(exc):
                raise

    def _keep_house_until_stopped(self) -> None:
        """Housekeeping on a connection that a return of the database replaces."""
        while not self.stop.is_set():
            until = self.outage.until_return(self.stop)
            keep_house(self.db_path, self.backlog, self.retries, until)

    def _retroactive(self) -> None:
        """New bans reach the files already there (``retroactive``); the workers act."""
        try:
            self.outage.through(self.stop, self._retroactive_once)
        except Exception as exc:
            if not self.found_damage(exc):
                raise

    def _retroactive_once(self) -> None:
        with Store(self.db_path) as store:
            self.bans.run(store, self.config, self.stop, self._offer)

    def _offer(self, item: SettledFile | Candidate) -> None:
        """A file reached by a new ban: as it is, to the workers; changed, to the settler."""
        if isinstance(item, SettledFile):
            self.reached.put(item)
            return
        try:
            self.events.put_nowait(item)
        except queue.Full:  # a rescan finds it: it changed
            self.watcher.overflowed.set()

    def _rescan_loop(self) -> None:
        try:
            self.outage.through(self.stop, self._rescan_until_stopped)
        except Exception as exc:
            if not self.found_damage(exc):
                raise

    def _rescan_until_stopped(self) -> None:
        store = Store(self.db_path)
        try:
            while not self.stop.is_set():
                if not self.rescan_request.wait(timeout=0.5):
                    continue
                self.rescan_request.clear()
                try:
                    found = reconcile(
                        self.config, store, self.matcher.bind(store), self.events, self.stop,
                        skip=self.watcher.away(),
                    )  # fmt: skip
                except DatabaseUnreachable:  # done once the database answers
                    self.rescan_request.set()
                    raise
                self.stats.last_reconcile = time.time()
                log.info("reconcile: %d file(s) to process", found.queued)
                for root, paths in found.first_index.items():
                    finish_first_index(store, root, paths, self.stop)
        finally:
            store.close()
