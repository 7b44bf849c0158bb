"""The store's SQL for recoloured copies (``imagewatchd/colours.py``): each list's setting
(``lists.recoloured``) and the colour signatures of entries made from a picture
(``entry_colours``, 17 bytes a row, written in the entry's transaction by ``add_entries``,
deleted with the entry).

The setting is read with the signatures of the few entries a match found, never held in
memory: a list changed on one host of a fleet holds on every host at its next match.
"""

from __future__ import annotations

from collections.abc import Sequence

from imagewatchd.store.base import Connected

CHUNK = 500  # entry ids per IN (...) list


class ColourQueries(Connected):
    """Lists' setting for recoloured copies, and entries' colour signatures."""

    def set_list_recoloured(self, list_id: int, recoloured: str) -> None:
        """``recoloured``: 'count' or 'ignore' (``colours.Recoloured``)."""
        with self.transaction() as db:
            db.execute("UPDATE lists SET recoloured = ? WHERE id = ?", (recoloured, list_id))

    def ignoring_recoloured(self) -> bool:
        """Whether some list ignores recoloured copies (a file stored without its colours, by
        an earlier version, is then read again for them)."""
        with self._lock:
            query = "SELECT 1 FROM lists WHERE recoloured = 'ignore' LIMIT 1"
            return self._db.execute(query).fetchone() is not None

    def ignored_colours(self, ids: Sequence[int]) -> dict[int, bytes]:
        """The signatures of these entries that have one and whose list ignores recoloured
        copies (an entry of a list that counts them, or without a signature, is not here)."""
        found: dict[int, bytes] = {}
        with self._lock:
            for start in range(0, len(ids), CHUNK):
                chunk = list(ids[start : start + CHUNK])
                marks = ",".join("?" * len(chunk))
                query = (
                    "SELECT c.entry_id, c.colours FROM entry_colours c"
                    " JOIN entries e ON e.id = c.entry_id JOIN lists l ON l.id = e.list_id"
                    f" WHERE l.recoloured = 'ignore' AND c.entry_id IN ({marks})"
                )
                found.update((int(i), bytes(c)) for i, c in self._db.execute(query, chunk))
        return found
