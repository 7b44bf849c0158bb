"""The daemon: signals, reloads, health and the service manager around one ``Session``.

The main thread handles signals, live list reloads, status and watchdog pings; if any of the
session's threads dies, the daemon exits non-zero so that the service manager restarts it.
"""

from __future__ import annotations

import fcntl
import logging
import os
import signal
import threading
import time
from pathlib import Path
from types import FrameType

from imagewatchd import config as config_module
from imagewatchd import outage, paths
from imagewatchd.api import server as api_server
from imagewatchd.api.answers import Live
from imagewatchd.api.tally import Tally
from imagewatchd.background import BackgroundCheck, SnapshotKeeper
from imagewatchd.config import Config
from imagewatchd.errors import (
    EXIT_DAMAGED,
    ConfigError,
    DatabaseDamaged,
    DatabaseUnreachable,
    UsageError,
)
from imagewatchd.journal import recover
from imagewatchd.notify import Notifier
from imagewatchd.session import STALL, Session
from imagewatchd.store import DAMAGE_ERRORS, Location, Store, damage
from imagewatchd.store.wakeups import BankWakeups

log = logging.getLogger(__name__)

SUPERVISE = 0.2  # the main thread's period: list reloads, health, timers
Upkeep = tuple[BackgroundCheck, SnapshotKeeper, BankWakeups]  # threads beside the sessions
EXIT_WATCHER_DIED = 1
STATUS_EVERY = 2.0


class Daemon:
    """``imagewatchd run``: sessions, signals, reloads, health."""

    def __init__(self, located: paths.Located, db_flag: str | None, dry_run: bool) -> None:
        self.located = located
        self.db_flag = db_flag
        self.dry_run = dry_run
        self.stopping = threading.Event()
        self.reloading = threading.Event()
        self.nudged = threading.Event()  # look now: a signal, or another host changed the bank
        self.notifier = Notifier()
        self.tally = Tally()  # the API's counts, kept across reloads
        self.live: Live | None = None
        self.session: Session | None = None
        self.damaged: DatabaseDamaged | None = None  # found by the background check

    def _signal(self, signum: int, frame: FrameType | None) -> None:
        if signum == signal.SIGHUP:
            self.reloading.set()
        else:
            self.stopping.set()
        self.nudged.set()

    def run(self, config: Config) -> int:
        for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            signal.signal(signum, self._signal)
        db_path = paths.database(self.db_flag, config.database, config.host)
        lock = _single_instance(db_path.path)
        self.live = Live(db_path, self.tally)
        api = _serve_api(config, self.live)
        upkeep = (BackgroundCheck(db_path, self._found_damage),
                  SnapshotKeeper(db_path, self._found_damage),
                  BankWakeups(db_path, self.nudged.set))  # fmt: skip
        try:
            _recover(db_path)
            return self._sessions(config, db_path, upkeep)
        except DAMAGE_ERRORS as exc:
            detail = damage(exc)
            if detail is None:
                raise
            raise DatabaseDamaged(db_path, detail) from exc
        finally:
            if api is not None:
                api.close()
            for task in upkeep:
                task.stop()
            self.notifier.close()
            os.close(lock)

    def _found_damage(self, damaged: DatabaseDamaged) -> None:
        """The background check found damage: the session stops acting, the daemon exits."""
        self.damaged = damaged
        if self.session is not None:
            self.session.found_damage(damaged)

    def _sessions(self, config: Config, db_path: Location, upkeep: Upkeep) -> int:
        """Run sessions until a stop; a reload starts a new one. Once the first is ready, the
        whole database is checked, and the index snapshot kept, in the background."""
        while True:
            session = self.session = self._start(config, db_path)
            if self.damaged is not None:
                session.found_damage(self.damaged)
            if self.live is not None:
                self.live.session = session
            self.notifier.ready(session.status())
            for task in upkeep:
                task.start_once()
            code = self._supervise(session)
            if self.live is not None:
                self.live.session = None
            if code is None:
                self.notifier.reloading()
            else:
                self.notifier.stopping()
            session.shutdown()
            if code is not None:
                return code
            config = self._reload(config)

    def _start(self, config: Config, db_path: Location) -> Session:
        quarantine = paths.quarantine_dir(config.quarantine_dir)
        session = Session(config, db_path, quarantine, self.dry_run, self.tally)
        session.start()
        roles = ", ".join(f"{w.path} ({w.role})" for w in config.watches) or "nothing"
        log.info("watching %s; database %s%s", roles, db_path, " (dry run)" if self.dry_run else "")
        return session

    def _supervise(self, session: Session) -> int | None:
        """Until a signal or a death: timers, list reloads, status and watchdog pings."""
        timers = _Timers(session.config.rescan_interval, self.notifier.watchdog_interval)
        last_status = ""
        while True:
            self.nudged.wait(SUPERVISE)
            self.nudged.clear()
            if self.stopping.is_set():
                log.info("stopping")
                return 0
            if self.reloading.is_set():
                self.reloading.clear()
                return None
            if session.damaged is not None:
                log.critical("%s", session.damaged)
                return EXIT_DAMAGED
            if not session.alive():
                log.critical("exiting so that the service manager restarts imagewatchd")
                return EXIT_WATCHER_DIED
            try:
                session.supervise()
            except Exception as exc:  # e.g. the database busy for longer than its timeout
                if not session.found_damage(exc):
                    log.error("supervision: %r", exc)
            now = time.monotonic()
            if timers.due("rescan", now):
                session.rescan_request.set()
            if timers.due("watchdog", now):
                if session.moving():
                    self.notifier.watchdog()
                else:
                    log.error("no file finished for %.0f s with files waiting: stalled", STALL)
            if timers.due("status", now) and session.status() != last_status:
                last_status = session.status()
                self.notifier.status(last_status)

    def _reload(self, current: Config) -> Config:
        try:
            fresh = config_module.load(self.located)
        except ConfigError as exc:
            for problem in exc.problems:
                log.error("reload: %s: %s", exc.source, problem)
            log.error("reload: keeping the previous configuration")
            return current
        log.info("reloaded %s", fresh.source)
        return fresh


def _serve_api(config: Config, live: Live) -> api_server.ApiServer | None:
    """The API on its socket (docs/API.md); the daemon runs on without it if it cannot be."""
    if not config.api.enabled:
        return None
    return api_server.start(config.api, paths.socket_path(config.api.socket), live)


def _recover(db_path: Location) -> None:
    """Check what start-up reads before anything acts on it, then finish what a crash
    interrupted.

    The whole quick check (``PRAGMA quick_check`` and every value's type: 12.9 s CPU at 10M
    library files) runs in the background once the daemon is ready (``BackgroundCheck``).
    """
    try:
        store = Store(db_path)
    except DatabaseUnreachable as exc:
        outage.start_offline(db_path, exc, recover)  # the session starts in the outage
        return
    with store:
        problems = store.startup_check()
        if problems:
            more = f" and {len(problems) - 1} more problem(s)" if len(problems) > 1 else ""
            raise DatabaseDamaged(db_path, problems[0] + more)
        recover(store)
    outage.recover_spool(db_path, recover)  # what an outage journalled locally, if any


def _single_instance(db_path: Path) -> int:
    """One daemon per database: a second one's crash recovery would undo the first's moves.

    The holder writes its PID into the lock file, so that a refusal can name it.
    """
    db_path.parent.mkdir(parents=True, exist_ok=True)
    lock = os.open(f"{db_path}.lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = os.pread(lock, 32, 0).decode("ascii", "replace").strip()
        os.close(lock)
        by = f" (PID {holder}, holding {db_path}.lock)" if holder.isdigit() else ""
        raise UsageError(f"{db_path}: another imagewatchd daemon is running on it{by}") from None
    os.ftruncate(lock, 0)
    os.pwrite(lock, f"{os.getpid()}\n".encode("ascii"), 0)
    return lock


def running_daemon(db_path: Path) -> int | None:
    """The PID of the daemon running on this database, if one is (its lock, read from
    /proc/locks: never taken here, so that a daemon starting now is not refused); 0 when the
    lock is held but names no PID."""
    lock = Path(f"{db_path}.lock")
    try:
        info = lock.stat()
        holder = lock.read_text("ascii", "replace").strip()
        held = Path("/proc/locks").read_text("ascii", "replace")
    except OSError:
        return None
    place = f"{os.major(info.st_dev):02x}:{os.minor(info.st_dev):02x}:{info.st_ino}"
    if not any("FLOCK" in line.split() and place in line.split() for line in held.splitlines()):
        return None
    return int(holder) if holder.isdigit() else 0


class _Timers:
    """Named periodic deadlines on the monotonic clock; a period of 0 or None never fires."""

    def __init__(self, rescan: float, watchdog: float | None) -> None:
        self.periods = {"rescan": rescan, "watchdog": watchdog or 0.0, "status": STATUS_EVERY}
        start = time.monotonic()
        self.next = {name: start + period for name, period in self.periods.items()}
        self.next["watchdog"] = start  # the first ping at once

    def due(self, name: str, now: float) -> bool:
        period = self.periods[name]
        if not period or now < self.next[name]:
            return False
        self.next[name] = now + period
        return True
