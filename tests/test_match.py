"""Matching: agreeing evidence only, allow lists suppress blocks, flat images never near-match."""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path

import pytest
from PIL import Image

from imagewatchd.fingerprint import fingerprint_bytes
from imagewatchd.hashindex import HammingIndex
from imagewatchd.match import Matcher
from imagewatchd.models import FileStat, Fingerprint, ListKind, Role, Thresholds, VerdictKind
from imagewatchd.rows import NewEntry
from imagewatchd.store import Store
from tests.conftest import photo

THRESHOLDS = Thresholds(dhash=10, phash=10)


def fp_of(img: Image.Image, fmt: str = "PNG", **params: object) -> Fingerprint:
    out = io.BytesIO()
    img.save(out, fmt, **params)
    return fingerprint_bytes(out.getvalue())


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    with Store(tmp_path / "t.db") as s:
        yield s


def entry(fp: Fingerprint, label: str = "") -> NewEntry:
    return NewEntry(fp.sha256, fp.dhash, fp.phash, label=label, flat=fp.flat)


def add_library(store: Store, matcher: Matcher, path: Path, fp: Fingerprint) -> int:
    """A library file: it must exist, since a vanished one is no evidence."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"stands in for the picture")
    file_id = store.save_file(
        str(path), FileStat(1, hash(path) & 0xFFFF, 1, 1), Role.LIBRARY, fp, 1.0
    )
    matcher.add_library_file(file_id, fp)
    return file_id


def test_known_variant_matches_with_its_evidence(store: Store) -> None:
    banned = fp_of(photo(1))
    list_id = store.create_list("banned", ListKind.BLOCK, "", 1.0)
    store.add_entries(list_id, [entry(banned, "cat")], 1.0)
    matcher = Matcher.load(store, THRESHOLDS)
    variant = fp_of(photo(1).resize((320, 240)), "JPEG", quality=60)
    verdict = matcher.match(variant)
    assert verdict.kind is VerdictKind.KNOWN
    (m,) = verdict.matches
    assert (m.list_name, m.label, m.exact) == ("banned", "cat", False)
    assert m.dhash_distance <= THRESHOLDS.dhash and m.phash_distance <= THRESHOLDS.phash
    assert matcher.match(banned).matches[0].exact
    assert matcher.match(fp_of(photo(2))).kind is VerdictKind.CLEAN


def test_one_hash_alone_is_not_enough(store: Store) -> None:
    banned = fp_of(photo(1))
    other = fp_of(photo(2))
    list_id = store.create_list("banned", ListKind.BLOCK, "", 1.0)
    # an entry whose dHash equals the query's but whose pHash is the other picture's
    store.add_entries(list_id, [NewEntry(None, other.dhash, banned.phash)], 1.0)
    matcher = Matcher.load(store, THRESHOLDS)
    assert matcher.match(banned).kind is VerdictKind.CLEAN
    assert matcher.match(other).kind is VerdictKind.CLEAN


def test_allow_list_suppresses_block_matches(store: Store) -> None:
    picture = fp_of(photo(3))
    block = store.create_list("banned", ListKind.BLOCK, "", 1.0)
    allow = store.create_list("fine", ListKind.ALLOW, "", 1.0)
    store.add_entries(block, [entry(picture)], 1.0)
    store.add_entries(allow, [NewEntry(picture.sha256, None, None)], 1.0)
    verdict = Matcher.load(store, THRESHOLDS).match(picture)
    assert verdict.kind is VerdictKind.CLEAN
    assert [m.list_name for m in verdict.allowed_by] == ["fine"]
    assert [m.list_name for m in verdict.suppressed] == ["banned"]


def test_disabled_entries_do_not_match(store: Store) -> None:
    picture = fp_of(photo(3))
    block = store.create_list("banned", ListKind.BLOCK, "", 1.0)
    (entry_id,), _ = store.add_entries(block, [entry(picture)], 1.0)
    store.set_entries_enabled([entry_id], False)
    assert Matcher.load(store, THRESHOLDS).match(picture).kind is VerdictKind.CLEAN


def test_library_duplicates_exclude_the_file_itself(store: Store, tmp_path: Path) -> None:
    matcher = Matcher.load(store, THRESHOLDS)
    original = fp_of(photo(4))
    own = add_library(store, matcher, tmp_path / "lib" / "a.png", original)
    assert matcher.match(original, exclude_file=own).kind is VerdictKind.CLEAN
    copy = fp_of(photo(4).resize((300, 225)), "WEBP", quality=70)
    verdict = matcher.match(copy)
    assert verdict.kind is VerdictKind.DUPLICATE
    assert verdict.matches[0].path == str(tmp_path / "lib" / "a.png")
    # the index is kept in step: a reload sees the same library
    assert Matcher.load(store, THRESHOLDS).match(copy).kind is VerdictKind.DUPLICATE
    # a library file deleted or renamed since it was indexed is no evidence
    (tmp_path / "lib" / "a.png").unlink()
    assert matcher.match(copy).kind is VerdictKind.CLEAN


def test_flat_images_never_match_each_other(store: Store, tmp_path: Path) -> None:
    matcher = Matcher.load(store, THRESHOLDS)
    red = fp_of(Image.new("RGB", (400, 300), "red"))
    blue = fp_of(Image.new("RGB", (500, 200), "blue"))
    assert red.flat and blue.flat
    add_library(store, matcher, tmp_path / "red.png", red)
    block = store.create_list("banned", ListKind.BLOCK, "", 1.0)
    store.add_entries(block, [entry(red)], 1.0)
    assert matcher.refresh_entries()  # the new entry is seen without a reload
    verdict = matcher.match(blue)
    assert verdict.kind is VerdictKind.CLEAN
    assert verdict.flat
    assert matcher.match(red).kind is VerdictKind.KNOWN  # identical bytes still match
    assert matcher.match(red).matches[0].exact


def test_a_rebuild_never_shows_a_match_empty_indexes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A disable rebuilds the entry indexes (SQLite); other threads match meanwhile without
    the lock, so the new indexes are filled before they are put in place."""
    with Store(tmp_path / "db.sqlite") as store:
        list_id = store.create_list("banned", ListKind.BLOCK, "", 1.0)
        entries = [NewEntry(f"{n:064x}", n * 7919, n * 104729) for n in range(1, 50)]
        ids, _ = store.add_entries(list_id, entries, 1.0)
        matcher = Matcher.load(store, Thresholds(6, 4))
        rebuilds = matcher.indexes.rebuilds
        seen: list[int] = []
        fill = HammingIndex.add_many

        def watched(index: HammingIndex, *args: object) -> None:
            seen.append(len(matcher.indexes.entries))  # what a match would search now
            fill(index, *args)  # type: ignore[arg-type]

        monkeypatch.setattr(HammingIndex, "add_many", watched)
        store.set_entries_enabled([ids[0]], False)
        assert matcher.refresh_entries()
        assert matcher.indexes.rebuilds == rebuilds + 1
        assert seen and min(seen) == 49, seen
        assert len(matcher.indexes.entries) == 48
