"""The SQLite store: one file in WAL mode, the embedded default (the schema is in schema.py).

Versioned migrations, each applied in the same transaction as its record; every write runs
inside ``transaction()``. The queries are the shared ones (``interface.Store``); this module
adds the connection, its PRAGMAs, its transactions and the WAL's upkeep.
"""

from __future__ import annotations

import os
import sqlite3
import threading
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

from imagewatchd.errors import DatabaseDamaged, StoreError
from imagewatchd.rows import NewEntry
from imagewatchd.schema import MIGRATIONS
from imagewatchd.store import sqlite_check
from imagewatchd.store.base import Dialect
from imagewatchd.store.interface import Store
from imagewatchd.store.location import Location

BUSY_TIMEOUT = 30.0  # seconds a statement waits for another connection's lock
WAL_SIZE_LIMIT = 4 << 20  # bytes the WAL file keeps after a checkpoint; the rest is truncated
WAL_AUTOCHECKPOINT = 1000  # pages: each commit past this checkpoints as far as readers allow
CHECKPOINT_WAIT_MS = 500  # a checkpoint that must wait for readers holds writers this long
IMPORT_CACHE_KIB = 256 << 10  # page cache while entries are added: a million entries' indexes
SQLITE = Dialect(
    name="sqlite",
    integer_test="typeof({c}) = 'integer'",
    id_list="group_concat(id)",
    host_key="",
)


def _statements(script: str) -> Iterator[str]:
    """Split a script into statements; triggers hold semicolons of their own."""
    pending = ""
    for piece in script.split(";"):
        pending += piece + ";"
        if sqlite3.complete_statement(pending):
            if pending.strip(" \n;"):
                yield pending
            pending = ""


class SqliteStore(Store):
    """A SQLite file. Not shared between threads: each thread opens its own."""

    dialect = SQLITE
    errors = (sqlite3.Error,)
    _db: sqlite3.Connection

    def __init__(self, where: Path | Location) -> None:
        path = where.path if isinstance(where, Location) else where
        self.path = path
        self._depth = 0
        self._lock = threading.RLock()
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(path, isolation_level=None, timeout=BUSY_TIMEOUT)
            self._db.execute("PRAGMA journal_mode = WAL")
            self._db.execute("PRAGMA synchronous = NORMAL")
            self._db.execute("PRAGMA foreign_keys = ON")
            self._db.execute(f"PRAGMA journal_size_limit = {WAL_SIZE_LIMIT}")
            self._db.execute(f"PRAGMA wal_autocheckpoint = {WAL_AUTOCHECKPOINT}")
            self._verify(before_migrating=True)
            self._migrate()
            self._verify(before_migrating=False)
        except (sqlite3.Error, OSError, UnicodeDecodeError, StoreError) as exc:
            if hasattr(self, "_db"):  # no connection outlives a refusal
                self._db.close()
            if isinstance(exc, StoreError):
                raise
            detail = sqlite_check.damage(exc)
            if detail is not None:
                raise DatabaseDamaged(path, detail) from exc
            raise StoreError(f"{path}: cannot open the database: {exc}") from exc

    def _verify(self, *, before_migrating: bool) -> None:
        """What every open can afford: the migrations table, then the tables' shape."""
        version, problems = sqlite_check.migration_problems(self._db)
        if not problems and not before_migrating:
            problems = sqlite_check.shape_problems(self._db, version)
        if problems:
            more = f" and {len(problems) - 1} more problem(s)" if len(problems) > 1 else ""
            raise DatabaseDamaged(self.path, problems[0] + more)

    def check(self, *, thorough: bool) -> list[str]:
        """The database's problems, one line each (see ``sqlite_check.check``); [] when sound."""
        with self._lock:
            return sqlite_check.check(self._db, thorough)

    def add_entries(
        self, list_id: int, entries: Iterable[NewEntry], now: float
    ) -> tuple[list[int], int]:
        """As the shared one, with a page cache that holds the indexes of a large list while
        it runs (else every chunk of an import rewrites the pages it evicted)."""
        with self._lock:
            cache = self._db.execute("PRAGMA cache_size").fetchone()[0]
            self._db.execute(f"PRAGMA cache_size = -{IMPORT_CACHE_KIB}")
            try:
                return super().add_entries(list_id, entries, now)
            finally:
                self._db.execute(f"PRAGMA cache_size = {int(cache)}")

    def startup_check(self) -> list[str]:
        """What the daemon checks before it acts (see ``sqlite_check.startup_check``)."""
        with self._lock:
            return sqlite_check.startup_check(self._db)

    def close(self) -> None:
        self._db.close()

    def __str__(self) -> str:
        return str(self.path)

    def interrupt(self) -> None:
        self._db.interrupt()

    @contextmanager
    def durable(self) -> Iterator[sqlite3.Connection]:
        """A transaction that survives power loss once committed (the WAL is fsynced).

        WAL with ``synchronous = NORMAL`` may lose the last commits on power loss; that is fine
        for fingerprints, not for a journal entry written before a file is moved.
        """
        with self._lock:
            self._db.execute("PRAGMA synchronous = FULL")
            try:
                with self.transaction() as db:
                    yield db
            finally:
                self._db.execute("PRAGMA synchronous = NORMAL")

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """BEGIN IMMEDIATE at the outside, a savepoint inside; rolled back on any exception."""
        with self._lock:
            outer = self._depth == 0
            name = f"sp{self._depth}"
            self._db.execute("BEGIN IMMEDIATE" if outer else f"SAVEPOINT {name}")
            self._depth += 1
            try:
                yield self._db
            except BaseException:
                self._db.execute("ROLLBACK" if outer else f"ROLLBACK TO {name}")
                if not outer:
                    self._db.execute(f"RELEASE {name}")
                raise
            else:
                self._db.execute("COMMIT" if outer else f"RELEASE {name}")
            finally:
                self._depth -= 1

    def _migrate(self) -> None:
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS migrations "
            "(version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied REAL NOT NULL)"
        )
        done = {row[0] for row in self._db.execute("SELECT version FROM migrations")}
        known = {version for version, _, _ in MIGRATIONS}
        if done - known:
            raise StoreError(
                f"{self.path}: the database is from a newer imagewatchd "
                f"(migration {max(done)}); upgrade imagewatchd"
            )
        for version, name, sql in MIGRATIONS:
            if version in done:
                continue
            with self.transaction() as db:
                for statement in _statements(sql):
                    db.execute(statement)
                db.execute(
                    "INSERT INTO migrations (version, name, applied) VALUES (?, ?, ?)",
                    (version, name, time.time()),
                )

    def schema_version(self) -> int:
        row = self._db.execute("SELECT MAX(version) FROM migrations").fetchone()
        return int(row[0] or 0)

    def wal_size(self) -> int:
        try:
            return os.stat(f"{self.path}-wal").st_size
        except FileNotFoundError:
            return 0

    def trim_wal(self, threshold: int) -> bool:
        """Checkpoint and truncate the WAL once it has grown past ``threshold`` bytes.

        SQLite's own checkpoints never reset the WAL while some reader is always open (the
        daemon's threads overlap under load), so it would grow without bound. Returns whether
        the WAL is small now.
        """
        if self.wal_size() <= threshold:
            return True
        busy = self.checkpoint()
        return not busy and self.wal_size() <= threshold

    def checkpoint(self) -> bool:
        """Copy the WAL into the database and truncate it, waiting briefly for the writer and
        readers; returns True if it was busy (tried again later)."""
        with self._lock:
            self._db.execute(f"PRAGMA busy_timeout = {CHECKPOINT_WAIT_MS}")
            try:
                row = self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
            finally:
                self._db.execute(f"PRAGMA busy_timeout = {int(BUSY_TIMEOUT * 1000)}")
        return bool(row[0])
