"""The bank's change log on PostgreSQL (migration 4): what a host reads to keep its in-memory
entry index up to date incrementally, and where it records how far it has got.

Every entry added, changed or removed is a row of ``bank_changes`` with a sequence number; the
head (``bank_seq``) is one counter row, so a host polls it cheaply. A host applies the changes
after the last sequence it applied by re-reading those entries by id: an entry read enabled is
(re)added to the index, one disabled or gone is removed. ``host_bank`` holds each host's last
applied sequence and the head it saw, for the operator's staleness query (docs/FLEET.md).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from itertools import chain

import numpy as np
from numpy.typing import NDArray

from imagewatchd.rows import REGIONS
from imagewatchd.store.base import Connected, id_hash_columns

HashColumns = tuple[NDArray[np.int64], NDArray[np.uint64], NDArray[np.uint64]]


@dataclass(frozen=True, slots=True)
class BankState:
    """The bank's identity, its head (the last change's number) and the changes forgotten
    through (a host that applied fewer must load the bank whole)."""

    bank_id: int
    head: int
    trimmed: int


class BankLogQueries(Connected):
    """The change log's queries (PostgreSQL only: a SQLite store has no other host)."""

    def bank_state(self) -> BankState | None:
        query = (
            "SELECT name, value FROM host_counters WHERE host = ''"
            " AND name IN ('bank_id', 'bank_seq', 'bank_trimmed')"
        )
        with self._lock:
            found = dict(self._db.execute(query).fetchall())
        return BankState(found["bank_id"], found["bank_seq"], found["bank_trimmed"])

    def bank_changed_after(self, seq: int, head: int) -> list[int]:
        """The ids of the entries changed after change ``seq`` through ``head``."""
        query = (
            "SELECT DISTINCT entry_id FROM bank_changes WHERE seq > ? AND seq <= ?"
            " ORDER BY entry_id"
        )
        with self._lock:
            return [row[0] for row in self._db.execute(query, (seq, head))]

    def near_entry_hashes_of(self, ids: Sequence[int]) -> HashColumns:
        """(ids, dHashes, pHashes) of those of ``ids`` that are enabled and match by hashes."""
        query = (
            "SELECT id, dhash, phash FROM entries WHERE id = ANY(?) AND enabled = 1 AND flat = 0"
            " AND dhash IS NOT NULL AND phash IS NOT NULL"
        )
        with self._lock:
            rows = self._db.execute(query, (list(ids),))
            return id_hash_columns(np.fromiter(chain.from_iterable(rows), np.int64))

    def entry_region_hashes_of(self, ids: Sequence[int]) -> HashColumns:
        """(keys, dHashes, pHashes) of the centre crops of those of ``ids`` that are enabled."""
        codes = " ".join(f"WHEN '{name}' THEN {code}" for code, name in enumerate(REGIONS) if code)
        query = (
            f"SELECT r.entry_id * {len(REGIONS)} + CASE r.region {codes} ELSE 0 END, r.dhash,"
            " r.phash FROM entry_regions r JOIN entries e ON e.id = r.entry_id"
            " WHERE r.entry_id = ANY(?) AND e.enabled = 1 AND e.flat = 0"
        )
        with self._lock:
            rows = self._db.execute(query, (list(ids),))
            return id_hash_columns(np.fromiter(chain.from_iterable(rows), np.int64))

    def pdq_entry_hashes_of(
        self, ids: Sequence[int], min_quality: int
    ) -> tuple[NDArray[np.int64], NDArray[np.uint8]]:
        """(ids, PDQs as stored) of those of ``ids`` that may near-match by PDQ."""
        query = (
            "SELECT id, pdq FROM entries WHERE id = ANY(?) AND enabled = 1 AND flat = 0"
            " AND pdq IS NOT NULL AND (pdq_quality IS NULL OR pdq_quality >= ?)"
        )
        with self._lock:
            rows = self._db.execute(query, (list(ids), min_quality)).fetchall()
        found = np.fromiter((row[0] for row in rows), np.int64, len(rows))
        pdqs = np.frombuffer(b"".join(row[1] for row in rows), np.uint8).reshape(-1, 32)
        return found, pdqs

    def record_bank_applied(self, applied: int, head: int, now: float) -> None:
        """This host has applied the changes through ``applied``; the head was ``head``."""
        with self.transaction() as db:
            db.execute(
                "INSERT INTO host_bank (applied, head, updated) VALUES (?, ?, ?)"
                " ON CONFLICT (host) DO UPDATE SET applied = excluded.applied,"
                " head = excluded.head, updated = excluded.updated",
                (applied, head, now),
            )
