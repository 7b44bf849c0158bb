"""The list entries' block grids in memory, by entry id: what the second stage compares.

A query that matches nothing is compared with the grids of its closest candidates at a wider
radius (imagewatchd/verify.py): reading them from the store cost a query of the database on
every clean upload (0.2-0.4 ms from SQLite at a million entries; a round trip to a fleet's
PostgreSQL). Only entries made from a picture have a grid (imported hashes have none), and
only those are held: 256 bytes of grid, 8 of id and 16 of hashes each, in one sorted array of
ids, one (n, 256) array of grids and one of their dHashes and pHashes (**main**; memory-mapped
from the bank's snapshot, where a fleet has one), plus those added since, in a small dict
(**recent**) merged into main once it grows past an eighth of it. A removal takes the id out of
recent and marks its row in main dead; a merge keeps only the live rows. The hashes let the
second stage look at the entries that have a grid before it scans the whole bank (a bank of
imported hashes with a few pictures: ``any_within``). The entry indexes' owner
(``match.Indexes``) keeps it in step with them: the same entries added, re-read or removed,
under the same lock.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Final

import numpy as np
from numpy.typing import NDArray

from imagewatchd.blockgrid import SIZE

__all__ = ["EntryGrids"]

_MERGE_MIN: Final = 4096  # recent grids kept in the dict before a merge (or an eighth of main)

Grids = NDArray[np.uint8]  # (n, SIZE)


class EntryGrids:
    """Entry id → grid (``SIZE`` bytes). Thread-safe; lookups hold the lock briefly."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._ids = np.zeros(0, np.int64)  # main: sorted, unique
        self._grids: Grids = np.zeros((0, SIZE), np.uint8)
        self._hashes = np.zeros((2, 0), np.uint64)  # each row's entry's dHash and pHash
        self._alive = np.ones(0, np.bool_)
        self._dead = 0
        self._recent: dict[int, tuple[bytes, int, int]] = {}  # id → (grid, dHash, pHash)

    def __len__(self) -> int:
        with self._lock:
            return len(self._ids) - self._dead + len(self._recent)

    def get(self, ids: Sequence[int]) -> dict[int, bytes]:
        """The grids of those of ``ids`` that have one."""
        wanted = np.asarray(ids, np.int64)
        found: dict[int, bytes] = {}
        with self._lock:
            if len(self._ids):
                at = np.minimum(np.searchsorted(self._ids, wanted), len(self._ids) - 1)
                held = (self._ids[at] == wanted) & self._alive[at]
                found = {key: self._grids[row].tobytes() for key, row in
                         zip(wanted[held].tolist(), at[held].tolist(), strict=True)}  # fmt: skip
            found.update((key, self._recent[key][0]) for key in ids if key in self._recent)
        return found

    def any_within(self, dhash: int, phash: int, max_dhash: int, max_phash: int) -> bool:
        """Whether an entry held is within both distances of the query (a scan of the
        entries that have a grid only: the second stage's cheap first look)."""
        d, p = np.uint64(dhash), np.uint64(phash)
        with self._lock:
            near = np.bitwise_count(self._hashes[0] ^ d) <= max_dhash
            near &= np.bitwise_count(self._hashes[1] ^ p) <= max_phash
            if np.any(near & self._alive):
                return True
            return any(
                (a ^ dhash).bit_count() <= max_dhash and (b ^ phash).bit_count() <= max_phash
                for _, a, b in self._recent.values()
            )

    def add_many(
        self, ids: Sequence[int] | NDArray[np.int64], grids: Grids,
        dhashes: NDArray[np.uint64], phashes: NDArray[np.uint64],
    ) -> None:  # fmt: skip
        """Hold these entries' grids (an (n, SIZE) array) and hashes, replacing any held for
        the same ids."""
        keys = np.asarray(ids, np.int64)
        if len(keys) != len(grids) or (len(keys) and grids.shape[1:] != (SIZE,)):
            raise ValueError(f"expected one grid of {SIZE} bytes per id")
        hashes = np.stack((np.asarray(dhashes, np.uint64), np.asarray(phashes, np.uint64)))
        with self._lock:
            self._kill(keys)
            for key in keys.tolist():
                self._recent.pop(key, None)
            if len(keys) > _MERGE_MIN:  # a load: straight into main, not through the dict
                self._merge(keys, grids, hashes)
                return
            rows = zip(keys.tolist(), grids, *hashes.tolist(), strict=True)
            self._recent.update((key, (row.tobytes(), d, p)) for key, row, d, p in rows)
            if len(self._recent) > max(_MERGE_MIN, len(self._ids) // 8):
                self._merge()

    def remove_many(self, ids: Sequence[int] | NDArray[np.int64]) -> None:
        """Forget the grids of these ids, those held."""
        keys = np.asarray(ids, np.int64)
        with self._lock:
            for key in keys.tolist():
                self._recent.pop(key, None)
            self._kill(keys)

    def arrays(self) -> tuple[NDArray[np.int64], Grids, NDArray[np.uint64], NDArray[np.uint64]]:
        """Every entry held, merged: (ids, sorted; grids; dHashes; pHashes), for the bank's
        snapshot; ``from_arrays`` takes them back."""
        with self._lock:
            self._merge()
            return self._ids, self._grids, self._hashes[0], self._hashes[1]

    @classmethod
    def from_arrays(
        cls, ids: NDArray[np.int64], grids: Grids, dhashes: NDArray[np.uint64],
        phashes: NDArray[np.uint64],
    ) -> EntryGrids:  # fmt: skip
        """The grids ``arrays`` gave (they may be read-only, memory-mapped: never written)."""
        held = cls()
        held._ids, held._grids = ids, grids.reshape(-1, SIZE)
        held._hashes = np.stack((dhashes, phashes))
        if not len(held._ids) == len(held._grids) == held._hashes.shape[1]:
            raise ValueError("grid ids, grids and hashes do not agree")
        held._alive = np.ones(len(ids), np.bool_)
        return held

    @property
    def nbytes(self) -> int:
        """Memory held, in bytes (the grids, their ids, and the recent dict's)."""
        with self._lock:
            recent = len(self._recent) * (SIZE + 200)  # bytes, ints, tuples and dict slots
            arrays = (self._ids, self._grids, self._hashes, self._alive)
            return sum(a.nbytes for a in arrays) + recent

    def _kill(self, keys: NDArray[np.int64]) -> None:
        """Under the lock: mark main's live rows holding any of ``keys`` dead."""
        if not len(self._ids) or not len(keys):
            return
        at = np.minimum(np.searchsorted(self._ids, keys), len(self._ids) - 1)
        rows = at[(self._ids[at] == keys) & self._alive[at]]
        if len(rows):
            self._alive[rows] = False
            self._dead += len(np.unique(rows))

    def _merge(
        self, keys: NDArray[np.int64] | None = None, grids: Grids | None = None,
        hashes: NDArray[np.uint64] | None = None,
    ) -> None:  # fmt: skip
        """Under the lock: recent, main's live rows (and ``keys``' ``grids`` and ``hashes``,
        none of which is held) into a new sorted main."""
        if not self._recent and not self._dead and keys is None:
            return
        recent = list(self._recent.values())
        parts = [(self._ids[self._alive], self._grids[self._alive], self._hashes[:, self._alive])]
        parts.append((np.fromiter(self._recent, np.int64, len(recent)),
                      _grids_of(b"".join(grid for grid, _, _ in recent)),
                      np.array([[d for _, d, _ in recent], [p for _, _, p in recent]],
                               np.uint64).reshape(2, -1)))  # fmt: skip
        if keys is not None and grids is not None and hashes is not None:
            parts.append((keys, np.asarray(grids, np.uint8), hashes))
        ids = np.concatenate([part[0] for part in parts])
        order = np.argsort(ids, kind="stable")
        self._ids = ids[order]
        self._grids = np.concatenate([part[1] for part in parts])[order]
        self._hashes = np.concatenate([part[2] for part in parts], axis=1)[:, order]
        self._alive, self._dead, self._recent = np.ones(len(ids), np.bool_), 0, {}


def _grids_of(data: bytes) -> Grids:
    grids: Grids = np.frombuffer(data, np.uint8).reshape(-1, SIZE)
    return grids
