"""Better arrivals win: a library newcomer that duplicates library files is ranked with the
copies it matches, as one group, by the keep policy of the watch holding them (a ``dupes keep``
decision first, reference folders always kept). The group's keeper stays; every other copy
gets its watch's ``on_duplicate`` (the pipeline acts, through the actor: the same journal and
undo): the newcomer when it loses, and the library copies the keeper beats, whoever that is.
A copy in a reference folder is never moved, winner or not.

What the newcomer matches includes what the run remembers (imagewatchd/kin.py): copies moved
away stand for the keeper of their group, and library files' trimmed regions are matched too,
so that a group is the same whatever order its files arrived in, and so is its keeper.

Pure ranking: the store is read (rows, decisions), nothing is changed here.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import PurePath

from imagewatchd.config import Config
from imagewatchd.dupes import ordered_group
from imagewatchd.keep import in_reference
from imagewatchd.keepconfig import Policies
from imagewatchd.kin import Kin
from imagewatchd.models import (
    Fingerprint,
    Match,
    Role,
    SettledFile,
    Thresholds,
    Verdict,
    VerdictKind,
)
from imagewatchd.rows import FileRow
from imagewatchd.store import Store

NEWCOMER = -1  # the newcomer's id while it has no row


@dataclass(frozen=True, slots=True)
class Ranking:
    """What the policy says of a newcomer's group: the library copies its keeper beats (they
    get on_duplicate), the keeper (None: no group), why it wins, and whether the
    newcomer is held in a reference folder (never moved)."""

    @property
    def wins(self) -> bool:
        return self.keeper is not None and self.keeper.id == NEWCOMER

    beaten: tuple[FileRow, ...] = ()
    keeper: FileRow | None = None  # the newcomer's own row (id NEWCOMER) when it wins
    reason: str = ""
    held: bool = False


def rank_arrival(
    store: Store, config: Config, settled: SettledFile, fp: Fingerprint, verdict: Verdict
) -> Ranking:
    ids = [m.file_id for m in verdict.matches if m.source == "library" and m.file_id is not None]
    found = store.files_by_id(ids).values() if ids else []
    olds = [r for r in found if r.role is Role.LIBRARY and r.error is None]
    olds = [r for r in olds if r.path != settled.path and r.fingerprint() is not None]
    rows = [_row_of(settled, fp), *olds]
    policy = Policies.of(config.watches).for_paths([r.path for r in rows])
    held = in_reference(settled.path, policy)
    if not olds:
        return Ranking(held=held)
    kept, _ = store.decisions_among(r.sha256 for r in rows if r.sha256)
    group = ordered_group(rows, kept, policy)
    beaten = tuple(
        r
        for r in group.files[1:]
        if r.id not in (NEWCOMER, *group.reference) and group.kept_by(r) is None
    )
    return Ranking(beaten, group.best, group.reason, held)


def with_relatives(
    store: Store, kin: Kin, settled: SettledFile, fp: Fingerprint, verdict: Verdict,
    thresholds: Thresholds,
) -> Verdict:  # fmt: skip
    """The verdict of a library newcomer with what it matches beyond the library index
    (kin.py): a duplicate of those library files too. A list match stands as it is."""
    if verdict.kind in (VerdictKind.KNOWN, VerdictKind.ERROR):
        return verdict
    found = kin.relatives(fp, thresholds)
    far = dict(found.by_region)
    rows = store.files_by_id(far) if far else {}
    for path, distances in found.by_moved.items():
        row = store.get_file(path)
        if row is not None:
            rows[row.id] = row
            far.setdefault(row.id, distances)
    known = {m.file_id for m in verdict.matches} if verdict.kind is VerdictKind.DUPLICATE else set()
    different = store.not_duplicates(fp.sha256) if rows else set()
    more = [
        _match(row, far[key])
        for key, row in sorted(rows.items())
        if key not in known and row.path != settled.path and row.role is Role.LIBRARY
        and row.error is None and row.sha256 not in different and os.path.lexists(row.path)
    ]  # fmt: skip
    if not more:
        return verdict
    if verdict.kind is VerdictKind.DUPLICATE:
        return Verdict(VerdictKind.DUPLICATE, (*verdict.matches, *more), flat=fp.flat)
    return Verdict(VerdictKind.DUPLICATE, tuple(more), flat=fp.flat)


def _match(row: FileRow, distances: tuple[int, int]) -> Match:
    return Match(
        source="library", exact=False, dhash_distance=distances[0],
        phash_distance=distances[1], file_id=row.id, path=row.path,
    )  # fmt: skip


def watch_of(config: Config, path: str) -> int | None:
    """The index of the library watch holding ``path``, if one does."""
    for index, watch in enumerate(config.watches):
        if watch.role is Role.LIBRARY and PurePath(path).is_relative_to(watch.path):
            return index
    return None


def _row_of(settled: SettledFile, fp: Fingerprint) -> FileRow:
    """The newcomer as a row, for the ranking (it is recorded only once decided)."""
    return FileRow(
        NEWCOMER, settled.path, settled.stat, Role.LIBRARY, fp.sha256, fp.dhash, fp.phash,
        fp.width, fp.height, fp.format, fp.flat, fp.canon_version, None, 0.0, 0.0, fp.pdq,
        fp.pdq_quality, fp.provenance,
    )  # fmt: skip
