"""Retroactive bans, below the daemon: the files found, what is handed on, the entries noticed."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from imagewatchd import retroactive
from imagewatchd.config import Config, Matching, Watch
from imagewatchd.incoming import StoredHashes
from imagewatchd.match import Matcher
from imagewatchd.models import (
    Arrival,
    Candidate,
    FileStat,
    Fingerprint,
    ListKind,
    Role,
    SettledFile,
    Thresholds,
)  # fmt: skip
from imagewatchd.rows import NewEntry
from imagewatchd.store import Store

THRESHOLDS = Thresholds(dhash=6, phash=4, pdq=31, pdq_quality=50)
STAT = FileStat(1, 1, 1, 1)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    with Store(tmp_path / "t.db") as s:
        yield s


def _flip(value: int, bits: list[int]) -> int:
    for bit in bits:
        value ^= 1 << bit
    return value


# A stored file or an entry: which of 3 pictures, bits flipped in dHash, pHash and PDQ, flat or
# not, the PDQ's quality (None: no PDQ), and whether its sha256 is the picture's own.
shapes = st.tuples(
    st.integers(0, 2),
    st.lists(st.integers(0, 63), max_size=8),
    st.lists(st.integers(0, 63), max_size=6),
    st.lists(st.integers(0, 255), max_size=40),
    st.booleans(),
    st.one_of(st.none(), st.integers(0, 100)),
    st.booleans(),
)
Shape = tuple[int, list[int], list[int], list[int], bool, int | None, bool]
BASES = [(0x0F0F_0F0F_0F0F_0F0F * (n + 1)) & (2**64 - 1) for n in range(3)]
PDQS = [int.from_bytes(bytes([n * 40 + 7]) * 32, "big") for n in range(3)]


def _fp(shape: Shape, n: int) -> Fingerprint:
    pic, dbits, pbits, qbits, flat, quality, same = shape
    sha = f"{pic:064x}" if same else f"{1000 + n:064x}"
    pdq = None if quality is None else _flip(PDQS[pic], qbits)
    return Fingerprint(sha, _flip(BASES[pic], dbits), _flip(~BASES[pic] & (2**64 - 1), pbits),
                       8, 8, "PNG", flat, pdq, quality or 0)  # fmt: skip


AT_THRESHOLDS: list[
    Shape
] = [  # dHash 6/7 bits off, pHash 4/5, PDQ 31/32; a flat file by its bytes only
    (0, list(range(6)), list(range(4)), [], False, None, False),
    (0, list(range(7)), list(range(4)), [], False, None, False),
    (0, list(range(6)), list(range(5)), [], False, None, False),
    (1, [9] * 2, [], list(range(31)), False, 50, False),
    (1, list(range(20)), [], list(range(31)), False, 50, False),
    (1, list(range(20)), [], list(range(32)), False, 50, False),
    (1, list(range(20)), [], list(range(10)), False, 49, False),
    (2, [], [], [], True, None, False),
    (2, [], [], [], True, None, True),
]
PICTURES: list[Shape] = [(n, [], [], [], False, 90, True) for n in range(3)]


@settings(max_examples=60, deadline=None)
@given(st.lists(shapes, min_size=1, max_size=6), st.lists(shapes, min_size=1, max_size=4))
@example(AT_THRESHOLDS, PICTURES)
@example(PICTURES, AT_THRESHOLDS)
def test_the_files_found_are_those_the_live_rule_matches(
    files: list[Shape], entries: list[Shape]
) -> None:
    with tempfile.TemporaryDirectory() as tmp, Store(Path(tmp) / "t.db") as store:
        old = store.create_list("old", ListKind.BLOCK, "", 1.0)
        store.add_entries(old, [NewEntry("f" * 64, 1, 2)], 1.0)  # an older ban: not reported
        fps = {}
        for n, shape in enumerate(files):
            fps[store.save_file(f"/in/{n}", STAT, Role.INCOMING, _fp(shape, n), 1.0)] = _fp(
                shape, n
            )
        new = store.create_list("new", ListKind.BLOCK, "", 1.0)
        added, _ = store.add_entries(new, [_entry(_fp(s, 100 + n)) for n, s in
                                           enumerate(entries)], 1.0)  # fmt: skip
        found = {hit.row.id: set(hit.entries) for hit in
                 retroactive.find(store, THRESHOLDS, added)}  # fmt: skip
        live = Matcher(store, THRESHOLDS)
        live.refresh_entries()
        expected = {}
        for file_id, fp in fps.items():
            ids = {m.entry_id for m in live.list_matches(fp)} & set(added)
            if ids:
                expected[file_id] = ids
        assert found == expected


def _entry(fp: Fingerprint) -> NewEntry:
    return NewEntry(fp.sha256, fp.dhash, fp.phash, flat=fp.flat, pdq=fp.pdq,
                    pdq_quality=fp.pdq_quality if fp.pdq is not None else None)  # fmt: skip


def test_library_files_allow_entries_and_disabled_entries_reach_nothing(store: Store) -> None:
    fp = _fp((0, [], [], [], False, 80, True), 0)
    store.save_file("/lib/a", STAT, Role.LIBRARY, fp, 1.0)
    allow = store.create_list("ok", ListKind.ALLOW, "", 1.0)
    block = store.create_list("ban", ListKind.BLOCK, "", 1.0)
    (allowed,), _ = store.add_entries(allow, [_entry(fp)], 1.0)
    (banned,), _ = store.add_entries(block, [_entry(fp)], 1.0)
    assert retroactive.find(store, THRESHOLDS, [allowed, banned]) == []
    incoming = store.save_file("/in/a", STAT, Role.INCOMING, fp, 1.0)
    assert [h.row.id for h in retroactive.find(store, THRESHOLDS, [allowed, banned])] == [incoming]
    store.set_entries_enabled([banned], False)
    assert retroactive.find(store, THRESHOLDS, [allowed, banned]) == []


def test_many_new_entries_find_the_same_files_through_an_index(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    fps = [_fp((n % 3, [n % 64], [], [n], False, 80, False), n) for n in range(30)]
    for n, fp in enumerate(fps):
        store.save_file(f"/in/{n}", STAT, Role.INCOMING, fp, 1.0)
    block = store.create_list("ban", ListKind.BLOCK, "", 1.0)
    near, _ = store.add_entries(block, [NewEntry(None, fp.dhash, fp.phash) for fp in fps[:5]], 1.0)
    pdq_only = [NewEntry(None, None, None, pdq=fp.pdq, pdq_quality=80) for fp in fps[:5]]
    by_pdq, _ = store.add_entries(block, pdq_only, 1.0)
    looped = [retroactive.find(store, THRESHOLDS, ids) for ids in (near, by_pdq)]
    assert [len(hits) for hits in looped] == [30, 30]  # every file is near one of 3 pictures
    monkeypatch.setattr(retroactive, "LOOP_LIMIT", 1)
    assert [retroactive.find(store, THRESHOLDS, ids) for ids in (near, by_pdq)] == looped


def test_a_hit_is_handed_on_as_it_is_or_to_be_read_again(tmp_path: Path, store: Store) -> None:
    uploads, library = tmp_path / "uploads", tmp_path / "library"
    for folder in (uploads / "deep", library):
        folder.mkdir(parents=True)
    config = Config("test", matching=Matching(), watches=(
        Watch(library), Watch(uploads, Role.INCOMING), Watch(uploads / "deep", Role.INCOMING),
    ))  # fmt: skip
    fp = _fp((0, [], [], [], False, None, True), 0)
    same, stale, gone = uploads / "deep" / "same.jpg", uploads / "stale.jpg", uploads / "gone"
    for path in (same, stale):
        path.write_bytes(b"x")
    recorded = FileStat.of(os.lstat(same))
    store.save_file(str(same), recorded, Role.INCOMING, fp, 1.0)
    store.save_file(str(stale), STAT, Role.INCOMING, fp, 1.0)
    store.save_file(str(gone), STAT, Role.INCOMING, fp, 1.0)
    store.save_file(str(library / "x"), STAT, Role.INCOMING, fp, 1.0)  # a former upload dir
    rows = {row.path: row for row in store.incoming_files_by_sha256([fp.sha256])}
    offers = {p: retroactive.offer(config, retroactive.Hit(r, (7,))) for p, r in rows.items()}
    assert offers == {
        str(same): SettledFile(str(same), 2, recorded, retro=(7,)),
        str(stale): Candidate(str(stale), 1, Arrival.SCAN),
        str(gone): None,
        str(library / "x"): None,
    }


def test_new_and_re_enabled_block_entries_are_noticed(store: Store) -> None:
    block = store.create_list("ban", ListKind.BLOCK, "", 1.0)
    allow = store.create_list("ok", ListKind.ALLOW, "", 1.0)
    (first,), _ = store.add_entries(block, [NewEntry("a" * 64, None, None)], 1.0)
    bans = retroactive.NewBans(store, THRESHOLDS.pdq_quality)
    assert bans.look() == []
    (second,), _ = store.add_entries(block, [NewEntry("b" * 64, None, None)], 1.0)
    store.add_entries(allow, [NewEntry("c" * 64, None, None)], 1.0)
    assert bans.look() == [second]
    assert bans.look() == []
    store.set_entries_enabled([first], False)
    assert bans.look() == []
    store.set_entries_enabled([first], True)
    (third,), _ = store.add_entries(block, [NewEntry("d" * 64, None, None)], 1.0)
    assert bans.look() == [first, third]
    batches = [bans.pending.get_nowait() for _ in range(bans.pending.qsize())]
    assert [b.ids for b in batches if b.ids] == [(second,), (first, third)]


def test_a_session_resumes_where_the_last_one_recorded(store: Store) -> None:
    """Entries added or enabled again while no daemon ran are found by the next one's look."""
    block = store.create_list("ban", ListKind.BLOCK, "", 1.0)
    (first,), _ = store.add_entries(block, [NewEntry("a" * 64, None, None)], 1.0)
    store.set_entries_enabled([first], False)
    assert store.retro_state() is None  # no daemon yet: the first one starts from now
    bans = retroactive.NewBans(store, THRESHOLDS.pdq_quality)
    assert store.retro_state() == (first, {first})  # kept at once, however short the session
    assert bans.look() == []
    (second,), _ = store.add_entries(block, [NewEntry("b" * 64, None, None)], 1.0)
    store.set_entries_enabled([first], True)
    dry = retroactive.NewBans(store, THRESHOLDS.pdq_quality, keep=False)
    assert dry.look() == [first, second]
    dry.record(store, dry.pending.get_nowait())  # a dry run keeps nothing
    assert store.retro_state() == (first, {first})
    bans = retroactive.NewBans(store, THRESHOLDS.pdq_quality)
    assert bans.look() == [first, second]
    bans.record(store, bans.pending.get_nowait())
    assert store.retro_state() == (second, set())
    assert retroactive.NewBans(store, THRESHOLDS.pdq_quality).look() == []


def test_the_daemons_copy_follows_new_rows_and_saves_and_is_checked(store: Store) -> None:
    pictures = [_fp((n, [], [], [], False, 80, True), n) for n in range(3)]
    first = store.save_file("/in/0", STAT, Role.INCOMING, pictures[0], 1.0)
    stored = StoredHashes(THRESHOLDS.pdq_quality)
    assert stored.columns(store).ids.tolist() == [first]
    second = store.save_file("/in/1", STAT, Role.INCOMING, pictures[1], 1.0)  # another process
    # the daemon's pipeline changes the first file in place: same row, the third picture
    store.save_file("/in/0", STAT, Role.INCOMING, pictures[2], 1.0)
    stored.saved(first, Role.INCOMING, pictures[2])
    stored.saved(99, Role.LIBRARY, pictures[0])  # a library file: not kept
    columns = stored.columns(store)
    assert sorted(columns.ids.tolist()) == [first, first, second]  # a stale copy stays...
    block = store.create_list("ban", ListKind.BLOCK, "", 1.0)
    added, _ = store.add_entries(block, [_entry(other_bytes(fp)) for fp in pictures], 1.0)
    hits = retroactive.find(store, THRESHOLDS, added, columns)
    assert [(h.row.id, h.entries) for h in hits] == [(first, (added[2],)), (second, (added[1],))]
    latest = columns.latest()  # what an index of them holds: each id once, its last hashes
    assert latest.ids.tolist() == [second, first]
    assert latest.dhashes.tolist() == [pictures[1].dhash, pictures[2].dhash]
    store.forget_files([second])  # ...and a forgotten row is no hit
    assert [h.row.id for h in retroactive.find(store, THRESHOLDS, added, columns)] == [first]


def other_bytes(fp: Fingerprint) -> Fingerprint:
    """The same hashes, other bytes: a near match only."""
    return replace(fp, sha256="e" * 64)
