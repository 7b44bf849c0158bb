"""The Hamming index answers exactly what a brute-force scan answers, under any edit sequence."""

from __future__ import annotations

import itertools
import random
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from imagewatchd import hashindex
from imagewatchd.hashindex import HammingIndex, hamming

Entry = tuple[int, int, int]  # key, dhash, phash
Edit = tuple[str, list[Entry]]  # ("add" | "add_many" | "remove", entries); remove uses keys only
Model = dict[int, tuple[int, int]]
TOP = 2**64 - 1
RELAXED = settings(
    max_examples=50, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


class SmallIndex(HammingIndex):
    """Merges its recent buffer every few entries, so that short tests cross many merges."""

    recent_capacity = 8


def brute_force(model: Model, dhash: int, phash: int, max_d: int, max_p: int) -> list[Entry]:
    found = [
        (key, (d ^ dhash).bit_count(), (p ^ phash).bit_count()) for key, (d, p) in model.items()
    ]
    near = [f for f in found if f[1] <= max_d and f[2] <= max_p]
    return sorted(near, key=lambda f: (f[1] + f[2], f[0]))


def apply(index: HammingIndex, model: Model, edit: Edit) -> None:
    name, batch = edit
    if name == "remove":
        index.remove(batch[0][0])
        model.pop(batch[0][0], None)
        return
    if name == "add":
        index.add(*batch[0])
    else:
        index.add_many([e[0] for e in batch], [e[1] for e in batch], [e[2] for e in batch])
    model.update((key, (d, p)) for key, d, p in batch)


def flip(value: int, bits: set[int] | list[int]) -> int:
    return value ^ sum(1 << bit for bit in set(bits))


@contextmanager
def forced(path: str) -> Iterator[None]:
    """Force the chunk-probing path (it costs nothing) or the scan path (probes cost too much)."""
    with pytest.MonkeyPatch.context() as patch:
        if path == "probe":
            patch.setattr(hashindex, "_PROBE_COST", 0)
            patch.setattr(hashindex, "_CANDIDATE_COST", 0)
        elif path == "scan":
            patch.setattr(hashindex, "_PROBE_COST", 2**62)
        yield


@pytest.fixture(params=["auto", "probe", "scan"])
def search_path(request: pytest.FixtureRequest) -> Iterator[str]:
    with forced(request.param):
        yield str(request.param)


CENTRES = (0, TOP, 0x0123_4567_89AB_CDEF, 0xF0F0_F0F0_0000_FFFF)
bit_sets = st.sets(st.integers(0, 63), max_size=14)
# Mostly hashes clustered around a few centres (sharing chunks, often equal), some uniform.
hashes = st.one_of(st.builds(flip, st.sampled_from(CENTRES), bit_sets), st.integers(0, TOP))
keys = st.integers(0, 40)
entries = st.tuples(keys, hashes, hashes)
thresholds = st.one_of(st.sampled_from([0, 64]), st.integers(0, 24), st.integers(0, 64))
queries = st.tuples(hashes, hashes, thresholds, thresholds)
# At least one threshold small, so that forced probing stays cheap over many searches.
threshold_pairs = st.one_of(
    st.tuples(thresholds, st.integers(0, 20)), st.tuples(st.integers(0, 20), thresholds)
)
edits = st.one_of(
    st.tuples(st.just("add"), st.lists(entries, min_size=1, max_size=1)),
    st.tuples(st.just("add_many"), st.lists(entries, max_size=30)),
    st.tuples(st.just("remove"), st.lists(keys.map(lambda k: (k, 0, 0)), min_size=1, max_size=1)),
)


@RELAXED
@given(data=st.data())
def test_search_equals_brute_force_after_any_edits(search_path: str, data: st.DataObject) -> None:
    index, model, seen = SmallIndex(), Model(), set[tuple[int, int]]()
    for _ in range(data.draw(st.integers(0, 20), label="steps")):
        apply(index, model, data.draw(edits))
        seen.update(model.values())  # every pair ever stored, including replaced and removed
        near = st.sampled_from(sorted(seen)) if seen else st.tuples(hashes, hashes)
        dhash, phash = data.draw(st.one_of(near, st.tuples(hashes, hashes)), label="near")
        dhash, phash = flip(dhash, data.draw(bit_sets)), flip(phash, data.draw(bit_sets))
        max_d, max_p = data.draw(threshold_pairs)
        expected = brute_force(model, dhash, phash, max_d, max_p)
        assert index.search(dhash, phash, max_d, max_p) == expected, search_path
        assert len(index) == len(model)
    assert all(key in index for key in model)
    assert not any(key in index for key in range(41) if key not in model)


@RELAXED
@given(data=st.data())
def test_search_many_equals_a_brute_force_search_of_each(
    search_path: str, data: st.DataObject
) -> None:
    """Several queries at once (a picture's views and regions), some probing and some scanned
    under ``auto``, in main and in recent, with and without a limit."""
    index, model = SmallIndex(), Model()
    for _ in range(data.draw(st.integers(0, 12), label="steps")):
        apply(index, model, data.draw(edits))
    seen = sorted(model.values()) or [(0, 0)]
    near = st.builds(flip, st.sampled_from([d for d, _ in seen]), bit_sets)
    pair = st.tuples(near, hashes, threshold_pairs).map(lambda q: (q[0], q[1], *q[2]))
    asked = data.draw(st.lists(pair, max_size=9))
    asked += data.draw(st.lists(st.tuples(hashes, hashes, st.integers(-2, 64), thresholds),
                                max_size=3))  # fmt: skip
    limit = data.draw(st.one_of(st.none(), st.integers(0, 5)))
    expected = [brute_force(model, *q)[:limit] if min(q[2:]) >= 0 else [] for q in asked]
    assert index.search_many(asked, limit) == expected, search_path
    assert [index.search(*q, limit) for q in asked] == expected


@RELAXED
@given(
    target=st.tuples(hashes, hashes),
    others=st.lists(entries, min_size=SmallIndex.recent_capacity, max_size=40),
    dbits=st.sets(st.integers(0, 63), max_size=30),
    pbits=st.sets(st.integers(0, 63), max_size=30),
)
def test_an_entry_at_exactly_the_thresholds_is_found(
    search_path: str, target: tuple[int, int], others: list[Entry], dbits: set[int], pbits: set[int]
) -> None:
    index, model = SmallIndex(), Model()
    apply(index, model, ("add_many", [(99, *target), *others]))  # overflows the buffer: merged
    dhash, phash = flip(target[0], dbits), flip(target[1], pbits)
    found = index.search(dhash, phash, len(dbits), len(pbits))
    assert (99, len(dbits), len(pbits)) in found
    assert found == brute_force(model, dhash, phash, len(dbits), len(pbits))


@RELAXED
@given(stored=st.lists(entries, max_size=60), query=queries)
def test_every_stored_hash_finds_itself(
    search_path: str, stored: list[Entry], query: tuple[int, int, int, int]
) -> None:
    index, model = SmallIndex(), Model()
    for entry in stored:
        apply(index, model, ("add", [entry]))
    for key, (dhash, phash) in model.items():
        assert (key, 0, 0) in index.search(dhash, phash, 0, 0)
    assert index.search(*query) == brute_force(model, *query)


@pytest.mark.parametrize("stored", [TOP, 0x0123_4567_89AB_CDEF])
def test_probing_finds_every_split_of_the_distance_over_the_chunks(stored: int) -> None:
    """The tightest cases for the pigeonhole radii: flipped bits spread over the three chunks
    (bits 0-20, 21-41, 42-63), flipping each chunk's top bits."""
    index = HammingIndex()
    filler = HammingIndex.recent_capacity
    index.add_many([1, *range(2, 2 + filler)], [stored, *[0] * filler], [stored, *[0] * filler])
    with forced("probe"):
        for dist in range(10):
            for low, mid in itertools.product(range(dist + 1), repeat=2):
                high = dist - low - mid
                if high < 0:
                    continue
                bits = [*range(21 - low, 21), *range(42 - mid, 42), *range(64 - high, 64)]
                near = flip(stored, bits)
                assert index.search(near, stored, dist, 64)[:1] == [(1, dist, 0)]
                assert index.search(stored, near, 64, dist)[:1] == [(1, 0, dist)]
                assert (1, dist, 0) not in index.search(near, stored, dist - 1, 64)
                assert (1, 0, dist) not in index.search(stored, near, 64, dist - 1)


@given(a=st.integers(0, TOP), b=st.integers(0, TOP), c=st.integers(0, TOP))
def test_hamming_is_a_metric(a: int, b: int, c: int) -> None:
    assert hamming(a, b) == hamming(b, a) == bin(a ^ b).count("1")
    assert (hamming(a, b) == 0) == (a == b)
    assert hamming(a, c) <= hamming(a, b) + hamming(b, c)
    assert 0 <= hamming(a, b) <= 64


def test_entries_survive_merges_removals_and_replacement() -> None:
    index = SmallIndex()
    for key in range(20):  # 20 single adds: two merges of the recent buffer
        index.add(key, key, TOP - key)
    assert index.search(5, TOP - 5, 0, 0) == [(5, 0, 0)]
    index.remove(5)  # a tombstone in the merged part
    index.remove(5)  # absent: no error
    index.add(7, 0xFF, 0xFF)  # replaces key 7
    assert 5 not in index
    assert index.search(5, TOP - 5, 0, 0) == []
    assert index.search(7, TOP - 7, 0, 0) == []
    assert index.search(0xFF, 0xFF, 0, 0) == [(7, 0, 0)]
    assert len(index) == 19


def test_results_are_sorted_by_summed_distance_then_key() -> None:
    index = HammingIndex()
    index.add_many([9, 3, 4, 8, 1], [0b1, 0b1, 0b11, 0, 0b111], [0, 0b1, 0, 0b1, 0])
    assert index.search(0, 0, 64, 64) == [(8, 0, 1), (9, 1, 0), (3, 1, 1), (4, 2, 0), (1, 3, 0)]
    assert index.search(0, 0, 1, 0) == [(9, 1, 0)]
    assert index.search(0, 0, 99, 99) == index.search(0, 0, 64, 64)
    assert index.search(0, 0, -1, 64) == []


def test_add_many_takes_numpy_arrays_and_keeps_the_last_duplicate_key() -> None:
    index = HammingIndex()
    high = np.array([TOP, 2**63, 5], dtype=np.uint64)
    index.add_many(np.array([1, 2, 1], dtype=np.int64), high, high)
    assert len(index) == 2
    assert index.search(5, 5, 0, 0) == [(1, 0, 0)]
    assert index.search(TOP, TOP, 0, 0) == []
    assert index.search(2**63, 2**63, 0, 0) == [(2, 0, 0)]


@pytest.mark.parametrize(
    ("key", "dhash", "phash"), [(1, -1, 0), (1, 0, 2**64), (2**63, 0, 0), (-(2**63) - 1, 0, 0)]
)
def test_out_of_range_values_are_refused(key: int, dhash: int, phash: int) -> None:
    index = HammingIndex()
    with pytest.raises(ValueError, match="64-bit"):
        index.add(key, dhash, phash)
    with pytest.raises(ValueError, match="expected integers"):
        index.add_many([key], [dhash], [phash])
    assert len(index) == 0


def test_add_many_refuses_mismatched_lengths() -> None:
    with pytest.raises(ValueError, match="same length"):
        HammingIndex().add_many([1, 2], [0, 0], [0])


def test_contains_accepts_any_object() -> None:
    index = HammingIndex()
    index.add(-(2**63), 1, 1)
    assert -(2**63) in index
    assert "x" not in index
    assert 2**70 not in index


def test_large_clustered_index_matches_brute_force() -> None:
    rng = np.random.default_rng(7)
    n = 30_000
    dhashes = rng.integers(0, 2**64, n, dtype=np.uint64)
    phashes = rng.integers(0, 2**64, n, dtype=np.uint64)
    dhashes[:3000] = dhashes[0] ^ (np.uint64(1) << rng.integers(0, 64, 3000).astype(np.uint64))
    phashes[:3000] = phashes[0]  # many rows sharing every pHash chunk
    index = HammingIndex()
    index.add_many(np.arange(n), dhashes, phashes)
    for key in rng.integers(0, n, 200).tolist():  # recent, one by one
        index.add(key + n, int(dhashes[key]) ^ 0b1011, int(phashes[key]))
    model = {key: (int(d), int(p)) for key, d, p in zip(range(n), dhashes, phashes, strict=True)}
    model.update(
        (k + n, (int(dhashes[k]) ^ 0b1011, int(phashes[k]))) for k in range(n) if k + n in index
    )
    for row, distance in zip(rng.integers(0, n, 24).tolist(), range(24), strict=True):
        dhash, phash = int(dhashes[row]) ^ 0b110, int(phashes[row]) ^ (1 << 40)
        expected = brute_force(model, dhash, phash, distance % 12, distance % 10)
        assert index.search(dhash, phash, distance % 12, distance % 10) == expected


def test_search_never_sees_a_half_merged_index() -> None:
    index = SmallIndex()
    rnd = random.Random(3)
    index.add_many(range(2000), [rnd.getrandbits(64) for _ in range(2000)], [0] * 2000)
    index.add(-1, 0x5555, 0xAAAA)

    def churn() -> None:  # hundreds of merges, and compactions from the removals
        for key in range(2000, 6000):
            index.add(key, rnd.getrandbits(64), rnd.getrandbits(64))
            index.remove(key - 1000)

    writer = threading.Thread(target=churn)
    writer.start()
    while writer.is_alive():
        assert index.search(0x5555, 0xAAAA, 3, 3) == [(-1, 0, 0)]
        time.sleep(0)  # let the writer take the lock: threading.Lock is not fair
    writer.join()
    assert len(index) == 1000 + 1000 + 1
    assert -1 in index


def test_a_search_during_a_merge_is_exact_and_does_not_wait(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """While a merge builds the new main, another thread searches, removes and adds: its
    searches see every entry (main, the buffer being merged, recent) at once, and its edits
    hold in the merged index."""
    index = SmallIndex()
    rnd = random.Random(5)
    model: Model = {k: (rnd.getrandbits(64), rnd.getrandbits(64)) for k in range(100)}
    index.add_many(list(model), [v[0] for v in model.values()], [v[1] for v in model.values()])
    merging = hashindex._next_main
    seen: list[bool] = []

    def during_merge() -> None:  # runs while the merging thread builds the new main
        index.remove(3)  # in main
        index.remove(104)  # in the buffer being merged
        index.add(200, 0x77, 0x88)  # into a fresh recent buffer
        model.pop(3), model.pop(104)
        model[200] = (0x77, 0x88)
        seen.append(all(index.search(d, p, 0, 0) == [(k, 0, 0)] for k, (d, p) in model.items()))
        seen.append(index.search(*model[5], 64, 64) == brute_force(model, *model[5], 64, 64))

    def next_main(*args: object) -> object:
        helper = threading.Thread(target=during_merge)
        helper.start()
        helper.join(timeout=30)  # the old index held its lock here: the helper would wait
        assert not helper.is_alive(), "a search waited for the merge"
        return merging(*args)  # type: ignore[arg-type]

    for key in range(100, 100 + SmallIndex.recent_capacity):
        model[key] = (rnd.getrandbits(64), rnd.getrandbits(64))
        index.add(key, *model[key])
    monkeypatch.setattr(hashindex, "_next_main", next_main)
    index.add(999, 1, 2)  # recent is full: this add merges
    monkeypatch.setattr(hashindex, "_next_main", merging)
    model[999] = (1, 2)
    assert seen == [True, True]
    assert len(index) == len(model)
    assert 3 not in index and 104 not in index and 200 in index
    for key, (d, p) in model.items():
        assert index.search(d, p, 0, 0) == [(key, 0, 0)]


def test_adds_removes_and_searches_in_threads_stay_exact() -> None:
    """Sustained adds and removals (150 merges) while searches run: every entry added
    before a search began is found, every one removed before it began is not."""
    index = SmallIndex()
    rnd = random.Random(8)
    hashes = {k: (rnd.getrandbits(64), rnd.getrandbits(64)) for k in range(6_200)}
    index.add_many(range(5_000), *zip(*(hashes[k] for k in range(5_000)), strict=True))
    added: list[int] = []  # each appended once its add() has returned; kept if k % 3 != 0
    removed: list[int] = []  # each appended once its remove() has returned; never re-added
    done = threading.Event()

    def churn() -> None:
        try:
            for key in range(5_000, 6_200):
                index.add(key, *hashes[key])
                added.append(key)
                if key % 3 == 0:  # removes key - 600, also a multiple of 3
                    index.remove(key - 600)
                    removed.append(key - 600)
        finally:
            done.set()

    writer = threading.Thread(target=churn)
    writer.start()
    searches = 0
    while not done.is_set():
        kept = [key for key in added[-10:] if key % 3][-3:]
        for key in kept + removed[-3:]:
            found = [k for k, _, _ in index.search(*hashes[key], 0, 0)]
            assert found == ([key] if key % 3 else []), (key, found)
            searches += 1
    writer.join()
    assert searches > 30
    assert len(index) == 6_200 - len(removed)


def test_remove_many_removes_from_main_and_recent() -> None:
    index = HammingIndex()
    index.add_many(list(range(5000)), list(range(5000)), list(range(5000)))  # merged
    index.add(9001, 7, 7)  # recent
    index.remove_many([7, 9001, 10**9])
    assert 7 not in index and 9001 not in index and 8 in index
    assert index.search(7, 7, 0, 0) == [] and len(index) == 4999


def test_a_limit_keeps_the_closest_of_many_ties_included() -> None:
    rng = random.Random(5)
    model: Model = {
        key: (
            flip(0, rng.sample(range(64), rng.randint(0, 6))),
            flip(TOP, rng.sample(range(64), 3)),
        )
        for key in range(300)
    }
    index = HammingIndex()
    index.add_many(list(model), [d for d, _ in model.values()], [p for _, p in model.values()])
    for limit in (1, 8, 40):
        assert index.search(0, TOP, 20, 22, limit) == brute_force(model, 0, TOP, 20, 22)[:limit]
