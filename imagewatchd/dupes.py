"""Groups of near-duplicate library files, best copy first."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from imagewatchd.match import Matcher
from imagewatchd.rows import FileRow


@dataclass(frozen=True, slots=True)
class DupeGroup:
    files: tuple[FileRow, ...]  # best first: most pixels, then largest file, then path

    @property
    def best(self) -> FileRow:
        return self.files[0]


def _quality(row: FileRow) -> tuple[int, int, str]:
    pixels = (row.width or 0) * (row.height or 0)
    return (-pixels, -row.stat.size, row.path)


class _UnionFind:
    def __init__(self) -> None:
        self.parent: dict[int, int] = {}

    def find(self, key: int) -> int:
        root = self.parent.setdefault(key, key)
        while root != self.parent[root]:
            root = self.parent[root]
        while key != root:  # path compression
            self.parent[key], key = root, self.parent[key]
        return root

    def union(self, a: int, b: int) -> None:
        self.parent[self.find(a)] = self.find(b)


def duplicate_groups(matcher: Matcher, rows: Iterable[FileRow] | None = None) -> list[DupeGroup]:
    """Connected groups of library files that match each other (sha256 or both hashes).

    With ``rows``, only groups that involve those files are returned.
    """
    store = matcher.store
    rows = list(store.library_files() if rows is None else rows)
    links = _UnionFind()
    for row in rows:
        if row.sha256 is None or row.dhash is None or row.phash is None:
            continue
        for other in store.files_by_sha256(row.sha256, row.role):
            links.union(row.id, other.id)
        if not row.flat:
            t = matcher.thresholds
            for key, _, _ in matcher.library.search(row.dhash, row.phash, t.dhash, t.phash):
                links.union(row.id, key)
    members: dict[int, list[int]] = {}
    for key in list(links.parent):
        members.setdefault(links.find(key), []).append(key)
    groups = []
    for ids in members.values():
        if len(ids) > 1:
            found = store.files_by_id(ids)
            groups.append(DupeGroup(tuple(sorted(found.values(), key=_quality))))
    groups.sort(key=lambda g: g.best.path)
    return groups
