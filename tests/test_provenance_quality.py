"""The JPEG quality estimate: the closest IJG quality, computed with one array pass."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image
from PIL.JpegImagePlugin import JpegImageFile

from imagewatchd.provenance import _STANDARD_LUMA, jpeg_quality


def closest_quality(luma: list[int]) -> int:
    """The estimate as a loop over every quality (IJG's scaling, highest quality on a tie)."""

    def distance(quality: int) -> int:
        scale = 5000 // quality if quality < 50 else 200 - 2 * quality
        scaled = (min(max((std * scale + 50) // 100, 1), 255) for std in _STANDARD_LUMA)
        return sum(abs(value - s) for value, s in zip(luma, scaled, strict=True))

    return min(range(1, 101), key=lambda q: (distance(q), -q))


def reopened(**save: object) -> JpegImageFile:
    out = io.BytesIO()
    Image.new("L", (16, 16), 128).save(out, "JPEG", **save)
    img = Image.open(io.BytesIO(out.getvalue()))
    assert isinstance(img, JpegImageFile)
    return img


@pytest.mark.parametrize("seed", range(40))
def test_an_encoders_own_table_gets_the_closest_standard_quality(seed: int) -> None:
    rng = np.random.default_rng(seed)
    scale = rng.uniform(0.05, 4.0)  # near some quality, each entry off by a little
    noise = rng.integers(-3, 4, size=64)
    table = np.clip(np.round(np.asarray(_STANDARD_LUMA) * scale) + noise, 1, 255)
    img = reopened(qtables=[[int(v) for v in table]])
    assert jpeg_quality(img) == closest_quality(list(img.quantization[0]))


@pytest.mark.parametrize("quality", [1, 2, 10, 49, 50, 51, 75, 90, 99, 100])
def test_a_standard_table_gives_its_quality_or_an_equal_higher_one(quality: int) -> None:
    img = reopened(quality=quality)
    assert jpeg_quality(img) == closest_quality(list(img.quantization[0]))
