"""Borders, padding, letterboxing and caption bars: a listed picture's copies still match."""

from __future__ import annotations

import io
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageOps

from imagewatchd.decoding import Settings, fingerprint_path
from imagewatchd.decoding.pool import WorkerPool
from imagewatchd.fingerprint import fingerprint_bytes
from imagewatchd.hashindex import hamming
from imagewatchd.match import Matcher
from imagewatchd.models import (
    CANON_VERSION,
    FileStat,
    Fingerprint,
    ListKind,
    Role,
    Thresholds,
)
from imagewatchd.regions import boxes, trim_box
from imagewatchd.rows import NewEntry
from imagewatchd.store import Store
from tests.conftest import Run, photo

THRESHOLDS = Thresholds(dhash=6, phash=4)


def _bordered(img: Image.Image) -> Image.Image:
    return ImageOps.expand(img, (26, 19, 26, 19), fill=(255, 255, 255))


def _padded(img: Image.Image) -> Image.Image:
    side = max(img.size)
    canvas = Image.new("RGB", (side, side), (0, 0, 0))
    canvas.paste(img, (0, (side - img.height) // 2))
    return canvas


def _letterboxed(img: Image.Image) -> Image.Image:
    canvas = Image.new("RGB", (round(img.height * 16 / 9), img.height), (0, 0, 0))
    canvas.paste(img, ((canvas.width - img.width) // 2, 0))
    return canvas


def _captioned(img: Image.Image) -> Image.Image:
    bar = round(img.height * 0.18)
    canvas = Image.new("RGB", (img.width, img.height + bar), (255, 255, 255))
    canvas.paste(img, (0, bar))
    font_size = bar // 2
    draw = ImageDraw.Draw(canvas)
    draw.text((img.width // 2, bar // 2), "when the photo is just right", fill=(0, 0, 0),
              font_size=font_size, anchor="mm")  # fmt: skip
    return canvas


def test_a_listed_picture_matches_its_bordered_padded_letterboxed_and_captioned_copies(
    cli: Callable[..., Run], tmp_path: Path
) -> None:
    picture = photo(21, (800, 600))
    picture.save(tmp_path / "banned.png")
    cli("known", "add", "--create", "--list", "banned", str(tmp_path / "banned.png"), check=0)
    for make in (_bordered, _padded, _letterboxed, _captioned):
        copy = tmp_path / f"{make.__name__[1:]}.jpg"
        make(picture).save(copy, quality=80)
        assert fingerprint_bytes(copy.read_bytes()).regions, copy
        assert cli("check", str(copy), check=1).out.splitlines()[0] == f"{copy}: known"
    other = tmp_path / "other.jpg"
    _captioned(photo(22, (800, 600))).save(other, quality=80)
    assert cli("check", str(other), check=0).out.strip() == f"{other}: clean"


def test_trimming_ignores_jpeg_noise_and_leaves_a_borderless_picture_whole() -> None:
    picture = photo(23, (640, 480))
    assert boxes(np.asarray(picture.convert("L"))) == []
    out = io.BytesIO()
    _letterboxed(picture).save(out, "JPEG", quality=60)
    with Image.open(out) as decoded:
        grey = np.asarray(decoded.convert("L"))
    top, bottom, left, right = trim_box(grey)
    assert (top, bottom) == (0, 480)
    bar = (853 - 640) // 2  # JPEG's ringing may leave one 8x8 block of the bar
    assert bar - 9 <= left <= bar and bar - 9 <= 853 - right <= bar + 1


def test_files_hashed_before_version_3_are_fingerprinted_again(tmp_path: Path) -> None:
    """Version 3 changed what is flat: a row from version 2 is read again at the next scan."""
    assert CANON_VERSION == 3
    with Store(tmp_path / "db.sqlite") as store:
        fp = fingerprint_bytes(_encoded(photo(24)))
        stat = FileStat(1, 2, 3, 4)
        store.save_file("/lib/a.png", stat, Role.LIBRARY, replace(fp, canon_version=2), 1.0)
        row = store.get_file("/lib/a.png")
        assert row is not None and not row.unchanged(stat)
        store.save_file("/lib/a.png", stat, Role.LIBRARY, fp, 2.0)
        row = store.get_file("/lib/a.png")
        assert row is not None and row.unchanged(stat)


def _encoded(img: Image.Image) -> bytes:
    out = io.BytesIO()
    img.save(out, "PNG")
    return out.getvalue()


def _night(seed: int) -> Image.Image:
    """A photo whose top fifth is a black night sky: the colour of a letterbox's bars."""
    img = photo(seed, (800, 600))
    img.paste((0, 0, 0), (0, 0, 800, 120))
    return img


def _over_white(seed: int) -> Image.Image:
    """A photo whose bottom tenth is white (snow, a studio floor): a caption bar's colour."""
    img = photo(seed, (800, 600))
    img.paste((255, 255, 255), (0, 540, 800, 600))
    return img


def test_copies_whose_border_meets_the_pictures_own_edge_of_its_colour_match(
    tmp_path: Path,
) -> None:
    """The usual trim cuts a night sky with the letterbox's black bars, a white floor with a
    caption bar: the other readings of the borders (one axis only; one bar only) match."""
    with Store(tmp_path / "t.db") as store:
        list_id = store.create_list("banned", ListKind.BLOCK, "", 1.0)
        for picture, make in ((_night(41), _letterboxed), (_over_white(42), _captioned)):
            entry = fingerprint_bytes(_encoded(picture))
            store.add_entries(list_id, [NewEntry(entry.sha256, entry.dhash, entry.phash,
                                                 make.__name__, "test")], 1.0)  # fmt: skip
            copy = fingerprint_bytes(_jpeg(make(picture)))
            assert copy.more_regions, make.__name__
            matcher = Matcher.load(store, THRESHOLDS)
            (found,) = matcher.list_matches(copy)
            assert found.label == make.__name__
            other = fingerprint_bytes(_jpeg(make(_night(43) if make is _letterboxed else
                                                 _over_white(44))))  # fmt: skip
            assert matcher.list_matches(other) == ()


def test_the_other_readings_of_the_borders_need_the_turned_margin(tmp_path: Path) -> None:
    entry = fingerprint_bytes(_encoded(photo(45)))
    far = 2**64 - 1
    with Store(tmp_path / "t.db") as store:
        list_id = store.create_list("banned", ListKind.BLOCK, "", 1.0)
        store.add_entries(list_id, [NewEntry(entry.sha256, entry.dhash, entry.phash, "", "")], 1.0)
        matcher = Matcher.load(store, THRESHOLDS)
        for dbits, pbits, expected in ((6, 4, False), (5, 4, False), (6, 2, False), (5, 2, True)):
            near = (entry.dhash ^ ((1 << dbits) - 1), entry.phash ^ ((1 << pbits) - 1))
            query = Fingerprint("q", entry.dhash ^ far, entry.phash ^ far, 1, 1, "PNG", False,
                                more_regions=(near,))  # fmt: skip
            assert bool(matcher.list_matches(query)) is expected, (dbits, pbits)
            as_region = replace(query, regions=(near,), more_regions=())
            assert bool(matcher.list_matches(as_region)) is (dbits <= 6 and pbits <= 4)


def _jpeg(img: Image.Image) -> bytes:
    out = io.BytesIO()
    img.save(out, "JPEG", quality=85)
    return out.getvalue()


# -- the regions' PDQ ---------------------------------------------------------------------------


def test_a_letterboxed_copy_keeps_its_pdq_once_the_bars_are_trimmed() -> None:
    """The bars are most of what the whole picture's PDQ sees; the trimmed region's PDQ is the
    original's again, give or take the resize."""
    picture = photo(46, (800, 600))
    entry = fingerprint_bytes(_encoded(picture))
    copy = fingerprint_bytes(_jpeg(_letterboxed(picture)))
    assert entry.pdq is not None and copy.pdq is not None and copy.region_pdqs
    assert hamming(entry.pdq, copy.pdq) > 31  # the whole: beyond PDQ's threshold
    assert min(hamming(entry.pdq, h) for h, _ in copy.region_pdqs) <= 16
    assert all(quality >= 20 for _, quality in copy.region_pdqs)
    assert fingerprint_bytes(_jpeg(picture)).region_pdqs == ()  # no border: no region


def test_a_query_matches_an_entry_by_a_regions_pdq_at_that_regions_quality(
    tmp_path: Path,
) -> None:
    """Only the regions' PDQ can match here (their dHash and pHash are set aside), with the
    region's quality at the picture's floor."""
    picture = photo(47, (800, 600))
    entry = fingerprint_bytes(_encoded(picture))
    copy = fingerprint_bytes(_jpeg(_letterboxed(picture)))
    assert entry.pdq is not None
    with Store(tmp_path / "t.db") as store:
        list_id = store.create_list("banned", ListKind.BLOCK, "", 1.0)
        store.add_entries(list_id, [NewEntry(
            entry.sha256, entry.dhash, entry.phash, "letterboxed", "test", pdq=entry.pdq,
            pdq_quality=entry.pdq_quality,
        )], 1.0)  # fmt: skip
        matcher = Matcher.load(store, THRESHOLDS)
        far = 2**64 - 1
        only_pdq = replace(copy, dhash=entry.dhash ^ far, phash=entry.phash ^ far, regions=(),
                           more_regions=(), turned=(), grid=b"")  # fmt: skip
        (found,) = matcher.list_matches(only_pdq)
        assert (found.label, found.by_pdq) == ("letterboxed", True)
        closest = min(hamming(entry.pdq, h) for h, _ in copy.region_pdqs)
        assert found.pdq_distance == closest
        assert matcher.list_matches(replace(only_pdq, region_pdqs=())) == ()
        low = tuple((h, 19) for h, _ in copy.region_pdqs)  # under the picture's floor (20)
        assert matcher.list_matches(replace(only_pdq, region_pdqs=low)) == ()


def test_the_decoding_worker_sends_the_regions_pdq(tmp_path: Path) -> None:
    path = tmp_path / "letterboxed.jpg"
    path.write_bytes(_jpeg(_letterboxed(photo(48, (800, 600)))))
    decoder = WorkerPool(Settings(timeout=30.0, workers=1))
    try:
        fp = fingerprint_path(decoder, path)[1]
    finally:
        decoder.close()
    assert fp.region_pdqs and fp.region_pdqs == fingerprint_bytes(path.read_bytes()).region_pdqs


def test_a_ban_reaches_a_stored_letterboxed_upload_on_a_watch_without_orientations(
    cli: Callable[..., Run], tmp_path: Path
) -> None:
    """``scan --act`` matches stored uploads again: decoded afresh, so their trimmed regions
    count as a new upload's do, whatever the watch's orientations (found by review)."""
    uploads = tmp_path / "uploads"
    uploads.mkdir()
    picture = photo(49, (800, 600))
    picture.save(tmp_path / "banned.png")
    copy = uploads / "framed.jpg"
    copy.write_bytes(_jpeg(_letterboxed(picture)))
    config = tmp_path / "config.yaml"
    config.write_text(
        f"quarantine_dir: {tmp_path / 'q'}\nwatches:\n  - path: {uploads}\n    role: incoming\n"
        "    on_known: quarantine\n    orientations: none\n"
    )
    cli("--config", str(config), "scan", "--act", str(uploads), check=0)  # stored, clean
    assert copy.exists()
    cli("known", "add", "--create", "--list", "banned", str(tmp_path / "banned.png"), check=0)
    out = cli("--config", str(config), "scan", "--act", str(uploads), check=0).out
    assert not copy.exists(), out
