"""The freedesktop.org trash (Trash specification 1.0): where a file goes, and its info file.

A file on the home trash's filesystem goes to ``$XDG_DATA_HOME/Trash``; one elsewhere goes to
its mount's ``.Trash/$uid`` (when an administrator made ``.Trash`` a sticky directory) or
``.Trash-$uid``, as desktop file managers do, so that they list it and can put it back. The name
is claimed by creating ``info/NAME.trashinfo`` exclusively, as the specification asks; the file
itself then moves to ``files/NAME`` through ``fileops.move`` (never replacing anything), with
the daemon's journal around it, so that ``undo`` puts it back like any other move.

Why not a trash library: the move must be journalled, crash-safe and never replace a file, and
``undo`` must know where the file went; send2trash, the well-kept one, renames by itself and
does not say where the file went.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import errno
import os
import stat
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

from imagewatchd.fileops import FileOpsError

INFO_SUFFIX = ".trashinfo"
TRIES = 1000


@dataclass(frozen=True, slots=True)
class Trash:
    """One trash directory, and how its info files name the original place."""

    root: Path  # holds files/ and info/
    topdir: Path | None  # a mount's top directory (paths in info files are relative to it)

    @property
    def files(self) -> Path:
        return self.root / "files"

    @property
    def info(self) -> Path:
        return self.root / "info"

    def info_file(self, name: str) -> Path:
        return self.info / (name + INFO_SUFFIX)


def home_trash() -> Path:
    data = os.environ.get("XDG_DATA_HOME") or os.path.expanduser("~/.local/share")
    return Path(data) / "Trash"


def trash_for(path: Path, *, home: Path | None = None, uid: int | None = None) -> Trash:
    """The trash a file at ``path`` goes to (created if needed, private to its user)."""
    home = home or home_trash()
    uid = os.getuid() if uid is None else uid
    device = os.lstat(path.parent).st_dev
    home_device = _device_of(home)
    if home_device == device:
        home.parent.mkdir(parents=True, exist_ok=True)  # ~/.local/share may not exist yet
        return _ready(Trash(home, None))
    top = _mount_top(path.parent, device)
    shared = top / ".Trash"
    if _admin_trash(shared):
        return _ready(Trash(shared / str(uid), top))
    return _ready(Trash(top / f".Trash-{uid}", top))


def claim(trash: Trash, name: str, original: Path, now: float) -> str:
    """Claim a free name in the trash by creating its info file exclusively; returns it."""
    stem, suffix = os.path.splitext(name)
    shown_path = original if trash.topdir is None else original.relative_to(trash.topdir)
    when = dt.datetime.fromtimestamp(now).strftime("%Y-%m-%dT%H:%M:%S")
    body = f"[Trash Info]\nPath={quote(os.fsencode(shown_path))}\nDeletionDate={when}\n"
    for n in range(TRIES):
        candidate = f"{stem}.{n}{suffix}" if n else name
        if os.path.lexists(trash.files / candidate):
            continue
        try:
            fd = os.open(
                trash.info_file(candidate),
                os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600,
            )  # fmt: skip
        except FileExistsError:
            continue
        except OSError as exc:
            raise FileOpsError(trash.info, f"cannot write to the trash: {exc.strerror}") from exc
        try:
            os.write(fd, body.encode("ascii"))
            os.fsync(fd)
        finally:
            os.close(fd)
        return candidate
    raise FileOpsError(trash.root, f"no free name like {name!r} in the trash")


def release(trash: Trash, name: str) -> None:
    """Drop a claim (the file did not go to the trash, or came back out of it)."""
    with contextlib.suppress(FileNotFoundError):
        os.unlink(trash.info_file(name))


def rename_claim(trash: Trash, old: str, new: str) -> None:
    """The file went in under ``new``: its info file follows (never replacing another)."""
    os.link(trash.info_file(old), trash.info_file(new))
    os.unlink(trash.info_file(old))


def trash_of(files_dir: Path) -> Trash:
    """The trash a journalled destination directory (``…/files``) belongs to."""
    root = files_dir.parent
    return Trash(root, None)


def _ready(trash: Trash) -> Trash:
    for directory in (trash.root, trash.files, trash.info):
        try:
            os.mkdir(directory, 0o700)
        except FileExistsError:
            pass
        except OSError as exc:
            raise FileOpsError(directory, f"cannot create the trash: {exc.strerror}") from exc
        info = os.lstat(directory)
        if not stat.S_ISDIR(info.st_mode):
            raise FileOpsError(directory, "the trash is not a directory; not used")
    return trash


def _device_of(path: Path) -> int | None:
    """The device of ``path`` or of its nearest existing parent."""
    for candidate in (path, *path.parents):
        try:
            return os.stat(candidate).st_dev
        except OSError as exc:
            if exc.errno not in (errno.ENOENT, errno.ENOTDIR):
                return None
    return None


def _mount_top(directory: Path, device: int) -> Path:
    top = directory
    for parent in directory.parents:
        if os.lstat(parent).st_dev != device:
            break
        top = parent
    return top


def _admin_trash(shared: Path) -> bool:
    """``$topdir/.Trash``: usable only as a real, sticky directory (the specification)."""
    try:
        info = os.lstat(shared)
    except OSError:
        return False
    return stat.S_ISDIR(info.st_mode) and bool(info.st_mode & stat.S_ISVTX)
