"""Every pair of entries of a ``HammingIndex`` within both thresholds: a self-join, on arrays
(and ``cross_pairs``: the pairs across two sets, the same way).

The index keeps each hash cut into three chunks, every (tagged) chunk value sorted beside its
row. Two hashes within ``d`` bits have some chunk within its radius (``hashchunks._radii``), so
every near pair shows up when each row's chunk value, XORed with each mask of at most that many
bits, is looked up in the same sorted chunk array: one vectorised ``searchsorted`` per (chunk,
mask) over a block of rows, the hits expanded to candidate pairs, then verified on both hashes
with XOR and popcount. Only the hash with the fewer probes is probed, as in a search. Each pair
is kept once (lower row first); the answer is exact.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from imagewatchd.hashchunks import (
    _CHUNKS,
    _TAG_SHIFT,
    _chunk_pairs,
    _Entries,
    _masks,
    _probe_count,
    _radii,
    _ranges,
)
from imagewatchd.hashindex import HammingIndex, _Main

__all__ = ["cross_pairs", "near_pairs"]

BLOCK = 1 << 18  # rows looked up per searchsorted call: bounds the candidates held at once
PROBE_COST = 16  # a probe (a searchsorted over a block) costs about this many pair checks
Pairs = tuple[NDArray[np.int64], NDArray[np.int64]]
Sides = tuple[NDArray[np.int64], NDArray[np.uint64], NDArray[np.uint64]]  # keys, dHashes, pHashes
SMALL_SIDE = 64  # rows compared with every row of the other side rather than probed


def near_pairs(index: HammingIndex, max_dhash: int, max_phash: int) -> Pairs:
    """(keys, other keys): every pair of live entries whose dHashes are within ``max_dhash``
    and pHashes within ``max_phash`` bits, each pair once, sorted."""
    if max_dhash < 0 or max_phash < 0:
        empty = np.zeros(0, np.int64)
        return empty, empty.copy()
    max_dhash, max_phash = min(max_dhash, 64), min(max_phash, 64)
    main, alive = index.merged()
    if _probe_count(min(max_dhash, max_phash)) * PROBE_COST >= len(alive):
        return _keys(main, _brute_force(main, alive, max_dhash, max_phash))
    probed = int(_probe_count(max_phash) <= _probe_count(max_dhash))  # 0 dHash, 1 pHash
    radii = _radii(max_phash if probed else max_dhash)
    found = [np.zeros(0, np.int64)]
    for chunk, ((_, width), radius) in enumerate(zip(_CHUNKS, radii, strict=True)):
        tag = probed * len(_CHUNKS) + chunk
        low, high = np.searchsorted(main.chunk_values, [tag << _TAG_SHIFT, (tag + 1) << _TAG_SHIFT])
        values, rows = main.chunk_values[low:high], main.chunk_rows[low:high]
        for mask in _masks(width, radius).tolist():
            for start in range(0, len(values), BLOCK):
                block = slice(start, start + BLOCK)
                pairs = _candidates(values, rows, block, np.uint32(mask))
                found.append(_verified(main, alive, pairs, max_dhash, max_phash))
    return _keys(main, np.unique(np.concatenate(found)))


def _keys(main: _Main, packed: NDArray[np.int64]) -> Pairs:
    return main.entries.keys[packed >> 32], main.entries.keys[packed & 0xFFFFFFFF]


def _brute_force(
    main: _Main, alive: NDArray[np.bool_], max_dhash: int, max_phash: int
) -> NDArray[np.int64]:
    """Every pair compared, a block of rows against all others: when probing costs more."""
    rows = np.flatnonzero(alive)
    step = max(1, BLOCK // max(1, len(rows)))
    found = [np.zeros(0, np.int64)]
    for start in range(0, len(rows), step):
        own = np.repeat(rows[start : start + step], len(rows))
        other = np.tile(rows, min(step, len(rows) - start))
        found.append(_verified(main, alive, (own, other), max_dhash, max_phash))
    return np.concatenate(found)


def _candidates(
    values: NDArray[np.uint32],
    rows: NDArray[np.int32],
    block: slice,
    mask: np.uint32,
) -> tuple[NDArray[np.intp], NDArray[np.intp]]:
    """(row, other row) of every pair whose chunk values differ by exactly ``mask``."""
    wanted = values[block] ^ mask
    starts = np.searchsorted(values, wanted)
    ends = np.searchsorted(values, wanted, side="right")
    counts = ends - starts
    positions = _ranges(starts, ends)
    own = np.repeat(rows[block].astype(np.intp), counts)
    return own, rows[positions].astype(np.intp)


def _verified(
    main: _Main,
    alive: NDArray[np.bool_],
    pairs: tuple[NDArray[np.intp], NDArray[np.intp]],
    max_dhash: int,
    max_phash: int,
) -> NDArray[np.int64]:
    """The pairs (lower row first, both alive, both hashes near), packed ``row << 32 | other``."""
    own, other = pairs
    keep = (own < other) & alive[own] & alive[other]
    own, other = own[keep], other[keep]
    dhashes, phashes = main.entries.dhashes, main.entries.phashes
    keep = np.bitwise_count(dhashes[own] ^ dhashes[other]) <= max_dhash
    keep &= np.bitwise_count(phashes[own] ^ phashes[other]) <= max_phash
    packed: NDArray[np.int64] = (own[keep].astype(np.int64) << 32) | other[keep]
    return packed


def cross_pairs(first: Sides, second: Sides, max_dhash: int, max_phash: int) -> Pairs:
    """(keys of ``first``, keys of ``second``): every pair of one row of each, given as
    (keys, dHashes, pHashes) arrays, whose dHashes are within ``max_dhash`` and pHashes within
    ``max_phash`` bits, sorted. The larger side's chunks are sorted; the smaller side's probe
    values are looked up in them (one ``searchsorted`` per chunk and mask); a small side is
    compared with every row instead. Keys may repeat: each row counts."""
    if max_dhash < 0 or max_phash < 0 or not len(first[0]) or not len(second[0]):
        empty = np.zeros(0, np.int64)
        return empty, empty.copy()
    swapped = len(first[0]) > len(second[0])
    small, large = (second, first) if swapped else (first, second)
    probe, index = _rows_of(small), _rows_of(large)
    if len(probe.keys) <= SMALL_SIDE:
        found = _across_all(probe, index, min(max_dhash, 64), min(max_phash, 64))
    else:
        found = _across_chunks(probe, index, min(max_dhash, 64), min(max_phash, 64))
    found = np.unique(found)
    own = small[0][found >> 32].astype(np.int64)
    other = large[0][found & 0xFFFFFFFF].astype(np.int64)
    return (other, own) if swapped else (own, other)


def _rows_of(side: Sides) -> _Entries:
    """The side with its row numbers as keys (keys may repeat; rows do not)."""
    keys, dhashes, phashes = side
    rows = np.arange(len(keys), dtype=np.int64)
    return _Entries(
        rows, dhashes.astype(np.uint64, copy=False), phashes.astype(np.uint64, copy=False)
    )


def _across_all(
    probe: _Entries, index: _Entries, max_dhash: int, max_phash: int
) -> NDArray[np.int64]:
    found = [np.zeros(0, np.int64)]
    for row in range(len(probe.keys)):
        near = np.bitwise_count(index.dhashes ^ probe.dhashes[row]) <= max_dhash
        near &= np.bitwise_count(index.phashes ^ probe.phashes[row]) <= max_phash
        found.append((np.int64(row) << 32) | np.flatnonzero(near).astype(np.int64))
    return np.concatenate(found)


def _across_chunks(
    probe: _Entries, index: _Entries, max_dhash: int, max_phash: int
) -> NDArray[np.int64]:
    """Multi-index hashing across two sets: the probe rows' chunk values, XORed with each mask
    within the chunk's radius, looked up among the index rows' sorted chunk values."""
    values, rows = _chunk_pairs(index, 0)
    probed = int(_probe_count(max_phash) <= _probe_count(max_dhash))  # 0 dHash, 1 pHash
    hashes = probe.phashes if probed else probe.dhashes
    radii = _radii(max_phash if probed else max_dhash)
    found = [np.zeros(0, np.int64)]
    for chunk, ((shift, width), radius) in enumerate(zip(_CHUNKS, radii, strict=True)):
        tag = probed * len(_CHUNKS) + chunk
        own = ((hashes >> np.uint64(shift)) & np.uint64((1 << width) - 1)).astype(np.uint32)
        own |= np.uint32(tag << _TAG_SHIFT)
        low, high = np.searchsorted(values, [tag << _TAG_SHIFT, (tag + 1) << _TAG_SHIFT])
        tagged, tagged_rows = values[low:high], rows[low:high]
        for mask in _masks(width, radius).tolist():
            for start in range(0, len(own), BLOCK):
                wanted = own[start : start + BLOCK] ^ np.uint32(mask)
                starts = np.searchsorted(tagged, wanted)
                ends = np.searchsorted(tagged, wanted, side="right")
                mine = np.repeat(np.arange(start, start + len(wanted)), ends - starts)
                theirs = tagged_rows[_ranges(starts, ends)].astype(np.intp)
                near = np.bitwise_count(probe.dhashes[mine] ^ index.dhashes[theirs]) <= max_dhash
                near &= np.bitwise_count(probe.phashes[mine] ^ index.phashes[theirs]) <= max_phash
                found.append((mine[near].astype(np.int64) << 32) | theirs[near])
    return np.concatenate(found)
