"""Which files in a tree are candidates: include/exclude globs, hidden and temporary names;
and the walk that finds them, by directory fds (no symlink inside a tree is ever followed)."""

from __future__ import annotations

import errno
import fnmatch
import logging
import os
import stat
from collections.abc import Callable, Generator, Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from imagewatchd import fileops

log = logging.getLogger(__name__)

_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_ROOT = PurePosixPath()
_OnError = Callable[[Path, OSError], None]

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
    *,
    top: PurePosixPath = _ROOT,
) -> Generator[tuple[Path, os.stat_result], None, None]:
    """Regular files below ``root / top`` that the selection wants, with their lstat; no symlinks.

    ``root`` is opened as configured; every directory below it (``top``'s components included)
    is opened from its parent's fd with ``O_NOFOLLOW``, so a directory swapped for a symlink is
    never followed, whenever the swap happens. The selection sees paths relative to ``root``.
    Only the fds of the current chain of directories are open; closing the generator closes them.
    """
    report = on_error or _ignore
    fd = _open_top(root, top.parts, report)
    chain: list[tuple[int, tuple[str, ...], list[str]]] = []
    parts = top.parts
    try:
        while fd is not None or chain:
            if fd is not None:
                subdirs: list[str] = []
                chain.append((fd, parts, subdirs))
                yield from _listing(root, chain[-1], selection, recursive, report)
                subdirs.reverse()  # popped from the end: in name order
            while chain and not chain[-1][2]:
                os.close(chain.pop()[0])
            if chain:
                parent, parent_parts, pending = chain[-1]
                parts = (*parent_parts, pending.pop())
                fd = _open_subdir(parent, root.joinpath(*parts), report)
            else:
                fd = None
    finally:
        for held, _, _ in chain:
            os.close(held)


def _ignore(path: Path, exc: OSError) -> None:
    """The default ``on_error``: a directory that cannot be listed is skipped."""


def _open_top(root: Path, parts: tuple[str, ...], report: _OnError) -> int | None:
    try:
        return fileops.open_dir(root, parts)
    except fileops.FileOpsError as err:
        report(Path(str(err.path)), OSError(err.os_errno or errno.EIO, err.reason))
        return None


def _open_subdir(parent: int, path: Path, report: _OnError) -> int | None:
    """A directory listed in ``parent``; None if it has become a symlink (never followed)."""
    try:
        return os.open(path.name, _DIR_FLAGS, dir_fd=parent)
    except OSError as exc:
        if exc.errno != errno.ELOOP:
            report(path, exc)
        return None


def _listing(
    root: Path,
    directory: tuple[int, tuple[str, ...], list[str]],
    selection: Selection,
    recursive: bool,
    report: _OnError,
) -> Iterator[tuple[Path, os.stat_result]]:
    """The wanted files of one open directory, in name order; its subdirectories to walk are
    appended to ``directory``'s list."""
    fd, parts, subdirs = directory
    here = root.joinpath(*parts)
    try:
        with os.scandir(fd) as scan:
            entries = sorted(scan, key=lambda e: e.name)
    except OSError as exc:
        report(here, exc)
        return
    for entry in entries:
        relative = "/".join((*parts, entry.name))
        try:
            info = entry.stat(follow_symlinks=False)
        except OSError as exc:
            report(here / entry.name, exc)
            continue
        if stat.S_ISDIR(info.st_mode):
            if recursive and selection.wants_dir(relative):
                subdirs.append(entry.name)
        elif stat.S_ISREG(info.st_mode) and selection.wants(relative):
            yield here / entry.name, info
