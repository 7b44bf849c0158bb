"""Borders, padding, letterboxing and caption bars: a listed picture's copies still match."""

from __future__ import annotations

import io
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageOps

from imagewatchd.fingerprint import fingerprint_bytes
from imagewatchd.models import CANON_VERSION, FileStat, Role
from imagewatchd.regions import boxes, trim_box
from imagewatchd.store import Store
from tests.conftest import Run, photo


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
