"""In-memory near-match index over (dHash, pHash) pairs of 64-bit hashes: multi-index hashing.

A match needs both hashes within their thresholds. **main** holds exact-sized arrays of keys,
hashes and an ``alive`` mask, plus a *key index* (live keys sorted, with their rows) and a
*chunk index*: each hash is cut into three chunks (21, 21 and 22 bits), and the six tagged
(hash, chunk) values of every row are kept in one sorted ``uint32`` array, with their rows
alongside. **recent** is a small buffer scanned linearly; when full, it is merged into main by
sorted insertion (linear copies, no re-sort), LSM style. Removals are tombstones; once a
quarter of main is dead, the next merge rebuilds it from the live rows.

A merge does not hold searches (2.4 s at 10M rows): under the lock, the full buffer becomes
**frozen** (still scanned linearly by searches) and a fresh one takes adds; the new main is
built outside the lock from main's arrays, which only merges replace; then, under the lock,
the removals made meanwhile are applied to it and it replaces main and frozen at once. One
merge runs at a time; an add that finds recent full while a merge runs waits for it.

Search: if a hash is within ``d`` bits of the query, then by pigeonhole one of its chunks is
within about ``d / 3`` bits of the query's chunk (exact radii in ``_radii``). One sorted
``searchsorted`` call finds every chunk value within those radii, for the hash with the tighter
threshold; the candidate rows are verified on both hashes with XOR and popcount. When probing
would cost more than a linear scan of main (large thresholds, small or clustered indexes), main
is scanned instead. Either way the answer is exact. Every method reads and swaps the parts
under one lock, so a search never sees a half-merged index.
"""

from __future__ import annotations

import math
import operator
import sys
import threading
from collections.abc import Sequence
from dataclasses import dataclass, replace
from functools import lru_cache
from typing import Any, ClassVar, Final, NamedTuple, SupportsIndex

import numpy as np
from numpy.typing import NDArray

__all__ = ["HammingIndex", "hamming"]

Rows = NDArray[np.intp]
Ints = Sequence[int] | NDArray[np.integer[Any]]

_CHUNKS: Final = ((0, 21), (21, 21), (42, 22))  # (shift, width) of each chunk of a hash
_TAG_SHIFT: Final = 22  # a chunk value is tagged with (hash number * 3 + chunk number) << 22
# Cost model, in units of one row of a linear scan (measured: ~2 ns a row, ~200 ns a probe).
_PROBE_COST: Final = 100
_CANDIDATE_COST: Final = 8
_DEAD_FRACTION: Final = 0.25


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
def _probe_count(distance: int) -> int:
    """How many chunk values a search within ``distance`` probes, over all chunks."""
    radii = zip(_CHUNKS, _radii(distance), strict=True)
    return sum(math.comb(width, k) for (_, width), radius in radii for k in range(radius + 1))


def _key(key: object) -> int | None:
    """The key as an int, or None if it is not a signed 64-bit integer."""
    if not isinstance(key, SupportsIndex):
        return None
    value = operator.index(key)
    return value if -(1 << 63) <= value < 1 << 63 else None


def _hash(value: int) -> int:
    value = operator.index(value)
    if not 0 <= value < 1 << 64:
        raise ValueError(f"hash {value!r} is not an unsigned 64-bit integer")
    return value


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
        """Every tagged chunk value within the radius of the probed hash's chunks, sorted."""
        value = int(self.phash if self.probed else self.dhash)
        radii = _radii(self.max_phash if self.probed else self.max_dhash)
        parts = []
        for chunk, ((shift, width), radius) in enumerate(zip(_CHUNKS, radii, strict=True)):
            tag = (self.probed * len(_CHUNKS) + chunk) << _TAG_SHIFT
            centre = (value >> shift) & ((1 << width) - 1)
            parts.append(_masks(width, radius) ^ np.uint32(tag | centre))
        return np.sort(np.concatenate(parts))

    def near(self, entries: _Entries, rows: Rows) -> Rows:
        """Those of ``rows`` whose hashes are both within their thresholds."""
        near = np.bitwise_count(entries.dhashes[rows] ^ self.dhash) <= self.max_dhash
        near &= np.bitwise_count(entries.phashes[rows] ^ self.phash) <= self.max_phash
        found: Rows = rows[near]
        return found

    def scan(self, entries: _Entries, alive: NDArray[np.bool_]) -> Rows:
        """The live rows whose hashes are both within their thresholds, by a linear scan."""
        near = np.bitwise_count(entries.dhashes ^ self.dhash) <= self.max_dhash
        return self.near(entries, np.flatnonzero(near & alive))


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


@dataclass(slots=True)
class _Main:
    """The merged, indexed entries. Only ``alive`` and ``dead`` change after construction."""

    entries: _Entries
    alive: NDArray[np.bool_]
    sorted_keys: NDArray[np.int64]  # the keys live at the last merge, sorted
    key_rows: NDArray[np.int32]  # the row of each sorted key
    chunk_values: NDArray[np.uint32]  # tagged chunk values of every row, sorted
    chunk_rows: NDArray[np.int32]  # the row of each chunk value
    dead: int = 0

    @classmethod
    def build(cls, entries: _Entries) -> _Main:
        """Index entries with unique keys from scratch."""
        entries = entries.take(np.argsort(entries.keys, kind="stable"))
        key_rows = np.arange(len(entries.keys), dtype=np.int32)
        alive = np.ones(len(entries.keys), np.bool_)
        return cls(entries, alive, entries.keys.copy(), key_rows, *_chunk_pairs(entries, 0))

    def merged(self, new: _Entries) -> _Main:
        """A new main holding ``new`` too (none of their keys may be live here)."""
        first_row = len(self.entries.keys)
        live = self.alive[self.key_rows]
        sorted_keys, key_rows = self.sorted_keys[live], self.key_rows[live]
        by_key = np.argsort(new.keys)
        at = np.searchsorted(sorted_keys, new.keys[by_key])
        values, rows = _chunk_pairs(new, first_row)
        at_chunk = np.searchsorted(self.chunk_values, values)
        return _Main(
            entries=self.entries.plus(new),
            alive=np.concatenate((self.alive, np.ones(len(new.keys), np.bool_))),
            sorted_keys=np.insert(sorted_keys, at, new.keys[by_key]),
            key_rows=np.insert(key_rows, at, by_key + first_row),
            chunk_values=np.insert(self.chunk_values, at_chunk, values),
            chunk_rows=np.insert(self.chunk_rows, at_chunk, rows),
            dead=self.dead,
        )

    def __len__(self) -> int:
        return len(self.entries.keys) - self.dead

    def live(self) -> _Entries:
        return self.entries.take(self.alive)

    def live_rows(self, keys: NDArray[np.int64]) -> Rows:
        """The live rows holding any of ``keys``."""
        at = np.searchsorted(self.sorted_keys, keys)
        found = at < len(self.sorted_keys)
        found[found] = self.sorted_keys[at[found]] == keys[found]
        rows = self.key_rows[at[found]].astype(np.intp)
        live: Rows = rows[self.alive[rows]]
        return live

    def kill(self, keys: NDArray[np.int64]) -> None:
        """Tombstone the live rows holding any of ``keys``."""
        rows = np.unique(self.live_rows(keys))
        self.alive[rows] = False
        self.dead += len(rows)

    def search(self, query: _Query) -> Rows:
        """The live rows whose hashes are both within their thresholds, in row order."""
        candidates = self._candidates(query) if self._probing_pays(query) else None
        if candidates is None:
            return query.scan(self.entries, self.alive)
        return np.unique(query.near(self.entries, candidates[self.alive[candidates]]))

    def _probing_pays(self, query: _Query) -> bool:
        rows = len(self.entries.keys)
        expected = query.probe_count * rows / (1 << _CHUNKS[0][1])
        return query.probe_count * _PROBE_COST + expected * _CANDIDATE_COST < rows

    def _candidates(self, query: _Query) -> Rows | None:
        """Rows with a chunk within the radius; None if there are too many to beat a scan."""
        probes = query.probes()
        bounds = np.searchsorted(self.chunk_values, np.concatenate((probes, probes + 1)))
        positions = _ranges(bounds[: len(probes)], bounds[len(probes) :])
        if len(positions) * _CANDIDATE_COST > len(self.entries.keys):
            return None
        return self.chunk_rows[positions].astype(np.intp)

    @property
    def nbytes(self) -> int:
        arrays = (*self.entries, self.alive, self.sorted_keys, self.key_rows)
        return sum(a.nbytes for a in (*arrays, self.chunk_values, self.chunk_rows))


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


class HammingIndex:
    """Entries are (key, dhash, phash); key is an int id chosen by the caller (e.g. a row id),
    unique. Hashes are unsigned 64-bit ints, keys signed 64-bit ints. Thread-safe."""

    recent_capacity: ClassVar[int] = 4096
    """Entries added one at a time are scanned linearly until this many are merged."""

    def __init__(self) -> None:
        self._lock = threading.Lock()  # guards the parts below; held only briefly
        self._merging = threading.Lock()  # one merge at a time; held while one is built
        self._main = _Main.build(_Entries.zeros(0))
        self._recent = _Recent(self.recent_capacity)
        self._frozen: _Frozen | None = None  # the entries being merged, while a merge runs
        self._killed: list[NDArray[np.int64]] = []  # keys removed while a merge runs

    def add(self, key: int, dhash: int, phash: int) -> None:
        """Add an entry, replacing any entry with the same key."""
        checked, dhash, phash = _key(key), _hash(dhash), _hash(phash)
        if checked is None:
            raise ValueError(f"key {key!r} is not a signed 64-bit integer")
        while True:
            with self._lock:
                if self._recent.free():
                    self._discard(checked)
                    self._recent.append(checked, dhash, phash)
                    return
            self._merge_in()

    def add_many(self, keys: Ints, dhashes: Ints, phashes: Ints) -> None:
        """Add entries in bulk (lists or numpy arrays), replacing any with the same keys."""
        batch = _Entries.of(keys, dhashes, phashes)
        with self._lock:
            if len(batch.keys) <= self._recent.free():
                for key, dhash, phash in zip(*(a.tolist() for a in batch), strict=True):
                    self._discard(key)
                    self._recent.append(key, dhash, phash)
                return
        self._merge_in(batch)

    def remove(self, key: int) -> None:
        """Remove the entry with this key, if there is one."""
        checked = _key(key)
        if checked is not None:
            with self._lock:
                self._discard(checked)

    def search(
        self, dhash: int, phash: int, max_dhash: int, max_phash: int
    ) -> list[tuple[int, int, int]]:
        """Every entry whose dHash and pHash are within ``max_dhash`` and ``max_phash`` of the
        query, as (key, dHash distance, pHash distance), by summed distance, then key."""
        max_dhash, max_phash = operator.index(max_dhash), operator.index(max_phash)
        if max_dhash < 0 or max_phash < 0:
            return []
        query = _Query(_hash(dhash), _hash(phash), min(max_dhash, 64), min(max_phash, 64))
        with self._lock:
            main, buffers = self._main, [self._recent.used()]
            if self._frozen is not None:
                buffers.append(self._frozen.used())
            found = main.entries.take(main.search(query))
            for used, alive in buffers:
                found = found.plus(used.take(query.scan(used, alive)))
        ddist = np.bitwise_count(found.dhashes ^ query.dhash).astype(np.int64)
        pdist = np.bitwise_count(found.phashes ^ query.phash).astype(np.int64)
        order = np.lexsort((found.keys, ddist + pdist))
        keys, ddist, pdist = found.keys[order], ddist[order], pdist[order]
        return list(zip(keys.tolist(), ddist.tolist(), pdist.tolist(), strict=True))

    def __len__(self) -> int:
        with self._lock:
            frozen = 0 if self._frozen is None else len(self._frozen)
            return len(self._main) + frozen + len(self._recent.slots)

    def __contains__(self, key: object) -> bool:
        checked = _key(key)
        if checked is None:
            return False
        with self._lock:
            if checked in self._recent.slots:
                return True
            if self._frozen is not None and checked in self._frozen:
                return True
            return len(self._main.live_rows(np.array([checked], np.int64))) > 0

    def merged(self) -> tuple[_Main, NDArray[np.bool_]]:
        """Every live entry in one indexed main (recent merged into it), and a copy of its
        ``alive`` mask: what a whole-index join (``hashjoin``) reads."""
        with self._merging, self._lock:
            used, alive = self._recent.used()
            if self._recent.count:
                self._main = _next_main(self._main, used.take(alive))
                self._recent = _Recent(self.recent_capacity)
            return self._main, self._main.alive.copy()

    def arrays(self) -> dict[str, NDArray[Any]]:
        """The index as named arrays (every live entry, merged and indexed), for a snapshot;
        ``from_arrays`` makes the same index from them, without sorting anything."""
        main, alive = self.merged()
        if not alive.all():
            main = _Main.build(main.live())
        names = ("keys", "dhashes", "phashes")
        fields = ("sorted_keys", "key_rows", "chunk_values", "chunk_rows")
        return {
            **dict(zip(names, main.entries, strict=True)),
            **{f: getattr(main, f) for f in fields},
        }

    @classmethod
    def from_arrays(cls, arrays: dict[str, NDArray[Any]]) -> HammingIndex:
        """The index ``arrays()`` gave (they may be read-only, e.g. memory-mapped: never
        written, only replaced by merges)."""
        index = cls()
        entries = _Entries(arrays["keys"], arrays["dhashes"], arrays["phashes"])
        alive = np.ones(len(entries.keys), np.bool_)
        index._main = _Main(
            entries, alive, sorted_keys=arrays["sorted_keys"], key_rows=arrays["key_rows"],
            chunk_values=arrays["chunk_values"], chunk_rows=arrays["chunk_rows"],
        )  # fmt: skip
        return index

    @property
    def nbytes(self) -> int:
        """Approximate memory held by the index, in bytes."""
        with self._lock:
            frozen = 0 if self._frozen is None else self._frozen.nbytes
            return self._main.nbytes + frozen + self._recent.nbytes

    def _discard(self, key: int) -> None:
        """Remove ``key`` wherever it lives (under the lock); a merge under way learns of it."""
        if self._recent.discard(key):
            return
        if self._frozen is not None:
            self._frozen.discard(key)
            self._killed.append(np.array([key], np.int64))
        self._main.kill(np.array([key], np.int64))

    def _merge_in(self, batch: _Entries | None = None) -> None:
        """Merge the full recent buffer (or it and ``batch``) into a new main, building it
        outside the lock: searches meanwhile read main, the frozen entries and recent."""
        with self._merging:
            with self._lock:
                if batch is None and self._recent.free():
                    return  # another thread merged it meanwhile
                new = self._freeze(batch)
                main = replace(self._main, alive=self._main.alive.copy())
            try:
                merged = _next_main(main, new)
            finally:
                with self._lock:
                    self._killed, killed = [], self._killed  # already applied to main, frozen
            for keys in killed:
                merged.kill(keys)
            with self._lock:
                for keys in self._killed:  # removed while the others were applied
                    merged.kill(keys)
                self._main, self._frozen, self._killed = merged, None, []

    def _freeze(self, batch: _Entries | None) -> _Entries:
        """Under the lock: recent (and what a failed merge left, and ``batch``) becomes the
        frozen entries to merge, and a fresh recent takes adds."""
        parts = [self._recent.used()]
        if self._frozen is not None:  # a merge failed (out of memory?): its entries wait here
            parts.insert(0, self._frozen.used())
        if batch is not None:
            self._main.kill(batch.keys)
            parts = [(used, alive & ~np.isin(used.keys, batch.keys)) for used, alive in parts]
        new = [used.take(alive) for used, alive in parts] + ([] if batch is None else [batch])
        frozen = _Entries(*(np.concatenate(column) for column in zip(*new, strict=True)))
        self._frozen, self._recent = _Frozen(frozen), _Recent(self.recent_capacity)
        return frozen


def _next_main(main: _Main, new: _Entries) -> _Main:
    """A main holding ``main``'s live entries and ``new`` (none of whose keys live in main)."""
    if main.dead > _DEAD_FRACTION * len(main.entries.keys) or len(new.keys) >= len(main):
        return _Main.build(main.live().plus(new))
    return main.merged(new)
