"""``imagewatchd db check`` and the daemon's background check, whatever the engine.

A SQLite file is checked as it is, read-only (no migration, nothing created), by
``sqlite_check``; a PostgreSQL database by its migrations and its tables' shape
(``postgres_schema``), through a read-only connection as well. ``interrupt`` cuts a running
check short from another thread.
"""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path
from typing import TYPE_CHECKING

from imagewatchd.errors import StoreError
from imagewatchd.store import sqlite_check
from imagewatchd.store.location import Location

if TYPE_CHECKING:
    from imagewatchd.store.postgres import PgConnection


class Checker:
    """One check of the database at ``where``."""

    def __init__(self, where: Path | Location) -> None:
        self.where = where if isinstance(where, Location) else Location(where)
        self._lock = threading.Lock()
        self._sqlite: sqlite3.Connection | None = None
        self._pg: PgConnection | None = None
        self._stopped = False

    def run(self, *, thorough: bool) -> list[str]:
        """The problems found, one line each ([] when sound); ``StoreError`` when the
        database cannot be opened for a reason that is not damage (permissions, the server)."""
        if self.where.url is not None:
            return self._run_store(thorough)
        try:
            db = sqlite_check.open_for_checking(self.where.path)
        except sqlite_check.DAMAGE_ERRORS as exc:
            detail = sqlite_check.damage(exc)
            if detail is None:
                raise StoreError(f"{self.where}: cannot open the database: {exc}") from exc
            return [f"cannot be opened: {detail}"]
        with self._lock:
            self._sqlite = None if self._stopped else db
        try:
            return [] if self._stopped else sqlite_check.check(db, thorough=thorough)
        finally:
            with self._lock:
                self._sqlite = None
            db.close()

    def _run_store(self, thorough: bool) -> list[str]:
        """A PostgreSQL database, through a read-only connection: checked, never migrated."""
        from imagewatchd.store import postgres  # noqa: PLC0415 (psycopg only when needed)

        db = postgres.open_for_checking(self.where)
        with self._lock:
            self._pg = None if self._stopped else db
        try:
            return [] if self._stopped else postgres.postgres_check(db)
        finally:
            with self._lock:
                self._pg = None
            db.connection.close()

    def interrupt(self) -> None:
        with self._lock:
            self._stopped = True
            if self._sqlite is not None:
                self._sqlite.interrupt()
            if self._pg is not None:
                self._pg.connection.cancel_safe()
