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
from imagewatchd.hashindex import HammingIndex, hamming
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

    def add(self, watch: Watch, file_id: int, fp: Fingerprint) -> None:
        """A file recorded in an inbox (``watch``; a flat one matches by sha256)."""
        index = None if watch.inbox is None else self.indexes.get(str(watch.inbox.library))
        if index is not None and not fp.flat:
            index.add(file_id, fp.dhash, fp.phash)
        elif index is not None:
            index.remove(file_id)

    def seen(self, watch: Watch, row: FileRow) -> None:
        """A file found unchanged in an inbox: recorded by another process (``undo`` put it
        back, ``scan --act``) if the index does not hold it yet."""
        index = None if watch.inbox is None else self.indexes.get(str(watch.inbox.library))
        fp = row.fingerprint()
        if index is not None and fp is not None and not fp.flat and row.id not in index:
            index.add(row.id, fp.dhash, fp.phash)

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
        near: set[int] = set()
        pairs = () if fp.flat else ((fp.dhash, fp.phash), *fp.regions)
        for dhash, phash in pairs:
            hits = self.indexes[library].search(dhash, phash, t.dhash, t.phash)
            near.update(key for key, _, _ in hits)
        rows = {**store.files_by_id(near - exact.keys()), **exact}
        rows.pop(-1 if exclude is None else exclude, None)
        rows = {key: row for key, row in rows.items() if _waiting(row, roots)}
        different = store.not_duplicates(fp.sha256) if rows else set()
        found = [
            _match(row, key in exact, (0, 0) if key in exact else _distances(pairs, row, t))
            for key, row in rows.items()
            if row.sha256 not in different
        ]
        # the row's own hashes decide: an id in the index may have been taken by another row
        return tuple(sorted((m for m in found if _within(m, t)), key=_closest_first))


def _waiting(row: FileRow, roots: tuple[str, ...]) -> bool:
    """Still a fingerprinted incoming file below one of the inboxes, still there."""
    inside = any(PurePath(row.path).is_relative_to(root) for root in roots)
    fingerprinted = row.error is None and row.fingerprint() is not None
    return inside and fingerprinted and row.role is Role.INCOMING and os.path.lexists(row.path)


def _distances(pairs: tuple[tuple[int, int], ...], row: FileRow, t: Thresholds) -> tuple[int, int]:
    """The closest of the query's hashes (the picture, its regions) to the row's, one within
    the thresholds first."""
    return min(
        ((hamming(d, row.dhash or 0), hamming(p, row.phash or 0)) for d, p in pairs),
        key=lambda pair: (pair[0] > t.dhash or pair[1] > t.phash, sum(pair)),
        default=(65, 65),
    )


def _within(match: Match, t: Thresholds) -> bool:
    return match.exact or (match.dhash_distance <= t.dhash and match.phash_distance <= t.phash)


def _match(row: FileRow, exact: bool, distances: tuple[int, int]) -> Match:
    return Match(
        source=INBOX, exact=exact, dhash_distance=0 if exact else distances[0],
        phash_distance=0 if exact else distances[1], file_id=row.id, path=row.path,
    )  # fmt: skip


def _closest_first(match: Match) -> tuple[bool, int, int]:
    return (not match.exact, match.dhash_distance + match.phash_distance, match.file_id or 0)
