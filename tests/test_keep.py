"""The keep policy and the provenance it reads, on real files written by Pillow."""

from __future__ import annotations

import itertools
import os
from pathlib import Path

import numpy as np
import pillow_heif
import pytest
from PIL import Image

from imagewatchd.keep import (
    Copy,
    Criterion,
    KeepPolicy,
    original_evidence,
    original_score,
    rank,
)
from imagewatchd.provenance import Provenance, provenance
from tests.conftest import photo

pillow_heif.register_heif_opener()

CAMERA = {0x010F: "Canon", 0x0110: "Canon EOS 5D Mark IV"}
CAPTURED = {0x9003: "2019:05:01 12:34:56"}


def write_photo(
    path: Path,
    size: tuple[int, int] = (640, 480),
    *,
    quality: int = 95,
    tags: dict[int, str] | None = None,
    inner: dict[int, str] | None = None,
    fmt: str = "JPEG",
) -> Path:
    img = photo(7).resize(size)
    exif = Image.Exif()
    for tag, value in (tags or {}).items():
        exif[tag] = value
    if inner:
        ifd = exif.get_ifd(0x8769)
        ifd.update(inner)
    if fmt == "PNG":
        img.save(path, fmt)
    else:
        img.save(path, fmt, quality=quality, exif=exif.tobytes())
    return path


def _copy(path: Path) -> Copy:
    with Image.open(path) as img:
        info = os.stat(path)
        return Copy(
            str(path), img.width, img.height, img.format or "?", info.st_size,
            info.st_mtime_ns, provenance(img),
        )  # fmt: skip


@pytest.mark.parametrize("quality", [30, 60, 75, 85, 95])
def test_a_jpeg_quality_is_read_back_from_its_tables(tmp_path: Path, quality: int) -> None:
    copy = _copy(write_photo(tmp_path / "a.jpg", quality=quality))
    assert copy.provenance.jpeg_quality == quality


def test_provenance_reads_camera_capture_date_and_software(tmp_path: Path) -> None:
    path = write_photo(tmp_path / "a.jpg", tags={**CAMERA, 0x0131: "GIMP 2.10"}, inner=CAPTURED)
    p = _copy(path).provenance
    assert p == Provenance("Canon EOS 5D Mark IV", "2019-05-01T12:34:56", "GIMP 2.10", 95)
    # an editor wrote it last: its quality is the editor's setting, no camera's; and one less
    assert original_evidence(p) == ["camera Canon EOS 5D Mark IV", "captured 2019-05-01T12:34:56"]
    assert original_score(p) == 1


def test_a_png_has_no_quality_and_a_broken_date_is_no_date(tmp_path: Path) -> None:
    assert _copy(write_photo(tmp_path / "a.png", fmt="PNG")).provenance == Provenance()
    broken = write_photo(tmp_path / "b.jpg", inner={0x9003: "yesterday"})
    assert _copy(broken).provenance.captured is None


def test_the_camera_original_beats_a_larger_messenger_reencode(tmp_path: Path) -> None:
    original = _copy(
        write_photo(tmp_path / "IMG_0001.jpg", quality=92, tags=CAMERA, inner=CAPTURED)
    )
    # a q60 re-encode that came out larger (noise added on the way): same pixels, no EXIF
    grain = np.random.default_rng(8).integers(0, 256, (480, 640, 3), dtype=np.uint8)
    noisy = Image.blend(photo(7).resize((640, 480)), Image.fromarray(grain), 0.5)
    noisy.save(tmp_path / "from-messenger.jpg", quality=60)
    messenger = _copy(tmp_path / "from-messenger.jpg")
    assert messenger.size > original.size  # what made "largest file" keep the wrong copy
    ranked = rank([messenger, original])
    assert ranked[0].copy == original
    assert ranked[0].keeper and not ranked[1].keeper
    assert ranked[1].reason.startswith("original: camera Canon EOS 5D Mark IV")


def test_a_full_size_photo_beats_its_thumbnail_with_the_same_exif(tmp_path: Path) -> None:
    full = _copy(write_photo(tmp_path / "full.jpg", (1600, 1200), tags=CAMERA, inner=CAPTURED))
    thumb = _copy(write_photo(tmp_path / "thumb.jpg", (170, 128), tags=CAMERA, inner=CAPTURED))
    ranked = rank([thumb, full])
    assert [r.copy for r in ranked] == [full, thumb]
    assert ranked[1].reason == "pixels: 1600x1200 over 170x128"


def test_a_heic_made_from_the_original_loses_to_it(tmp_path: Path) -> None:
    original = _copy(write_photo(tmp_path / "a.jpg", tags=CAMERA, inner=CAPTURED))
    heic = _copy(write_photo(tmp_path / "a.heic", fmt="HEIF"))
    assert heic.format == "HEIF"
    assert rank([heic, original])[0].copy == original


def test_a_larger_heic_with_all_the_originals_exif_loses_to_it(tmp_path: Path) -> None:
    """A converter copies every EXIF tag; the camera wrote below quality 90 (no evidence
    there): a HEIC's size says nothing against a JPEG's, the format the camera wrote wins."""
    original = _copy(write_photo(tmp_path / "a.jpg", quality=80, tags=CAMERA, inner=CAPTURED))
    heic = _copy(write_photo(tmp_path / "b.heic", quality=95, tags=CAMERA, inner=CAPTURED,
                             fmt="HEIF"))  # fmt: skip
    assert heic.size > original.size and heic.provenance.camera == original.provenance.camera
    ranked = rank([heic, original])
    assert ranked[0].copy == original
    assert ranked[1].reason == "format: JPEG preferred to HEIF"
    phone = KeepPolicy(formats=("HEIF", "JPEG"))  # a library of a phone that writes HEIC
    assert rank([original, heic], phone)[0].copy == heic


def test_an_export_at_a_higher_quality_loses_to_the_edited_file_it_came_from(
    tmp_path: Path,
) -> None:
    """Both written by an editor: the export's quality 95 is a setting, no camera's."""
    edited = {**CAMERA, 0x0131: "GIMP 2.8.14"}
    first = _copy(write_photo(tmp_path / "a.jpg", quality=85, tags=edited, inner=CAPTURED))
    darktable = {**CAMERA, 0x0131: "darktable 4.4.2"}
    export = _copy(write_photo(tmp_path / "b.jpg", quality=95, tags=darktable, inner=CAPTURED))
    assert original_score(first.provenance) == original_score(export.provenance) == 1
    policy = KeepPolicy(order=(Criterion.ORIGINAL, Criterion.PATH))
    assert rank([export, first], policy)[0].copy == first  # a tie, up to the path (a < b)


def test_quality_decides_only_between_jpegs(tmp_path: Path) -> None:
    q95 = _copy(write_photo(tmp_path / "b95.jpg", quality=95))
    q70 = _copy(write_photo(tmp_path / "a70.jpg", quality=70))
    policy = KeepPolicy(order=(Criterion.QUALITY, Criterion.SIZE))
    assert rank([q70, q95], policy)[1].reason == "quality: JPEG quality 95 over 70"
    png = _copy(write_photo(tmp_path / "c.png", fmt="PNG"))
    ranked = rank([q70, png, q95], policy)  # mixed: size decides, not a missing estimate
    assert [r.copy for r in ranked] == sorted([q70, png, q95], key=lambda c: -c.size)


def test_a_reference_folder_always_wins(tmp_path: Path) -> None:
    (tmp_path / "ref").mkdir()
    small = _copy(write_photo(tmp_path / "ref" / "small.jpg", (320, 240)))
    large = _copy(write_photo(tmp_path / "large.jpg", (1600, 1200), tags=CAMERA))
    ranked = rank([large, small], KeepPolicy(reference=(str(tmp_path / "ref"),)))
    assert ranked[0].copy == small
    assert ranked[1].reason == "reference: in a reference folder"


def test_path_rules_then_the_path_itself_break_ties(tmp_path: Path) -> None:
    a = Copy("/lib/Downloads/x.jpg", 10, 10, "JPEG", 100, 1)
    b = Copy("/lib/2019/x.jpg", 10, 10, "JPEG", 100, 1)
    c = Copy("/lib/2019/y.jpg", 10, 10, "JPEG", 100, 1)
    assert [r.copy for r in rank([a, b, c])] == [b, c, a]  # shorter, then by name
    ranked = rank([a, b, c], KeepPolicy(avoid=("/lib/2019/*",)))
    assert ranked[0].copy == a
    assert ranked[1].reason == "path: the other matches an avoided path pattern"


def test_the_keeper_does_not_depend_on_the_order_copies_arrive_in(tmp_path: Path) -> None:
    copies = [
        _copy(write_photo(tmp_path / f"{name}.jpg", size, quality=q, tags=tags))
        for name, size, q, tags in [
            ("a", (640, 480), 95, CAMERA), ("b", (640, 480), 95, CAMERA),
            ("c", (800, 600), 70, {}), ("d", (640, 480), 80, CAMERA),
        ]
    ]  # fmt: skip
    orders = {
        tuple(r.copy.path for r in rank(list(perm))) for perm in itertools.permutations(copies)
    }
    assert len(orders) == 1
    assert rank(copies)[0].copy.path.endswith("a.jpg")  # both originals tie up to the path


def test_an_export_by_an_editor_loses_to_the_camera_file_it_came_from(tmp_path: Path) -> None:
    original = _copy(write_photo(tmp_path / "a.jpg", quality=92, tags=CAMERA, inner=CAPTURED))
    export = _copy(write_photo(tmp_path / "a-export.jpg", quality=95,
                          tags={**CAMERA, 0x0131: "Adobe Photoshop Lightroom Classic 12.0"},
                          inner=CAPTURED))  # fmt: skip
    ranked = rank([export, original])
    assert ranked[0].copy == original
    assert ranked[1].reason.endswith("written by Adobe Photoshop Lightroom Classic 12.0)")
