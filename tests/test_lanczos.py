"""The LANCZOS resize as matrix products gives Pillow's pixels, bit for bit."""

from __future__ import annotations

import numpy as np
import pytest
from numpy.typing import NDArray
from PIL import Image

from imagewatchd.lanczos import resize_many
from tests.conftest import photo

THUMBNAILS = [(9, 8), (8, 9), (32, 32)]


def pictures(seed: int, shape: tuple[int, int]) -> list[NDArray[np.uint8]]:
    """Noise, black-and-white rules (sums at the clipping limits) and a photo, at ``shape``."""
    rng = np.random.default_rng(seed)
    height, width = shape
    noise = rng.integers(0, 256, shape, dtype=np.uint8)
    rules = np.where((np.arange(width) // 3) % 2, 255, 0).astype(np.uint8)[None, :]
    real = np.asarray(photo(seed, (width, height)).convert("L"))
    return [noise, np.repeat(rules, height, axis=0), real]


def pillow(pixels: NDArray[np.uint8], size: tuple[int, int]) -> NDArray[np.uint8]:
    return np.asarray(Image.fromarray(pixels).resize(size, Image.Resampling.LANCZOS))


@pytest.mark.parametrize(
    "shape",
    [(306, 408), (408, 306), (375, 500), (500, 375), (300, 400), (256, 341), (64, 64),
     (9, 8), (8, 9), (32, 32), (5, 7), (1, 1), (20, 600), (600, 20), (1000, 13), (13, 1000)],
)  # fmt: skip
def test_thumbnails_are_pillows(shape: tuple[int, int]) -> None:
    for pixels in pictures(sum(shape), shape):
        got = resize_many(pixels, THUMBNAILS)
        for size, thumb in zip(THUMBNAILS, got, strict=True):
            assert thumb.dtype == np.uint8
            assert np.array_equal(thumb, pillow(pixels, size)), (shape, size)


@pytest.mark.parametrize("seed", range(30))
def test_any_sizes_are_pillows(seed: int) -> None:
    """Up and down, either pass first (Pillow shrinks a much taller picture's height first)."""
    rng = np.random.default_rng(seed)
    shape = (int(rng.integers(1, 600)), int(rng.integers(1, 600)))
    sizes = [(int(rng.integers(1, 90)), int(rng.integers(1, 90))) for _ in range(3)]
    for pixels in pictures(seed, shape):
        for size, thumb in zip(sizes, resize_many(pixels, sizes), strict=True):
            assert np.array_equal(thumb, pillow(pixels, size)), (shape, size)


def test_a_view_of_a_larger_array_is_resized_as_its_crop() -> None:
    pixels = np.asarray(photo(5, (400, 300)).convert("L"))
    part = pixels[17:250, 31:390]
    crop = Image.fromarray(pixels).crop((31, 17, 390, 250))
    for size, thumb in zip(THUMBNAILS, resize_many(part, THUMBNAILS), strict=True):
        assert np.array_equal(thumb, np.asarray(crop.resize(size, Image.Resampling.LANCZOS)))


def test_a_long_panorama_is_resized_as_pillow_does_without_a_float_copy() -> None:
    pixels = np.asarray(photo(8, (6000, 300)).convert("L"))
    assert pixels.size > 1 << 20
    for size, thumb in zip(THUMBNAILS, resize_many(pixels, THUMBNAILS), strict=True):
        assert np.array_equal(thumb, pillow(pixels, size))
