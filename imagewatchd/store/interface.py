"""The store's one interface: every query the rest of imagewatchd runs, whatever the engine.

``Store(where)`` opens the backend that ``where`` names, as ``pathlib.Path`` makes a
``PosixPath``: a path (or a ``Location`` holding one) opens a SQLite file (``sqlite.py``), a
``Location`` with a ``postgresql://`` URL a PostgreSQL database (``postgres.py``). Not shared
between threads: each thread opens its own ``Store``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from imagewatchd.store.banklog import BankState
from imagewatchd.store.colours import ColourQueries
from imagewatchd.store.decisions import DecisionQueries
from imagewatchd.store.files import FileQueries
from imagewatchd.store.grids import GridQueries
from imagewatchd.store.inboxes import InboxQueries
from imagewatchd.store.journal import JournalQueries
from imagewatchd.store.lists import ListQueries
from imagewatchd.store.location import Location


class Store(
    FileQueries, InboxQueries, ListQueries, JournalQueries, DecisionQueries, GridQueries,
    ColourQueries,
):  # fmt: skip
    """The database: files (and inboxes'), lists and entries (and their grids and colours),
    the journal, decisions."""

    def __new__(cls, where: Path | Location, *args: Any, **kwargs: Any) -> Store:
        return super().__new__(backend(where) if cls is Store else cls)

    def __init__(self, where: Path | Location) -> None:
        raise NotImplementedError  # a backend's (``__new__`` made one)

    def close(self) -> None:
        raise NotImplementedError

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __str__(self) -> str:
        """For messages: the file, or the URL without its password."""
        raise NotImplementedError

    def schema_version(self) -> int:
        raise NotImplementedError

    def interrupt(self) -> None:
        """Cut the statement running now short (from another thread)."""

    def check(self, *, thorough: bool) -> list[str]:
        """The database's problems, one line each; [] when sound."""
        raise NotImplementedError

    def startup_check(self) -> list[str]:
        """What the daemon checks before it acts, in a time that does not grow with the data."""
        raise NotImplementedError

    def bank_state(self) -> BankState | None:
        """The bank's change log's state; None where there is no change log (SQLite: no other
        host changes the bank, and its live reloads compare the entry counters)."""
        return None

    def wal_size(self) -> int:
        """Bytes of write-ahead log kept on this host (SQLite's WAL file; else 0)."""
        return 0

    def trim_wal(self, threshold: int) -> bool:
        """Shrink the local write-ahead log past ``threshold`` bytes; True if it is small now."""
        return True

    def checkpoint(self) -> bool:
        """Copy the local write-ahead log into the database; True if it was busy."""
        return False


def backend(where: Path | Location) -> type[Store]:
    """The class of the store that ``where`` names."""
    if isinstance(where, Location) and where.url is not None:
        from imagewatchd.store.postgres import PostgresStore  # noqa: PLC0415 (it imports this module)

        return PostgresStore
    from imagewatchd.store.sqlite import SqliteStore  # noqa: PLC0415 (it imports this module)

    return SqliteStore
