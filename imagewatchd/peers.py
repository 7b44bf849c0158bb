"""A library's inboxes compared with each other (issue 10): the photos waiting in them.

With ``on_new: none`` (the default) a unique arrival stays in its inbox, to be sorted by hand,
and is no library file: compared with the library only, a second copy of it, in the same inbox
or another inbox of the same library, would pass unnoticed. So the daemon keeps, per library,
an index of the files its inboxes hold (their dHash and pHash by row id): loaded column-wise at
start (``Peers.load``), a file added as it is recorded, removed as it leaves (moved away as a
duplicate, filed, moved by hand into the library, deleted: the session's Gone path). An
arrival new to the library is matched against it too (``Peers.matches``): a copy waiting in an
inbox makes it a ``duplicate`` of that copy (``source="inbox"``), and the keep policy of the
library decides which of them stays (``inbox.rank_peers``).

The index may hold stale ids (a row forgotten or changed by another process): every id found
is checked against its current row (still an incoming file below one of the library's inboxes,
still there) before it counts. Read and changed under the library's arrival lock.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import PurePath

from imagewatchd.config import Config, Watch
from imagewatchd.hashindex import HammingIndex
from imagewatchd.models import Fingerprint, Match, Role, Thresholds, Verdict, VerdictKind
from imagewatchd.rows import FileRow
from imagewatchd.store import Store

INBOX = "inbox"  # a Match's source: a copy waiting in an inbox


def inboxes_of(config: Config) -> dict[str, tuple[str, ...]]:
    """Each library watch's path → the paths of the inboxes that feed it."""
    found: dict[str, tuple[str, ...]] = {}
    for watch in config.watches:
        if watch.inbox is not None:
            library = str(watch.inbox.library)
            found[library] = (*found.get(library, ()), str(watch.path))
    return found


class Peers:
    """The files waiting in each library's inboxes (see the module's docstring)."""

    def __init__(self, inboxes: Mapping[str, tuple[str, ...]] | None = None) -> None:
        self.roots = dict(inboxes or {})  # library → its inboxes
        self.indexes = {library: HammingIndex() for library in self.roots}

    @classmethod
    def load(cls, store: Store, config: Config) -> Peers:
        """Every library's inbox files as the store holds them, one query per inbox."""
        peers = cls(inboxes_of(config))
        for library, roots in peers.roots.items():
            peers.indexes[library].add_many(*store.incoming_hashes_under(roots))
        return peers

    def __len__(self) -> int:
        return sum(len(index) for index in self.indexes.values())

    def add(self, library: str, file_id: int, fp: Fingerprint) -> None:
        """A file recorded in one of ``library``'s inboxes (a flat one matches by sha256)."""
        index = self.indexes.get(library)
        if index is not None and not fp.flat:
            index.add(file_id, fp.dhash, fp.phash)
        elif index is not None:
            index.remove(file_id)

    def remove(self, file_id: int) -> None:
        """The file left its inbox (or was never in one: then nothing happens)."""
        for index in self.indexes.values():
            index.remove(file_id)

    def joined(
        self, store: Store, watch: Watch, exclude: int | None, fp: Fingerprint, verdict: Verdict,
        t: Thresholds,
    ) -> Verdict:  # fmt: skip
        """The verdict of an arrival in an inbox (``watch``) new to the library (clean, or
        similar): a duplicate of the copies waiting in the library's inboxes it matches."""
        new = verdict.kind is VerdictKind.SIMILAR or (
            verdict.kind is VerdictKind.CLEAN and not verdict.suppressed
        )
        if watch.inbox is None or not new:
            return verdict
        found = self.matches(store, str(watch.inbox.library), fp, exclude, t)
        return Verdict(VerdictKind.DUPLICATE, found, flat=fp.flat) if found else verdict

    def matches(
        self, store: Store, library: str, fp: Fingerprint, exclude: int | None, t: Thresholds
    ) -> tuple[Match, ...]:
        """The copies waiting in ``library``'s inboxes that ``fp`` duplicates (an identical
        sha256, or both hashes within the duplicate thresholds, the picture as it is or one of
        its regions), but the file's own row ``exclude`` and those a ``dupes not-duplicate``
        decision parts from it; the closest first."""
        roots = self.roots.get(library)
        if not roots:
            return ()
        exact = {row.id: row for row in store.incoming_files_by_sha256([fp.sha256])}
        near: dict[int, tuple[int, int]] = {}
        if not fp.flat:
            for dhash, phash in ((fp.dhash, fp.phash), *fp.regions):
                for key, dd, pd in self.indexes[library].search(dhash, phash, t.dhash, t.phash):
                    if key not in near or dd + pd < sum(near[key]):
                        near[key] = (dd, pd)
        rows = {**store.files_by_id(k for k in near if k not in exact), **exact}
        rows.pop(-1 if exclude is None else exclude, None)
        rows = {key: row for key, row in rows.items() if _waiting(row, roots)}
        different = store.not_duplicates(fp.sha256) if rows else set()
        found = [
            _match(row, key in exact, near.get(key, (0, 0)))
            for key, row in rows.items()
            if row.sha256 not in different
        ]
        return tuple(sorted(found, key=_closest_first))


def _waiting(row: FileRow, roots: tuple[str, ...]) -> bool:
    """Still a fingerprinted incoming file below one of the inboxes, still there."""
    inside = any(PurePath(row.path).is_relative_to(root) for root in roots)
    fingerprinted = row.error is None and row.fingerprint() is not None
    return inside and fingerprinted and row.role is Role.INCOMING and os.path.lexists(row.path)


def _match(row: FileRow, exact: bool, distances: tuple[int, int]) -> Match:
    return Match(
        source=INBOX, exact=exact, dhash_distance=0 if exact else distances[0],
        phash_distance=0 if exact else distances[1], file_id=row.id, path=row.path,
    )  # fmt: skip


def _closest_first(match: Match) -> tuple[bool, int, int]:
    return (not match.exact, match.dhash_distance + match.phash_distance, match.file_id or 0)
