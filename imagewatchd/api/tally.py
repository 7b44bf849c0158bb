"""What the daemon has done since it started: files by verdict and action, errors, latency.

One ``Tally`` per daemon outlives its sessions (a reload keeps the counts). The session calls
``arrived`` when an event names a file and ``finished`` when the file's decision is made; the
counts live in a per-daemon Prometheus ``CollectorRegistry`` (``/metrics``) and in plain
dictionaries (``/status``).
"""

from __future__ import annotations

import threading
import time
from collections import Counter as Counts
from collections.abc import Callable

from prometheus_client import CollectorRegistry, Counter, Histogram

from imagewatchd.models import Outcome

NOT_COUNTED = ("unchanged", "vanished")  # no decision was made about the file
ARRIVALS_KEPT = 100_000  # files waiting for their decision whose arrival time is remembered
LATENCY_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0)


class Tally:
    """Thread-safe counts of the daemon's decisions, with their Prometheus metrics."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self.started = clock()
        self.registry = CollectorRegistry(auto_describe=True)
        self._lock = threading.Lock()
        self._arrived: dict[str, float] = {}
        self.verdicts: Counts[str] = Counts()
        self.actions: Counts[str] = Counts()
        self.errors = 0
        self.files = Counter(
            "imagewatchd_files_processed", "Files decided, by verdict and action",
            ["verdict", "action"], registry=self.registry,
        )  # fmt: skip
        self.failures = Counter(
            "imagewatchd_errors", "Files whose processing or action failed (retried later)",
            registry=self.registry,
        )  # fmt: skip
        self.latency = Histogram(
            "imagewatchd_decision_latency_seconds",
            "From a file's first event (not a rescan) to its decision",
            buckets=LATENCY_BUCKETS, registry=self.registry,
        )  # fmt: skip

    def arrived(self, path: str) -> None:
        """An event named ``path``: its decision's latency counts from now (the first event)."""
        with self._lock:
            if len(self._arrived) >= ARRIVALS_KEPT and path not in self._arrived:
                self._arrived.clear()  # files that never reached a decision: forget them all
            self._arrived.setdefault(path, self.clock())

    def forget(self, path: str) -> None:
        with self._lock:
            self._arrived.pop(path, None)

    def finished(self, path: str, outcome: Outcome | None) -> None:
        """The decision about ``path``; None: processing failed with an exception."""
        with self._lock:
            since = self._arrived.pop(path, None)
            if outcome is None or outcome.action == "error":
                self.errors += 1
                self.failures.inc()
                return
            if outcome.action in NOT_COUNTED:
                return
            verdict = outcome.verdict.value if outcome.verdict is not None else "none"
            self.verdicts[verdict] += 1
            self.actions[outcome.action] += 1
        self.files.labels(verdict, outcome.action).inc()
        if since is not None:
            self.latency.observe(max(0.0, self.clock() - since))

    def counts(self) -> dict[str, object]:
        """For ``/status``: files by verdict and by action, and errors, since start."""
        with self._lock:
            return {
                "verdicts": dict(self.verdicts),
                "actions": dict(self.actions),
                "errors": self.errors,
            }

    def uptime(self) -> float:
        return self.clock() - self.started
