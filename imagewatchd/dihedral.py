"""The 8 orientations of a picture (the dihedral group): the query's hashes in each of them.

A mirrored or rotated copy of a listed picture has other hashes than the picture. Rather than
store 8 hashes per entry, the query is turned back: for each way a copy may have been turned
(``TURNS``), the hashes of the query with that turn undone. They come from the small working
image the fingerprint stage already holds, not from a new decode:

- dHash: the working image turned, then hashed as ``imagehash.dhash`` does (two small resizes
  serve all 8: a turn of the 9x8 or 8x9 thumbnail is the thumbnail of the turned image);
- pHash: one 32x32 DCT. Reversing a row of pixels multiplies the DCT coefficient of frequency
  ``k`` by ``(-1) ** k`` and transposing the pixels transposes the coefficients, so each turn is
  sign flips and a transpose, then the median threshold as ``imagehash.phash`` does;
- PDQ: the working image turned, then hashed. Meta's reference derives its dihedral hashes by
  the same sign flips of PDQ's DCT, but PDQ decimates on a grid that a mirror does not map onto
  itself: on small pictures that costs up to 30 bits of 256, turning the pixels costs nothing.
  The working image is smaller than the one the fingerprint's own PDQ comes from (for large
  non-JPEG pictures): docs/BENCHMARKS.md "Issue 8: orientations" measures the difference.

The first turn, ``same``, is the picture as it is: its hashes are the fingerprint's own, so
only the 7 others are computed and carried (``Fingerprint.turned``). Query-only: nothing here
is stored, and the stored hashes and CANON_VERSION are unchanged.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Final

import numpy as np
from numpy.typing import NDArray

from imagewatchd import lanczos, pdq
from imagewatchd.models import SAME, Turned


@dataclass(frozen=True, slots=True)
class Turn:
    """How a copy was turned from the original, and the array steps that undo it: transpose,
    then reverse the rows, then reverse the columns."""

    name: str
    transpose: bool
    flip_rows: bool
    flip_cols: bool


# The stable names, as the verdict, the log line and --json give them. ``rot90`` is a quarter
# turn anticlockwise (as Pillow's ROTATE_90 and numpy's rot90); ``mirrored-rot90`` is mirrored
# left-right, then turned 90° anticlockwise; ``mirrored-rot180`` is upside down.
TURNS: Final = (
    Turn(SAME, False, False, False),
    Turn("mirrored", False, False, True),
    Turn("rot90", True, False, True),
    Turn("rot180", False, True, True),
    Turn("rot270", True, True, False),
    Turn("mirrored-rot90", True, False, False),
    Turn("mirrored-rot180", False, True, False),
    Turn("mirrored-rot270", True, True, True),
)
NAMES: Final = tuple(turn.name for turn in TURNS)

_DHASH_SIZE: Final = 8
_PHASH_SIZE: Final = 32
_SIZES: Final = ((_DHASH_SIZE + 1, _DHASH_SIZE), (_DHASH_SIZE, _DHASH_SIZE + 1), (32, 32))


@dataclass(frozen=True, slots=True)
class Thumbnails:
    """The working image resized as imagehash resizes it (LANCZOS), once for all hashes."""

    wide: NDArray[np.uint8]  # 9 wide, 8 high: imagehash.dhash's
    tall: NDArray[np.uint8]  # 8 wide, 9 high: the transposing turns' dHash
    square: NDArray[np.uint8]  # 32x32: imagehash.phash's


def thumbnails(pixels: NDArray[np.uint8]) -> Thumbnails:
    """The three resizes, bit for bit Pillow's (``lanczos.resize_many``: one shared pass)."""
    wide, tall, square = lanczos.resize_many(pixels, _SIZES)
    return Thumbnails(wide, tall, square)


def turned(
    pixels: NDArray[np.uint8], thumbs: Thumbnails, smalls: pdq.Flipped | None = None
) -> tuple[Turned, ...]:
    """The hashes of the working image ``pixels`` with each turn but ``same`` undone;
    ``smalls``: ``pdq.flipped(pixels)`` if the caller has it already."""
    dhashes = _dhashes(thumbs)
    phashes = _phashes(thumbs)
    pdqs = _pdqs(pixels, smalls)
    return tuple(
        Turned(turn.name, dhashes[i], phashes[i], pdqs[i]) for i, turn in enumerate(TURNS) if i
    )


def dhash(wide: NDArray[np.generic]) -> int:
    """imagehash.dhash from its 9x8 thumbnail: each pixel brighter than its left neighbour."""
    return bits(np.greater(wide[:, 1:], wide[:, :-1]))


def undo(turn: Turn, pixels: NDArray[np.generic]) -> NDArray[np.generic]:
    """``pixels`` with ``turn`` undone (a view)."""
    out = pixels.T if turn.transpose else pixels
    out = out[::-1] if turn.flip_rows else out
    return out[:, ::-1] if turn.flip_cols else out


def _dhashes(thumbs: Thumbnails) -> list[int]:
    """dHash of each undone turn: a 9 wide, 8 high thumbnail of the undone image is the
    undone 9x8 (or, for a transposing turn, 8x9) thumbnail of the image."""
    return [dhash(undo(turn, thumbs.tall if turn.transpose else thumbs.wide)) for turn in TURNS]


def _phashes(thumbs: Thumbnails) -> list[int]:
    """pHash of each undone turn from one DCT: the 8x8 low frequencies, signs flipped and
    transposed as the turn requires, above their median."""
    pixels = thumbs.square.astype(np.float64)
    dct = _dct()
    low = dct @ pixels @ dct.T
    signs = np.where(np.arange(_DHASH_SIZE) % 2, -1.0, 1.0)  # (-1) ** k, frequencies 0..7
    undone = np.stack([_undo_coefficients(turn, low, signs) for turn in TURNS])
    medians = np.median(undone.reshape(len(TURNS), -1), axis=1)  # one call, the same values
    return [bits(undone[i] > medians[i]) for i in range(len(TURNS))]


@lru_cache(maxsize=1)
def _dct() -> NDArray[np.float64]:
    """The first 8 rows of scipy's unnormalised 32-point DCT-II, which imagehash uses."""
    k = np.arange(_DHASH_SIZE)[:, None]
    n = np.arange(_PHASH_SIZE)[None, :]
    matrix: NDArray[np.float64] = 2.0 * np.cos(np.pi * k * (2 * n + 1) / (2 * _PHASH_SIZE))
    return matrix


def _pdqs(pixels: NDArray[np.uint8], smalls: pdq.Flipped | None) -> list[int | None]:
    """PDQ of each undone turn of the working image (PDQ's decimation grid is not symmetric,
    so sign flips of one DCT would cost up to 30 bits more: see the module's docstring). The
    filter is shared: ``pdq.flipped`` gives the four flips; a transpose is transposed after."""
    if min(pixels.shape) < pdq.MIN_DIMENSION:
        return [None] * len(TURNS)
    smalls = smalls or pdq.flipped(pixels)
    undone = []
    for turn in TURNS[1:]:
        if turn.transpose:  # undo = transpose, then flips: the flips of the original's axes
            undone.append(smalls[turn.flip_cols, turn.flip_rows].T)
        else:
            undone.append(smalls[turn.flip_rows, turn.flip_cols])
    return [None, *pdq.hashes(np.stack(undone))]


def _undo_coefficients(
    turn: Turn, coefficients: NDArray[np.float64], signs: NDArray[np.float64]
) -> NDArray[np.float64]:
    """The DCT coefficients of the undone image: a transpose is a transpose, reversing the
    rows (columns) flips the sign of the odd vertical (horizontal) frequencies."""
    out = coefficients.T if turn.transpose else coefficients
    if turn.flip_rows:
        out = out * signs[:, None]
    if turn.flip_cols:
        out = out * signs[None, :]
    return out


def bits(values: NDArray[np.bool_]) -> int:
    """Booleans as an unsigned int, first value in the top bit (imagehash's hex order)."""
    return int.from_bytes(np.packbits(values.ravel()).tobytes(), "big")
