"""What the API answers: the running daemon's status, a check's verdict, the metrics' gauges.

Reads only: a check fingerprints through the session's decoding pool and matches against the
session's loaded indexes, and nothing is recorded or acted upon.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from imagewatchd import __version__, report
from imagewatchd.api.tally import Tally
from imagewatchd.config import Config, Watch
from imagewatchd.decoding import Decoder
from imagewatchd.errors import FingerprintError
from imagewatchd.fingerprint import open_path
from imagewatchd.match import Matcher
from imagewatchd.models import Orientations, Verdict, VerdictKind
from imagewatchd.names import shown
from imagewatchd.session import Session
from imagewatchd.store import Location, Store


@dataclass
class Live:
    """The daemon as the API sees it; ``session`` is None while starting or reloading."""

    db_path: Location
    tally: Tally
    session: Session | None = None
    pid: int = field(default_factory=os.getpid)


def hello(live: Live) -> dict[str, object]:
    """``GET /``: who answers, cheaply (the CLI checks that it is the daemon of its database)."""
    return {
        "service": "imagewatchd",
        "version": __version__,
        "pid": live.pid,
        "database": os.path.realpath(live.db_path.path),
        "state": "running" if live.session is not None else "starting",
        "endpoints": ["/status", "/check", "/metrics"],
    }


def status(live: Live, store: Store | None) -> dict[str, object]:
    """``GET /status``; ``store`` is the calling thread's own connection (None in a database
    outage: no lists then)."""
    session = live.session
    data: dict[str, object] = {
        "daemon": {
            "running": True,
            "pid": live.pid,
            "version": __version__,
            "state": "running" if session is not None else "starting",
            "uptime_seconds": round(live.tally.uptime(), 3),
        },
        "database": os.path.realpath(live.db_path.path),
        "files_since_start": live.tally.counts(),
    }
    if store is not None:
        data["lists"] = {
            r.name: {"kind": r.kind.value, "entries": r.entries, "enabled": r.enabled}
            for r in store.lists()
        }
    if session is not None:
        data.update(_session_status(session))
    return data


def _session_status(session: Session) -> dict[str, object]:
    away = session.watcher.away()
    last = session.stats.last_reconcile
    since = session.outage.since if session.outage.down.is_set() else None
    indexes = session.matcher.indexes
    bank = (
        {}
        if indexes.bank_id is None
        else {"bank": {"applied": indexes.applied, "head": indexes.head,
                       "behind": max(0, indexes.head - indexes.applied),
                       "whole_loads": indexes.rebuilds}}
    )  # fmt: skip
    return {
        **bank,
        "config": session.config.source,
        "watches": [_watch(w, away.get(i)) for i, w in enumerate(session.config.watches)],
        "queue": {
            "waiting": session.events.qsize() + session.work.qsize(),
            "in_flight": len(session.in_flight),
        },
        "retries": {"pending": len(session.retries), "summary": session.retries.summary()},
        "last_reconcile": None if last is None else _iso(last),
        "database_unreachable_since": None if since is None else _iso(since),
        "index": {
            "list_entries": len(indexes.entries),
            "pdq_entries": len(indexes.pdq),
            "library_files": len(indexes.library),
        },
    }


def _watch(watch: Watch, problem: str | None) -> dict[str, object]:
    healthy = problem is None
    role = watch.role.value
    return {"path": str(watch.path), "role": role, "healthy": healthy, "problem": problem}


def _iso(when: float) -> str:
    return datetime.fromtimestamp(when).astimezone().isoformat(timespec="seconds")


def orientations_of(config: Config, path: Path) -> Orientations:
    """The ``orientations`` setting of the watch that holds ``path``; outside every watch, the
    default (turned copies count for lists)."""
    where = path.absolute()
    for watch in config.watches:
        if where.is_relative_to(watch.path):
            return watch.orientations
    return Orientations.LISTS


def check_fd(
    matcher: Matcher, decoder: Decoder, fd: int, path: Path,
    orientations: Orientations = Orientations.LISTS,
) -> report.CheckResult:  # fmt: skip
    """The verdict for the open file ``fd``, named ``path``: what ``check`` prints.

    A library file is not its own duplicate: its own row is left out when it is unchanged.
    """
    try:
        _, fp = decoder.fingerprint(fd, path)  # with its colours, as every file
    except FingerprintError as exc:
        return report.CheckResult(path, None, Verdict(VerdictKind.ERROR), exc.reason)
    own = matcher.store.get_file(str(path))
    exclude = own.id if own is not None and own.sha256 == fp.sha256 else None
    verdict = matcher.match(fp, exclude_file=exclude, orientations=orientations)
    return report.CheckResult(path, fp, verdict)


def check_path(
    matcher: Matcher, decoder: Decoder, path: Path, name: Path,
    orientations: Orientations = Orientations.LISTS,
) -> report.CheckResult:  # fmt: skip
    """A file the daemon reads itself (the last component is not followed if a symlink)."""
    try:
        fd = open_path(path)
    except FingerprintError as exc:
        return report.CheckResult(name, None, Verdict(VerdictKind.ERROR), exc.reason)
    try:
        return check_fd(matcher, decoder, fd, name, orientations)
    finally:
        os.close(fd)


def check_bytes(
    matcher: Matcher, decoder: Decoder, data: bytes, name: Path,
    orientations: Orientations = Orientations.LISTS,
) -> report.CheckResult:  # fmt: skip
    """An image sent as bytes: held in an anonymous memory file for the decoding pool."""
    fd = os.memfd_create("imagewatchd-check", os.MFD_CLOEXEC)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
        os.lseek(fd, 0, os.SEEK_SET)
        return check_fd(matcher, decoder, fd, name, orientations)
    finally:
        os.close(fd)


def check_answer(result: report.CheckResult, session: Session) -> dict[str, object]:
    """``check --json``'s object, and the lines ``check`` prints for people under ``text``."""
    thresholds = session.config.matching.thresholds
    data: dict[str, object] = json.loads(report.check_json(result, thresholds))
    data["text"] = report.check_text(result, thresholds)
    return data


class Gauges(Collector):
    """The metrics read from a status snapshot at scrape time (one collector per scrape)."""

    def __init__(self, snapshot: dict[str, object]) -> None:
        self.snapshot = snapshot

    def collect(self) -> Iterator[Metric]:
        s = self.snapshot
        daemon = _dict(s.get("daemon"))
        yield _gauge("uptime_seconds", "Seconds since the daemon started", daemon["uptime_seconds"])
        queue = _dict(s.get("queue", {}))
        yield _gauge("queue_depth", "Files waiting to be processed", queue.get("waiting", 0))
        retries = _dict(s.get("retries", {}))
        yield _gauge("retries_pending", "Files and changes waiting for a retry",
                     retries.get("pending", 0))  # fmt: skip
        last = s.get("last_reconcile")
        if isinstance(last, str):
            stamp = datetime.fromisoformat(last).timestamp()
            yield _gauge("last_reconcile_timestamp_seconds", "When the last reconcile ended", stamp)
        lists = GaugeMetricFamily(
            "imagewatchd_list_entries", "Entries in each list", labels=["list", "kind", "state"]
        )
        for name, value in _dict(s.get("lists", {})).items():
            row = _dict(value)
            kind, enabled = str(row["kind"]), _int(row["enabled"])
            lists.add_metric([shown(name), kind, "enabled"], enabled)
            lists.add_metric([shown(name), kind, "disabled"], _int(row["entries"]) - enabled)
        yield lists
        index = GaugeMetricFamily("imagewatchd_index_size", "Hashes in memory", labels=["index"])
        for name, size in _dict(s.get("index", {})).items():
            index.add_metric([name], _int(size))
        yield index
        if "bank" in s:
            bank = _dict(s["bank"])
            yield _gauge("bank_applied_seq", "The last bank change applied here", bank["applied"])
            yield _gauge("bank_head_seq", "The bank's last change, as last seen", bank["head"])
        yield from self._watches(s)

    def _watches(self, s: dict[str, object]) -> Iterator[Metric]:
        healthy = GaugeMetricFamily(
            "imagewatchd_watch_healthy", "1 when the watch is watched", labels=["path", "role"]
        )
        watches = s.get("watches", [])
        assert isinstance(watches, list)
        for watch in watches:
            w = _dict(watch)
            healthy.add_metric([shown(str(w["path"])), str(w["role"])], 1 if w["healthy"] else 0)
        yield healthy


def _gauge(name: str, text: str, value: object) -> GaugeMetricFamily:
    assert isinstance(value, int | float)
    return GaugeMetricFamily(f"imagewatchd_{name}", text, value=value)


def _dict(value: object) -> dict[str, object]:
    assert isinstance(value, dict)
    return value


def _int(value: object) -> int:
    assert isinstance(value, int)
    return value
