"""The index's buffers in front of its merged main (``hashindex``): **recent**, where entries
added one at a time wait, scanned linearly, until it is full and merged; **frozen**, the full
buffer while a merge builds the new main outside the lock, still scanned by searches.
"""

from __future__ import annotations

import sys

import numpy as np
from numpy.typing import NDArray

from imagewatchd.hashchunks import _Entries


class _Recent:
    """A fixed-capacity buffer of recently added entries, scanned linearly."""

    def __init__(self, capacity: int) -> None:
        self.entries = _Entries.zeros(capacity)
        self.alive = np.zeros(capacity, np.bool_)
        self.slots: dict[int, int] = {}  # key -> slot, for live entries
        self.count = 0

    def free(self) -> int:
        return len(self.alive) - self.count

    def append(self, key: int, dhash: int, phash: int) -> None:
        slot = self.count
        self.entries.keys[slot], self.entries.dhashes[slot] = key, dhash
        self.entries.phashes[slot], self.alive[slot] = phash, True
        self.slots[key] = slot
        self.count += 1

    def discard(self, key: int) -> bool:
        slot = self.slots.pop(key, None)
        if slot is not None:
            self.alive[slot] = False
        return slot is not None

    def used(self) -> tuple[_Entries, NDArray[np.bool_]]:
        """The filled slots, and which of them are live."""
        return self.entries.take(slice(0, self.count)), self.alive[: self.count]

    @property
    def nbytes(self) -> int:
        arrays = (*self.entries, self.alive)
        return sum(a.nbytes for a in arrays) + sys.getsizeof(self.slots) + 64 * len(self.slots)


class _Frozen:
    """Entries being merged into a new main: scanned linearly by searches until it is swapped
    in; only removals change it (a key is looked up linearly: a merge is short)."""

    def __init__(self, entries: _Entries) -> None:
        self.entries = entries
        self.alive = np.ones(len(entries.keys), np.bool_)

    def discard(self, key: int) -> None:
        self.alive[self.entries.keys == key] = False

    def __contains__(self, key: int) -> bool:
        return bool(np.any(self.alive & (self.entries.keys == key)))

    def __len__(self) -> int:
        return int(np.count_nonzero(self.alive))

    def used(self) -> tuple[_Entries, NDArray[np.bool_]]:
        return self.entries, self.alive

    @property
    def nbytes(self) -> int:
        return sum(a.nbytes for a in (*self.entries, self.alive))
