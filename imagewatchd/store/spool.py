"""A PostgreSQL host's local spool: a SQLite store in its state directory that takes the host's
journal while the database is unreachable (``imagewatchd/outage.py``, docs/FLEET.md).

The spool holds a copy of the bank (lists, entries and their crops' hashes, hit counts zeroed),
so that matching reads the entries it finds in the in-memory index as it does on any store;
``mirror_bank`` keeps that copy while the database is there. ``catch_up`` copies what the spool
journalled (batches, actions, exemptions, and the hits counted meanwhile) into the database
under new ids, in one transaction, and empties the spool's journal. The files the spool saw are
not copied: the reconcile that follows the return records them under the database's ids.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from imagewatchd.errors import StoreError
from imagewatchd.rows import EntryRow
from imagewatchd.store.base import Connection
from imagewatchd.store.interface import Store
from imagewatchd.store.location import Location
from imagewatchd.store.sqlite import SqliteStore

SPOOL_NAME = "postgresql.spool.db"
BANK = ("lists", "entries", "entry_regions", "entry_colours")
JOURNAL = ("batches", "actions", "exemptions")
SEEN = ("files", "library_changes")  # recorded in the database by the rescan that follows


def spool_path(where: Location) -> Path:
    """The spool's file: beside the store's other local files in the state directory."""
    return where.path.with_name(SPOOL_NAME)


class SpoolStore(SqliteStore):
    """The spool: a SQLite store whose copy of the bank may lag behind the in-memory index
    (the copy follows the bank every few seconds). An entry the index found that the copy does
    not hold yet is an error, never a silent miss: the file is retried, and decided on the
    database once it returns."""

    def entries(
        self, list_name: str | None = None, ids: Iterable[int] | None = None
    ) -> list[EntryRow]:
        wanted = None if ids is None else list(ids)
        rows = super().entries(list_name, wanted)
        missing = sorted(set(wanted or ()) - {row.id for row in rows})
        if missing and list_name is None:
            raise StoreError(
                f"{self.path}: entry {missing[0]} is not in the local copy of the bank yet: "
                "decided once the database returns"
            )
        return rows


def open_spool(where: Location) -> Store:
    """The spool (made on first use): a SQLite store with SQLite's schema."""
    return SpoolStore(spool_path(where))


def _columns(db: Connection, table: str) -> list[str]:
    """The columns of ``table``: a SQLite table's, or a PostgreSQL table or view's."""
    if isinstance(db, sqlite3.Connection):
        rows = db.execute(f"PRAGMA table_info({table})").fetchall()
        return [str(row[1]) for row in rows]
    query = (
        "SELECT column_name FROM information_schema.columns WHERE table_name = ?"
        " AND table_schema = current_schema() ORDER BY ordinal_position"
    )
    return [str(row[0]) for row in db.execute(query, (table,)).fetchall()]


def _rows(db: Connection, table: str, columns: list[str], where: str = "") -> list[Any]:
    return db.execute(f"SELECT {', '.join(columns)} FROM {table} {where}").fetchall()


def mirror_bank(primary: Store, spool: Store, since: int) -> int:
    """Copy the bank's entries after entry ``since`` (all of it from 0) into the spool, hit
    counts zeroed; returns the last entry id copied. Only the bank's rows are replaced. The
    bank's identity and its last change, read before the rows, are kept with the copy."""
    state = primary.bank_state()
    with primary.transaction() as source, spool.transaction() as target:
        if since == 0:
            for table in reversed(BANK):
                target.execute(f"DELETE FROM {table}")
        for table in BANK:
            columns = [c for c in _columns(target, table) if c in _columns(source, table)]
            where = {"lists": "", "entries": "WHERE id > ?", "entry_regions": "WHERE entry_id > ?",
                     "entry_colours": "WHERE entry_id > ?"}  # fmt: skip
            rows = source.execute(
                f"SELECT {', '.join(columns)} FROM {table} {where[table]}",
                (since,) if where[table] else (),
            ).fetchall()
            if table == "entries":
                rows = [_zero_hits(columns, row) for row in rows]
            if table == "lists":
                _list_settings(target, columns, rows)
            target.executemany(
                f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({_marks(columns)})"
                " ON CONFLICT DO NOTHING",  # a list copied before
                rows,
            )
        if state is not None:
            target.executemany(
                "INSERT INTO counters (name, value) VALUES (?, ?)"
                " ON CONFLICT (name) DO UPDATE SET value = excluded.value",
                [("bank_id", state.bank_id), ("bank_seq", state.head)],
            )
        row = target.execute("SELECT MAX(id) FROM entries").fetchone()
    return int(row[0] or 0)


def _list_settings(target: Connection, columns: list[str], rows: list[Any]) -> None:
    """A list copied before keeps its row, with its setting as it is now (colours.py)."""
    if "recoloured" in columns:
        at, key = columns.index("recoloured"), columns.index("id")
        target.executemany("UPDATE lists SET recoloured = ? WHERE id = ?",
                           [(row[at], row[key]) for row in rows])  # fmt: skip


def bank_copy(spool: Store) -> tuple[int | None, int, int]:
    """The spool's copy of the bank: its bank's identity (None if not known), the last change
    it reflects (-1 if not known) and how many entries it holds (0: no copy)."""
    with spool.transaction() as db:
        entries = int(db.execute("SELECT COUNT(*) FROM entries").fetchone()[0])
        known = dict(db.execute(
            "SELECT name, value FROM counters WHERE name IN ('bank_id', 'bank_seq')"
        ).fetchall())  # fmt: skip
    bank_id = known.get("bank_id")
    return (None if bank_id is None else int(bank_id)), int(known.get("bank_seq", -1)), entries


def _zero_hits(columns: list[str], row: Any) -> tuple[Any, ...]:
    values = list(row)
    values[columns.index("hits")] = 0
    values[columns.index("last_hit")] = None
    return tuple(values)


def _marks(columns: list[str]) -> str:
    return ",".join("?" * len(columns))


def spooled(spool: Store) -> int:
    """How many actions the spool holds (journalled during an outage, not yet copied)."""
    with spool.transaction() as db:
        return int(db.execute("SELECT COUNT(*) FROM actions").fetchone()[0])


def catch_up(spool: Store, primary: Store) -> int:
    """Copy the spool's journal and hits into the database, then empty them and forget the
    files the spool saw (the return's rescan records them in the database); returns how many
    actions were copied. One transaction on each side: a failure copies nothing and keeps the
    spool (copied again next time); the spool is emptied only after the database committed."""
    with spool.transaction() as source:
        with primary.transaction() as target:
            batches = _copy(source, target, "batches", {})
            actions: dict[int, int] = {}  # an undo follows the action it reverses: mapped
            _copy(source, target, "actions", {"batch_id": batches, "reverses": actions}, actions)
            _copy(source, target, "exemptions", {"action_id": actions})
            _add_hits(source, target)
        for table in (*reversed(JOURNAL), *SEEN):
            source.execute(f"DELETE FROM {table}")
        source.execute("UPDATE entries SET hits = 0, last_hit = NULL WHERE hits > 0")
    return len(actions)


def _copy(
    source: Connection, target: Connection, table: str, maps: dict[str, dict[int, int]],
    moved: dict[int, int] | None = None,
) -> dict[int, int]:  # fmt: skip
    """Every row of the spool's ``table`` into the database's, new ids; old id -> new id
    (into ``moved``, which ``maps`` may hold: rows that refer to earlier rows of the table)."""
    wanted = set(_columns(target, table))
    columns = [c for c in _columns(source, table) if c in wanted and c != "id"]
    keyed = "id" in _columns(source, table)
    names = (["id"] if keyed else []) + columns
    moved = {} if moved is None else moved
    insert = f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({_marks(columns)})"
    for row in _rows(source, table, names, "ORDER BY 1"):
        values = list(row[1:] if keyed else row)
        for column, mapping in maps.items():
            at = columns.index(column)
            if values[at] is not None:
                values[at] = mapping.get(values[at], values[at])
        if keyed:
            moved[row[0]] = int(target.execute(f"{insert} RETURNING id", values).fetchone()[0])
        else:
            target.execute(insert, values)
    return moved


def _add_hits(source: Connection, target: Connection) -> None:
    """The hits counted during the outage, added to the shared counts."""
    rows = source.execute("SELECT id, hits, last_hit FROM entries WHERE hits > 0").fetchall()
    target.executemany(
        "UPDATE entries SET hits = hits + ?, last_hit = GREATEST(COALESCE(last_hit, 0), ?)"
        " WHERE id = ?",
        [(hits, last, entry) for entry, hits, last in rows],
    )
