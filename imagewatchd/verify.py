"""The second stage for list entries: candidates found at a wider radius, confirmed by the grid.

A watermark moves a picture's hashes beyond the thresholds (a label in a corner, a word across
the diagonal) but leaves most of the picture as it was. When nothing matches a query within the
thresholds, the entries within a wider dHash and pHash radius are candidates, and one matches
only when the query's block grid agrees with the entry's (imagewatchd/blockgrid.py; the entry's
is kept in ``entry_grids``, and held in memory: imagewatchd/entrygrids.py): a look-alike, such
as the next shot of a burst or the other half of a stereo pair, disagrees in too many blocks.
The picture as it is only, and entries made from a picture only (imported hashes have no grid).
docs/BENCHMARKS.md, "Issue 8: watermarks" and "Issue 8: the list lookup at a million".
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Final

from imagewatchd import blockgrid
from imagewatchd.hashindex import hamming
from imagewatchd.models import Fingerprint, Match
from imagewatchd.rows import EntryRow

if TYPE_CHECKING:
    from imagewatchd.match import Matcher

WIDER_DHASH: Final = 20  # a candidate's dHash is within this of the query's…
WIDER_PHASH: Final = 22  # …and its pHash within this
# Photographs' hashes are not uniform: about 0.4% of the entries of a list of ordinary photos
# are within the wider radius of a query (thousands at a million), so only the closest few
# (by dHash + pHash distance) are compared (docs/BENCHMARKS.md, "Issue 8: watermarks")
CANDIDATES: Final = 8


def wider_matches(matcher: Matcher, fp: Fingerprint) -> tuple[Match, ...]:
    """Entries within the wider radius whose grid agrees with the query's: for a query that
    matched nothing within the thresholds."""
    held = matcher.indexes.grids
    if not matcher.thresholds.watermarks:
        return ()  # matching.watermarks: false
    if fp.flat or not fp.grid or not _worth_a_scan(matcher, fp):
        return ()  # no entry with a grid is within the radius: nothing could agree
    # the closest by (dH + pH, key): HammingIndex.search's own order
    closest = matcher.entries.search(fp.dhash, fp.phash, WIDER_DHASH, WIDER_PHASH, CANDIDATES)
    if not closest:
        return ()
    grids = held.get([key for key, _, _ in closest])  # entrygrids.py
    agreed = dict(zip(grids, blockgrid.agreement_many(list(grids.values()), fp.grid), strict=True))
    kept = [key for key, (levels, edges) in agreed.items() if levels >= blockgrid.LEVELS
            and edges >= blockgrid.EDGES]  # fmt: skip
    rows = matcher.store.entries(ids=kept) if kept else []
    found = [_match(row, fp, agreed[row.id][0]) for row in rows if row.enabled]
    return tuple(sorted(found, key=lambda m: (-(m.grid or 0.0), m.entry_id or 0)))


def _worth_a_scan(matcher: Matcher, fp: Fingerprint) -> bool:
    """Whether an entry that has a grid may be within the wider radius: where fewer than half
    the entries have one (imported hashes have none), they alone are scanned first, and the
    whole bank only when one is near (the 8 closest are chosen among every entry)."""
    held = matcher.indexes.grids
    if 2 * len(held) >= len(matcher.entries):
        return len(held) > 0
    return held.any_within(fp.dhash, fp.phash, WIDER_DHASH, WIDER_PHASH)


def _match(row: EntryRow, fp: Fingerprint, levels: float) -> Match:
    pdq = None if row.pdq is None or fp.pdq is None else hamming(fp.pdq, row.pdq)
    return Match(
        source="list", exact=False, dhash_distance=_distance(fp.dhash, row.dhash),
        phash_distance=_distance(fp.phash, row.phash), list_name=row.list_name,
        list_kind=row.list_kind, entry_id=row.id, label=row.label, pdq_distance=pdq,
        grid=round(levels, 4),
    )  # fmt: skip


def _distance(a: int, b: int | None) -> int:
    return 64 if b is None else hamming(a, b)
