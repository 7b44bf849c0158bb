"""In-memory near-match index over (dHash, pHash) pairs of 64-bit hashes: multi-index hashing.

A match needs both hashes within their thresholds. **main** (``_Main``, here) holds exact-sized
arrays of keys, hashes and an ``alive`` mask, plus a *key index* (live keys sorted, with their
rows) and a *chunk index*: each hash is cut into three chunks, and the six tagged (hash, chunk)
values of every row are kept in one sorted ``uint32`` array, with their rows alongside (the
chunks, the probes and the entries' arrays: ``hashchunks.py``). **recent** is a small buffer
scanned linearly (``hashbuffers.py``); when full, it is merged into main by sorted insertion
(linear copies, no re-sort), LSM style. Removals are tombstones; once a quarter of main is
dead, the next merge rebuilds it from the live rows. ``arrays``/``from_arrays`` give and take
the merged main as named arrays (the on-disk snapshot, ``snapshot.py``).

A merge does not hold searches (2.4 s at 10M rows): under the lock, the full buffer becomes
**frozen** (still scanned linearly by searches) and a fresh one takes adds; the new main is
built outside the lock from main's arrays, which only merges replace; then, under the lock,
the removals made meanwhile are applied to it and it replaces main and frozen at once. One
merge runs at a time; an add that finds recent full while a merge runs waits for it.

Search: one sorted ``searchsorted`` call finds every chunk value within the pigeonhole radii
(``hashchunks._radii``), for the hash with the tighter threshold; the candidate rows are
verified on both hashes with XOR and popcount. When probing would cost more than a linear scan
of main (large thresholds, small or clustered indexes; the cost model below), main is scanned
instead. Either way the answer is exact. ``search_many`` answers several queries (a picture's
views and regions) in one pass: every probe looked up in one ascending ``searchsorted``, the
candidates verified together, the queries that scan scanned together while that is small.
Every method reads and swaps the parts under one lock, so a search never sees a half-merged
index.
"""

from __future__ import annotations

import operator
import threading
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any, ClassVar, Final, SupportsIndex

import numpy as np
from numpy.typing import NDArray

from imagewatchd.hashbuffers import _Frozen, _Recent
from imagewatchd.hashchunks import (
    _CHUNKS,
    Ints,
    Rows,
    _bounds,
    _chunk_pairs,
    _Entries,
    _hits,
    _Query,
    _ranges,
    hamming,
)  # fmt: skip

__all__ = ["HammingIndex", "hamming"]

# Cost model, in units of one row of a linear scan (measured: ~2 ns a row, ~200 ns a probe).
_PROBE_COST: Final = 100
_CANDIDATE_COST: Final = 8
_DEAD_FRACTION: Final = 0.25


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

    def search(self, queries: list[_Query]) -> tuple[Rows, Rows]:
        """(query, row) of every live row whose hashes are both within a query's thresholds:
        the probes of every query that probes looked up in one pass, the others scanned."""
        probing = np.array([self._probing_pays(query) for query in queries], np.bool_)
        chosen = np.flatnonzero(probing)
        found = [(chosen[:0], chosen[:0])]
        if len(chosen):
            labels, rows, left = self._probed([queries[i] for i in chosen.tolist()])
            found[0] = (chosen[labels], rows)
            probing[chosen[left]] = False  # too many candidates: scanned instead
        scanned = np.flatnonzero(~probing)
        if len(scanned):
            each = [queries[i] for i in scanned.tolist()]
            labels, rows = _Query.scan_many(each, self.entries, self.alive)
            found.append((scanned[labels], rows))
        return np.concatenate([f[0] for f in found]), np.concatenate([f[1] for f in found])

    def search_one(self, query: _Query) -> Rows:
        """``search`` of one query (fewer steps): its rows, in row order."""
        if self._probing_pays(query):
            starts, ends = _bounds(self.chunk_values, query.probes())
            positions = _ranges(starts, ends)
            if len(positions) * _CANDIDATE_COST <= len(self.entries.keys):
                rows = self.chunk_rows[positions].astype(np.intp)
                return np.unique(query.near(self.entries, rows[self.alive[rows]]))
        return query.scan(self.entries, self.alive)

    def _probing_pays(self, query: _Query) -> bool:
        rows = len(self.entries.keys)
        expected = query.probe_count * rows / (1 << _CHUNKS[0][1])
        return query.probe_count * _PROBE_COST + expected * _CANDIDATE_COST < rows

    def _probed(self, queries: list[_Query]) -> tuple[Rows, Rows, NDArray[np.bool_]]:
        """(query, row) of the rows the queries' probes find, and the queries left out for
        having too many candidates to beat a scan."""
        every, lengths = _Query.probes_many(queries)
        starts, ends = _bounds(self.chunk_values, every)
        counts = ends - starts
        totals = np.add.reduceat(counts, np.cumsum(lengths) - lengths)
        fine = totals * _CANDIDATE_COST <= len(self.entries.keys)
        of_probe = np.repeat(fine, lengths)
        counts = counts[of_probe]
        labels = np.repeat(np.repeat(np.arange(len(queries)), lengths)[of_probe], counts)
        rows = self.chunk_rows[_ranges(starts[of_probe], ends[of_probe])].astype(np.intp)
        near = self.alive[rows] & _Query.near_many(queries, self.entries, rows, labels)
        pairs = np.unique(labels[near].astype(np.int64) << 32 | rows[near])
        return (pairs >> 32).astype(np.intp), (pairs & 0xFFFFFFFF).astype(np.intp), ~fine

    @property
    def nbytes(self) -> int:
        arrays = (*self.entries, self.alive, self.sorted_keys, self.key_rows)
        return sum(a.nbytes for a in (*arrays, self.chunk_values, self.chunk_rows))


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

    def remove_many(self, keys: Ints) -> None:
        """Remove the entries with these keys, those there are, in one pass over main."""
        wanted = np.unique(np.asarray(keys, dtype=np.int64))
        if not len(wanted):
            return
        with self._lock:
            for key in wanted.tolist():
                self._recent.discard(key)
            if self._frozen is not None:
                frozen = self._frozen
                frozen.alive &= ~np.isin(frozen.entries.keys, wanted)
                self._killed.append(wanted)
            self._main.kill(wanted)

    def search(
        self, dhash: int, phash: int, max_dhash: int, max_phash: int, limit: int | None = None
    ) -> list[tuple[int, int, int]]:
        """Every entry whose dHash and pHash are within ``max_dhash`` and ``max_phash`` of the
        query, as (key, dHash distance, pHash distance), by summed distance, then key; with
        ``limit``, the first ``limit`` of them."""
        query = _checked(dhash, phash, max_dhash, max_phash)
        if query is None:
            return []
        with self._lock:
            main, buffers = self._main, [self._recent.used()]
            if self._frozen is not None:
                buffers.append(self._frozen.used())
            found = main.entries.take(main.search_one(query))
            for used, alive in buffers:
                if len(used.keys):
                    found = found.plus(used.take(query.scan(used, alive)))
        return _hits(np.zeros(len(found.keys), np.intp), found, [query], limit)[0]

    def search_many(
        self, queries: Sequence[tuple[int, int, int, int]], limit: int | None = None
    ) -> list[list[tuple[int, int, int]]]:
        """``search`` for each (dHash, pHash, max dHash, max pHash), in one pass: a picture's
        views and regions (one lock, one lookup of every query's probes)."""
        checked = [_checked(*query) for query in queries]
        built = [query for query in checked if query is not None]
        if not built:
            return [[] for _ in queries]
        with self._lock:
            main, buffers = self._main, [self._recent.used()]
            if self._frozen is not None:
                buffers.append(self._frozen.used())
            labels, rows = main.search(built)
            found = [(labels, main.entries.take(rows))]
            for used, alive in buffers:
                if len(used.keys):
                    labels, rows = _Query.scan_many(built, used, alive)
                    found.append((labels, used.take(rows)))
        labels = np.concatenate([f[0] for f in found])
        answers = iter(_hits(labels, _Entries.joined([f[1] for f in found]), built, limit))
        return [[] if query is None else next(answers) for query in checked]

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
        self._merge_in(_Entries.zeros(0))  # recent merged outside the lock: searches go on
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


def _checked(dhash: int, phash: int, max_dhash: int, max_phash: int) -> _Query | None:
    """The query, None if a threshold is negative (nothing is that close)."""
    max_dhash, max_phash = operator.index(max_dhash), operator.index(max_phash)
    if max_dhash < 0 or max_phash < 0:
        return None
    return _Query(_hash(dhash), _hash(phash), min(max_dhash, 64), min(max_phash, 64))


def _next_main(main: _Main, new: _Entries) -> _Main:
    """A main holding ``main``'s live entries and ``new`` (none of whose keys live in main)."""
    if main.dead > _DEAD_FRACTION * len(main.entries.keys) or len(new.keys) >= len(main):
        return _Main.build(main.live().plus(new))
    return main.merged(new)
