"""Groups of near-duplicate library files, best copy first, found in one pass over arrays.

Links: every pair of indexed library files within both thresholds (``hashjoin.near_pairs``, a
self-join of the near-match index) and every set of library files with one sha256 (one grouped
query). Groups are the connected components of those links (an array union-find); only the
groups' own rows are read from the store, to order them: a copy kept by a durable decision
first, then the keep policy of the watch holding the group (imagewatchd/keep.py), each copy
with the reason the keeper beat it.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from imagewatchd.hashindex import hamming
from imagewatchd.hashjoin import near_pairs
from imagewatchd.keep import Copy, KeepPolicy, in_reference, rank
from imagewatchd.keepconfig import Policies
from imagewatchd.match import Matcher
from imagewatchd.models import Role
from imagewatchd.rows import FileRow
from imagewatchd.store import Store
from imagewatchd.store.decisions import NOT_DUPLICATE

Ids = NDArray[np.int64]
DEFAULT_POLICY = KeepPolicy()
NO_WATCHES = Policies()  # every group ranked by the default policy


@dataclass(frozen=True, slots=True)
class Among:
    """The files whose groups are wanted: the fingerprinted ones (``ids``) and, of those, the
    ones with structure (``searched``: not flat), as the old per-file search chose them."""

    ids: Ids
    searched: Ids

    @classmethod
    def of_rows(cls, rows: Iterable[FileRow]) -> Among:
        given = [r for r in rows if None not in (r.sha256, r.dhash, r.phash)]
        return cls(
            np.array([r.id for r in given], np.int64),
            np.array([r.id for r in given if not r.flat], np.int64),
        )

    @classmethod
    def under(cls, store: Store, roots: Iterable[Path]) -> Among:
        """The library files at or below ``roots``, read column-wise."""
        ids, flat = store.library_fingerprints_under([str(root) for root in roots])
        return cls(ids, ids[~flat])


@dataclass(frozen=True, slots=True)
class DupeGroup:
    # best first: kept by a decision, then by the keep policy (``ordered_group``)
    files: tuple[FileRow, ...]
    kept: tuple[tuple[int, int], ...] = ()  # (file id, decision id) of files kept by decision
    # the keeper's: why it wins; each other copy's: why the keeper beat it
    reasons: tuple[str, ...] = ()
    reference: tuple[int, ...] = ()  # ids of the files in a reference folder: never moved

    @property
    def best(self) -> FileRow:
        return self.files[0]

    @property
    def reason(self) -> str:
        """Why the first file is the one kept: the one place that says so."""
        return self.reasons[0] if self.reasons else "the only copy"

    def kept_by(self, row: FileRow) -> int | None:
        return dict(self.kept).get(row.id)

    def reason_of(self, row: FileRow) -> str:
        return dict(zip((r.id for r in self.files), self.reasons, strict=False)).get(row.id, "")


def copy_of(row: FileRow) -> Copy:
    """A file as the keep policy sees it (no provenance stored: no evidence)."""
    return Copy(row.path, row.width or 0, row.height or 0, row.format or "", row.stat.size,
                row.stat.mtime_ns, row.provenance)  # fmt: skip


def ordered_group(
    rows: Sequence[FileRow], kept: dict[str, int], policy: KeepPolicy = DEFAULT_POLICY
) -> DupeGroup:
    """The group best first: copies kept by a decision (``kept``: sha256 → decision id), then
    the policy's order; with the reasons."""
    ranked = rank([copy_of(r) for r in rows], policy)
    by_path = {r.path: r for r in rows}
    ordered = [by_path[x.copy.path] for x in ranked]
    reasons = [x.reason for x in ranked]
    decided = [r for r in ordered if r.sha256 in kept]
    by = tuple((r.id, kept[r.sha256 or ""]) for r in decided)
    if decided:
        first = kept[decided[0].sha256 or ""]
        reasons = [f"kept by decision {kept[r.sha256 or '']}" for r in decided] + [
            f"decision {first} keeps another copy" for r in ordered if r.sha256 not in kept
        ]
        ordered = decided + [r for r in ordered if r.sha256 not in kept]
    held = tuple(r.id for r in ordered if in_reference(r.path, policy))
    return DupeGroup(tuple(ordered), by, tuple(reasons), held)


def _undecided(store: Store, first: Ids, second: Ids) -> tuple[Ids, Ids]:
    """The links, less those between pictures someone said are not duplicates."""
    pairs = [(d.sha256, d.other) for d in store.decisions() if d.kind == NOT_DUPLICATE]
    if not pairs or not len(first):
        return first, second
    ids = {
        sha: [r.id for r in store.files_by_sha256(sha, Role.LIBRARY)]
        for sha in {s for pair in pairs for s in pair if s is not None}
    }
    both = [(a, b) for x, y in pairs for a in ids[x] for b in ids.get(y or "", [])]
    if not both:
        return first, second
    banned = _pair_key(*(np.array(side, np.int64).reshape(-1) for side in zip(*both, strict=True)))
    keep = ~np.isin(_pair_key(first, second), banned)
    return first[keep], second[keep]


def _pair_key(a: Ids, b: Ids) -> Ids:
    """One int64 per unordered pair of file ids (ids stay below 2**31)."""
    return np.minimum(a, b) * (1 << 31) + np.maximum(a, b)


def components(first: Ids, second: Ids) -> tuple[Ids, Ids]:
    """(nodes, label of each): the connected components of the links ``first[i]—second[i]``,
    each labelled by its smallest node's position; hook-to-smaller and pointer jumping."""
    nodes = np.unique(np.concatenate((first, second)))
    a, b = np.searchsorted(nodes, first), np.searchsorted(nodes, second)
    parent = np.arange(len(nodes))
    while True:
        ra, rb = parent[a], parent[b]
        if np.array_equal(ra, rb):
            return nodes, parent
        low = np.minimum(ra, rb)
        np.minimum.at(parent, ra, low)
        np.minimum.at(parent, rb, low)
        while not np.array_equal(jumped := parent[parent], parent):
            parent = jumped


def _links(matcher: Matcher, among: Among | None) -> tuple[Ids, Ids]:
    """Every link: near pairs, and each sha256 group as a star from its first file.

    With ``among``, only the links the old per-file search made: those touching a given file
    (near: one that has structure; sha256: one that has a fingerprint)."""
    t = matcher.thresholds
    near_a, near_b = near_pairs(matcher.library, t.dhash, t.phash)
    ids, group = matcher.store.library_copies()
    starts = np.flatnonzero(np.r_[True, group[1:] != group[:-1]]) if len(group) else group
    hub = ids[starts][group] if len(group) else ids
    if among is not None:
        near = np.isin(near_a, among.searched) | np.isin(near_b, among.searched)
        near_a, near_b = near_a[near], near_b[near]
        touched = np.isin(ids, among.ids)
        hub, ids = hub[np.isin(group, group[touched])], ids[np.isin(group, group[touched])]
    return np.concatenate((near_a, hub)), np.concatenate((near_b, ids))


def duplicate_groups(
    matcher: Matcher,
    rows: Iterable[FileRow] | Among | None = None,
    policies: Policies = NO_WATCHES,
) -> list[DupeGroup]:
    """Connected groups of library files that match each other (sha256 or both hashes), each
    ordered by the keep policy of the watch holding it.

    With ``rows``, only groups that involve those files are returned.
    """
    among = rows if rows is None or isinstance(rows, Among) else Among.of_rows(rows)
    links = _undecided(matcher.store, *_links(matcher, among))
    return _grouped(matcher.store, *links, policies)


def groups_among(
    matcher: Matcher, rows: Sequence[FileRow], policies: Policies = NO_WATCHES
) -> list[DupeGroup]:
    """The groups a few files (one former group) form now, by the links among them alone:
    what a decision about them, or a copy gone, leaves of their group (the review page)."""
    t, pairs = matcher.thresholds, []
    for i, a in enumerate(rows):
        for b in rows[i + 1 :]:
            if a.sha256 is not None and a.sha256 == b.sha256:
                pairs.append((a.id, b.id))
            elif None not in (a.dhash, a.phash, b.dhash, b.phash) and not (a.flat or b.flat):
                near = hamming(a.dhash or 0, b.dhash or 0) <= t.dhash
                if near and hamming(a.phash or 0, b.phash or 0) <= t.phash:
                    pairs.append((a.id, b.id))
    first, second = (np.array([p[i] for p in pairs], np.int64) for i in (0, 1))
    return _grouped(matcher.store, *_undecided(matcher.store, first, second), policies)


def one_name_each(rows: Iterable[FileRow]) -> list[FileRow]:
    """One row per file: of several names of one inode (hard links), the first by path."""
    first: dict[tuple[int, int], FileRow] = {}
    for row in sorted(rows, key=lambda r: r.path):
        first.setdefault((row.stat.device, row.stat.inode), row)
    return list(first.values())


def _grouped(store: Store, first: Ids, second: Ids, policies: Policies) -> list[DupeGroup]:
    """The connected groups of these links, each best first, the groups by their best path."""
    nodes, labels = components(first, second)
    order = np.argsort(labels, kind="stable")
    cuts = np.flatnonzero(np.diff(labels[order])) + 1
    members = [group for group in np.split(nodes[order], cuts) if len(group) > 1]
    found = store.files_by_id(np.concatenate(members).tolist() if members else [])
    kept, _ = store.decisions_among(r.sha256 for r in found.values() if r.sha256)
    groups = []
    for ids in members:
        rows_of = one_name_each(found[i] for i in ids.tolist() if i in found)
        if len(rows_of) < 2:  # hard links of one file (``on_duplicate: hardlink``): no copies
            continue
        policy = policies.for_paths([r.path for r in rows_of])
        groups.append(ordered_group(rows_of, kept, policy))
    groups.sort(key=lambda g: g.best.path)
    return groups
