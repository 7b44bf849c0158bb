"""The hashes of a picture's regions, from its working image: the picture without its borders
or caption bar and the other readings of its borders (imagewatchd/regions.py finds them), its
centre crops (a list entry's), and the regions' PDQ.

The boxes are found once per picture: ``of`` gives the regions' dHash and pHash (those with
structure: a degenerate pHash is left out) and every box's PDQ with its quality (PDQ measures
its own structure; the Matcher applies the picture's quality floor to each).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

import numpy as np
import scipy.fftpack
from numpy.typing import NDArray

from imagewatchd import dihedral, lanczos, pdq, regions

FLAT_PHASH_BITS: Final = 8  # a pHash with fewer bits set (or unset) than this is degenerate

Pairs = tuple[tuple[int, int], ...]
BoxesOf = Callable[[NDArray[np.uint8]], list[regions.Box]]


@dataclass(frozen=True, slots=True)
class RegionHashes:
    regions: Pairs  # (dHash, pHash) of ``regions.boxes``' regions
    more_regions: Pairs  # … of ``regions.more_boxes``'
    pdqs: Pairs  # (PDQ, quality) of every box of both, in that order


def of(pixels: NDArray[np.uint8], *, flat: bool) -> RegionHashes:
    """The regions' hashes of a working image; a flat picture's have no PDQ (it never
    near-matches)."""
    main = regions.boxes(pixels)
    more = regions.more_boxes(pixels, main)
    every = () if flat else tuple(pdq.pdq(_cut(pixels, box)) for box in (*main, *more))
    return RegionHashes(_hashed(pixels, main), _hashed(pixels, more), every)


def phash(square: NDArray[np.uint8]) -> int:
    """imagehash.phash from its 32x32 thumbnail, computed as imagehash does (bit for bit)."""
    dct = scipy.fftpack.dct(scipy.fftpack.dct(square, axis=0), axis=1)
    low = dct[:8, :8]
    return dihedral.bits(low > np.median(low))


def hashes(part: NDArray[np.uint8]) -> tuple[int, int] | None:
    """imagehash's dHash and pHash of ``part``, or None if its pHash is degenerate."""
    wide, square = lanczos.resize_many(part, ((9, 8), (32, 32)))
    found = phash(square)
    if not FLAT_PHASH_BITS <= found.bit_count() <= 64 - FLAT_PHASH_BITS:
        return None
    return dihedral.dhash(wide), found


def boxed_hashes(
    pixels: NDArray[np.uint8], boxes: BoxesOf
) -> list[tuple[regions.Box, tuple[int, int]]]:
    """Each of ``boxes``' regions that has structure, with its dHash and pHash."""
    return _boxed(pixels, boxes(pixels))


def crop_hashes(pixels: NDArray[np.uint8]) -> tuple[tuple[str, int, int], ...]:
    """(name, dHash, pHash) of the centre crops (regions.CROPS) that have structure."""
    found = []
    for name, box in regions.crop_boxes(*pixels.shape):
        pair = hashes(_cut(pixels, box))
        if pair:
            found.append((name, *pair))
    return tuple(found)


def _hashed(pixels: NDArray[np.uint8], boxes: list[regions.Box]) -> Pairs:
    return tuple(pair for _, pair in _boxed(pixels, boxes))


def _boxed(
    pixels: NDArray[np.uint8], boxes: list[regions.Box]
) -> list[tuple[regions.Box, tuple[int, int]]]:
    found = []
    for box in boxes:
        pair = hashes(_cut(pixels, box))
        if pair:
            found.append((box, pair))
    return found


def _cut(pixels: NDArray[np.uint8], box: regions.Box) -> NDArray[np.uint8]:
    top, bottom, left, right = box
    return pixels[top:bottom, left:right]
