"""In-memory near-match index over 256-bit PDQ hashes: multi-index hashing on 16-bit chunks.

Each hash is cut into 16 chunks of 16 bits. If a hash is within ``d`` bits of the query, then
by pigeonhole one of its chunks is within ``d // 16`` bits of the query's chunk: at Meta's
threshold of 31 bits, one chunk differs by at most one bit. **main** keeps, for each of the
2**20 (chunk number, chunk value) buckets, the rows whose chunk has that value: one ``uint32``
array of rows grouped by bucket, and the offset where each bucket starts, so a probe is two
array reads, no search. The candidates are verified on all 256 bits with XOR and popcount.
**recent** is a small buffer scanned linearly; when it outgrows an eighth of main it is merged
by a rebuild, built outside the lock (the entries being merged are scanned meanwhile) and
swapped in, so that searches do not wait for it. A removal takes the key out of recent and
the entries being merged, and marks its row in main dead (``alive``); a merge keeps only the
live rows. ``arrays``/``from_arrays`` give and take the live entries (the bank's snapshot,
``bank_snapshot.py``). When probing
would cost more than a scan (wide thresholds), main is scanned. The answer is exact either way.
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Sequence
from functools import lru_cache
from typing import Final

import numpy as np
from numpy.typing import NDArray

__all__ = ["PdqIndex", "words", "words_of_bytes"]

_CHUNKS: Final = 16
_CHUNK_BITS: Final = 16
_BUCKETS: Final = _CHUNKS << _CHUNK_BITS  # (chunk number, chunk value)
_PARTNER: Final = np.arange(_CHUNKS) ^ 1  # chunks 0 and 1, 2 and 3… make a 32-bit pair
_MERGE_MIN: Final = 4096
_PROBE_COST: Final = 64  # in rows of a linear scan, for one probe (a binary search)

Words = NDArray[np.uint64]


def words(hashes: Sequence[int]) -> Words:
    """256-bit hashes as an (n, 4) array of 64-bit words, least significant word first."""
    data = b"".join(value.to_bytes(32, "little") for value in hashes)
    return np.frombuffer(data, dtype="<u8").astype(np.uint64).reshape(len(hashes), 4)


def _chunks(hashes: Words) -> NDArray[np.uint64]:
    """(n, 16) chunk values: chunk ``c`` is bits ``16c .. 16c + 15``."""
    if sys.byteorder == "little":  # the words' 16-bit halves of halves are the chunks
        return np.ascontiguousarray(hashes, np.uint64).view(np.uint16).astype(np.uint64)
    parts = [(hashes[:, c // 4] >> np.uint64(16 * (c % 4))) & np.uint64(0xFFFF) for c in
             range(_CHUNKS)]  # fmt: skip
    return np.stack(parts, axis=1)


@lru_cache(maxsize=8)
def _masks(radius: int) -> NDArray[np.uint64]:
    values = np.arange(1 << _CHUNK_BITS, dtype=np.uint64)
    masks: NDArray[np.uint64] = values[np.bitwise_count(values) <= radius]
    return masks


def _distances(hashes: Words, query: Words) -> NDArray[np.int64]:
    counts = np.bitwise_count(np.bitwise_xor(hashes, query)).astype(np.int64)
    total: NDArray[np.int64] = counts.sum(axis=1)
    return total


class PdqIndex:
    """Keys (entry ids) with their PDQ; ``search`` gives every key within a Hamming radius."""

    def __init__(self) -> None:
        self._lock = threading.Lock()  # guards every field; held only briefly
        self._merging = threading.Lock()  # one merge at a time, built outside ``_lock``
        self._keys = np.zeros(0, dtype=np.int64)
        self._hashes = np.zeros((0, 4), dtype=np.uint64)
        self._rows = np.zeros(0, dtype=np.uint32)  # rows, grouped by bucket
        self._partners = np.zeros(0, dtype=np.uint16)  # each of those rows' partner chunk
        self._starts = np.zeros(_BUCKETS + 1, dtype=np.int64)  # where each bucket starts
        self._alive = np.ones(0, dtype=np.bool_)  # main's rows not removed
        self._dead = 0
        self._removed: list[NDArray[np.int64]] = []  # keys removed while a merge runs
        self._recent = (self._keys, self._hashes)  # (keys, hashes) added since the last merge
        self._frozen = (self._keys, self._hashes)  # (keys, hashes) being merged

    def __len__(self) -> int:
        return len(self._keys) - self._dead + len(self._frozen[0]) + len(self._recent[0])

    def remove_many(self, keys: Sequence[int] | NDArray[np.int64]) -> None:
        """Remove the entries with these keys, those there are."""
        wanted = np.unique(np.asarray(keys, dtype=np.int64))
        if not len(wanted):
            return
        with self._lock:
            self._recent = _without(self._recent, wanted)
            self._frozen = _without(self._frozen, wanted)
            if self._merging.locked():
                self._removed.append(wanted)
            self._kill(wanted)

    def _kill(self, wanted: NDArray[np.int64]) -> None:
        """Under the lock: mark main's live rows holding any of ``wanted`` dead."""
        hit = np.isin(self._keys, wanted) & self._alive
        if hit.any():
            self._alive = self._alive & ~hit
            self._dead += int(np.count_nonzero(hit))

    def arrays(self) -> dict[str, NDArray[np.uint64] | NDArray[np.int64]]:
        """The live entries as named arrays (``keys``, ``hashes``: (n, 4) words)."""
        with self._lock:
            live = (self._keys[self._alive], self._hashes[self._alive])
            keys, hashes = _joined(_joined(live, self._frozen), self._recent)
        return {"keys": keys, "hashes": hashes}

    @classmethod
    def from_arrays(cls, keys: NDArray[np.int64], hashes: Words) -> PdqIndex:
        """The index of these entries (what ``arrays`` gave)."""
        index = cls()
        index._keys, index._hashes = np.asarray(keys, np.int64), np.asarray(hashes, np.uint64)
        index._rows, index._partners, index._starts = _buckets(index._hashes)
        index._alive = np.ones(len(index._keys), dtype=np.bool_)
        return index

    def add_many(
        self, keys: Sequence[int] | NDArray[np.int64], hashes: Sequence[int] | Words
    ) -> None:
        """Add entries: PDQs as ints, or as ``words`` gives them (an (n, 4) array)."""
        added = (
            np.asarray(keys, dtype=np.int64),
            hashes if isinstance(hashes, np.ndarray) else words(hashes),
        )
        with self._lock:
            self._recent = _joined(self._recent, added)
        if self._full():
            self._merge()

    def _full(self) -> bool:
        return len(self._recent[0]) >= max(_MERGE_MIN, len(self._keys) // 8)

    def _merge(self) -> None:
        """Recent into main: the new main is built outside the lock, then swapped in; searches
        meanwhile scan the entries being merged."""
        with self._merging:
            with self._lock:
                if not self._full():
                    return  # merged by another thread meanwhile
                self._frozen, self._recent = self._recent, (self._keys[:0], self._hashes[:0])
                live = (self._keys[self._alive], self._hashes[self._alive])
                merged = _joined(live, self._frozen)
            try:
                rows, partners, starts = _buckets(merged[1])
            except BaseException:
                with self._lock:  # back into recent, merged next time
                    self._recent = _joined(self._frozen, self._recent)
                    self._frozen = (self._keys[:0], self._hashes[:0])
                raise
            with self._lock:
                (self._keys, self._hashes), self._starts = merged, starts
                self._rows, self._partners = rows, partners
                self._frozen = (self._keys[:0], self._hashes[:0])
                self._alive, self._dead = np.ones(len(self._keys), dtype=np.bool_), 0
                self._removed, removed = [], self._removed
                for wanted in removed:  # removed while the merge ran
                    self._kill(wanted)

    def search(self, query: int, threshold: int) -> list[tuple[int, int]]:
        """(key, distance) of every hash within ``threshold`` bits of ``query``."""
        return self.search_many([query], threshold)[0]

    def search_many(self, queries: Sequence[int], threshold: int) -> list[list[tuple[int, int]]]:
        """``search`` for several queries (a picture's 8 orientations) in one pass: the
        candidates of all of them are gathered and verified together."""
        if not queries:
            return []
        q = words(queries)
        hits: list[tuple[NDArray[np.intp], NDArray[np.int64], NDArray[np.int64]]] = []
        with self._lock:
            hits.append(self._search_main(q, threshold))
            for keys, hashes in (self._frozen, self._recent):
                if len(keys):
                    hits.append(_scan(keys, hashes, q, threshold))
        columns = [np.concatenate([h[i] for h in hits]).astype(np.int64) for i in range(3)]
        per_view: list[list[tuple[int, int]]] = [[] for _ in queries]
        if not len(columns[0]):
            return per_view
        found = np.unique(np.stack(columns), axis=1)  # a row found through several chunks once
        for view, key, dist in found.T.tolist():
            per_view[view].append((key, dist))
        return per_view

    def _search_main(
        self, q: Words, threshold: int
    ) -> tuple[NDArray[np.intp], NDArray[np.int64], NDArray[np.int64]]:
        """(view, key, distance) of every hit in main."""
        if not len(self._keys):
            return _NONE
        masks = _masks(threshold // _CHUNKS)
        if len(masks) * _CHUNKS * _PROBE_COST > len(self._keys):  # a scan costs as much per query
            alive = self._alive
            return _scan(self._keys[alive], self._hashes[alive], q, threshold)
        views, rows = self._candidates(q, masks, threshold // (_CHUNKS // 2))
        if self._dead:
            live = self._alive[rows]
            views, rows = views[live], rows[live]
        dist = np.bitwise_count(self._hashes[rows] ^ q[views]).sum(axis=1, dtype=np.int64)
        hit = dist <= threshold
        return views[hit], self._keys[rows[hit]], dist[hit]

    def _candidates(
        self, q: Words, masks: NDArray[np.uint64], pair_radius: int
    ) -> tuple[NDArray[np.intp], NDArray[np.intp]]:
        """(view, row) of the rows in a bucket one of the queries probes whose chunk and
        partner chunk together are within ``pair_radius`` bits of the query's."""
        chunks = _chunks(q)  # (views, chunks)
        tags = np.arange(_CHUNKS, dtype=np.uint64) << np.uint64(_CHUNK_BITS)
        buckets = ((chunks | tags)[:, :, None] ^ masks).ravel().astype(np.intp)
        bounds = self._starts[buckets[:, None] + (0, 1)]  # (probes, 2): each bucket's
        low, counts = bounds[:, 0], bounds[:, 1] - bounds[:, 0]
        total = int(counts.sum())
        if total == 0:
            return np.zeros(0, dtype=np.intp), np.zeros(0, dtype=np.intp)
        probe = np.repeat(np.arange(len(buckets)), counts)  # each candidate's probe
        at = np.arange(total) + (low - np.cumsum(counts) + counts)[probe]
        # per probe: the query's partner chunk, and the bits the partner may differ by
        partner = np.broadcast_to(chunks[:, _PARTNER, None], (len(q), _CHUNKS, len(masks)))
        spare = pair_radius - np.bitwise_count(masks).astype(np.int64)
        spare = np.broadcast_to(spare, (len(q), _CHUNKS, len(masks))).ravel()
        differ = np.bitwise_count(self._partners[at] ^ partner.ravel().astype(np.uint16)[probe])
        keep = differ <= spare[probe]
        views = probe[keep] // (_CHUNKS * len(masks))
        return views, self._rows[at[keep]].astype(np.intp)


_NONE: Final = (np.zeros(0, np.intp), np.zeros(0, np.int64), np.zeros(0, np.int64))


def _scan(
    keys: NDArray[np.int64], hashes: Words, q: Words, threshold: int
) -> tuple[NDArray[np.intp], NDArray[np.int64], NDArray[np.int64]]:
    """(view, key, distance) of every hash of ``hashes`` within ``threshold`` of a query."""
    dist = np.stack([_distances(hashes, one) for one in q])  # (views, rows)
    views, rows = np.nonzero(dist <= threshold)
    return views.astype(np.intp), keys[rows], dist[views, rows]


def _joined(
    first: tuple[NDArray[np.int64], Words], second: tuple[NDArray[np.int64], Words]
) -> tuple[NDArray[np.int64], Words]:
    return np.concatenate([first[0], second[0]]), np.concatenate([first[1], second[1]])


def _without(
    part: tuple[NDArray[np.int64], Words], wanted: NDArray[np.int64]
) -> tuple[NDArray[np.int64], Words]:
    keep = ~np.isin(part[0], wanted)
    return part[0][keep], part[1][keep]


def words_of_bytes(stored: NDArray[np.uint8]) -> Words:
    """PDQs stored as 32 big-endian bytes each (an (n, 32) array) as ``words`` gives them."""
    little = np.ascontiguousarray(stored.reshape(-1, 32)[:, ::-1])
    return little.view("<u8").astype(np.uint64).reshape(-1, 4)


def _buckets(
    hashes: Words,
) -> tuple[NDArray[np.uint32], NDArray[np.uint16], NDArray[np.int64]]:
    """(rows grouped by bucket, each one's partner chunk, where each bucket starts) for an
    index of ``hashes``."""
    if len(hashes) >= 1 << 32:
        raise OverflowError("too many PDQ hashes for one index")
    rows = np.arange(len(hashes), dtype=np.uint64)
    tags = np.arange(_CHUNKS, dtype=np.uint64) << np.uint64(_CHUNK_BITS)
    chunks = _chunks(hashes)
    packed = ((chunks | tags) << np.uint64(32) | rows[:, None]).ravel()
    packed.sort()
    counts = np.bincount((packed >> np.uint64(32)).astype(np.intp), minlength=_BUCKETS)
    starts = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
    grouped = (packed & np.uint64(0xFFFFFFFF)).astype(np.intp)
    number = (packed >> np.uint64(32 + _CHUNK_BITS)).astype(np.intp)
    partners = chunks[grouped, number ^ 1].astype(np.uint16)
    return grouped.astype(np.uint32), partners, starts
