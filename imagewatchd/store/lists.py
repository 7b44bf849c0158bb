"""The store's queries on the shared bank: lists and their entries (with the centre crops'
hashes, ``entry_regions``), hit counts, and where the daemon's retroactive bans resume."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from itertools import chain

import numpy as np
from numpy.typing import NDArray

from imagewatchd import newentries
from imagewatchd.models import CANON_VERSION, ListKind
from imagewatchd.newentries import Fields
from imagewatchd.rows import (
    ENTRY_COLUMNS,
    REGIONS,
    EntryRow,
    ListRow,
    NewEntry,
    entry_row,
    pdq_blob,
    to_signed,
)
from imagewatchd.store.base import Connected, id_hash_columns

IMPORT_CHUNK = 50_000  # entries a transaction: about a second of the write lock
GRID = "INSERT INTO entry_grids (entry_id, grid) VALUES (?, ?) ON CONFLICT (entry_id) DO NOTHING"
COLOURS = (
    "INSERT INTO entry_colours (entry_id, colours) VALUES (?, ?) ON CONFLICT (entry_id) DO NOTHING"
)
RETRO_LAST = "retro_last_entry"  # counters rows: where the daemon's retroactive bans resume
RETRO_OFF = "retro_disabled "  # + an entry id: an entry disabled then


INSERT_ENTRY = (
    "INSERT INTO entries (list_id, sha256, dhash, phash, flat, canon_version, label, source,"
    " added, enabled, pdq, pdq_quality) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
ADD_ENTRY = (  # an entry, unless its list holds one with the same hashes
    "INSERT INTO entries (list_id, sha256, dhash, phash, flat, canon_version, label, source,"
    " added, enabled, pdq, pdq_quality) SELECT ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?"
    " WHERE NOT EXISTS (SELECT 1 FROM entries WHERE list_id = ? AND sha256 IS NOT DISTINCT"
    " FROM ? AND dhash IS NOT DISTINCT FROM ? AND phash IS NOT DISTINCT FROM ?"
    " AND pdq IS NOT DISTINCT FROM ?)"
)


def _entry_values(list_id: int, row: Fields, now: float) -> tuple[object, ...]:
    """INSERT_ENTRY's values for an entry's fields (``newentries.Fields``)."""
    sha256, dhash, phash, label, source, flat, enabled, pdq, quality = row
    return (list_id, sha256, None if dhash is None else to_signed(dhash),
            None if phash is None else to_signed(phash), int(flat), CANON_VERSION, label, source,
            now, int(enabled), pdq_blob(pdq), quality)  # fmt: skip


class ListQueries(Connected):
    """Lists and entries: managed by people (``lists ...``), loaded into the daemon's index."""

    def create_list(self, name: str, kind: ListKind, description: str, now: float) -> int:
        with self.transaction() as db:
            row = db.execute(
                "INSERT INTO lists (name, kind, description, created) VALUES (?, ?, ?, ?)"
                " RETURNING id",
                (name, kind.value, description, now),
            ).fetchone()
        return int(row[0])

    def get_list(self, name: str) -> ListRow | None:
        return next(iter(self._lists("WHERE l.name = ?", (name,))), None)

    def lists(self) -> list[ListRow]:
        return self._lists("", ())

    def _lists(self, where: str, params: tuple[object, ...]) -> list[ListRow]:
        query = (
            "SELECT l.id, l.name, l.kind, l.description, l.created, COUNT(e.id),"
            " COALESCE(SUM(e.enabled), 0), l.recoloured FROM lists l"
            f" LEFT JOIN entries e ON e.list_id = l.id {where} GROUP BY l.id ORDER BY l.name"
        )
        return [
            ListRow(r[0], r[1], ListKind(r[2]), r[3], r[4], r[5], r[6], str(r[7]))
            for r in self._db.execute(query, params)
        ]

    def delete_list(self, list_id: int) -> None:
        with self.transaction() as db:
            db.execute("DELETE FROM lists WHERE id = ?", (list_id,))

    def add_entries(
        self, list_id: int, entries: Iterable[NewEntry], now: float
    ) -> tuple[list[int], int]:
        """Add entries, skipping any the list already holds; returns (new ids, skipped).

        Committed in chunks, so that a large import never holds the write lock for long.
        """
        given = entries if isinstance(entries, Sequence) else list(entries)
        pictures = newentries.crops(given) or newentries.grids(given) or newentries.colours(given)
        if pictures:  # ``known add``: a few pictures
            return self._add_each(list_id, list(given), now)
        firsts: dict[tuple[object, ...], Fields] = {}
        for row in newentries.fields(given):  # an entry given twice is added once
            firsts.setdefault((row[0], row[1], row[2], row[7]), row)
        pending = list(firsts.values())
        added: list[int] = []
        for start in range(0, len(pending), IMPORT_CHUNK):
            added += self._add_chunk(list_id, pending[start : start + IMPORT_CHUNK], now, added)
        return added, len(given) - len(added)

    def _add_chunk(
        self, list_id: int, rows: list[Fields], now: float, before: list[int]
    ) -> list[int]:
        """One chunk, one transaction, one ``executemany`` (rows distinct already); each row
        checked against the list's other entries only if it has any besides ``before`` (this
        import's). The write lock held, the new ids are those past the largest before."""
        with self.transaction() as db:
            count = "SELECT COUNT(*) FROM entries WHERE list_id = ?"
            others = db.execute(count, (list_id,)).fetchone()[0] > len(before)
            last = db.execute("SELECT COALESCE(MAX(id), 0) FROM entries").fetchone()[0]
            values = (_entry_values(list_id, row, now) for row in rows)
            if others:
                db.executemany(ADD_ENTRY, ((*v, list_id, v[1], v[2], v[3], v[10]) for v in values))
            else:
                db.executemany(INSERT_ENTRY, values)
            added = [row[0] for row in db.execute(
                "SELECT id FROM entries WHERE id > ? ORDER BY id", (last,))]  # fmt: skip
        return added

    def _add_each(self, list_id: int, entries: list[NewEntry], now: float) -> tuple[list[int], int]:
        added: list[int] = []
        with self.transaction() as db:
            for entry, row in zip(entries, newentries.fields(entries), strict=True):
                v = _entry_values(list_id, row, now)
                found = db.execute(ADD_ENTRY + " RETURNING id",
                                   (*v, list_id, v[1], v[2], v[3], v[10])).fetchone()  # fmt: skip
                if found is None:
                    continue
                added.append(int(found[0]))
                db.executemany(
                    "INSERT INTO entry_regions (entry_id, region, dhash, phash)"
                    " VALUES (?, ?, ?, ?)",
                    ((found[0], name, to_signed(d), to_signed(p)) for name, d, p in entry.regions),
                )
                if entry.grid:  # in the entry's transaction: whoever reads one reads both
                    db.execute(GRID, (found[0], entry.grid))
                if entry.colours:  # likewise: an entry is never seen without its colours
                    db.execute(COLOURS, (found[0], entry.colours))
        return added, len(entries) - len(added)

    def entries(
        self, list_name: str | None = None, ids: Iterable[int] | None = None
    ) -> list[EntryRow]:
        query = f"SELECT {ENTRY_COLUMNS} FROM entries e JOIN lists l ON l.id = e.list_id"
        clauses: list[str] = []
        params: list[object] = []
        if list_name is not None:
            clauses.append("l.name = ?")
            params.append(list_name)
        if ids is not None:
            wanted = list(ids)
            if not wanted:
                return []  # an empty "e.id IN ()" is planned as a scan of every entry
            clauses.append(f"e.id IN ({','.join('?' * len(wanted))})")
            params.extend(wanted)
        if clauses:
            query += " WHERE " + " AND ".join(clauses)
        return [entry_row(row) for row in self._db.execute(query + " ORDER BY e.id", params)]

    def entries_by_sha256(self, sha256: str) -> list[EntryRow]:
        query = (
            f"SELECT {ENTRY_COLUMNS} FROM entries e JOIN lists l ON l.id = e.list_id"
            " WHERE e.sha256 = ? AND e.enabled = 1 ORDER BY e.id"
        )
        return [entry_row(row) for row in self._db.execute(query, (sha256,))]

    def set_entries_enabled(self, ids: Sequence[int], enabled: bool) -> int:
        with self.transaction() as db:
            cursor = db.executemany(
                "UPDATE entries SET enabled = ? WHERE id = ?", ((int(enabled), i) for i in ids)
            )
        return cursor.rowcount

    def remove_entries(self, ids: Sequence[int]) -> int:
        with self.transaction() as db:
            cursor = db.executemany("DELETE FROM entries WHERE id = ?", ((i,) for i in ids))
        return cursor.rowcount

    def record_hits(self, ids: Sequence[int], now: float) -> None:
        with self.transaction() as db:
            db.executemany(
                "UPDATE entries SET hits = hits + 1, last_hit = ? WHERE id = ?",
                ((now, i) for i in ids),
            )

    def entry_counters(self) -> tuple[int, int]:
        """(entries added, entries changed or removed) so far: live reloads compare these."""
        added, changed = self._counters("entries_added", "entries_changed")
        return added, changed

    def last_entry_id(self) -> int:
        row = self._db.execute("SELECT MAX(id) FROM entries").fetchone()
        return int(row[0] or 0)

    def block_entry_ids(self, after: int) -> list[int]:
        """The enabled block entries added after entry ``after``."""
        query = (
            "SELECT e.id FROM entries e JOIN lists l ON l.id = e.list_id"
            " WHERE e.id > ? AND e.enabled = 1 AND l.kind = 'block' ORDER BY e.id"
        )
        return [row[0] for row in self._db.execute(query, (after,))]

    def disabled_entry_ids(self) -> set[int]:
        return {row[0] for row in self._db.execute("SELECT id FROM entries WHERE enabled = 0")}

    def retro_state(self) -> tuple[int, set[int]] | None:
        """(the last entry, the entries disabled) as the daemon last matched new bans against
        the stored files, where its next session resumes (``retroactive.NewBans``); None if no
        daemon has yet. Counters rows, written by ``save_retro_state`` (no migration)."""
        query = "SELECT name, value FROM counters WHERE substr(name, 1, 6) = 'retro_'"
        with self._lock:
            rows = dict(self._db.execute(query).fetchall())
        last = rows.pop(RETRO_LAST, None)
        if not isinstance(last, int):
            return None
        return last, {v for k, v in rows.items() if k.startswith(RETRO_OFF) and isinstance(v, int)}

    def save_retro_state(self, last_id: int, disabled: set[int], enabled: set[int]) -> None:
        """The daemon matched the entries through ``last_id``; ``disabled`` were disabled and
        ``enabled`` enabled again (or removed) since the state saved before."""
        upsert = (
            "INSERT INTO counters (name, value) VALUES (?, ?)"
            f" ON CONFLICT {self.dialect.key('name')} DO UPDATE SET value = excluded.value"
        )
        with self.transaction() as db:
            db.execute(upsert, (RETRO_LAST, last_id))
            db.executemany("DELETE FROM counters WHERE name = ?",
                           ((f"{RETRO_OFF}{i}",) for i in enabled))  # fmt: skip
            db.executemany(upsert, ((f"{RETRO_OFF}{i}", i) for i in disabled))

    def near_entry_hashes_after(
        self, last_id: int
    ) -> tuple[NDArray[np.int64], NDArray[np.uint64], NDArray[np.uint64]]:
        """(ids, dHashes, pHashes) of the enabled entries after ``last_id`` that can match by
        hashes, as arrays (read column-wise, as ``library_hashes``)."""
        query = (
            "SELECT id, dhash, phash FROM entries WHERE id > ? AND enabled = 1 AND flat = 0"
            " AND dhash IS NOT NULL AND phash IS NOT NULL"
        )
        with self._lock:
            rows = self._db.execute(query, (last_id,))
            return id_hash_columns(np.fromiter(chain.from_iterable(rows), np.int64))

    def sha256_entries_after(self, last_id: int) -> list[tuple[int, str]]:
        """(id, sha256) of the enabled entries after ``last_id`` that have a sha256."""
        query = "SELECT id, sha256 FROM entries WHERE id > ? AND enabled = 1 AND sha256 IS NOT NULL"
        with self._lock:
            return [(row[0], row[1]) for row in self._db.execute(query, (last_id,))]

    def entry_region_hashes_after(
        self, last_id: int
    ) -> tuple[NDArray[np.int64], NDArray[np.uint64], NDArray[np.uint64]]:
        """(keys, dHashes, pHashes) of the centre crops of the enabled entries after
        ``last_id``, as arrays; a key is ``region_key(entry id, region)``."""
        codes = " ".join(f"WHEN '{name}' THEN {code}" for code, name in enumerate(REGIONS) if code)
        query = (
            f"SELECT r.entry_id * {len(REGIONS)} + CASE r.region {codes} ELSE 0 END, r.dhash,"
            " r.phash FROM entry_regions r JOIN entries e ON e.id = r.entry_id"
            " WHERE r.entry_id > ? AND e.enabled = 1 AND e.flat = 0"
        )
        with self._lock:
            rows = self._db.execute(query, (last_id,))
            return id_hash_columns(np.fromiter(chain.from_iterable(rows), np.int64))

    def pdq_entry_hashes_after(
        self, last_id: int, min_quality: int
    ) -> tuple[NDArray[np.int64], NDArray[np.uint8]]:
        """(ids, PDQs as stored: 32 big-endian bytes a row) of the enabled, non-flat entries
        after ``last_id`` with a PDQ whose quality is unknown or at least ``min_quality``: the
        ones that may near-match by PDQ. Arrays: no int is made per PDQ."""
        query = (
            "SELECT id, pdq FROM entries WHERE id > ? AND enabled = 1 AND flat = 0"
            " AND pdq IS NOT NULL AND (pdq_quality IS NULL OR pdq_quality >= ?)"
        )
        with self._lock:
            rows = self._db.execute(query, (last_id, min_quality)).fetchall()
        ids = np.fromiter((row[0] for row in rows), np.int64, len(rows))
        pdqs = np.frombuffer(b"".join(row[1] for row in rows), np.uint8).reshape(-1, 32)
        return ids, pdqs
