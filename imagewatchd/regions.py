"""Regions of a query image worth hashing besides the whole: the picture without the uniform
borders, letterbox bars or square padding around it, and without a caption bar.

Trimming is query-side: a stored fingerprint keeps the whole image's hashes, so a photo whose
own edges are uniform (a black sky, a white studio background) still matches its re-encodes by
the whole, while a bordered, padded or captioned copy also matches by its trimmed region.
(Trimming both sides alone loses benign copies: a noisy or brightened copy trims differently
from its original; docs/BENCHMARKS.md, "Issue 8: borders, crops, structure".)

Works on the small working image; deterministic; a line counts as border when nearly all its
pixels are within a few grey levels of the border colour, so JPEG noise does not stop a trim.

That trim meets its limits where the picture's own edge is the border's colour (a black sky
beside black bars, a white sky under a white border or caption bar): it cuts into the picture,
or takes the picture's own uniform rows with it. ``more_boxes`` are the other readings of the
same borders: at a tight tolerance (a bar that was added is one colour: the sky's faint noise
stops the trim), the same share cut from both sides of an axis (padding, letterboxes and
borders centre the picture: the smaller side is the bar), one axis only (letterbox bars on one
axis, the picture's own dark rows on the other), one caption bar only. Being more chances for
a look-alike, they are searched at the stricter thresholds of another orientation (match.py).
"""

from __future__ import annotations

import math

import numpy as np
from numpy.typing import NDArray

Box = tuple[int, int, int, int]  # top, bottom, left, right (rows top:bottom, columns left:right)

TOLERANCE = 4  # grey levels from the border colour (the outermost line's median)
TIGHT = 1  # more_boxes' tolerance: a bar that was added is one colour, JPEG's ringing aside
FILL = 0.99  # the share of a line's pixels within TOLERANCE for it to count as border
KEEP = 0.4  # never trim an axis below this share of it: that is no longer a border
BAR_REACH = 0.3  # a caption bar lies within this share of the height from the top or bottom
MIN_SIDE = 16  # regions smaller than this (pixels, working image) are not hashed
MORE_REGIONS = 9  # the most more_boxes can give: 3 at TOLERANCE, 4 at TIGHT, 2 caption bars
# A list entry's centre crops (name, share cut from every side): stored with an entry made
# from a picture, so that a copy cropped by up to about 10% matches one of them
CROPS = (("crop2", 0.02), ("crop5", 0.05), ("crop10", 0.10))


def _uniform(lines: NDArray[np.uint8], ref: float, tolerance: int = TOLERANCE) -> NDArray[np.bool_]:
    # |line - ref| <= tolerance on whole grey levels, compared as uint8 (no float copy)
    low, high = max(math.ceil(ref - tolerance), 0), min(math.floor(ref + tolerance), 255)
    close = (lines >= low) & (lines <= high)
    result: NDArray[np.bool_] = np.count_nonzero(close, axis=1) / lines.shape[1] >= FILL
    return result


def _border(lines: NDArray[np.uint8], tolerance: int = TOLERANCE) -> int:
    """How many lines, from line 0 inwards, are uniform in the colour of line 0."""
    ref = float(np.median(lines[0]))
    if not _uniform(lines[1:2], ref, tolerance).all():  # most pictures: one line looked at
        return 1 if _uniform(lines[:1], ref, tolerance)[0] else 0
    uniform = _uniform(lines, ref, tolerance)
    breaks = np.flatnonzero(~uniform)
    return int(breaks[0]) if breaks.size else len(uniform)


def _bar(lines: NDArray[np.uint8]) -> int:
    """A bar from a uniform line 0 to the last line of its colour within BAR_REACH: the text
    written in a caption bar stays inside it."""
    reach = max(int(lines.shape[0] * BAR_REACH), 1)
    ref = float(np.median(lines[0]))
    if not _uniform(lines[:1], ref)[0]:
        return 0
    uniform = _uniform(lines[:reach], ref)
    return int(np.flatnonzero(uniform)[-1]) + 1


def _kept(first: int, last: int, length: int) -> tuple[int, int]:
    return (first, length - last) if length - first - last >= KEEP * length else (0, length)


def _sides(grey: NDArray[np.uint8], tolerance: int) -> Box:
    """How many border lines each side has: top, bottom, left, right."""
    return (
        _border(grey, tolerance), _border(grey[::-1], tolerance),
        _border(grey.T, tolerance), _border(grey.T[::-1], tolerance),
    )  # fmt: skip


def _box(grey: NDArray[np.uint8], sides: Box) -> Box:
    """The box left when ``sides`` (top, bottom, left, right) lines are cut, axis by axis."""
    height, width = grey.shape
    top, bottom = _kept(sides[0], sides[1], height)
    left, right = _kept(sides[2], sides[3], width)
    return top, bottom, left, right


def trim_box(grey: NDArray[np.uint8]) -> Box:
    """The picture inside its uniform borders, bars and padding."""
    return _box(grey, _sides(grey, TOLERANCE))


def caption_box(grey: NDArray[np.uint8], trimmed: Box) -> Box:
    """``trimmed`` without a caption bar at the top or the bottom."""
    height = grey.shape[0]
    top, bottom = _kept(_bar(grey), _bar(grey[::-1]), height)
    if (top, bottom) == (0, height):
        return trimmed
    return max(top, trimmed[0]), min(bottom, trimmed[1]), trimmed[2], trimmed[3]


def boxes(grey: NDArray[np.uint8]) -> list[Box]:
    """The regions to hash besides the whole image, each once, largest first."""
    height, width = grey.shape
    whole: Box = (0, height, 0, width)
    trimmed = trim_box(grey)
    found: list[Box] = []
    for box in (trimmed, caption_box(grey, trimmed)):
        big = box[1] - box[0] >= MIN_SIDE and box[3] - box[2] >= MIN_SIDE
        if box != whole and box not in found and big:
            found.append(box)
    return found


def more_boxes(grey: NDArray[np.uint8], main: list[Box] | None = None) -> list[Box]:
    """Other readings of the borders than ``boxes``' (see the module's docstring), each once,
    none of ``boxes``' (``main``, if they are known) nor the whole: searched at stricter
    thresholds."""
    height, width = grey.shape
    readings: list[Box] = []
    for tolerance in (TOLERANCE, TIGHT):
        top, bottom, left, right = sides = _sides(grey, tolerance)
        if tolerance == TIGHT:
            readings.append(_box(grey, sides))
        across, down = min(top, bottom), min(left, right)
        readings += [_box(grey, (across, across, down, down))]  # centred: the smaller side
        readings += [_box(grey, (top, bottom, 0, 0)), _box(grey, (0, 0, left, right))]
    above, below = _bar(grey), _bar(grey[::-1])
    readings += [_box(grey, (above, 0, 0, 0))] if above else []  # one caption bar only
    readings += [_box(grey, (0, below, 0, 0))] if below else []
    known = [(0, height, 0, width), *(boxes(grey) if main is None else main)]
    found: list[Box] = []
    for box in readings:
        big = box[1] - box[0] >= MIN_SIDE and box[3] - box[2] >= MIN_SIDE
        if box not in known and box not in found and big:
            found.append(box)
    return found


def crop_boxes(height: int, width: int) -> list[tuple[str, Box]]:
    """The centre crops of ``CROPS`` of an image of this size, by name."""
    found = []
    for name, share in CROPS:
        dy, dx = round(height * share), round(width * share)
        if height - 2 * dy >= MIN_SIDE and width - 2 * dx >= MIN_SIDE:
            found.append((name, (dy, height - dy, dx, width - dx)))
    return found
