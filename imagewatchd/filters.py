"""Which files in a tree are candidates: include/exclude globs, hidden and temporary names."""

from __future__ import annotations

import fnmatch
import logging
import os
import stat
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)

# Names that writers use while a file is incomplete; never fingerprinted.
TEMPORARY_SUFFIXES = (".part", ".crdownload", ".tmp", ".partial", ".download", ".swp", "~")


@dataclass(frozen=True, slots=True)
class Selection:
    """Glob patterns match the name, or the path relative to the root when they hold a '/'."""

    include: tuple[str, ...]
    exclude: tuple[str, ...] = ()
    hidden: bool = False  # dotfiles and dot-directories (rsync's .name.XXXXXX among them)

    def wants(self, relative: str) -> bool:
        name = relative.rsplit("/", 1)[-1]
        if not self.hidden and any(part.startswith(".") for part in relative.split("/")):
            return False
        if name.lower().endswith(TEMPORARY_SUFFIXES):
            return False
        if _matches_any(relative, name, self.exclude):
            return False
        return _matches_any(relative, name, self.include)

    def wants_dir(self, relative: str) -> bool:
        return self.hidden or not relative.rsplit("/", 1)[-1].startswith(".")


def _matches_any(relative: str, name: str, patterns: tuple[str, ...]) -> bool:
    relative, name = relative.lower(), name.lower()
    for pattern in patterns:
        target = relative if "/" in pattern else name
        if fnmatch.fnmatchcase(target, pattern.lower()):
            return True
    return False


def walk(
    root: Path,
    selection: Selection,
    recursive: bool = True,
    on_error: Callable[[Path, OSError], None] | None = None,
) -> Iterator[tuple[Path, os.stat_result]]:
    """Regular files below ``root`` that the selection wants, with their lstat; no symlinks."""
    pending = [root]
    while pending:
        directory = pending.pop()
        try:
            with os.scandir(directory) as scan:
                entries = sorted(scan, key=lambda e: e.name)
        except OSError as exc:
            if on_error is not None:
                on_error(directory, exc)
            continue
        subdirs = []
        for entry in entries:
            path = Path(entry.path)
            relative = path.relative_to(root).as_posix()
            try:
                info = entry.stat(follow_symlinks=False)
            except OSError as exc:
                if on_error is not None:
                    on_error(path, exc)
                continue
            if stat.S_ISDIR(info.st_mode):
                if recursive and selection.wants_dir(relative):
                    subdirs.append(path)
            elif stat.S_ISREG(info.st_mode) and selection.wants(relative):
                yield path, info
        pending.extend(reversed(subdirs))
