"""The store's SQL for list entries' block grids (imagewatchd/blockgrid.py), a mixin for ``Store``.

One row per entry made from a picture (``known add``), 256 bytes, deleted with its entry. They
are read only for the few candidates a wider search finds (imagewatchd/verify.py), by entry id,
so they are never loaded into memory whole. Until the mixin joins ``Store``'s bases (store.py is
becoming a package), callers pass the store: ``GridQueries.entry_grids(store, ids)``.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterable, Sequence
from contextlib import AbstractContextManager
from typing import Protocol

CHUNK = 500  # entry ids per IN (...) list


class _Connected(Protocol):
    _db: sqlite3.Connection
    _lock: threading.RLock

    def transaction(self) -> AbstractContextManager[sqlite3.Connection]: ...


class GridQueries:
    """Entries' block grids: written once when the entry is added, read by entry id."""

    def add_entry_grids(self: _Connected, grids: Iterable[tuple[int, bytes]]) -> None:
        """Keep each (entry id, grid); an entry that has one keeps its first."""
        with self.transaction() as db:
            db.executemany(
                "INSERT OR IGNORE INTO entry_grids (entry_id, grid) VALUES (?, ?)", grids
            )

    def entry_grids(self: _Connected, ids: Sequence[int]) -> dict[int, bytes]:
        """The grids of these entries that have one."""
        found: dict[int, bytes] = {}
        with self._lock:
            for start in range(0, len(ids), CHUNK):
                chunk = list(ids[start : start + CHUNK])
                marks = ",".join("?" * len(chunk))
                query = f"SELECT entry_id, grid FROM entry_grids WHERE entry_id IN ({marks})"
                found.update((int(i), bytes(g)) for i, g in self._db.execute(query, chunk))
        return found
