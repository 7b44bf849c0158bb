"""Shared fixtures: real images made with Pillow, real temporary directories and databases."""

from __future__ import annotations

import contextlib
import fcntl
import itertools
import json
import os
import sqlite3
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import psycopg
import pytest
from PIL import Image

from imagewatchd.schema import MIGRATIONS
from imagewatchd.store import Location, Store
from tests.daemon_harness import Daemon
from tests.pgcluster import Cluster


def photo(seed: int, size: tuple[int, int] = (640, 480)) -> Image.Image:
    """A photo-like RGB image: smooth random structure plus fine noise, distinct per seed."""
    rng = np.random.default_rng(seed)
    coarse = (rng.random((12, 16, 3)) * 255).astype(np.uint8)
    img = Image.fromarray(coarse).resize(size, Image.Resampling.BICUBIC)
    noise = rng.normal(0, 4, (size[1], size[0], 3))
    pixels = np.clip(np.asarray(img, dtype=np.float64) + noise, 0, 255).astype(np.uint8)
    return Image.fromarray(pixels)


MakeImage = Callable[..., Path]


@pytest.fixture
def make_image(tmp_path: Path) -> MakeImage:
    """Write ``photo(seed)`` (optionally transformed) to ``tmp_path / name``."""

    def make(
        name: str,
        seed: int = 1,
        size: tuple[int, int] = (640, 480),
        **save: Any,
    ) -> Path:
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        photo(seed, size).save(path, **save)
        return path

    return make


@pytest.fixture(autouse=True)
def no_leaked_threads() -> Iterator[None]:
    """Fail any test that leaves a thread running (as watchdog's own suite does)."""
    before = set(threading.enumerate())
    yield
    leaked = [t for t in threading.enumerate() if t not in before and t.is_alive()]
    assert not leaked, f"threads leaked: {leaked}"


@contextlib.contextmanager
def _locked(path: Path, operation: int) -> Iterator[None]:
    with path.open("a") as lock:
        fcntl.flock(lock, operation)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


@pytest.fixture(autouse=True)
def one_at_a_time(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[None]:
    """Under pytest-xdist, a test marked ``alone`` runs while no other worker runs a test: it
    changes a machine-wide setting (an inotify sysctl) or needs the machine to itself. Every
    other test holds the gate shared; the turnstile keeps them from starving a waiting one."""
    if "PYTEST_XDIST_WORKER" not in os.environ:
        yield  # one process: nothing runs beside this test
        return
    shared = tmp_path_factory.getbasetemp().parent  # this run's, common to its workers
    alone = request.node.get_closest_marker("alone") is not None
    gate = contextlib.ExitStack()
    with _locked(shared / "turnstile.lock", fcntl.LOCK_EX):
        gate.enter_context(_locked(shared / "gate.lock", fcntl.LOCK_EX if alone else fcntl.LOCK_SH))
    with gate:
        yield


@dataclass
class Run:
    code: int
    out: str
    err: str

    def json_lines(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.out.splitlines() if line.strip()]


@pytest.fixture
def cli(tmp_path: Path) -> Callable[..., Run]:
    """Run ``python -m imagewatchd`` as a subprocess on a database in the test's directory."""
    env = {
        **os.environ,
        "IMAGEWATCHD_DB": str(tmp_path / "state" / "imagewatchd.db"),
        "IMAGEWATCHD_CONFIG": "",
        "XDG_CONFIG_HOME": str(tmp_path / "xdg-config"),
        "XDG_STATE_HOME": str(tmp_path / "xdg-state"),
        "OPENBLAS_NUM_THREADS": "1",
    }

    def run(*args: str, stdin: str | None = None, check: int | None = None) -> Run:
        proc = subprocess.run(
            [sys.executable, "-m", "imagewatchd", *args],
            capture_output=True, text=True, env=env, input=stdin, timeout=120, cwd=tmp_path,
            check=False,
        )  # fmt: skip
        result = Run(proc.returncode, proc.stdout, proc.stderr)
        if check is not None:
            assert result.code == check, result
        return result

    return run


@pytest.fixture(scope="session")
def pg_cluster() -> Iterator[Cluster]:
    """One throwaway PostgreSQL server for the session (``pgcluster.py``), started on first
    use; a missing server fails the tests that need it, with what to install."""
    cluster = Cluster()
    try:
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture
def pg_url(pg_cluster: Cluster) -> Iterator[str]:
    """The URL of a fresh, empty PostgreSQL database, dropped after the test."""
    url = pg_cluster.database()
    yield url
    pg_cluster.drop(url)


OpenStore = Callable[[], Store]
PG_HOST = "test-host"


@pytest.fixture(scope="session", params=["sqlite", "postgresql"])
def new_store(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> OpenStore:
    """Opens a fresh, empty store on each call, once per backend: a new SQLite file, or a new
    schema in the session's PostgreSQL database (a schema is made in milliseconds, a database
    is not; session-scoped so that Hypothesis tests may call it per example)."""
    if request.param == "sqlite":
        return lambda: Store(tmp_path_factory.mktemp("db") / "t.db")
    cluster: Cluster = request.getfixturevalue("pg_cluster")
    url = cluster.database()
    schemas = itertools.count(1)

    def open_postgresql() -> Store:
        schema = f"s{next(schemas)}"
        with psycopg.connect(url, autocommit=True) as admin:
            admin.execute(f"CREATE SCHEMA {schema}")
        local = tmp_path_factory.mktemp("pg") / "postgresql"
        return Store(Location(local, f"{url}&options=-csearch_path%3D{schema}", PG_HOST))

    return open_postgresql


@pytest.fixture
def daemons() -> Iterator[list[Daemon]]:
    """Daemons a test started (append each): killed at its end, whatever happened."""
    started: list[Daemon] = []
    yield started
    for daemon in started:
        daemon.kill()


def database_at_version(path: Path, version: int) -> sqlite3.Connection:
    """A SQLite database as imagewatchd left it after migration ``version`` (for the tests of
    the migrations after it); the caller adds rows and closes it."""
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("PRAGMA foreign_keys = ON")
    db.execute(
        "CREATE TABLE migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL,"
        " applied REAL NOT NULL)"
    )
    for number, name, sql in MIGRATIONS[:version]:
        db.executescript(sql)
        db.execute("INSERT INTO migrations VALUES (?, ?, 0)", (number, name))
    return db
