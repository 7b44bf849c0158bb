"""Thumbnails for the review page, made by the decoding workers under the fingerprints' limits."""

from __future__ import annotations

import hashlib
import io
import os
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from imagewatchd.decoding import Settings
from imagewatchd.decoding.inline import InlineDecoder
from imagewatchd.decoding.pool import WorkerPool
from imagewatchd.errors import FingerprintError
from imagewatchd.fingerprint import open_path
from imagewatchd.thumbnail import MAX_BYTES, SIZE
from tests.conftest import photo
from tests.test_decoding import SIDE, png_bomb


@pytest.fixture
def pool() -> Iterator[WorkerPool]:
    decoder = WorkerPool(Settings(timeout=10.0, workers=1))
    yield decoder
    decoder.close()


def _thumbnail(decoder: WorkerPool | InlineDecoder, path: Path) -> tuple[str, Image.Image]:
    fd = open_path(path)
    try:
        sha256, jpeg = decoder.thumbnail(fd, path)
    finally:
        os.close(fd)
    img = Image.open(io.BytesIO(jpeg))
    assert img.format == "JPEG"
    return sha256, img


def test_a_worker_makes_a_small_upright_jpeg_named_by_the_bytes_it_read(
    pool: WorkerPool, tmp_path: Path
) -> None:
    path = tmp_path / "turned.jpg"
    exif = Image.Exif()
    exif[0x0112] = 6  # shown turned by 90 degrees
    photo(5, (1800, 1200)).save(path, quality=90, exif=exif)
    sha256, img = _thumbnail(pool, path)
    assert sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
    assert img.size == (171, SIZE)  # upright: taller than wide, as a viewer shows it
    assert _thumbnail(InlineDecoder(), path)[1].tobytes() == img.tobytes()  # one function


def test_transparency_is_shown_on_white(pool: WorkerPool, tmp_path: Path) -> None:
    path = tmp_path / "clear.png"
    Image.new("RGBA", (300, 200), (255, 0, 0, 0)).save(path)
    _, img = _thumbnail(pool, path)
    assert np.asarray(img.convert("RGB")).min() > 240


def test_a_noisy_picture_still_fits_a_reply(pool: WorkerPool, tmp_path: Path) -> None:
    path = tmp_path / "noise.png"
    rng = np.random.default_rng(1)
    Image.fromarray(rng.integers(0, 256, (1024, 1024, 3), dtype=np.uint8)).save(path)
    fd = open_path(path)
    try:
        _, jpeg = pool.thumbnail(fd, path)
    finally:
        os.close(fd)
    assert len(jpeg) <= MAX_BYTES


def test_a_bomb_and_a_non_image_get_no_thumbnail(pool: WorkerPool, tmp_path: Path) -> None:
    bomb = png_bomb(tmp_path / "bomb.png", SIDE, color_type=6)
    with pytest.raises(FingerprintError, match="over the memory limit"):
        _thumbnail(pool, bomb)
    text = tmp_path / "notes.jpg"
    text.write_text("not a picture")
    with pytest.raises(FingerprintError, match="not an image in a supported format"):
        _thumbnail(pool, text)
    assert _thumbnail(pool, _good(tmp_path))[1].size == (SIZE, 192)  # the worker carries on


def _good(tmp_path: Path) -> Path:
    path = tmp_path / "good.png"
    photo(3, (320, 240)).save(path)
    return path
