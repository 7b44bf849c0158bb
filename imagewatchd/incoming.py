"""The stored hashes of the incoming files, column-wise: what a new ban is compared with.

``Columns.read`` reads them from the store (one query for dHash and pHash, one for the PDQs
whose quality reaches the floor), as the one-shot commands do. ``StoredHashes`` is the daemon's
copy in memory (docs/BENCHMARKS.md, "Issue 11: retroactive bans": reading a million rows takes
longer than the second a ban has): loaded once, topped up with the rows added since (by id),
and told by the pipeline when it saves an incoming file's fingerprint (a changed upload keeps
its row and id). It may hold stale hashes (a row forgotten, failed or changed by another
process): ``retroactive.find`` checks every file it points to against its current row before
anything acts on it, so a stale hash costs a look, never a wrong action. What it can miss is a
row that another process changed in place to match; the copy is read again whenever the rows
folded into it reach a quarter of those loaded, and with each daemon session (a reload).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from imagewatchd.models import Fingerprint, Role
from imagewatchd.pdqindex import words
from imagewatchd.store import Store

RELOAD_SHARE = 4  # read the whole copy again once 1/RELOAD_SHARE of it was folded in since


@dataclass(frozen=True, slots=True)
class Columns:
    """(id, dHash, pHash) of the files that can near-match; (id, PDQ) of those whose PDQ
    quality reaches the floor, each PDQ as 4 words (``pdqindex.words``)."""

    ids: NDArray[np.int64]
    dhashes: NDArray[np.uint64]
    phashes: NDArray[np.uint64]
    pdq_ids: NDArray[np.int64]
    pdqs: NDArray[np.uint64]

    @classmethod
    def read(cls, store: Store, floor: int, after: int = 0) -> Columns:
        """From the store: the incoming rows after id ``after``."""
        return cls(*store.incoming_hashes(after), *store.incoming_pdqs(floor, after))

    @classmethod
    def of(cls, saved: dict[int, Fingerprint], floor: int) -> Columns:
        near = [(key, fp) for key, fp in saved.items() if not fp.flat]
        pdq = [(key, fp.pdq) for key, fp in near if fp.pdq is not None and fp.pdq_quality >= floor]
        return cls(
            np.array([key for key, _ in near], np.int64),
            np.array([fp.dhash for _, fp in near], np.uint64),
            np.array([fp.phash for _, fp in near], np.uint64),
            np.array([key for key, _ in pdq], np.int64),
            words([value for _, value in pdq]).reshape(-1, 4),
        )

    def __len__(self) -> int:
        return len(self.ids)

    def plus(self, other: Columns) -> Columns:
        return Columns(
            *(
                np.concatenate([mine, theirs])
                for mine, theirs in zip(self._parts(), other._parts(), strict=True)
            )
        )

    def latest(self) -> Columns:
        """Each id once, with its last hashes (a row saved again follows its former hashes)."""
        near, pdq = _last_of_each(self.ids), _last_of_each(self.pdq_ids)
        return Columns(self.ids[near], self.dhashes[near], self.phashes[near],
                       self.pdq_ids[pdq], self.pdqs[pdq])  # fmt: skip

    def _parts(self) -> tuple[NDArray[np.generic], ...]:
        return self.ids, self.dhashes, self.phashes, self.pdq_ids, self.pdqs

    def last_id(self) -> int:
        return max([0, *(int(ids.max()) for ids in (self.ids, self.pdq_ids) if len(ids))])


def _last_of_each(ids: NDArray[np.int64]) -> NDArray[np.intp]:
    _, first_from_the_end = np.unique(ids[::-1], return_index=True)
    return np.sort(len(ids) - 1 - first_from_the_end)


class StoredHashes:
    """The daemon's copy of the incoming files' hashes (see the module's docstring)."""

    def __init__(self, floor: int) -> None:
        self.floor = floor
        self._lock = threading.Lock()
        self._saved: dict[int, Fingerprint] = {}
        self._columns: Columns | None = None
        self._last_id = 0
        self._loaded = 0  # rows read whole
        self._folded = 0  # rows folded in since

    def saved(self, file_id: int, role: Role, fp: Fingerprint) -> None:
        """The pipeline saved a file's fingerprint (its hook): any thread."""
        if role is Role.INCOMING:
            with self._lock:
                self._saved[file_id] = fp

    def columns(self, store: Store) -> Columns:
        """Up to date with the store's new rows and the pipeline's saves (one thread)."""
        with self._lock:
            saved, self._saved = self._saved, {}
        if self._columns is None or self._folded * RELOAD_SHARE > max(self._loaded, 1):
            self._columns = Columns.read(store, self.floor)
            self._loaded, self._folded = len(self._columns), 0
            self._last_id = self._columns.last_id()
        else:
            added = Columns.read(store, self.floor, after=self._last_id)
            self._last_id = max(self._last_id, added.last_id())
            self._columns = self._columns.plus(added)
            self._folded += len(added)
        if saved:
            self._columns = self._columns.plus(Columns.of(saved, self.floor))
            self._folded += len(saved)
        return self._columns
