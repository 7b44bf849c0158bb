"""Light crops: a list entry made from a picture keeps its centre crops' hashes (2%, 5% and 10%
cut from every side), so that a cropped copy of a banned picture matches, and says by which."""

from __future__ import annotations

import io
from collections.abc import Callable
from pathlib import Path

from PIL import Image

from imagewatchd.fingerprint import fingerprint_bytes
from imagewatchd.match import Matcher
from imagewatchd.models import SAME, Fingerprint, ListKind, Thresholds, VerdictKind
from imagewatchd.pipeline import evidence
from imagewatchd.rows import NewEntry
from imagewatchd.store import Store
from tests.conftest import Run, database_at_version, photo

THRESHOLDS = Thresholds(dhash=6, phash=4)


def _cropped(img: Image.Image, share: float) -> Image.Image:
    dx, dy = round(img.width * share), round(img.height * share)
    return img.crop((dx, dy, img.width - dx, img.height - dy))


def test_cropped_copies_of_a_listed_picture_are_known_by_the_entrys_region(
    cli: Callable[..., Run], tmp_path: Path
) -> None:
    picture = photo(32, (800, 600))  # its whole is 9 dHash bits from its 2% crop's
    picture.save(tmp_path / "banned.png")
    cli("known", "add", "--create", "--list", "banned", str(tmp_path / "banned.png"), check=0)
    for share, region in ((0.02, "crop2"), (0.05, "crop5"), (0.10, "crop10")):
        copy = tmp_path / f"{region}.jpg"
        _cropped(picture, share).save(copy, quality=85)
        lines = cli("check", str(copy), check=1).out.splitlines()
        assert lines[0] == f"{copy}: known", lines
        assert f"by the entry's region {region}" in lines[1], lines
        (found,) = cli("check", "--json", str(copy), check=1).json_lines()
        assert found["matches"][0]["region"] == region
    other = tmp_path / "other.jpg"
    _cropped(photo(31, (800, 600)), 0.05).save(other, quality=85)
    assert cli("check", str(other), check=0).out.strip() == f"{other}: clean"
    compared = cli("compare", str(tmp_path / "banned.png"), str(tmp_path / "crop10.jpg"), check=0)
    assert (
        "as a list entry made from the first (orientations on, the default for lists): match by "
        "dHash and pHash of one of the first's centre crops" in compared.out.splitlines()
    )
    assert "against the first's centre crop crop10 (10% cut from each side)" in compared.out


def test_the_whole_picture_matches_as_before_and_crops_are_not_needed_for_it(
    tmp_path: Path,
) -> None:
    fp = fingerprint_bytes(_png(photo(33, (640, 480))), crops=True)
    assert fingerprint_bytes(_png(photo(33, (640, 480)))).crops == (), "only when asked"
    assert [name for name, _, _ in fp.crops] == ["crop2", "crop5", "crop10"]
    with Store(tmp_path / "t.db") as store:
        list_id = store.create_list("banned", ListKind.BLOCK, "", 1.0)
        store.add_entries(list_id, [_entry(fp)], 1.0)
        matcher = Matcher.load(store, THRESHOLDS)
        (match,) = matcher.list_matches(fp)
        assert match.exact and match.region is None and match.orientation == SAME


def test_removing_an_entry_removes_its_regions_and_a_disabled_one_stops_matching(
    tmp_path: Path,
) -> None:
    picture = photo(34, (800, 600))
    fp = fingerprint_bytes(_png(picture), crops=True)
    query = fingerprint_bytes(_jpeg(_cropped(picture, 0.10)))
    with Store(tmp_path / "t.db") as store:
        list_id = store.create_list("banned", ListKind.BLOCK, "", 1.0)
        (entry_id,), _ = store.add_entries(list_id, [_entry(fp)], 1.0)
        matcher = Matcher.load(store, THRESHOLDS)
        verdict = matcher.match(query)
        assert verdict.kind is VerdictKind.KNOWN
        assert evidence(verdict.matches[0], THRESHOLDS).endswith(" region=crop10")
        store.set_entries_enabled([entry_id], False)
        matcher.refresh_entries()
        assert matcher.match(query).kind is VerdictKind.CLEAN
        assert _regions(store) == 3
        store.remove_entries([entry_id])
        assert _regions(store) == 0, "ON DELETE CASCADE"
        matcher.refresh_entries()
        assert len(matcher.indexes.regions) == 0
        assert store.check(thorough=True) == []


def test_migration_11_from_a_version_10_database_keeps_the_entries(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    db = database_at_version(path, 10)
    db.execute("INSERT INTO lists VALUES (1, 'banned', 'block', '', 1)")
    db.execute(
        "INSERT INTO entries (id, list_id, sha256, dhash, phash, label, added, hits)"
        " VALUES (5, 1, NULL, 7, -3, 'old pair', 1, 4)"
    )
    db.close()
    with Store(path) as store:
        assert store.schema_version() >= 11
        (old,) = store.entries("banned")
        assert (old.id, old.dhash, old.phash, old.label, old.hits) == (
            5,
            7,
            2**64 - 3,
            "old pair",
            4,
        )
        assert _regions(store) == 0
        matcher = Matcher.load(store, THRESHOLDS)
        assert len(matcher.entries) == 1 and len(matcher.indexes.regions) == 0
        assert store.check(thorough=True) == []


def _regions(store: Store) -> int:
    return int(store._db.execute("SELECT COUNT(*) FROM entry_regions").fetchone()[0])


def _entry(fp: Fingerprint) -> NewEntry:
    return NewEntry(fp.sha256, fp.dhash, fp.phash, "banned", "test", pdq=fp.pdq,
                    pdq_quality=fp.pdq_quality, regions=fp.crops)  # fmt: skip


def _png(img: Image.Image) -> bytes:
    out = io.BytesIO()
    img.save(out, "PNG")
    return out.getvalue()


def _jpeg(img: Image.Image) -> bytes:
    out = io.BytesIO()
    img.save(out, "JPEG", quality=85)
    return out.getvalue()


def test_a_match_by_an_entrys_crop_needs_the_turned_margin(tmp_path: Path) -> None:
    """Three crops give a look-alike three more chances, as other orientations do: a crop
    matches at ``Thresholds.turned`` (dHash 5, pHash 2), not at the picture's own 6 and 4
    (a crop of one deep-sky photo met another, turned, at dH 6 / pH 4)."""
    entry = fingerprint_bytes(_png(photo(35, (800, 600))), crops=True)
    _, dhash, phash = entry.crops[-1]
    far = 2**64 - 1
    with Store(tmp_path / "t.db") as store:
        list_id = store.create_list("banned", ListKind.BLOCK, "", 1.0)
        store.add_entries(list_id, [_entry(entry)], 1.0)
        matcher = Matcher.load(store, THRESHOLDS)
        for dbits, pbits, expected in ((6, 4, False), (5, 4, False), (6, 2, False), (5, 2, True)):
            near = (dhash ^ ((1 << dbits) - 1), phash ^ ((1 << pbits) - 1))
            query = Fingerprint("q", entry.dhash ^ far, entry.phash ^ far, 1, 1, "PNG", False,
                                regions=(near,))  # fmt: skip
            found = matcher.list_matches(query)
            assert bool(found) is expected, (dbits, pbits)
            assert all(m.region == "crop10" for m in found)
