"""Multi-index hashing's chunks: how a hash is cut, which chunk values a search probes, and
the arrays of entries (keys, dHashes, pHashes) the index and its buffers hold.

Each 64-bit hash is cut into three chunks (21, 21 and 22 bits, ``_CHUNKS``); a chunk value is
tagged with its hash and chunk number, so the six tagged values of every row fit one sorted
``uint32`` array (``_chunk_pairs``). If a hash is within ``d`` bits of the query, then by
pigeonhole one of its chunks is within about ``d / 3`` bits of the query's chunk (exact radii in
``_radii``); ``_Query.probes`` lists every tagged chunk value within those radii, ``_Query.near``
verifies candidate rows on both hashes with XOR and popcount. ``hashindex`` (searches) and
``hashjoin`` (the self-join) build on these.
"""

from __future__ import annotations

import itertools
import math
import operator
import sys
from collections.abc import Sequence
from functools import lru_cache
from typing import Any, Final, NamedTuple

import numpy as np
from numpy.typing import NDArray

Rows = NDArray[np.intp]
Ints = Sequence[int] | NDArray[np.integer[Any]]

_CHUNKS: Final = ((0, 21), (21, 21), (42, 22))  # (shift, width) of each chunk of a hash
_TAG_SHIFT: Final = 22  # a chunk value is tagged with (hash number * 3 + chunk number) << 22
_SCAN_BLOCK: Final = 1 << 17  # rows a scan compares at a time (1 MiB of XORs)


def hamming(a: int, b: int) -> int:
    """The number of bits in which two hashes differ."""
    return (a ^ b).bit_count()


@lru_cache(maxsize=16)
def _masks(width: int, radius: int) -> NDArray[np.uint32]:
    """Every value below ``2**width`` with at most ``radius`` bits set, ascending."""
    values = np.arange(1 << width, dtype=np.uint32)
    masks: NDArray[np.uint32] = values[np.bitwise_count(values) <= radius]
    return masks


@lru_cache(maxsize=128)
def _radii(distance: int) -> tuple[int, ...]:
    """Chunk radii such that a hash within ``distance`` has some chunk within its radius.

    If every chunk ``i`` differed in more than ``r[i]`` bits, the hash would differ in at least
    ``sum(r) + len(r)`` bits; so ``sum(r) >= distance - len(r) + 1`` suffices (generalised
    pigeonhole). The spare units go to the narrower chunks, which have fewer values to probe.
    """
    total = max(0, distance - len(_CHUNKS) + 1)
    share, spare = divmod(total, len(_CHUNKS))
    return tuple(share + (chunk < spare) for chunk in range(len(_CHUNKS)))


@lru_cache(maxsize=128)
def _probe_plan(distance: int) -> tuple[NDArray[np.uint32], NDArray[np.intp]]:
    """The masks of every chunk within its radius (``_radii``), concatenated, and how many
    each chunk has: a query's probes are these XOR its tagged chunk values."""
    radii = zip(_CHUNKS, _radii(distance), strict=True)
    parts = [_masks(width, radius) for (_, width), radius in radii]
    return np.concatenate(parts), np.array([len(part) for part in parts], np.intp)


@lru_cache(maxsize=128)
def _probe_count(distance: int) -> int:
    """How many chunk values a search within ``distance`` probes, over all chunks."""
    radii = zip(_CHUNKS, _radii(distance), strict=True)
    return sum(math.comb(width, k) for (_, width), radius in radii for k in range(radius + 1))


def _as_array(values: Ints, dtype: type[np.signedinteger[Any] | np.uint64]) -> Any:
    """Integers as a 1-D array of ``dtype``; ValueError if any is out of its range."""
    array = np.asarray(values).ravel()
    info = np.iinfo(dtype)
    if array.dtype.kind not in "iu" and array.size:  # e.g. a list of ints past 2**63 gives floats
        try:
            array = np.array([operator.index(v) for v in values], dtype=dtype)
        except OverflowError:
            raise ValueError(f"expected integers in [{info.min}, {info.max}]") from None
    elif array.size and (array.min() < info.min or array.max() > info.max):
        raise ValueError(f"expected integers in [{info.min}, {info.max}]")
    return np.ascontiguousarray(array, dtype=dtype)


class _Entries(NamedTuple):
    keys: NDArray[np.int64]
    dhashes: NDArray[np.uint64]
    phashes: NDArray[np.uint64]

    @classmethod
    def of(cls, keys: Ints, dhashes: Ints, phashes: Ints) -> _Entries:
        """Validated entries; of repeated keys, the last one wins."""
        entries = cls(
            _as_array(keys, np.int64), _as_array(dhashes, np.uint64), _as_array(phashes, np.uint64)
        )
        if not len(entries.keys) == len(entries.dhashes) == len(entries.phashes):
            raise ValueError("keys, dhashes and phashes must have the same length")
        if np.all(entries.keys[1:] > entries.keys[:-1]):
            return entries  # already unique (e.g. ids in the store's order)
        _, last = np.unique(entries.keys[::-1], return_index=True)
        return entries.take(np.sort(len(entries.keys) - 1 - last))

    @classmethod
    def zeros(cls, count: int) -> _Entries:
        return cls(
            np.zeros(count, np.int64), np.zeros(count, np.uint64), np.zeros(count, np.uint64)
        )

    def take(self, rows: NDArray[Any] | slice) -> _Entries:
        return _Entries(self.keys[rows], self.dhashes[rows], self.phashes[rows])

    @classmethod
    def joined(cls, parts: Sequence[_Entries]) -> _Entries:
        return cls(*(np.concatenate(column) for column in zip(*parts, strict=True)))

    def plus(self, other: _Entries) -> _Entries:
        return _Entries(*(np.concatenate(pair) for pair in zip(self, other, strict=True)))


class _Query:
    """One search: the query hashes, their thresholds, and which hash's chunks to probe."""

    def __init__(self, dhash: int, phash: int, max_dhash: int, max_phash: int) -> None:
        self.dhash, self.phash = np.uint64(dhash), np.uint64(phash)
        self.max_dhash, self.max_phash = max_dhash, max_phash
        counts = _probe_count(max_dhash), _probe_count(max_phash)
        self.probed = int(counts[1] <= counts[0])  # the hash to probe: 0 dHash, 1 pHash
        self.probe_count = counts[self.probed]

    def probes(self) -> NDArray[np.uint32]:
        """Every tagged chunk value within the radius of the probed hash's chunks."""
        return _Query.probes_many([self])[0]

    def near(self, entries: _Entries, rows: Rows) -> Rows:
        """Those of ``rows`` whose hashes are both within their thresholds."""
        near = np.bitwise_count(entries.dhashes[rows] ^ self.dhash) <= self.max_dhash
        near &= np.bitwise_count(entries.phashes[rows] ^ self.phash) <= self.max_phash
        found: Rows = rows[near]
        return found

    @staticmethod
    def probes_many(queries: Sequence[_Query]) -> tuple[NDArray[np.uint32], Rows]:
        """Every query's probes (``probes``), concatenated, and how many each has."""
        masks, centres, counts = [], [], []
        for query in queries:
            value = int(query.phash if query.probed else query.dhash)
            plan = _probe_plan(query.max_phash if query.probed else query.max_dhash)
            masks.append(plan[0])
            counts.append(plan[1])
            centres += [
                (query.probed * len(_CHUNKS) + chunk) << _TAG_SHIFT
                | (value >> shift) & ((1 << width) - 1)
                for chunk, (shift, width) in enumerate(_CHUNKS)
            ]
        every = np.concatenate(masks)
        every ^= np.repeat(np.array(centres, np.uint32), np.concatenate(counts))
        lengths = np.array([len(m) for m in masks], np.intp)
        return every, lengths

    @staticmethod
    def near_many(
        queries: Sequence[_Query], entries: _Entries, rows: Rows, labels: Rows
    ) -> NDArray[np.bool_]:
        """Whether each of ``rows`` is near the query its label names (both hashes within
        that query's thresholds)."""
        columns = [(q.dhash, q.phash, q.max_dhash, q.max_phash) for q in queries]
        dhashes, phashes, max_d, max_p = (np.array(c)[labels] for c in zip(*columns, strict=True))
        near: NDArray[np.bool_] = np.bitwise_count(entries.dhashes[rows] ^ dhashes) <= max_d
        near &= np.bitwise_count(entries.phashes[rows] ^ phashes) <= max_p
        return near

    @staticmethod
    def scan_many(
        queries: Sequence[_Query], entries: _Entries, alive: NDArray[np.bool_]
    ) -> tuple[Rows, Rows]:
        """(query, row) of the live rows near each query, by a linear scan: of all of them at
        once while that is small (a small index, a picture's views), else one at a time."""
        if len(queries) * len(entries.keys) > _SCAN_BLOCK:
            found = [q.scan(entries, alive) for q in queries]
            labels = np.repeat(np.arange(len(queries)), [len(f) for f in found])
            return labels, np.concatenate([np.zeros(0, np.intp), *found])
        columns = [(q.dhash, q.phash, q.max_dhash, q.max_phash) for q in queries]
        dhashes, phashes, max_d, max_p = (np.array(c)[:, None] for c in zip(*columns, strict=True))
        near = np.bitwise_count(entries.dhashes ^ dhashes) <= max_d
        near &= np.bitwise_count(entries.phashes ^ phashes) <= max_p
        labels, rows = np.nonzero(near & alive)
        return labels.astype(np.intp), rows.astype(np.intp)

    def scan(self, entries: _Entries, alive: NDArray[np.bool_]) -> Rows:
        """The live rows whose hashes are both within their thresholds, by a linear scan: of
        the hash with the tighter threshold first (the fewer rows pass it)."""
        if self.max_phash < self.max_dhash:
            hashes, value, limit = entries.phashes, self.phash, self.max_phash
        else:
            hashes, value, limit = entries.dhashes, self.dhash, self.max_dhash
        if len(hashes) <= _SCAN_BLOCK:
            return self.near(entries, np.flatnonzero((np.bitwise_count(hashes ^ value) <= limit)
                                                     & alive))  # fmt: skip
        near = np.empty(len(hashes), np.bool_)
        xor = np.empty(min(len(hashes), _SCAN_BLOCK), np.uint64)
        counts = np.empty(len(xor), np.uint8)
        for start in range(0, len(hashes), _SCAN_BLOCK):  # the temporaries stay in cache
            block = slice(start, start + _SCAN_BLOCK)
            size = len(hashes[block])
            np.bitwise_xor(hashes[block], value, out=xor[:size])
            np.bitwise_count(xor[:size], out=counts[:size])
            np.less_equal(counts[:size], limit, out=near[block])
        rows = _true_rows(near)
        return self.near(entries, rows[alive[rows]])


def _true_rows(mask: NDArray[np.bool_]) -> Rows:
    """``np.flatnonzero(mask)``, 5x faster when few are true: the mask is read 8 bytes at a
    time and only the words holding a true one are looked into."""
    whole = len(mask) - len(mask) % 8
    words = np.flatnonzero(mask[:whole].view(np.uint64)) * 8
    rows = (words[:, None] + np.arange(8)).ravel()
    tail = np.flatnonzero(mask[whole:]) + whole
    found: Rows = np.concatenate((rows[mask[rows]], tail))
    return found


def _chunk_pairs(entries: _Entries, first_row: int) -> tuple[NDArray[np.uint32], NDArray[np.int32]]:
    """The six tagged chunk values of the entries (stored from ``first_row`` on), sorted, and
    the row of each. A (value, row) pair packed in one uint64 sorts 2x faster than an argsort."""
    count = len(entries.keys)
    rows = np.arange(first_row, first_row + count, dtype=np.uint64)
    packed = np.empty(2 * len(_CHUNKS) * count, np.uint64)
    for number, hashes in enumerate((entries.dhashes, entries.phashes)):
        for chunk, (shift, width) in enumerate(_CHUNKS):
            tag = number * len(_CHUNKS) + chunk
            part = packed[tag * count : (tag + 1) * count]
            np.right_shift(hashes, np.uint64(shift), out=part)
            part &= np.uint64((1 << width) - 1)
            part |= np.uint64(tag << _TAG_SHIFT)
            part <<= np.uint64(32)
            part |= rows
    packed.sort()
    halves = packed.view(np.uint32).reshape(-1, 2)  # (low, high) words on a little-endian CPU
    low, high = (0, 1) if sys.byteorder == "little" else (1, 0)
    return halves[:, high].copy(), halves[:, low].copy().view(np.int32)


def _ranges(starts: Rows, ends: Rows) -> Rows:
    """Concatenate ``range(start, end)`` for every pair, vectorised."""
    hit = np.flatnonzero(ends > starts)
    starts, lengths = starts[hit], ends[hit] - starts[hit]
    offsets = np.cumsum(lengths) - lengths
    positions: Rows = np.arange(int(lengths.sum())) + np.repeat(starts - offsets, lengths)
    return positions


def _bounds(values: NDArray[np.uint32], probes: NDArray[np.uint32]) -> tuple[Rows, Rows]:
    """Where each probe's run of equal values starts and ends in the sorted ``values``: the
    probes looked up in ascending order, each beside its end (a sorted search narrows each
    lookup from the last: fewer cache misses in a large index)."""
    order = np.argsort(probes)
    ascending = probes[order]
    found = np.searchsorted(values, np.stack((ascending, ascending + 1), axis=1).ravel())
    starts, ends = np.empty(len(probes), np.intp), np.empty(len(probes), np.intp)
    starts[order], ends[order] = found[0::2], found[1::2]
    return starts, ends


def _hits(
    labels: Rows, found: _Entries, queries: list[_Query], limit: int | None
) -> list[list[tuple[int, int, int]]]:
    """Each query's (key, dHash distance, pHash distance) of the entries found for it (``labels``
    name the query), closest first, then by key; with ``limit``, its first ``limit``."""
    dhashes = np.array([q.dhash for q in queries], np.uint64)[labels]
    phashes = np.array([q.phash for q in queries], np.uint64)[labels]
    ddist = np.bitwise_count(found.dhashes ^ dhashes).astype(np.int64)
    pdist = np.bitwise_count(found.phashes ^ phashes).astype(np.int64)
    sums = ddist + pdist
    if limit is not None and len(queries) == 1 and len(sums) > 4 * limit > 0:
        kept = sums <= np.partition(sums, limit - 1)[limit - 1]  # as close as the limit-th
        labels, found, ddist, pdist = labels[kept], found.take(kept), ddist[kept], pdist[kept]
        sums = sums[kept]
    order = np.lexsort((found.keys, sums, labels))
    labels = labels[order]
    if limit is not None:  # each one's rank among its query's
        keep = np.arange(len(labels)) - np.searchsorted(labels, labels) < limit
        order, labels = order[keep], labels[keep]
    edges = np.searchsorted(labels, np.arange(len(queries) + 1))
    keys, ddist, pdist = found.keys[order], ddist[order], pdist[order]
    hits = list(zip(keys.tolist(), ddist.tolist(), pdist.tolist(), strict=True))
    return [hits[start:end] for start, end in itertools.pairwise(edges.tolist())]
