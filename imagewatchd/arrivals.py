"""Better arrivals win: a library newcomer that duplicates library files is ranked against the
copies it matches, by the keep policy of the watch holding them (a ``dupes keep`` decision
first, reference folders always kept). When the newcomer wins it stays, and each copy it beat
gets its watch's ``on_duplicate`` instead (the pipeline acts, through the actor: the same
journal and undo). A newcomer in a reference folder is never moved, winner or not.

Pure ranking: the store is read (rows, decisions), nothing is changed here.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import PurePath

from imagewatchd.config import Config
from imagewatchd.dupes import ordered_group
from imagewatchd.keep import in_reference
from imagewatchd.keepconfig import Policies
from imagewatchd.models import Fingerprint, Role, SettledFile, Verdict
from imagewatchd.rows import FileRow
from imagewatchd.store import Store

NEWCOMER = -1  # the newcomer's id while it has no row


@dataclass(frozen=True, slots=True)
class Ranking:
    """What the policy says of a newcomer: the library copies it beats (empty: it does not
    win), why it wins, and whether it is held in a reference folder (never moved)."""

    beaten: tuple[FileRow, ...] = ()
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
    if group.best.id != NEWCOMER:
        return Ranking(held=held)
    beaten = tuple(
        r for r in group.files[1:] if r.id not in group.reference and group.kept_by(r) is None
    )
    return Ranking(beaten, group.reason, held)


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
