"""The store's query on the files waiting in a library's inboxes (imagewatchd/peers.py): their
hashes, column-wise, so that the daemon loads the inbox index at start as it loads the
library's."""

from __future__ import annotations

from collections.abc import Sequence
from itertools import chain

import numpy as np
from numpy.typing import NDArray

from imagewatchd.store.base import Connected, below, blob


class InboxQueries(Connected):
    """Incoming files below some roots (a library's inboxes)."""

    def incoming_hashes_under(
        self, roots: Sequence[str]
    ) -> tuple[NDArray[np.int64], NDArray[np.uint64], NDArray[np.uint64]]:
        """(ids, dHashes, pHashes) of the incoming files at or below any of ``roots`` that can
        near-match by their stored hashes: one range query on the path index per root, its rows
        poured straight into arrays (no object kept per row), each id once."""
        query = (
            "SELECT id, dhash, phash FROM files WHERE (path = ? OR (path >= ? AND path < ?))"
            " AND role = 'incoming' AND error IS NULL AND flat = 0"
            f" AND {self.dialect.is_integer('dhash')} AND {self.dialect.is_integer('phash')}"
        )
        with self._lock:
            rows = chain.from_iterable(
                self._db.execute(query, (blob(root), *below(root))) for root in roots
            )
            table = np.fromiter(chain.from_iterable(rows), np.int64).reshape(-1, 3)
        ids, first = np.unique(table[:, 0], return_index=True)  # roots may nest
        dhashes: NDArray[np.uint64] = np.ascontiguousarray(table[first, 1]).view(np.uint64)
        phashes: NDArray[np.uint64] = np.ascontiguousarray(table[first, 2]).view(np.uint64)
        return ids, dhashes, phashes
