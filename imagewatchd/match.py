"""Match stage: Fingerprint → Verdict, against the hash lists and the library. Reads only.

A match needs agreeing evidence: an identical sha256, or dHash and pHash both within their
thresholds, or, for a list entry that has a PDQ (an exchanged PDQ list, or a picture added to a
list), PDQ within its threshold when both the entry's quality and the query's reach the quality
floor (docs/BENCHMARKS.md, "Issue 8: PDQ": more recall, no false match). Library duplicates
still need dHash and pHash. The query's regions (the picture without uniform borders, padding
or a caption bar, imagewatchd/regions.py) are searched like the whole picture, against list
entries and the library alike; its other readings of the borders (``regions.more_boxes``) and
an entry's centre crops, being more chances for a look-alike, at the stricter thresholds of
another orientation (``Thresholds.turned``). A library file beyond the duplicate thresholds
but within the similar band (``matching.similar_dhash``/``similar_phash``: burst shots, near
frames) makes the verdict ``similar``, never ``duplicate``. Flat images (no structure to
hash) match only by sha256. An allow-list entry that matches suppresses every block match.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from functools import lru_cache

from imagewatchd import bankindex, colours, snapshot, verify
from imagewatchd.entrygrids import EntryGrids
from imagewatchd.hashindex import HammingIndex, hamming
from imagewatchd.models import (
    SAME,
    Fingerprint,
    ListKind,
    Match,
    Orientations,
    Role,
    Thresholds,
    Turned,
    Verdict,
    VerdictKind,
)  # fmt: skip
from imagewatchd.pdqindex import PdqIndex, words_of_bytes
from imagewatchd.rows import EntryRow, FileRow, region_of
from imagewatchd.store import Store

log = logging.getLogger(__name__)


@dataclass(slots=True)
class Indexes:
    """The near-match indexes; one set shared by every thread's ``Matcher``."""

    entries: HammingIndex = field(default_factory=HammingIndex)
    # entries' centre crops, keyed by rows.region_of's key (entries made from a picture)
    regions: HammingIndex = field(default_factory=HammingIndex)
    library: HammingIndex = field(default_factory=HammingIndex)
    pdq: PdqIndex = field(default_factory=PdqIndex)  # entries with a PDQ above the quality floor
    grids: EntryGrids = field(default_factory=EntryGrids)  # the entries' grids (verify.py)
    counters: tuple[int, int] = (-1, -1)  # the store's entry counters at the last load
    last_entry_id: int = 0
    # with a bank change log (PostgreSQL, ``bankindex.py``): the bank, the last change applied,
    # the head last seen, the change the snapshot on disk reflects, the one recorded in the
    # database; and how many times the entry indexes were loaded whole
    bank_id: int | None = None
    applied: int = -1
    head: int = -1
    saved: int = -1
    recorded: int = -1
    rebuilds: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)


class Matcher:
    """Matches against the in-memory indexes, reading details from its thread's store."""

    def __init__(
        self, store: Store, thresholds: Thresholds, indexes: Indexes | None = None
    ) -> None:
        self.store = store
        self.thresholds = thresholds
        self.indexes = indexes if indexes is not None else Indexes()

    @property
    def entries(self) -> HammingIndex:
        return self.indexes.entries

    @property
    def library(self) -> HammingIndex:
        return self.indexes.library

    @classmethod
    def load(cls, store: Store, thresholds: Thresholds) -> Matcher:
        matcher = cls(store, thresholds)
        bankindex.start(matcher.indexes, store)  # the bank snapshot, if any: changes since
        matcher.refresh_entries()
        matcher.indexes.library = snapshot.load_library(store)  # column-wise or mapped
        log.debug(
            "loaded %d list entries and %d library files",
            len(matcher.entries),
            len(matcher.library),
        )
        return matcher

    def bind(self, store: Store) -> Matcher:
        """The same indexes, read through another thread's store."""
        return Matcher(store, self.thresholds, self.indexes)

    def refresh_entries(self) -> bool:
        """Bring the entry index up to date with the store; cheap when nothing changed.

        With a bank change log, every change is applied incrementally (``bankindex``);
        without (SQLite), new entries are, and a disable or removal rebuilds the index.
        """
        with self.indexes.lock:
            applied = bankindex.refresh(self.indexes, self.store, self.thresholds.pdq_quality)
            if applied is not None:
                return applied
            counters = self.store.entry_counters()
            old = self.indexes.counters
            if counters == old:
                return False
            incremental = counters[1] == old[1]
            since = self.indexes.last_entry_id if incremental else 0
            near = self.store.near_entry_hashes_after(since)  # read after the counters
            floor = self.thresholds.pdq_quality
            pdq_ids, pdqs = self.store.pdq_entry_hashes_after(since, floor)
            crops = self.store.entry_region_hashes_after(since)
            grids = self.store.enabled_grids_after(since)  # each in its entry's transaction
            # a rebuild fills new indexes, then puts them in place: a match meanwhile (other
            # threads read without the lock) sees the old ones whole, never empty ones
            entries, regions, pdq, held = (
                (self.indexes.entries, self.indexes.regions, self.indexes.pdq, self.indexes.grids)
                if incremental else (HammingIndex(), HammingIndex(), PdqIndex(), EntryGrids())
            )  # fmt: skip
            entries.add_many(*near)
            regions.add_many(*crops)
            held.add_many(*grids)
            pdq.add_many(pdq_ids, words_of_bytes(pdqs))
            if not incremental:
                self.indexes.entries, self.indexes.regions = entries, regions
                self.indexes.pdq, self.indexes.grids = pdq, held
                self.indexes.rebuilds += 1
            last = max(near[0].max(initial=since), pdq_ids.max(initial=since))
            self.indexes.last_entry_id = int(last)
            self.indexes.counters = counters
            return True

    def record_bank(self) -> None:
        """Record in the database the last bank change applied (when it moved)."""
        bankindex.record(self.indexes, self.store)

    def add_library_file(self, file_id: int, fp: Fingerprint) -> None:
        if fp.flat:
            self.library.remove(file_id)
        else:
            self.library.add(file_id, fp.dhash, fp.phash)

    def remove_library_file(self, file_id: int) -> None:
        self.library.remove(file_id)

    def match(
        self, fp: Fingerprint, *, exclude_file: int | None = None,
        orientations: Orientations = Orientations.LISTS, similar: bool = True,
    ) -> Verdict:  # fmt: skip
        """The verdict for one fingerprint; ``exclude_file`` is the file's own library row;
        ``orientations``: where a mirrored or rotated copy counts (the watch's setting);
        ``similar``: whether the similar band is searched (where something consumes it)."""
        found = self.list_matches(fp, turned=orientations.lists)
        listed, aside = colours.screen(self.store, fp, found)  # and what it set aside
        block = tuple(m for m in listed if m.list_kind is ListKind.BLOCK)
        allow = tuple(m for m in listed if m.list_kind is ListKind.ALLOW)
        if block and allow:
            return Verdict(VerdictKind.CLEAN, allowed_by=allow, suppressed=block, flat=fp.flat,
                           recoloured=aside)  # fmt: skip
        if block:
            return Verdict(VerdictKind.KNOWN, matches=block, flat=fp.flat, recoloured=aside)
        duplicates = self.library_matches(
            fp, exclude_file=exclude_file, turned=orientations.library
        )
        if duplicates:
            return Verdict(VerdictKind.DUPLICATE, matches=duplicates, flat=fp.flat,
                           recoloured=aside)  # fmt: skip
        alike = self.similar_matches(fp, exclude_file=exclude_file) if similar else ()
        if alike:
            return Verdict(VerdictKind.SIMILAR, matches=alike, flat=fp.flat, recoloured=aside)
        return Verdict(VerdictKind.CLEAN, allowed_by=allow, flat=fp.flat, recoloured=aside)

    def list_matches(self, fp: Fingerprint, *, turned: bool = True) -> tuple[Match, ...]:
        """Entries that match ``fp``; with ``turned``, the first of its other orientations
        that matches anything when the picture as it is matches nothing."""
        exact = {row.id: row for row in self.store.entries_by_sha256(fp.sha256)}
        near: set[int] = set()
        by_pdq: set[int] = set()
        cropped: dict[int, Cropped] = {}
        view = _same(fp)
        views = _views(fp, turned and not exact)
        every = self._search_all(  # every view in one pass; the first that matches counts
            self.entries, [self._queries(v, _regions(fp, v), more=_more(fp, v)) for v in views]
        )
        pdq = self._search_pdq(fp, views)
        for view, hits, by_pdq in zip(views, every, pdq, strict=True):
            near = {key for key, _, _ in hits}
            cropped = self._search_crops(fp, view, near)
            if near or by_pdq or cropped or exact:
                break
        if not (near or by_pdq or cropped or exact):
            return verify.wider_matches(self, fp)  # a watermarked copy? (verify.py)
        missing = [key for key in near | by_pdq | cropped.keys() if key not in exact]
        rows = {**exact, **{row.id: row for row in self.store.entries(ids=missing)}}
        floor = self.thresholds.pdq_query_quality  # the regions' PDQs a match may report
        parts = (_shown(fp, view), tuple(r for r in _region_pdqs(fp, view) if r[1] >= floor))
        found = [
            _entry_match(rows[key], view, key in exact, key in by_pdq and key not in near, *parts)
            for key in rows
            if rows[key].enabled
        ]
        found = [_cropped(m, cropped.get(m.entry_id or 0)) for m in found]
        return tuple(sorted(found, key=_strength))

    def _search_crops(self, fp: Fingerprint, view: Turned, found: set[int]) -> dict[int, Cropped]:
        """Entries that match the query (as it is, and its trimmed regions) by one of their
        centre crops, not by their whole's dHash and pHash (``found``): (region, dHash
        distance, pHash distance), the closest crop each. One found by PDQ too is reported by
        its crop: two hashes agree."""
        if view.turn != SAME:
            return {}  # measured on the picture as it is only (docs/BENCHMARKS.md)
        best: dict[int, Cropped] = {}
        # three crops give a look-alike three more chances, as other orientations do: the
        # turned margin (docs/BENCHMARKS.md, "Issue 8: dark borders, captions, benign")
        strict = self.thresholds.turned()
        for key, dd, pd in self._search(self.indexes.regions, view, _shown(fp, view), strict):
            entry_id, region = region_of(key)
            old = best.get(entry_id, ("", 65, 65))
            if entry_id not in found and dd + pd < old[1] + old[2]:
                best[entry_id] = (region, dd, pd)
        return best

    def _search_pdq(self, fp: Fingerprint, views: list[Turned]) -> list[set[int]]:
        """Each view's entries within the PDQ threshold, if the query's PDQ is good enough;
        the picture as it is searches its regions' PDQs too (borders and bars trimmed: each
        region's own quality must pass the floor). Every view in one pass
        (PdqIndex.search_many)."""
        t = self.thresholds
        probes = [[v.pdq] if v.pdq is not None and fp.pdq_quality >= t.pdq_query_quality
                  else [] for v in views]  # fmt: skip
        if views and views[0].turn == SAME:
            probes[0] += [h for h, quality in fp.region_pdqs if quality >= t.pdq_query_quality]
        if not any(probes):
            return [set() for _ in views]
        answers = iter(self.indexes.pdq.search_many([h for view in probes for h in view], t.pdq))
        return [{key for _ in view for key, _ in next(answers)} for view in probes]

    def library_matches(
        self, fp: Fingerprint, *, exclude_file: int | None = None, turned: bool = False
    ) -> tuple[Match, ...]:
        """Library files that ``fp`` duplicates; ``turned`` as for ``list_matches``."""
        exact = {row.id: row for row in self.store.files_by_sha256(fp.sha256, Role.LIBRARY)}
        rows = self._live(exact, [], exclude_file, fp.sha256)
        view = _same(fp)
        for view in _views(fp, turned and not rows):
            hits = self._search(self.library, view, _regions(fp, view), more=_more(fp, view))
            near_ids = [key for key, _, _ in hits]
            rows = self._live(exact, near_ids, exclude_file, fp.sha256)
            if rows:
                break
        regions = _shown(fp, view)
        found = [_file_match(r, view, r.id in exact, regions) for r in rows.values()]
        return tuple(sorted(found, key=_strength))

    def similar_matches(
        self, fp: Fingerprint, *, exclude_file: int | None = None
    ) -> tuple[Match, ...]:
        """Library files within the similar band (burst shots, near frames): the picture as
        it is only, both distances within the band's thresholds. Called when nothing is a
        duplicate, so none of these is one."""
        t = self.thresholds
        if fp.flat or (t.similar_dhash <= t.dhash and t.similar_phash <= t.phash):
            return ()
        view = _same(fp)
        hits = self.library.search(fp.dhash, fp.phash, t.similar_dhash, t.similar_phash)
        rows = self._live({}, [key for key, _, _ in hits], exclude_file, fp.sha256)
        found = [_file_match(r, view, False) for r in rows.values()]
        return tuple(sorted(found, key=_strength))

    def _live(
        self, exact: dict[int, FileRow], near_ids: list[int], exclude_file: int | None,
        sha256: str,
    ) -> dict[int, FileRow]:  # fmt: skip
        """The library rows found, but the file's own; a library file renamed or deleted
        since it was indexed is no evidence, nor is one someone said this picture is not a
        duplicate of (``dupes not-duplicate``), nor a row that took a forgotten library file's
        id (SQLite reuses the highest: an undone filing's row in its inbox)."""
        rows = {**self.store.files_by_id(k for k in near_ids if k not in exact), **exact}
        rows.pop(exclude_file if exclude_file is not None else -1, None)
        if rows:
            different = self.store.not_duplicates(sha256)
            rows = {key: row for key, row in rows.items() if row.sha256 not in different}
        return {
            key: row for key, row in rows.items()
            if row.role is Role.LIBRARY and os.path.lexists(row.path)
        }  # fmt: skip

    def _search(
        self, index: HammingIndex, view: Turned, regions: Regions = (),
        strict: Thresholds | None = None, more: Regions = (),
    ) -> list[tuple[int, int, int]]:  # fmt: skip
        """The view's hashes, then its regions' (borders, caption bar trimmed); ``strict``:
        thresholds other than the view's own; ``more``: regions searched at the turned ones
        (regions.more_boxes: more chances for a look-alike)."""
        return self._search_all(index, [self._queries(view, regions, strict, more)])[0]

    def _queries(
        self, view: Turned, regions: Regions = (), strict: Thresholds | None = None,
        more: Regions = (),
    ) -> list[Query]:  # fmt: skip
        """The searches ``_search`` makes for a view, in its order."""
        turned = _turned(self.thresholds)
        t = strict or (self.thresholds if view.turn == SAME else turned)
        searches = [(pair, t) for pair in ((view.dhash, view.phash), *regions)]
        every = [*searches, *((pair, turned) for pair in more)]
        return [(dhash, phash, limits.dhash, limits.phash) for (dhash, phash), limits in every]

    @staticmethod
    def _search_all(index: HammingIndex, views: list[list[Query]]) -> list[list[Hit]]:
        """Each view's hits, its searches' in their order (the first hit of an entry kept),
        every search of every view made in one pass (``HammingIndex.search_many``)."""
        answers = iter(index.search_many([query for queries in views for query in queries]))
        found: list[list[Hit]] = []
        for queries in views:
            hits: dict[int, Hit] = {}
            for _ in queries:
                for hit in next(answers):
                    hits.setdefault(hit[0], hit)
            found.append(list(hits.values()))
        return found


Query = tuple[int, int, int, int]  # (dHash, pHash, max dHash, max pHash)
Hit = tuple[int, int, int]  # (key, dHash distance, pHash distance)
Regions = tuple[tuple[int, int], ...]
Cropped = tuple[str, int, int]  # an entry's centre crop that matched, and its distances


@lru_cache(maxsize=8)
def _turned(thresholds: Thresholds) -> Thresholds:
    return thresholds.turned()


def _cropped(match: Match, crop: Cropped | None) -> Match:
    """A match made by one of the entry's centre crops says which, and its distances."""
    if crop is None or match.exact:
        return match
    region, dd, pd = crop
    return replace(match, region=region, dhash_distance=dd, phash_distance=pd, by_pdq=False)


def _same(fp: Fingerprint) -> Turned:
    return Turned(SAME, fp.dhash, fp.phash, fp.pdq)


def _regions(fp: Fingerprint, view: Turned) -> Regions:
    """The query's regions (imagewatchd/regions.py) go with the picture as it is only."""
    return fp.regions if view.turn == SAME else ()


def _more(fp: Fingerprint, view: Turned) -> Regions:
    """The query's other readings of its borders (regions.more_boxes), as it is only."""
    return fp.more_regions if view.turn == SAME else ()


def _region_pdqs(fp: Fingerprint, view: Turned) -> Regions:
    """The query's regions' (PDQ, quality), as it is only."""
    return fp.region_pdqs if view.turn == SAME else ()


def _shown(fp: Fingerprint, view: Turned) -> Regions:
    """Every region of the view, for the distances a match reports."""
    return (*_regions(fp, view), *_more(fp, view))


def _views(fp: Fingerprint, turned: bool) -> list[Turned]:
    """The query's orientations to search, the picture as it is first; a flat picture has
    none (only its sha256 can match)."""
    if fp.flat:
        return []
    return [_same(fp), *fp.turned] if turned else [_same(fp)]


def _distances(
    view: Turned, dhash: int | None, phash: int | None, regions: Regions = ()
) -> tuple[int, int]:
    """The closest of the view's and its regions' hashes to the stored pair."""
    if dhash is None or phash is None:
        return 0, 0  # an exact-only entry: the sha256 is the evidence
    pairs = [
        (hamming(d, dhash), hamming(p, phash)) for d, p in ((view.dhash, view.phash), *regions)
    ]
    return min(pairs, key=lambda pair: (max(pair), sum(pair)))


def _pdq_distance(view: Turned, pdq: int | None, regions: Regions = ()) -> int | None:
    """The closest of the view's and (as it is) its regions' PDQs to the stored one."""
    mine = [h for h in (view.pdq, *(h for h, _ in regions)) if h is not None]
    return None if pdq is None or not mine else min(hamming(h, pdq) for h in mine)


def _entry_match(
    row: EntryRow, view: Turned, exact: bool, by_pdq: bool = False, regions: Regions = (),
    region_pdqs: Regions = (),
) -> Match:  # fmt: skip
    dd, pd = _distances(view, row.dhash, row.phash, regions)
    return Match(
        source="list", exact=exact, dhash_distance=dd, phash_distance=pd,
        list_name=row.list_name, list_kind=row.list_kind, entry_id=row.id, label=row.label,
        pdq_distance=_pdq_distance(view, row.pdq, region_pdqs), by_pdq=by_pdq and not exact,
        orientation=SAME if exact else view.turn,
    )  # fmt: skip


def _file_match(row: FileRow, view: Turned, exact: bool, regions: Regions = ()) -> Match:
    dd, pd = _distances(view, row.dhash, row.phash, regions)
    return Match(
        source="library", exact=exact, dhash_distance=dd, phash_distance=pd,
        file_id=row.id, path=row.path, pdq_distance=_pdq_distance(view, row.pdq),
        orientation=SAME if exact else view.turn,
    )  # fmt: skip


def _strength(match: Match) -> tuple[bool, bool, int, int]:
    near = match.dhash_distance + match.phash_distance
    return (not match.exact, match.by_pdq, near, match.entry_id or 0)


def entry_ids(matches: Iterable[Match]) -> list[int]:
    return [m.entry_id for m in matches if m.entry_id is not None]
