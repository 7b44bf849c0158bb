"""Pillow's LANCZOS resize of an 8-bit greyscale image, as matrix products: the same pixels.

imagehash resizes with ``Image.resize(size, LANCZOS)``: per axis, a fixed-point kernel (the
weights rounded to 22 fractional bits), a sum per output pixel started at half a unit, then
shifted down and clipped to 0..255; the horizontal pass first (its result is 8-bit), then the
vertical one (Pillow's ``libImaging/Resample.c``). Each pass here is one product of the image
with the same integer weights held as float64: every sum is an integer below 2**31, so float64
holds it exactly and the result is Pillow's, bit for bit, in whatever order BLAS adds. The
gain: several thumbnails of one image share one product over its pixels (``resize_many``),
and BLAS does in a fraction of the time what Pillow's scalar loops do once per thumbnail.

The weights are computed as Pillow computes them (the same double arithmetic, libm's ``sin``),
once per (input size, output size).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from functools import lru_cache

import numpy as np
from numpy.typing import NDArray
from PIL import Image

_PRECISION_BITS = 32 - 8 - 2  # Pillow's: 8 bits of result, 2 for overflow
_SUPPORT = 3.0
# Above this many pixels (a working image is about 256 x 256 to 512 x 512, but a panorama's
# long side is not shrunk further), the float64 copy would cost more memory than it saves time.
_LARGEST = 1 << 20


def _lanczos(x: float) -> float:
    """Pillow's truncated sinc, evaluated in the same order."""
    if not -3.0 <= x < 3.0:
        return 0.0
    return _sinc(x) * _sinc(x / 3)


def _sinc(x: float) -> float:
    if x == 0.0:
        return 1.0
    x = x * math.pi
    return math.sin(x) / x


@lru_cache(maxsize=64)
def weights(in_size: int, out_size: int) -> NDArray[np.float64]:
    """Pillow's fixed-point LANCZOS weights (``precompute_coeffs`` then
    ``normalize_coeffs_8bpc``) as a dense ``out_size`` x ``in_size`` matrix of integers."""
    scale = in_size / out_size
    filterscale = max(scale, 1.0)
    support = _SUPPORT * filterscale
    inverse = 1.0 / filterscale
    dense = np.zeros((out_size, in_size))
    for out in range(out_size):
        center = (out + 0.5) * scale
        first = max(int(center - support + 0.5), 0)
        count = min(int(center + support + 0.5), in_size) - first
        taps = [_lanczos((x + first - center + 0.5) * inverse) for x in range(count)]
        total = 0.0
        for tap in taps:  # summed in order, as Pillow does (Python's sum() compensates)
            total += tap
        for x, tap in enumerate(taps):
            value = (tap / total if total != 0.0 else tap) * (1 << _PRECISION_BITS)
            dense[out, first + x] = int(value - 0.5) if value < 0 else int(value + 0.5)
    dense.flags.writeable = False
    return dense


@lru_cache(maxsize=4)
def _identity(size: int) -> NDArray[np.float64]:
    """No horizontal resize (Pillow skips the pass): the pixels, in the weights' units."""
    matrix = np.eye(size) * (1 << _PRECISION_BITS)
    matrix.flags.writeable = False
    return matrix


def _settle(sums: NDArray[np.float64]) -> NDArray[np.float64]:
    """Pillow's rounding of a pass: half a unit added, shifted down, clipped to 8 bits."""
    sums += 1 << (_PRECISION_BITS - 1)
    sums *= 1.0 / (1 << _PRECISION_BITS)  # a power of two: exact
    np.floor(sums, out=sums)
    np.clip(sums, 0, 255, out=sums)
    return sums


def resize_many(
    pixels: NDArray[np.uint8], sizes: Sequence[tuple[int, int]]
) -> list[NDArray[np.uint8]]:
    """``Image.fromarray(pixels).resize(size, LANCZOS)`` for each (width, height) in ``sizes``,
    as arrays: one horizontal product for all of them, then one small product each."""
    if pixels.size > _LARGEST:  # a long panorama: not 8 bytes per pixel, Pillow's own loops
        return [_pillow(pixels, size) for size in sizes]
    height, width = pixels.shape
    image = pixels.astype(np.float64)
    first = [size for size in sizes if _horizontal_first(pixels.shape, size)]
    across = [weights(width, w) if w != width else _identity(width) for w, _ in first]
    wide = _settle(image @ np.concatenate(across).T) if first else image
    done: dict[tuple[int, int], NDArray[np.float64]] = {}
    start = 0
    for w, h in first:
        part = wide[:, start : start + w]
        start += w
        done[w, h] = _settle(weights(height, h) @ part) if h != height else part
    out = []
    for size in sizes:
        if size in done:
            out.append(done[size].astype(np.uint8))
        else:  # a picture much taller than wide: Pillow itself, whatever its order
            out.append(_pillow(pixels, size))
    return out


def _pillow(pixels: NDArray[np.uint8], size: tuple[int, int]) -> NDArray[np.uint8]:
    return np.asarray(Image.fromarray(pixels).resize(size, Image.Resampling.LANCZOS))


def _horizontal_first(shape: tuple[int, ...], size: tuple[int, int]) -> bool:
    """Whether every Pillow resizes the width first: Pillow 13 shrinks the height first when it
    loses more than twice as many pixels as the width, older ones never do."""
    (height, width), (w, h) = shape, size
    return not (height - h > 0 and height - h > (width - w) * 2)
