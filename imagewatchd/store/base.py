"""What every backend's queries stand on: the connection they run on, the few places where the
two engines' SQL differs (``Dialect``), and how values are stored.

The queries themselves (``files.py``, ``lists.py``, ``journal.py``, ``decisions.py``) are
written once, with ``?`` placeholders, in the SQL both SQLite and PostgreSQL read; a backend
(``sqlite.py``, ``postgres.py``) supplies the connection, its transactions and its dialect.
Paths are stored as the exact bytes of the name (``os.fsencode``: BLOB in SQLite, bytea in
PostgreSQL), compared and range-searched as bytes; hashes as signed 64-bit integers (two's
complement); free text (errors) as ``names.shown`` shows it.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator, Sized
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np
from numpy.typing import NDArray

from imagewatchd.errors import DatabaseDamaged
from imagewatchd.names import shown

CHUNK = 500  # values per IN (...) list


class Cursor(Protocol):
    def fetchone(self) -> Any: ...

    def fetchall(self) -> list[Any]: ...

    def __iter__(self) -> Iterator[Any]: ...

    @property
    def rowcount(self) -> int: ...


class Connection(Protocol):
    """What the queries run on: ``sqlite3.Connection``, or ``postgres.PgConnection``."""

    def execute(self, sql: str, parameters: Any = ..., /) -> Cursor: ...

    def executemany(self, sql: str, parameters: Any, /) -> Cursor: ...


@dataclass(frozen=True, slots=True)
class Dialect:
    """The SQL fragments in which the engines differ."""

    name: str  # "sqlite" or "postgresql"
    integer_test: str  # "{c} holds an integer": SQLite's columns may hold any type
    id_list: str  # the ids of a group, comma-separated, as one text
    host_key: str  # what precedes a per-host table's key in its unique index ("" or "host, ")

    def is_integer(self, column: str) -> str:
        return self.integer_test.format(c=column)

    def key(self, columns: str) -> str:
        """The conflict target of a per-host table's unique ``columns``."""
        return f"({self.host_key}{columns})"


def blob(path: str) -> bytes:
    """A path as stored: the exact bytes of the name."""
    return os.fsencode(path)


def blob_or_none(path: str | None) -> bytes | None:
    return None if path is None else blob(path)


def text_or_none(text: str | None) -> str | None:
    """Free text that may hold a name (an error): valid UTF-8 for a TEXT column, one line."""
    return None if text is None else shown(text)


def below(root: str) -> tuple[bytes, bytes]:
    """The byte range [low, high) of every path below the directory ``root``.

    As a range on the path column, a query searches the unique index on path.
    """
    low = os.fsencode(root).rstrip(b"/") + b"/"
    return low, low[:-1] + bytes([low[-1] + 1])  # low ends with "/", so +1 never overflows


def marks(values: Sized) -> str:
    """As many placeholders as ``values`` has items."""
    return ",".join("?" * len(values))


def id_hash_columns(
    values: NDArray[np.int64],
) -> tuple[NDArray[np.int64], NDArray[np.uint64], NDArray[np.uint64]]:
    """(ids, dHashes, pHashes) from (id, dhash, phash) rows poured into one array."""
    table = values.reshape(-1, 3)
    ids = np.ascontiguousarray(table[:, 0])
    dhashes: NDArray[np.uint64] = np.ascontiguousarray(table[:, 1]).view(np.uint64)
    phashes: NDArray[np.uint64] = np.ascontiguousarray(table[:, 2]).view(np.uint64)
    return ids, dhashes, phashes


class Connected:
    """A store's connection, lock and transactions: what the query mixins use."""

    path: Path  # SQLite: the database file; else this host's local name for the database
    dialect: Dialect
    errors: tuple[type[Exception], ...]  # what the driver raises
    _db: Connection
    _lock: threading.RLock

    def transaction(self) -> AbstractContextManager[Connection]:
        """A transaction at the outside, a savepoint inside; rolled back on any exception."""
        raise NotImplementedError

    def durable(self) -> AbstractContextManager[Connection]:
        """A transaction that survives power loss once committed."""
        raise NotImplementedError

    def _counters(self, *names: str) -> list[int]:
        """These counters' values; a missing one means a damaged file (migrations made all)."""
        query = f"SELECT name, value FROM counters WHERE name IN ({marks(names)})"
        with self._lock:
            found = dict(self._db.execute(query, names).fetchall())
        missing = [name for name in names if not isinstance(found.get(name), int)]
        if missing:
            raise DatabaseDamaged(self.path, f"counters table: no {missing[0]!r} counter")
        return [int(found[name]) for name in names]
