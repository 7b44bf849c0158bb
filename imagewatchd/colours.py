"""A picture's colours: a small signature that tells a recoloured copy from a faithful one.

The hashes see luma only, so a copy whose hues were turned (a palette swap, a recoloured
version of one artwork) matches like any other copy. A list may say that such copies do not
count (``lists create NAME --recoloured ignore``, ``lists set``): a near match of one of its
entries is then refused when the entry's colours and the query's clearly disagree (``screen``,
called by imagewatchd/match.py on every list match, the wider second stage's too).

The signature does not depend on the picture's orientation or framing: the distribution of its
hues around the Cb/Cr circle in ``BINS`` bins, each pixel of a small reduction weighted by its
chroma (how far from grey it is) less ``FAINT``, and the mean chroma. Borders, caption bars and
watermarks are grey, white or black, so they weigh nothing; scaling, re-encoding, brightness
and contrast keep the hues. Two signatures disagree when both pictures are colourful and
moving one hue distribution onto the other (the circular earth mover's distance, a share of
the circle) takes more than ``FAR``, or more than ``NEAR`` while turning the query's hues by
some angle fits ``RATIO`` times better (a hue shift moves every colour alike; a brightened
copy's clipped highlights move only some). A picture with almost no chroma (a greyscale copy,
a black-and-white photo) has no colours to disagree with, so it always agrees. Chosen by
measurement: docs/BENCHMARKS.md, "Issue 8: recoloured versions".

Every picture's signature is kept: an entry's with the entry (in its transaction), a file's
with its fingerprint (``files.colours``; NULL for a row stored by an earlier version, which a
library scan reads again for them while some list ignores recoloured copies), so the count
``known add`` prints of the stored files a ban reaches is screened without decoding them. A
match set aside is reported (``Verdict.recoloured``: check, check --json, the file's log line).
"""

from __future__ import annotations

import enum
from typing import TYPE_CHECKING, Final

import numpy as np
from numpy.typing import NDArray
from PIL import Image

from imagewatchd.models import Fingerprint, Match, SetAside

if TYPE_CHECKING:
    from imagewatchd.store import Store

BINS: Final = 16  # hue bins around the colour circle
SIZE: Final = 1 + BINS  # bytes of a signature: the mean chroma, then the hue histogram
SIDE: Final = 32  # the picture is reduced to about this many pixels a side first
FAINT: Final = 4.0  # a pixel's chroma counts only above this
GREY: Final = 3.0  # a mean chroma (Cb, Cr units of 0..255) below this: no colours
NEAR: Final = 0.1  # hue distributions this close (a share of the circle) agree…
FAR: Final = 0.2  # …and ones farther apart than this disagree; in between, they disagree
RATIO: Final = 3.0  # when the query's hues turned fit this many times better: a hue shift
TURN: Final = 2  # bins: the least turn that counts (45 degrees)

Floats = NDArray[np.float64]


class Recoloured(enum.StrEnum):
    """A list's setting: whether a recoloured copy of one of its entries matches it."""

    COUNT = "count"  # matches, like any other near copy (the default)
    IGNORE = "ignore"  # a near match whose colours disagree with the entry's is refused


def signature(img: Image.Image) -> bytes:
    """The signature of a decoded picture in RGB, RGBA (composited) or YCbCr mode (any other:
    no colours, b"")."""
    if img.mode not in ("RGB", "RGBA", "YCbCr"):
        return b""
    factor = max(1, min(img.size) // SIDE)
    small = img.reduce(factor) if factor > 1 else img
    ycc = small if small.mode == "YCbCr" else small.convert("YCbCr")
    pixels = np.asarray(ycc, dtype=np.float64)
    a, b = pixels[..., 1].ravel() - 128.0, pixels[..., 2].ravel() - 128.0
    chroma = np.hypot(a, b)
    weight = np.maximum(chroma - FAINT, 0.0)  # a faint tint (a grey frame's) has no sure hue
    position = (np.arctan2(b, a) / (2 * np.pi) % 1.0) * BINS  # soft binning: no edge effects
    low = np.floor(position).astype(np.int64)
    upper = position - low
    histogram = np.bincount(low % BINS, weight * (1 - upper), BINS)
    histogram += np.bincount((low + 1) % BINS, weight * upper, BINS)
    total = float(histogram.sum())
    shares = histogram / total if total > 0 else histogram
    levels = np.round(shares * 255).astype(np.uint8)
    mean = min(255, round(float(chroma.mean()) * 2))  # half levels: GREY is fine-grained
    return bytes([mean]) + levels.tobytes()


def chroma(sig: bytes | None) -> float:
    """The picture's mean chroma (0 for no signature)."""
    return sig[0] / 2 if sig is not None and len(sig) == SIZE else 0.0


def distance(stored: bytes | None, query: bytes | None) -> tuple[float, float]:
    """(moved, turned): how far apart the two hue distributions are, as they are and with the
    query's turned around the circle by the angle (45 degrees or more) that fits best; each
    the circular earth mover's distance, a share of the circle (0 to 0.5). (0, 0) when either
    picture has no colours to compare."""
    x, y = _shares(stored), _shares(query)
    if x is None or y is None or min(chroma(stored), chroma(query)) < GREY:
        return 0.0, 0.0
    turns = range(TURN, BINS - TURN + 1)
    return _moved(x, y), min(_moved(x, np.roll(y, turn)) for turn in turns)


def agrees(stored: bytes | None, query: bytes | None) -> bool:
    """Whether ``query`` keeps the colours of ``stored`` (no signature on either side: yes):
    the hues are near, or not far and not merely turned around the circle."""
    moved, turned = distance(stored, query)
    return moved <= NEAR or (moved <= FAR and turned * RATIO >= moved)


def screen(
    store: Store, fp: Fingerprint, found: tuple[Match, ...]
) -> tuple[tuple[Match, ...], tuple[SetAside, ...]]:
    """(the list matches kept, the near ones set aside as recoloured): those of an entry whose
    list ignores recoloured copies and whose colours clearly disagree with the query's. An
    identical file (sha256) always matches, and so does an entry without a signature."""
    near = [m.entry_id for m in found if m.entry_id is not None and not m.exact]
    if not near or not fp.colours:
        return found, ()
    stored = store.ignored_colours(near)
    refused = {key for key, sig in stored.items() if not agrees(sig, fp.colours)}
    if not refused:
        return found, ()
    aside = tuple(
        SetAside(m, *distance(stored[m.entry_id], fp.colours))
        for m in found if m.entry_id in refused
    )  # fmt: skip
    return tuple(m for m in found if m.entry_id not in refused), aside


def described(aside: SetAside) -> str:
    """A set-aside match in a few words, for the log line (``recoloured list=… hue=…``)."""
    return (f"recoloured list={aside.match.list_name} entry={aside.match.entry_id} "
            f"hue={aside.moved:.3f}")  # fmt: skip


def _moved(x: Floats, y: Floats) -> float:
    """The circular earth mover's distance: on a circle, the cheapest flow is the running
    difference shifted by its median."""
    flow = np.cumsum(x - y)
    return float(np.sum(np.abs(flow - np.median(flow)))) / BINS


def _shares(sig: bytes | None) -> Floats | None:
    if sig is None or len(sig) != SIZE:
        return None
    levels = np.frombuffer(sig, np.uint8, BINS, 1).astype(np.float64)
    total = float(levels.sum())
    return levels / total if total > 0 else None
