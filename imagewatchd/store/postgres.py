"""The PostgreSQL store: one database shared by a fleet of hosts (docs/FLEET.md).

The queries are the shared ones (``interface.Store``); this module adds the connection (psycopg
3, which reads libpq's ``PG*`` environment variables and password file), its transactions, its
migrations (``postgres_schema.py``) and the bulk import by COPY. The connection names its host
(``imagewatchd.host``): the per-host views show that host's rows only.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import psycopg

from imagewatchd import newentries
from imagewatchd.errors import DatabaseUnreachable, StoreError
from imagewatchd.models import CANON_VERSION
from imagewatchd.rows import NewEntry, pdq_blob, to_signed
from imagewatchd.store import postgres_schema
from imagewatchd.store.banklog import BankLogQueries
from imagewatchd.store.base import Cursor, Dialect
from imagewatchd.store.interface import Store
from imagewatchd.store.lists import COLOURS, GRID
from imagewatchd.store.location import Location

POSTGRESQL = Dialect(
    name="postgresql",
    integer_test="{c} IS NOT NULL",  # a BIGINT column holds integers only
    id_list="string_agg(id::text, ',' ORDER BY id)",
    host_key="host, ",
)
MIGRATION_LOCK = 0x696D6167  # pg_advisory_xact_lock key: one host migrates at a time
CONNECT_TIMEOUT = 3  # seconds: an unreachable server is an outage soon (outage.py)
KEEPALIVES: dict[str, Any] = {
    "keepalives": 1,
    "keepalives_idle": 5,
    "keepalives_interval": 2,
    "keepalives_count": 2,
}  # a lost TCP peer is noticed in ~10 s
ENTRY_IDS = "pg_get_serial_sequence('entries', 'id')"
HOST_COUNTERS = ("store_id", "library_trimmed")  # made for each host on its first connection
KNOWN = {version for version, _, _ in postgres_schema.MIGRATIONS}


class PgConnection:
    """A psycopg connection that reads the shared queries' ``?`` placeholders, and raises a
    ``StoreError`` naming the database for whatever goes wrong (as the SQLite store does for
    what it expects), so that nothing above the store meets a driver's exception."""

    def __init__(self, connection: psycopg.Connection[Any], name: str) -> None:
        self.connection = connection
        self.name = name

    def execute(self, sql: str, parameters: Any = (), /) -> Cursor:
        with self.errors():
            return self.connection.execute(_placeholders(sql), parameters or None)

    def executemany(self, sql: str, parameters: Iterable[Any], /) -> Cursor:
        with self.errors():
            cursor = self.connection.cursor()
            cursor.executemany(_placeholders(sql), list(parameters))
            return cursor

    @contextmanager
    def errors(self) -> Iterator[None]:
        try:
            yield
        except psycopg.Error as exc:
            message = f"{self.name}: database error: {_reason(exc)}"
            if self.connection.closed or self.connection.broken:
                raise DatabaseUnreachable(message) from exc
            raise StoreError(message) from exc


def _placeholders(sql: str) -> str:
    return sql.replace("%", "%%").replace("?", "%s")


class PostgresStore(BankLogQueries, Store):
    """A PostgreSQL database. Not shared between threads: each thread opens its own."""

    dialect = POSTGRESQL
    errors = (StoreError,)
    _db: PgConnection

    def __init__(self, where: Path | Location) -> None:
        if not isinstance(where, Location) or where.url is None:
            raise StoreError(f"{where}: not a PostgreSQL database")
        self.location = where
        self.path = where.path
        self._depth = 0
        self._lock = threading.RLock()
        try:
            connection = psycopg.connect(
                where.url, autocommit=True, connect_timeout=CONNECT_TIMEOUT,
                application_name=f"imagewatchd {where.host}", **KEEPALIVES,
            )  # fmt: skip
        except psycopg.OperationalError as exc:  # no server, or no connection to it
            raise DatabaseUnreachable(f"{where}: cannot open the database: {_reason(exc)}") from exc
        except psycopg.Error as exc:
            raise StoreError(f"{where}: cannot open the database: {_reason(exc)}") from exc
        self._db = PgConnection(connection, str(where))
        try:
            self._db.execute("SELECT set_config('imagewatchd.host', ?, false)", (where.host,))
            self._migrate()
            self._host_counters()
        except StoreError:
            connection.close()
            raise

    def close(self) -> None:
        self._db.connection.close()

    def __str__(self) -> str:
        return str(self.location)

    def interrupt(self) -> None:
        self._db.connection.cancel_safe()

    @contextmanager
    def transaction(self) -> Iterator[PgConnection]:
        """BEGIN at the outside, a savepoint inside; rolled back on any exception."""
        with self._lock:
            outer = self._depth == 0
            name = f"sp{self._depth}"
            self._db.execute("BEGIN" if outer else f"SAVEPOINT {name}")
            self._depth += 1
            try:
                yield self._db
            except BaseException:
                self._db.execute("ROLLBACK" if outer else f"ROLLBACK TO SAVEPOINT {name}")
                raise
            else:
                self._db.execute("COMMIT" if outer else f"RELEASE SAVEPOINT {name}")
            finally:
                self._depth -= 1

    @contextmanager
    def durable(self) -> Iterator[PgConnection]:
        """PostgreSQL's commits are durable already (``synchronous_commit``)."""
        with self.transaction() as db:
            yield db

    def _migrate(self) -> None:
        """Apply the migrations not yet applied, each with its record, under a lock that keeps
        two hosts starting at once from applying one twice. An up-to-date database is only
        read: a daemon's role needs no right to create tables once ``db migrate`` has run."""
        if self._applied() == KNOWN:
            return
        with self.transaction() as db:
            db.execute("SELECT pg_advisory_xact_lock(?)", (MIGRATION_LOCK,))
            db.execute(
                "CREATE TABLE IF NOT EXISTS migrations (version INTEGER PRIMARY KEY,"
                " name TEXT NOT NULL, applied DOUBLE PRECISION NOT NULL)"
            )
            done = self._applied()
            for version, name, sql in postgres_schema.MIGRATIONS:
                if version in done:
                    continue
                with self._db.errors():
                    self._db.connection.execute(sql)
                db.execute(
                    "INSERT INTO migrations (version, name, applied) VALUES (?, ?, ?)",
                    (version, name, time.time()),
                )

    def _applied(self) -> set[int]:
        """The migrations applied; a newer imagewatchd's are refused."""
        found = self._db.execute("SELECT to_regclass('migrations') IS NOT NULL").fetchone()[0]
        rows = self._db.execute("SELECT version FROM migrations").fetchall() if found else []
        done = {int(row[0]) for row in rows}
        if done - KNOWN:
            raise StoreError(
                f"{self.location}: the database is from a newer imagewatchd "
                f"(migration {max(done)}); upgrade imagewatchd"
            )
        return done

    def _host_counters(self) -> None:
        """This host's counters, made on its first connection (as SQLite's migrations do)."""
        query = "SELECT COUNT(*) FROM counters WHERE host <> '' AND name IN (?, ?)"
        if self._db.execute(query, HOST_COUNTERS).fetchone()[0] == len(HOST_COUNTERS):
            return  # made already: a daemon's role need not write to open the store
        with self.transaction() as db:
            db.execute(
                "INSERT INTO counters (name, value) VALUES (?, ?), (?, 0) ON CONFLICT DO NOTHING",
                (HOST_COUNTERS[0], random.getrandbits(52), HOST_COUNTERS[1]),
            )

    def schema_version(self) -> int:
        row = self._db.execute("SELECT MAX(version) FROM migrations").fetchone()
        return int(row[0] or 0)

    def check(self, *, thorough: bool) -> list[str]:
        """The migrations 1..N, and every table and view that they create."""
        with self._lock:
            return postgres_check(self._db)

    def startup_check(self) -> list[str]:
        return self.check(thorough=False)

    def add_entries(
        self, list_id: int, entries: Iterable[NewEntry], now: float
    ) -> tuple[list[int], int]:
        """Add entries, skipping any the list already holds; returns (new ids, skipped).

        COPY into a temporary table, then one INSERT of those that the unique identity index
        does not refuse: a million hashes in seconds, not a statement per entry. The ids are
        reserved as one block, while the lock keeps other hosts from adding entries.
        """
        pending = entries if isinstance(entries, Sequence) else list(entries)
        if not pending:
            return [], 0
        with self.transaction() as db:
            db.execute("LOCK TABLE entries IN SHARE ROW EXCLUSIVE MODE")
            first = int(db.execute(f"SELECT nextval({ENTRY_IDS})").fetchone()[0])
            db.execute(f"SELECT setval({ENTRY_IDS}, ?)", (first + len(pending) - 1,))
            with self._db.errors():
                _copy_in(self._db.connection, pending, first)
            rows = db.execute(
                "INSERT INTO entries (id, list_id, sha256, dhash, phash, flat, canon_version,"
                " label, source, added, enabled, pdq, pdq_quality) SELECT id, ?, sha256, dhash,"
                " phash, flat, ?, label, source, ?, enabled, pdq, pdq_quality"
                " FROM incoming_entries ON CONFLICT DO NOTHING RETURNING id",
                (list_id, CANON_VERSION, now),
            ).fetchall()
            db.execute(
                "INSERT INTO entry_regions (entry_id, region, dhash, phash)"
                " SELECT r.entry_id, r.region, r.dhash, r.phash FROM incoming_regions r"
                " JOIN entries e ON e.id = r.entry_id"
            )
            added = sorted(int(row[0]) for row in rows)
            kept = set(added)  # the grids in the entries' transaction (entrygrids.py)
            grids = [(first + at, g) for at, g in newentries.grids(pending) if first + at in kept]
            if grids:
                db.executemany(GRID, grids)
            hues = [(first + at, c) for at, c in newentries.colours(pending) if first + at in kept]
            if hues:  # likewise: an entry is never seen without its colours
                db.executemany(COLOURS, hues)
        return added, len(pending) - len(added)


ENTRY_COLUMNS = ("int8", "text", "int8", "int8", "int4", "text", "text", "int4", "bytea", "int4")
REGION_COLUMNS = ("int8", "text", "int8", "int8")


def _copy_in(connection: psycopg.Connection[Any], entries: Sequence[NewEntry], first: int) -> None:
    """The entries (and their crops' hashes), with ids from ``first`` on, into temporary
    tables, by binary COPY."""
    connection.execute(
        "CREATE TEMPORARY TABLE incoming_entries (id BIGINT, sha256 TEXT, dhash BIGINT,"
        " phash BIGINT, flat INTEGER, label TEXT, source TEXT, enabled INTEGER, pdq BYTEA,"
        " pdq_quality INTEGER) ON COMMIT DROP"
    )
    connection.execute(
        "CREATE TEMPORARY TABLE incoming_regions (entry_id BIGINT, region TEXT, dhash BIGINT,"
        " phash BIGINT) ON COMMIT DROP"
    )
    cursor = connection.cursor()
    with cursor.copy("COPY incoming_entries FROM STDIN (FORMAT BINARY)") as copy:
        copy.set_types(ENTRY_COLUMNS)
        for id_, row in enumerate(newentries.fields(entries), first):
            sha256, dhash, phash, label, source, flat, enabled, pdq, quality = row
            copy.write_row((
                id_, sha256, None if dhash is None else to_signed(dhash),
                None if phash is None else to_signed(phash), int(flat), _text(label),
                _text(source), int(enabled), pdq_blob(pdq), quality,
            ))  # fmt: skip
    with cursor.copy("COPY incoming_regions FROM STDIN (FORMAT BINARY)") as copy:
        copy.set_types(REGION_COLUMNS)
        for at, region, d, p in newentries.crops(entries):
            copy.write_row((first + at, region, to_signed(d), to_signed(p)))


def _text(text: str) -> str:
    """Free text as PostgreSQL can hold it: a NUL (which an imported list's label may hold,
    and SQLite keeps) becomes U+FFFD."""
    return text.replace("\0", "\ufffd")


def open_for_checking(where: Location) -> PgConnection:
    """A read-only connection for ``db check``: no migration, nothing created (an empty
    database stays empty); ``StoreError`` if the server cannot be reached."""
    try:
        connection = psycopg.connect(
            where.url or "", autocommit=True, connect_timeout=CONNECT_TIMEOUT,
            application_name=f"imagewatchd {where.host} check",
            options="-c default_transaction_read_only=on",
        )  # fmt: skip
    except psycopg.Error as exc:
        raise StoreError(f"{where}: cannot open the database: {_reason(exc)}") from exc
    return PgConnection(connection, str(where))


def postgres_check(db: PgConnection) -> list[str]:
    """The migrations table is 1..N, and every relation the migrations create is there."""
    if not db.execute("SELECT to_regclass('migrations') IS NOT NULL").fetchone()[0]:
        return ["no imagewatchd tables: an empty database, or not imagewatchd's "
                "(`imagewatchd db migrate` creates them)"]  # fmt: skip
    versions = [row[0] for row in db.execute("SELECT version FROM migrations ORDER BY 1")]
    ours = [v for v in versions if v <= postgres_schema.MIGRATIONS[-1][0]]
    if ours != list(range(1, len(ours) + 1)):
        return [f"the migrations table is not 1..N: {versions[:12]!r}"]
    present = {row[0] for row in db.execute(
        "SELECT table_name FROM information_schema.tables WHERE table_schema = current_schema()"
    )}  # fmt: skip
    wanted = {f"host_{name}" for name in postgres_schema.PER_HOST} | set(postgres_schema.PER_HOST)
    wanted |= {"lists", "entries", "entry_regions", "entry_grids", "decisions", "exemptions"}
    wanted.add("entry_colours")
    wanted |= {"bank_changes", "host_bank"}
    wanted.add("migrations")
    return [f"table {name} is missing" for name in sorted(wanted - present)]


def _reason(exc: psycopg.Error) -> str:
    """The server's or libpq's message, on one line."""
    return " ".join(str(exc).split()) or type(exc).__name__
