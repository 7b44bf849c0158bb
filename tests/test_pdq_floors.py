"""PDQ's two quality floors: a list entry's (``pdq_min_quality``) and the picture's
(``pdq_query_min_quality``), on real image files and a real store."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from PIL import Image, ImageEnhance

from imagewatchd import config
from imagewatchd.errors import ConfigError
from imagewatchd.fingerprint import fingerprint_file
from imagewatchd.match import Matcher
from imagewatchd.models import Fingerprint, ListKind, Thresholds, VerdictKind
from imagewatchd.rows import NewEntry
from imagewatchd.store import Store
from tests.conftest import photo

DEFAULTS = config.default_config().matching.thresholds


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    with Store(tmp_path / "t.db") as s:
        yield s


def faint(seed: int, contrast: float, path: Path) -> Fingerprint:
    """``photo(seed)`` with its contrast cut to ``contrast``, written as a PNG file: the
    fainter, the lower its PDQ quality, while the hash's signs stay."""
    img: Image.Image = ImageEnhance.Contrast(photo(seed)).enhance(contrast)
    img.save(path)
    return fingerprint_file(path)[1]


def list_pdq_of(store: Store, fp: Fingerprint) -> None:
    """A block list with one PDQ-only entry made from ``fp`` (as a partner's list gives)."""
    list_id = store.create_list("exchanged", ListKind.BLOCK, "", 1.0)
    entry = NewEntry(None, None, None, label="", pdq=fp.pdq, pdq_quality=fp.pdq_quality)
    store.add_entries(list_id, [entry], 1.0)


def test_defaults_are_the_calibrated_floors() -> None:
    assert (DEFAULTS.pdq_quality, DEFAULTS.pdq_query_quality) == (40, 20)
    assert DEFAULTS.turned().pdq_query_quality == 20, "another orientation keeps the floors"


def test_a_faint_copy_matches_by_pdq_above_the_query_floor_only(
    store: Store, tmp_path: Path
) -> None:
    list_pdq_of(store, faint(1, 1.0, tmp_path / "banned.png"))
    copy = faint(1, 0.2, tmp_path / "faint.png")
    blank = faint(1, 0.1, tmp_path / "fainter.png")
    assert 20 <= copy.pdq_quality < 40 and 5 <= blank.pdq_quality < 20
    assert not copy.flat and not blank.flat
    verdict = Matcher.load(store, DEFAULTS).match(copy)
    assert verdict.kind is VerdictKind.KNOWN and verdict.matches[0].by_pdq
    assert Matcher.load(store, DEFAULTS).match(blank).kind is VerdictKind.CLEAN
    old = Thresholds(6, 4, 31, 50, pdq_query_quality=50)
    assert Matcher.load(store, old).match(copy).kind is VerdictKind.CLEAN


def test_an_entry_below_its_floor_is_not_searched_by_pdq(store: Store, tmp_path: Path) -> None:
    entry = faint(3, 0.25, tmp_path / "entry.png")
    assert 40 <= entry.pdq_quality < 50
    list_pdq_of(store, entry)
    copy = faint(3, 0.25, tmp_path / "copy.gif")
    assert Matcher.load(store, DEFAULTS).match(copy).kind is VerdictKind.KNOWN
    higher = Thresholds(6, 4, 31, 50, pdq_query_quality=20)
    assert Matcher.load(store, higher).match(copy).kind is VerdictKind.CLEAN


def test_the_query_floor_is_read_from_the_config() -> None:
    parsed = config.parse({"matching": {"pdq_query_min_quality": 30}}, "test.yaml")
    assert parsed.matching.thresholds.pdq_query_quality == 30
    assert parsed.matching.thresholds.pdq_quality == 40
    with pytest.raises(ConfigError) as info:
        config.parse({"matching": {"pdq_query_min_quality": 101}}, "test.yaml")
    assert any("matching.pdq_query_min_quality" in p for p in info.value.problems)
