"""The store's SQL for list entries' block grids (``imagewatchd/blockgrid.py``).

One row per entry made from a picture (``known add``), 256 bytes, deleted with its entry. They
are read only for the few candidates a wider search finds (``imagewatchd/verify.py``), by entry
id, so they are never loaded into memory whole.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from imagewatchd.store.base import Connected

CHUNK = 500  # entry ids per IN (...) list


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
