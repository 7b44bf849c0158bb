"""``compare``: how the rule of match.py decides for two pictures, step by step.

The first picture is taken as a list entry made from it (``known add``: its whole hashes, its
PDQ, its centre crops and its block grid) and as a library photo (its whole hashes); the second
as the query, with its regions (borders, padding, a caption bar trimmed), its other readings of
the borders and its other orientations. Each step of ``Matcher.list_matches`` (then
``verify.wider_matches``) and of ``Matcher.library_matches``/``similar_matches`` is redone on
the two fingerprints alone, in the Matcher's order and at its thresholds, so that the outcome
is the Matcher's (tests/test_compare.py holds it to a real store) and each distance can be
shown against its threshold, the closest miss included.
"""

from __future__ import annotations

import hashlib
import os
import warnings
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from imagewatchd import blockgrid, colours, verify
from imagewatchd.errors import FingerprintError
from imagewatchd.fingerprint import Limits, open_path, read_fd, working_image
from imagewatchd.hashindex import hamming
from imagewatchd.models import SAME, Fingerprint, Thresholds, Turned
from imagewatchd.regionhashes import boxed_hashes
from imagewatchd.regions import Box, boxes, more_boxes

WHOLE = "whole"


@dataclass(frozen=True, slots=True)
class Cut:
    """The pixels a region leaves out on each side of the second picture (its own pixels)."""

    top: int
    bottom: int
    left: int
    right: int


@dataclass(frozen=True, slots=True)
class Boxes:
    """Where the second picture's regions and other border readings lie in its working image
    (of ``shape``: height, width), in the fingerprint's order."""

    shape: tuple[int, int]
    regions: tuple[Box, ...]
    more_regions: tuple[Box, ...]


@dataclass(frozen=True, slots=True)
class Reading:
    """One hash pair of the second picture against one of the first's."""

    orientation: str  # the second's (dihedral.NAMES): "same", "mirrored", "rot90"…
    region: str  # the second's: "whole", "trimmed", "trimmed 2", "border reading 1"…
    part: str  # the first's: "whole", or one of an entry's centre crops ("crop5")
    dhash_distance: int
    phash_distance: int
    dhash_threshold: int
    phash_threshold: int
    turned: bool  # at the stricter thresholds of another orientation (Thresholds.turned)
    cut: Cut | None = None  # what the region leaves out, when known

    @property
    def matched(self) -> bool:
        return self.excess[0] <= 0

    @property
    def excess(self) -> tuple[int, int]:
        """How far beyond the thresholds: the larger excess, then the two summed."""
        over = (
            self.dhash_distance - self.dhash_threshold, self.phash_distance - self.phash_threshold
        )  # fmt: skip
        return max(over), sum(over)


@dataclass(frozen=True, slots=True)
class Pdq:
    """PDQ of one orientation of the second against the first's (list entries only)."""

    orientation: str
    distance: int | None  # None: one of them has no PDQ
    gate: bool  # the first has a PDQ, both qualities reach the floor, neither is flat
    matched: bool
    part: str = WHOLE  # the second's whole, or the region whose PDQ decided (as it is only)
    quality: int = 0  # the second's quality there: the whole's, or that region's


@dataclass(frozen=True, slots=True)
class Grid:
    """The second stage (verify.py), for a list entry nothing else matched: the second as it
    is within the wider radius of the first, and their block grids' agreement."""

    dhash_distance: int
    phash_distance: int
    candidate: bool  # within verify.WIDER_DHASH and WIDER_PHASH
    structure: float  # the first's grid: blockgrid.STRUCTURE at least, or no agreement
    levels: float
    edges: float
    agrees: bool  # a candidate whose grid agrees: a match


@dataclass(frozen=True, slots=True)
class Colours:
    """The two pictures' colours (colours.py), for a list that ignores recoloured copies."""

    chroma: tuple[float, float]  # mean chroma: the first's, the second's
    moved: float  # the hue distributions' distance, a share of the circle
    turned: float  # the same with the second's hues turned as fits best
    agrees: bool  # False: a list with ``--recoloured ignore`` refuses a near match


@dataclass(frozen=True, slots=True)
class Decision:
    """One role's outcome and what decided it."""

    outcome: str  # "match"/"no match"; "duplicate"/"similar"/"not"
    by: str | None = None  # "sha256", "hashes", "crop", "pdq", "grid", "similar band"
    orientation: str | None = None
    evidence: Reading | None = None  # the reading that decided (by hashes, crop, band)
    closest: Reading | None = None  # nothing matched: the nearest miss


@dataclass(frozen=True, slots=True)
class Explanation:
    identical: bool
    flat: tuple[bool, bool]  # the first's, the second's
    qualities: tuple[int, int]  # PDQ's quality scores: the first's, the second's
    readings: tuple[Reading, ...]  # every pair compared (a library photo: part "whole")
    pdq: tuple[Pdq, ...]  # one per orientation of the second
    grid: Grid | None  # None: a flat picture or one without a grid
    as_entry: Decision  # a list entry made from the first (orientations on, lists' default)
    as_photo: Decision  # a library photo (orientations: lists or none, the default)
    as_photo_turned: Decision  # a library photo where the watch has ``orientations: all``
    colours: Colours  # the two pictures' colours


def explain(a: Fingerprint, b: Fingerprint, t: Thresholds, where: Boxes | None) -> Explanation:
    """How ``b`` compares with ``a`` as a list entry and as a library photo."""
    flat = a.flat or b.flat
    readings = tuple(_readings(a, b, t, where))
    pdqs = tuple(_pdq(a, b, view, t) for view in _views(b))
    grid = None if flat or not (a.grid and b.grid and t.watermarks) else _grid(a, b)
    entry = _as_entry(a, b, readings, pdqs, grid)
    return Explanation(
        a.sha256 == b.sha256, (a.flat, b.flat), (a.pdq_quality, b.pdq_quality), readings, pdqs,
        grid, entry,
        _as_photo(a, b, t, readings, turned=False), _as_photo(a, b, t, readings, turned=True),
        _colours(a, b),
    )  # fmt: skip


def _colours(a: Fingerprint, b: Fingerprint) -> Colours:
    """As ``colours.screen`` for one entry made from ``a`` (a picture without a signature, a
    grey one, has chroma 0 and agrees)."""
    moved, turned = colours.distance(a.colours, b.colours)
    chroma = (colours.chroma(a.colours), colours.chroma(b.colours))
    return Colours(chroma, moved, turned, colours.agrees(a.colours, b.colours))


def boxes_at(path: Path, fp: Fingerprint, limits: Limits) -> Boxes | None:
    """The boxes of the regions of ``fp``, the fingerprint of the file at ``path`` (decoded
    again); None if the file is no longer what was fingerprinted, or cannot be read."""
    try:
        fd = open_path(path)
        try:
            _, data = read_fd(fd, limits.max_bytes)
        finally:
            os.close(fd)
        if hashlib.sha256(data).hexdigest() != fp.sha256:
            return None
        with warnings.catch_warnings():  # the decoder's complaints were the fingerprint's
            warnings.simplefilter("ignore")
            return boxes_of(working_image(data, limits), fp)
    except FingerprintError:
        return None


def boxes_of(pixels: NDArray[np.uint8], fp: Fingerprint) -> Boxes | None:
    """The boxes of ``fp``'s regions, from its working image (fingerprint.working_image);
    None if they are not the fingerprint's (the file changed in between)."""
    found = boxed_hashes(pixels, boxes)
    more = boxed_hashes(pixels, more_boxes)
    if [h for _, h in found] != list(fp.regions) or [h for _, h in more] != list(fp.more_regions):
        return None
    height, width = pixels.shape
    return Boxes((height, width), tuple(box for box, _ in found), tuple(box for box, _ in more))


def _views(fp: Fingerprint) -> list[Turned]:
    return [Turned(SAME, fp.dhash, fp.phash, fp.pdq), *fp.turned]


def _readings(a: Fingerprint, b: Fingerprint, t: Thresholds, where: Boxes | None) -> Iterator[
    Reading
]:  # fmt: skip
    """In the Matcher's order: the second as it is, whole and by its regions (at the
    thresholds) and by its other border readings (turned ones), against the first's whole;
    the same against each of the first's centre crops (turned thresholds); then the second's
    other orientations, whole (turned)."""
    mine: list[tuple[str, int, int, bool, Cut | None]] = [(WHOLE, b.dhash, b.phash, False, None)]
    mine += [(_name("trimmed", i), d, p, False, _cut(where, b, "regions", i))
             for i, (d, p) in enumerate(b.regions)]  # fmt: skip
    mine += [(f"border reading {i + 1}", d, p, True, _cut(where, b, "more_regions", i))
             for i, (d, p) in enumerate(b.more_regions)]  # fmt: skip
    for region, dhash, phash, strict, cut in mine:
        yield _reading(SAME, region, WHOLE, (a.dhash, dhash), (a.phash, phash), t, strict, cut)
    for region, dhash, phash, _, cut in mine:  # the index's hits: reading by reading
        for part, cd, cp in a.crops:
            yield _reading(SAME, region, part, (cd, dhash), (cp, phash), t, True, cut)
    for view in b.turned:
        yield _reading(view.turn, WHOLE, WHOLE, (a.dhash, view.dhash), (a.phash, view.phash),
                       t, True)  # fmt: skip


def _reading(
    orientation: str, region: str, part: str, dhashes: tuple[int, int],
    phashes: tuple[int, int], t: Thresholds, turned: bool, cut: Cut | None = None,
) -> Reading:  # fmt: skip
    """``turned``: at ``t.turned()``, the stricter thresholds."""
    limits = t.turned() if turned else t
    return Reading(
        orientation, region, part, hamming(*dhashes), hamming(*phashes), limits.dhash,
        limits.phash, turned, cut,
    )  # fmt: skip


def _name(kind: str, index: int) -> str:
    return kind if index == 0 else f"{kind} {index + 1}"


def _cut(where: Boxes | None, fp: Fingerprint, which: str, index: int) -> Cut | None:
    """What the region leaves out, in the picture's own pixels."""
    if where is None:
        return None
    found: tuple[Box, ...] = getattr(where, which)
    top, bottom, left, right = found[index]
    height, width = where.shape
    down, across = fp.height / height, fp.width / width
    return Cut(
        round(top * down), round((height - bottom) * down), round(left * across),
        round((width - right) * across),
    )  # fmt: skip


def _pdq(a: Fingerprint, b: Fingerprint, view: Turned, t: Thresholds) -> Pdq:
    """As ``Matcher._search_pdq``: the query's quality at the pictures' floor, and the entry's
    at the entries' (an entry is indexed by PDQ only then, and only when not flat); as it is,
    the second's regions too, each at its own quality: the closest that matches, else the
    whole."""
    whole = _one_pdq(a, b, view.turn, view.pdq, b.pdq_quality, t)
    if view.turn != SAME or whole.matched:
        return whole
    parts = [_one_pdq(a, b, SAME, h, q, t, f"region {i + 1} without borders")
             for i, (h, q) in enumerate(b.region_pdqs)]  # fmt: skip
    matched = [p for p in parts if p.matched]
    return min(matched, key=lambda p: p.distance or 0) if matched else whole


def _one_pdq(
    a: Fingerprint, b: Fingerprint, turn: str, pdq: int | None, quality: int, t: Thresholds,
    part: str = WHOLE,
) -> Pdq:  # fmt: skip
    distance = None if a.pdq is None or pdq is None else hamming(a.pdq, pdq)
    floors = a.pdq_quality >= t.pdq_quality and quality >= t.pdq_query_quality
    gate = not (a.flat or b.flat) and floors and a.pdq is not None
    matched = gate and distance is not None and distance <= t.pdq
    return Pdq(turn, distance, gate, matched, part, quality)


def _grid(a: Fingerprint, b: Fingerprint) -> Grid:
    """As ``verify.wider_matches`` for one entry: the levels fitted as it fits them."""
    dd, pd = hamming(a.dhash, b.dhash), hamming(a.phash, b.phash)
    ((levels, edges),) = blockgrid.agreement_many([a.grid], b.grid)
    if levels < blockgrid.LEVELS:  # not needed for the decision: shown all the same
        edges = blockgrid.agreement(a.grid, b.grid)[1]
    candidate = dd <= verify.WIDER_DHASH and pd <= verify.WIDER_PHASH
    agrees = candidate and levels >= blockgrid.LEVELS and edges >= blockgrid.EDGES
    return Grid(dd, pd, candidate, blockgrid.structure(a.grid), levels, edges, agrees)


def _as_entry(
    a: Fingerprint, b: Fingerprint, readings: tuple[Reading, ...], pdqs: tuple[Pdq, ...],
    grid: Grid | None,
) -> Decision:  # fmt: skip
    """As ``Matcher.list_matches``: identical bytes; else the first orientation with any
    evidence (the whole or a region within the thresholds, then a centre crop, then PDQ);
    else the second stage."""
    if a.sha256 == b.sha256:
        return Decision("match", "sha256", SAME)
    if a.flat or b.flat:
        return Decision("no match")
    found = _first_evidence(readings, pdqs)
    if found is not None:
        return found
    if grid is not None and grid.agrees:
        return Decision("match", "grid", SAME)
    return Decision("no match", closest=_closest(readings))


def _first_evidence(readings: tuple[Reading, ...], pdqs: tuple[Pdq, ...]) -> Decision | None:
    """The first orientation with evidence, and the strongest of it there (as the Matcher
    reports it: dHash and pHash, then a centre crop, then PDQ)."""
    for pdq in pdqs:
        view = [r for r in readings if r.orientation == pdq.orientation and r.matched]
        whole = [r for r in view if r.part == WHOLE]
        if whole:
            return Decision("match", "hashes", pdq.orientation, _closest(whole))
        cropped = [r for r in view if r.part != WHOLE]
        if cropped:  # the closest crop; the first found of equals (Matcher._search_crops)
            best = min(cropped, key=lambda r: r.dhash_distance + r.phash_distance)
            return Decision("match", "crop", pdq.orientation, best)
        if pdq.matched:
            return Decision("match", "pdq", pdq.orientation)
    return None


def _as_photo(
    a: Fingerprint, b: Fingerprint, t: Thresholds, readings: tuple[Reading, ...], *,
    turned: bool,
) -> Decision:  # fmt: skip
    """As ``Matcher.library_matches`` then ``similar_matches``: identical bytes; else the
    whole or a region within the thresholds, as it is (in any orientation with ``turned``);
    else, as it is and whole, within the similar band."""
    if a.sha256 == b.sha256:
        return Decision("duplicate", "sha256", SAME)
    if a.flat or b.flat:
        return Decision("not")
    searched = [r for r in readings if r.part == WHOLE and (turned or r.orientation == SAME)]
    for orientation in dict.fromkeys(r.orientation for r in searched):
        found = [r for r in searched if r.orientation == orientation and r.matched]
        if found:
            return Decision("duplicate", "hashes", orientation, _closest(found))
    same = searched[0]  # the whole picture as it is
    band = Reading(
        SAME, WHOLE, WHOLE, same.dhash_distance, same.phash_distance, t.similar_dhash,
        t.similar_phash, False,
    )  # fmt: skip
    if (t.similar_dhash > t.dhash or t.similar_phash > t.phash) and band.matched:
        return Decision("similar", "similar band", SAME, band)
    return Decision("not", closest=_closest(searched))


def _closest(readings: Iterable[Reading]) -> Reading | None:
    """The reading nearest its thresholds (as the Matcher reports a match's distances: the
    larger distance, then their sum), the first of equals."""
    return min(readings, key=lambda r: r.excess, default=None)
