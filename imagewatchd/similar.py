"""Groups of similar library pictures (burst shots, near frames): the similar band, not
duplicates, acted on only by a watch's ``on_similar`` (issue 10, item 4).

Links: every pair of indexed library files within the similar band (``matching.similar_dhash``
and ``similar_phash``, both), by the same self-join as the duplicate groups. Each duplicate
group counts as one picture (its best copy); a link inside one duplicate group is no
similarity. Groups are the connected components of the remaining links.
"""

from __future__ import annotations

import numpy as np

from imagewatchd.dupes import (
    Among,
    DupeGroup,
    Ids,
    components,
    duplicate_groups,
    one_name_each,
)
from imagewatchd.hashindex import hamming
from imagewatchd.hashjoin import near_pairs
from imagewatchd.match import Matcher
from imagewatchd.names import shown
from imagewatchd.report import human_size
from imagewatchd.rows import FileRow


def similar_groups(
    matcher: Matcher, among: Among | None = None, duplicates: list[DupeGroup] | None = None
) -> list[DupeGroup]:
    """Connected groups of library pictures within the similar band of each other, each
    duplicate group standing for its best copy; with ``among``, the groups touching those."""
    t = matcher.thresholds
    if t.similar_dhash <= t.dhash and t.similar_phash <= t.phash:
        return []
    first, second = near_pairs(matcher.library, t.similar_dhash, t.similar_phash)
    if among is not None:
        touching = np.isin(first, among.searched) | np.isin(second, among.searched)
        first, second = first[touching], second[touching]
    groups = duplicate_groups(matcher) if duplicates is None else duplicates
    first, second = _as_pictures(groups, first, second)
    distinct = first != second
    nodes, labels = components(first[distinct], second[distinct])
    order = np.argsort(labels, kind="stable")
    cuts = np.flatnonzero(np.diff(labels[order])) + 1
    members = [ids for ids in np.split(nodes[order], cuts) if len(ids) > 1]
    rows = matcher.store.files_by_id(np.concatenate(members).tolist() if members else [])
    found = []
    for ids in members:
        group = one_name_each(rows[i] for i in ids.tolist() if i in rows)  # sorted by path
        if len(group) > 1:
            found.append(DupeGroup(tuple(group)))
    return sorted(found, key=lambda g: g.best.path)


def _as_pictures(groups: list[DupeGroup], first: Ids, second: Ids) -> tuple[Ids, Ids]:
    """Each file id replaced by its duplicate group's best copy's."""
    copies = [(row.id, group.best.id) for group in groups for row in group.files]
    if not copies:
        return first, second
    keys = np.array([c[0] for c in copies], np.int64)
    best = np.array([c[1] for c in copies], np.int64)
    order = np.argsort(keys)
    keys, best = keys[order], best[order]

    def mapped(ids: Ids) -> Ids:
        at = np.clip(np.searchsorted(keys, ids), 0, len(keys) - 1)
        return np.where(keys[at] == ids, best[at], ids)

    return mapped(first), mapped(second)


def _distance(a: FileRow, b: FileRow) -> tuple[int, int] | None:
    if None in (a.dhash, a.phash, b.dhash, b.phash):
        return None
    return hamming(a.dhash or 0, b.dhash or 0), hamming(a.phash or 0, b.phash or 0)


def _distance_json(first: FileRow, row: FileRow) -> dict[str, int] | None:
    far = _distance(first, row)
    return None if far is None else {"dhash": far[0], "phash": far[1]}


def similar_text(groups: list[DupeGroup]) -> list[str]:
    """For people: each group, its pictures with their distances to the first."""
    lines: list[str] = []
    for number, group in enumerate(groups, start=1):
        lines.append(f"similar group {number} ({len(group.files)} pictures, not duplicates)")
        first = group.files[0]
        for row in group.files:
            size = f"{row.width}x{row.height} {human_size(row.stat.size)}"
            far = _distance(first, row) if row is not first else None
            to = f"  dHash {far[0]}, pHash {far[1]}" if far else ""
            lines.append(f"  {shown(row.path)}  {size}{to}")
    return lines


def similar_json(groups: list[DupeGroup]) -> list[list[dict[str, object]]]:
    """For scripts: each group's files, with their distances to the group's first file."""
    return [
        [
            {
                "path": row.path, "width": row.width, "height": row.height,
                "size": row.stat.size, "sha256": row.sha256, "format": row.format,
                "distance_to_first": _distance_json(group.files[0], row),
            }
            for row in group.files
        ]
        for group in groups
    ]  # fmt: skip
