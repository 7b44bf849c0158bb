"""Meta's PDQ: a 256-bit perceptual hash with a quality score (0..100), in numpy.

The published algorithm (ThreatExchange ``pdq/cpp/hashing/pdqhashing.cpp``): luminance
(0.299 R + 0.587 G + 0.114 B, as floats), two passes of a Jarosz box filter along each axis with
windows of about ``size / 128``, decimation to 64x64 at the window centres, a 16x16 DCT (the
first 16 non-DC rows of the 64-point DCT-II), and one bit per coefficient: above the median.
The quality is the sum of the 64x64 image's absolute neighbour differences (in percent of
full scale, truncated) divided by 90, capped at 100.

The filter and the decimation are linear, so they are one matrix on each side:
``out = rows @ luma @ cols.T``. Each output row of ``rows`` touches only ``size / 64`` input
rows, so the product is computed band by band: one pass over the luminance, not 64.
The reference sums in float32 in another order, so a coefficient right at the median could in
principle land on the other side; on the same pixels the hashes and qualities agree bit for bit
with Meta's C++ code (tests/test_pdq.py). Meta's expected outputs for its JPEG test photos differ
by 2 to 8 bits, as its own code does on today's libjpeg decode: the decoder is not ours to fix.

Hash bit ``k`` is coefficient ``(k // 16, k % 16)``; the hex form is the reference's (bit 255
first), so ``int(hex, 16)`` is the hash.
"""

from __future__ import annotations

import math
from functools import lru_cache
from typing import Any, Final

import numpy as np
from numpy.typing import NDArray

BITS: Final = 256
MIN_DIMENSION: Final = 5  # smaller images hash to 0 with quality 0, as in the reference
_SIZE: Final = 64
_LUMA: Final = (0.299, 0.587, 0.114)

Floats = NDArray[np.float32]
Flipped = dict[tuple[bool, bool], Floats]  # flipped()'s: (rows reversed, columns reversed)
_WHOLE: Final = 1 << 20  # up to this many pixels, converted to floats at once, not band by band


def window(old: int, new: int = _SIZE) -> int:
    """The reference's box filter window for shrinking ``old`` samples to ``new``."""
    return (old + 2 * new - 1) // (2 * new)


@lru_cache(maxsize=64)
def _shrink_matrix(length: int) -> tuple[NDArray[np.float32], NDArray[np.intp]]:
    """The 64 x ``length`` filter-and-decimate matrix as bands: (weights, first index)."""
    picks = ((np.arange(_SIZE) + 0.5) * length / _SIZE).astype(np.intp)
    dense = _filter_rows(length, window(length), picks)
    support = dense != 0
    first = support.argmax(axis=1)
    width = int((length - support[:, ::-1].argmax(axis=1) - first).max())
    first = np.minimum(first, length - width)
    bands = np.stack([dense[i, first[i] : first[i] + width] for i in range(_SIZE)])
    return bands.astype(np.float32), first


def _filter_rows(length: int, size: int, picks: NDArray[np.intp]) -> NDArray[np.float64]:
    """Rows ``picks`` of the two-pass box filter as a matrix. Each box is the reference's: a
    centred window of ``size`` samples, shortened at the edges and divided by what it covers."""
    half = (size + 2) // 2
    out = np.zeros((len(picks), length))
    for n, pick in enumerate(picks):
        low, high = max(pick - (size - half), 0), min(pick + half, length)
        for centre in range(low, high):  # the second pass's window around ``pick``…
            first, last = max(centre - (size - half), 0), min(centre + half, length)
            out[n, first:last] += 1.0 / ((last - first) * (high - low))  # …of first-pass rows
    return out


def shrink(luma: NDArray[Any]) -> Floats:
    """The reference's 64x64 image: two Jarosz passes per axis, then decimation. ``luma`` may
    be 8-bit: only one band of rows at a time is converted to floats."""
    return _across(_down(luma))


def flipped(luma: NDArray[Any]) -> Flipped:
    """``shrink`` of ``luma`` with its rows and/or its columns reversed, keyed by (rows reversed,
    columns reversed): two passes down the rows, not four (reversing the columns commutes with
    the pass down). Transposing commutes with ``shrink`` too, so these four give all 8 turns."""
    out = {}
    for rows in (False, True):
        tall = _down(luma[::-1] if rows else luma)
        out[rows, False] = _across(tall)
        out[rows, True] = _across(tall[:, ::-1])
    return out


def _down(luma: NDArray[Any]) -> Floats:
    """The filter and decimation down the rows: 64 rows of the image's width."""
    height, width = luma.shape
    row_bands, row_first = _shrink_matrix(height)
    span = row_bands.shape[1]
    tall = np.empty((_SIZE, width), dtype=np.float32)
    whole = np.asarray(luma, dtype=np.float32) if luma.size <= _WHOLE else None
    for i in range(_SIZE):
        start = row_first[i]
        rows = luma[start : start + span] if whole is None else whole[start : start + span]
        band = np.asarray(rows, dtype=np.float32)  # the same contiguous band either way
        np.dot(row_bands[i], band, out=tall[i])
    return tall


def _across(tall: Floats) -> Floats:
    """The filter and decimation across the columns of ``_down``'s result: 64x64."""
    result: Floats = tall @ _across_matrix(tall.shape[1])
    return result


@lru_cache(maxsize=64)
def _across_matrix(width: int) -> Floats:
    """``_shrink_matrix(width)`` as a dense, transposed matrix (width x 64)."""
    col_bands, col_first = _shrink_matrix(width)
    cols = np.zeros((width, _SIZE), dtype=np.float32)
    cspan = col_bands.shape[1]
    for j in range(_SIZE):
        cols[col_first[j] : col_first[j] + cspan, j] = col_bands[j]
    cols.flags.writeable = False
    return cols


@lru_cache(maxsize=1)
def _dct() -> NDArray[np.float32]:
    i = np.arange(1, 17)[:, None]
    j = np.arange(_SIZE)[None, :]
    scale = math.sqrt(2.0 / _SIZE)
    matrix: NDArray[np.float32] = np.cos(math.pi / 2 / _SIZE * i * (2 * j + 1)).astype(np.float32)
    matrix *= np.float32(scale)
    return matrix


def quality(small: Floats) -> int:
    """The reference's quality metric of the 64x64 image: 0 (flat) .. 100."""
    down = np.trunc((small[:-1, :] - small[1:, :]) * 100 / 255)
    across = np.trunc((small[:, :-1] - small[:, 1:]) * 100 / 255)
    total = int(np.abs(down).sum() + np.abs(across).sum())
    return min(total // 90, 100)


def from_small(small: Floats) -> tuple[int, int]:
    """Hash and quality of a 64x64 luminance image."""
    return hashes(small[None])[0], quality(small)


def hashes(smalls: NDArray[np.float32]) -> list[int]:
    """The hashes of a stack of 64x64 luminance images (n x 64 x 64): one product for all, the
    same sums per image as one at a time."""
    dct = _dct()
    coefficients = (dct @ smalls @ dct.T).reshape(len(smalls), -1)
    medians = np.sort(coefficients, axis=1)[:, BITS // 2 - 1]  # torben: the lower median
    bits = np.packbits((coefficients > medians[:, None])[:, ::-1], axis=1)
    return [int.from_bytes(row.tobytes(), "big") for row in bits]


def luma_of(rgb: NDArray[Any]) -> Floats:
    """Float luminance of an RGB uint8 array (height x width x 3), as the reference has it."""
    r, g, b = (rgb[..., channel].astype(np.float32) for channel in range(3))
    r *= np.float32(_LUMA[0])
    g *= np.float32(_LUMA[1])
    b *= np.float32(_LUMA[2])
    r += g
    r += b
    return r


def pdq(luma: NDArray[Any]) -> tuple[int, int]:
    """PDQ hash and quality of a luminance image (2-D, any real dtype)."""
    height, width = luma.shape
    if height < MIN_DIMENSION or width < MIN_DIMENSION:
        return 0, 0
    if (height, width) == (_SIZE, _SIZE):  # the reference does not filter this size
        return from_small(np.asarray(luma, dtype=np.float32))
    return from_small(shrink(luma))


def hex256(value: int) -> str:
    return f"{value:064x}"


def distance(a: int, b: int) -> int:
    return (a ^ b).bit_count()
