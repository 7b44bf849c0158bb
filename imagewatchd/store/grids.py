"""The store's SQL for list entries' block grids (``imagewatchd/blockgrid.py``).

One row per entry made from a picture (``known add``, in the entry's own transaction), 256
bytes, deleted with its entry. The daemon holds the enabled entries' grids in memory beside
the entry indexes (``imagewatchd/entrygrids.py``), read column-wise as the hashes are: those
after an entry id, or those of the entries a bank change names.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from itertools import chain, islice

import numpy as np
from numpy.typing import NDArray

from imagewatchd.store.base import Connected, id_hash_columns

CHUNK = 500  # entry ids per IN (...) list
READ_CHUNK = 65_536  # grids converted at a time
ENABLED = (  # the entries of the near-match index (enabled, not flat, hashed) with a grid
    "SELECT g.entry_id, e.dhash, e.phash, g.grid FROM entry_grids g JOIN entries e"
    " ON e.id = g.entry_id WHERE e.enabled = 1 AND e.flat = 0 AND e.dhash IS NOT NULL"
    " AND e.phash IS NOT NULL AND "
)
# ids, (n, 256) grids, dHashes, pHashes
GridColumns = tuple[NDArray[np.int64], NDArray[np.uint8], NDArray[np.uint64], NDArray[np.uint64]]


class GridQueries(Connected):
    """Entries' block grids: written once when the entry is added, read by entry id."""

    def add_entry_grids(self, grids: Iterable[tuple[int, bytes]]) -> None:
        """Keep each (entry id, grid); an entry that has one keeps its first."""
        with self.transaction() as db:
            db.executemany(
                "INSERT INTO entry_grids (entry_id, grid) VALUES (?, ?)"
                " ON CONFLICT (entry_id) DO NOTHING", list(grids),
            )  # fmt: skip

    def entry_grids(self, ids: Sequence[int]) -> dict[int, bytes]:
        """The grids of these entries that have one."""
        found: dict[int, bytes] = {}
        with self._lock:
            for start in range(0, len(ids), CHUNK):
                chunk = list(ids[start : start + CHUNK])
                marks = ",".join("?" * len(chunk))
                query = f"SELECT entry_id, grid FROM entry_grids WHERE entry_id IN ({marks})"
                found.update((int(i), bytes(g)) for i, g in self._db.execute(query, chunk))
        return found

    def enabled_grids_after(self, last_id: int) -> GridColumns:
        """(ids, grids) of the enabled entries after ``last_id`` that have a grid."""
        with self._lock:
            return _columns(self._db.execute(ENABLED + "g.entry_id > ?", (last_id,)))

    def enabled_grids_of(self, ids: Sequence[int]) -> GridColumns:
        """(ids, grids) of those of ``ids`` that are enabled and have a grid."""
        rows: list[tuple[int, int, int, bytes]] = []
        with self._lock:
            for start in range(0, len(ids), CHUNK):
                chunk = list(ids[start : start + CHUNK])
                marks = ",".join("?" * len(chunk))
                rows += self._db.execute(ENABLED + f"g.entry_id IN ({marks})", chunk)
        return _columns(rows)


def _columns(rows: Iterable[tuple[int, int, int, bytes]]) -> GridColumns:
    """The rows as arrays, read in chunks (a million grids never sit in tuples at once)."""
    numbers: list[NDArray[np.int64]] = [np.zeros(0, np.int64)]
    grids: list[NDArray[np.uint8]] = [np.zeros((0, 256), np.uint8)]
    iterator = iter(rows)
    while chunk := list(islice(iterator, READ_CHUNK)):
        flat = chain.from_iterable(row[:3] for row in chunk)
        numbers.append(np.fromiter(flat, np.int64, 3 * len(chunk)))
        data = b"".join(bytes(row[3]) for row in chunk)
        grids.append(np.frombuffer(data, np.uint8).reshape(len(chunk), -1))
    ids, dhashes, phashes = id_hash_columns(np.concatenate(numbers))
    return ids, np.concatenate(grids), dhashes, phashes
