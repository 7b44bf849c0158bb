"""What the review page shows of duplicate groups: the keeper and why, each copy's distance to
it, and which groups a filter and a page select. Pure: rows in, frozen values out."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime

from imagewatchd.dupes import DupeGroup
from imagewatchd.hashindex import hamming
from imagewatchd.names import shown
from imagewatchd.rows import FileRow

PAGE_SIZE = 25


def keep_reason(group: DupeGroup) -> str:
    """Why the group's first file is the one kept (the keep policy's words: DupeGroup.reason)."""
    return group.reason


def distance(row: FileRow, best: FileRow) -> str:
    """How far a copy is from the keeper, for people."""
    if row.id == best.id:
        return "keeper"
    if row.sha256 is not None and row.sha256 == best.sha256:
        return "identical bytes"
    if None in (row.dhash, best.dhash, row.phash, best.phash):
        return "unknown"
    assert row.dhash is not None and best.dhash is not None  # for mypy: checked above
    assert row.phash is not None and best.phash is not None
    return f"dHash {hamming(row.dhash, best.dhash)}, pHash {hamming(row.phash, best.phash)}"


@dataclass(frozen=True, slots=True)
class FileView:
    id: int
    name: str  # shown(path): escaped for people, then by the template for HTML
    size: int
    dimensions: str
    format: str
    modified: str
    captured: str  # the capture date from EXIF, or "" when unknown
    distance: str
    keeper: bool


@dataclass(frozen=True, slots=True)
class GroupView:
    key: int  # the keeper's file id: names the group in forms
    reason: str
    files: tuple[FileView, ...]


def view(group: DupeGroup) -> GroupView:
    best = group.best
    files = tuple(_file_view(row, best) for row in group.files)
    return GroupView(best.id, keep_reason(group), files)


def _file_view(row: FileRow, best: FileRow) -> FileView:
    return FileView(
        id=row.id, name=shown(row.path), size=row.stat.size,
        dimensions=f"{row.width or '?'}x{row.height or '?'}", format=row.format or "?",
        modified=time.strftime("%Y-%m-%d %H:%M", time.localtime(row.stat.mtime_ns / 1e9)),
        captured=(row.provenance.captured or "").replace("T", " ")[:16],
        distance=distance(row, best), keeper=row.id == best.id,
    )  # fmt: skip


@dataclass(frozen=True, slots=True)
class Filter:
    """Groups with a file under ``folder`` and a file taken (its capture date; else modified)
    between ``since`` and ``until`` (whole days, local time; either may be open)."""

    folder: str = ""
    since: date | None = None
    until: date | None = None

    def selects(self, group: DupeGroup) -> bool:
        files = group.files
        if self.folder and not any(r.path.startswith(self.folder) for r in files):
            return False
        if self.since is None and self.until is None:
            return True
        days = [_day(r) for r in files]
        return any(
            (self.since is None or day >= self.since) and (self.until is None or day <= self.until)
            for day in days
        )


def _day(row: FileRow) -> date:
    """When the picture was taken, as far as we know: EXIF's capture date, else modified."""
    captured = row.provenance.captured
    if captured:
        with contextlib.suppress(ValueError):
            return datetime.fromisoformat(captured).date()
    return datetime.fromtimestamp(row.stat.mtime_ns / 1e9).date()


def parse_day(text: str | None) -> date | None:
    """``YYYY-MM-DD`` from a form; anything else is no bound."""
    try:
        return date.fromisoformat(text) if text else None
    except ValueError:
        return None


@dataclass(frozen=True, slots=True)
class Page:
    groups: tuple[GroupView, ...]
    number: int  # from 1
    pages: int
    total: int  # groups the filter selects


def page(groups: Sequence[DupeGroup], chosen: Filter, number: int, size: int = PAGE_SIZE) -> Page:
    """One page of the selected groups; only that page's groups are turned into views."""
    selected = [g for g in groups if chosen.selects(g)] if chosen != Filter() else groups
    pages = max(1, -(-len(selected) // size))
    number = min(max(1, number), pages)
    start = (number - 1) * size
    shown_groups = tuple(view(g) for g in selected[start : start + size])
    return Page(shown_groups, number, pages, len(selected))
