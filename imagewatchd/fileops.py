"""The only module that renames, copies, links or unlinks users' files (Linux only).

A :class:`Location` is a configured root, opened normally, plus a relative path walked one
directory at a time with ``O_NOFOLLOW``: a directory swapped for a symlink cannot redirect
anything outside its tree. Only regular files are acted on, nothing is ever replaced, and the
file is re-checked against its fingerprinted (device, inode, size, mtime_ns) before acting.

Crash states of :func:`move` (SIGKILL or power loss at any instant) and how recovery resolves
them. The journal records src, dst, ``tmp`` (``tmp_name`` in dst's directory) and the expected
``FileStat`` before the move starts. Never: src and dst both gone, or a partial file at dst.

  src   dst   tmp   meaning                                    recovery
  yes   -     -     not started, or rolled back                nothing to do
  -     yes   -     moved (other filesystem: new inode, same   ``check_same(dst, expect)`` (same fs)
                    size and mtime); mode maybe not yet set    and ``set_mode(dst, mode)`` again
  yes   yes   -     same inode at both: link fallback (no      ``remove(src, expect=expect)``; or
                    RENAME_NOREPLACE) between link and unlink  ``remove(dst, expect=expect)``
  yes   -     yes   copy under way (tmp may be partial)        ``remove(tmp)``: rolled back
  yes   yes   yes   tmp and dst same inode, tmp not unlinked   ``remove(tmp)``, then the next row
  yes   yes   -     copied (fsynced), src not yet removed      if ``check_same(src, expect)`` and
                                                               ``sha256_of`` agree:
                                                               ``remove(src, expect=expect)``;
                                                               else ``remove(dst)``
  (priv) yes  -     copied, src taken under ``private_name``   ``remove(priv, expect=expect)``
                    (beside src) before its unlink             when dst's sha256 agrees

A file with other names (``st_nlink > 1``) that is given a ``mode`` (a quarantine, a restore) is
never renamed: changing its inode would change every other name of it, outside every watch
included. It takes the copy rows above on any filesystem, and recovery treats it as a copy.
Nothing here changes the mode, owner or times of a file with other names.

A dst that fails ``check_same`` with src absent is not ours: src was swapped just before the
rename and was being put back. Directories created for dst stay after a roll-back.
``unique_name`` only proposes a name: a racing writer makes :func:`move` raise TargetExists.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import hashlib
import os
import stat
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, fields
from pathlib import Path, PurePosixPath

from imagewatchd.errors import ImagewatchdError
from imagewatchd.models import FileStat

_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_READ_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC
_TMP_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
_RENAME_NOREPLACE = 1
_RENAME_EXCHANGE = 2
_NO_RENAMEAT2 = {errno.EINVAL, errno.ENOSYS}
_NO_FAST_COPY = {errno.EXDEV, errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP, errno.EBADF}
_CHUNK = 8 << 20
_EXISTS = "already exists; nothing was overwritten"
_KINDS = {stat.S_IFLNK: "symbolic link", stat.S_IFDIR: "directory", stat.S_IFIFO: "FIFO"}

_libc = ctypes.CDLL(None, use_errno=True)
_renameat2_c = getattr(_libc, "renameat2", None)  # glibc >= 2.28
if _renameat2_c is not None:
    _renameat2_c.argtypes = [ctypes.c_int, ctypes.c_char_p] * 2 + [ctypes.c_uint]
    _renameat2_c.restype = ctypes.c_int


class FileOpsError(ImagewatchdError):
    """A file operation failed; the message names the path and the reason."""

    def __init__(self, path: object, reason: str, os_errno: int | None = None) -> None:
        self.path = path
        self.reason = reason
        self.os_errno = os_errno
        super().__init__(f"{path}: {reason}")


class FileChanged(FileOpsError):
    """The file vanished, or is not the expected (device, inode, size, mtime_ns)."""


class NotRegular(FileOpsError):
    """A symlink, FIFO, socket, device or directory where a regular file was expected."""


class TargetExists(FileOpsError):
    """The destination name is taken; nothing was overwritten."""


class UnsafePath(FileOpsError):
    """A directory component is a symlink or not a directory."""


class _GainedName(FileChanged):
    """The file was hard-linked elsewhere between the check and the rename."""


@dataclass(frozen=True, slots=True)
class Location:
    """A file inside a tree; ``relative`` is ``"."`` only where the root directory is meant."""

    root: Path
    relative: PurePosixPath

    def __post_init__(self) -> None:
        if not self.root.is_absolute():
            raise ValueError(f"{self.root}: the root must be an absolute path")
        if self.relative.is_absolute() or ".." in self.relative.parts:
            raise ValueError(f"{self.relative}: must be relative, without '..'")

    @property
    def path(self) -> Path:
        return self.root / self.relative


@dataclass(frozen=True, slots=True)
class MoveResult:
    cross_device: bool
    other_names: int = 0  # a file with other names was copied: how many were left untouched


@dataclass(frozen=True, slots=True)
class _Move:
    """A move under way: both locations, names, open parent directories and expectations."""

    src: Location
    dst: Location
    sfd: int
    dfd: int
    expect: FileStat
    mode: int | None
    sname: str
    dname: str


def _os_error(path: object, err: OSError) -> FileOpsError:
    if err.errno == errno.EEXIST:
        return TargetExists(path, _EXISTS, err.errno)
    if err.errno == errno.ELOOP:
        return NotRegular(path, "is a symbolic link; not followed", err.errno)
    text = err.strerror or str(err)
    return FileOpsError(path, text[:1].lower() + text[1:], err.errno)


@contextmanager
def _reporting(path: object) -> Iterator[None]:
    """Turn an OSError into a FileOpsError naming ``path`` and the reason."""
    try:
        yield
    except OSError as err:
        raise _os_error(path, err) from err


@contextmanager
def _closing(fd: int) -> Iterator[int]:
    try:
        yield fd
    finally:
        os.close(fd)


def _name(loc: Location) -> str:
    if not loc.relative.parts:
        raise ValueError(f"{loc.path}: names the root directory, not a file")
    return loc.relative.parts[-1]


def _check_component(name: str) -> None:
    if name in {"", ".", ".."} or "/" in name or "\0" in name:
        raise ValueError(f"{name!r}: not a plain file name")


def _open_child_dir(parent: int, name: str, where: Path, *, create: bool, mode: int) -> int:
    """Open directory ``name`` below ``parent`` without following a symlink; closes ``parent``."""
    try:
        try:
            return os.open(name, _DIR_FLAGS, dir_fd=parent)
        except FileNotFoundError:
            if not create:
                raise
        with suppress(FileExistsError):
            os.mkdir(name, mode, dir_fd=parent)
            os.fsync(parent)
        return os.open(name, _DIR_FLAGS, dir_fd=parent)
    except OSError as err:
        if err.errno not in {errno.ENOTDIR, errno.ELOOP}:
            raise _os_error(where, err) from err
        with suppress(OSError):
            if stat.S_ISLNK(os.stat(name, dir_fd=parent, follow_symlinks=False).st_mode):
                raise UnsafePath(where, "is a symbolic link; not followed", err.errno) from err
        raise UnsafePath(where, "is not a directory", err.errno) from err
    finally:
        os.close(parent)


def open_dir(root: Path, parts: tuple[str, ...], *, create: bool = False, mode: int = 0o755) -> int:
    """An fd of directory ``root/parts``: ``root`` opened as configured, each part below it
    with ``O_NOFOLLOW`` from its parent's fd (UnsafePath if one is a symlink)."""
    with _reporting(root):
        fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    for depth, part in enumerate(parts, 1):
        fd = _open_child_dir(fd, part, root.joinpath(*parts[:depth]), create=create, mode=mode)
    return fd


def open_parent(loc: Location, *, create: bool = False, mode: int = 0o755) -> int:
    """An fd of ``loc``'s parent directory, reached from the root without following symlinks."""
    _name(loc)  # a file, not the root itself
    return open_dir(loc.root, loc.relative.parts[:-1], create=create, mode=mode)


def _expected_parent(loc: Location) -> int:
    """``open_parent`` for a file that should exist: a missing directory means it vanished."""
    try:
        return open_parent(loc)
    except FileOpsError as err:
        if err.os_errno == errno.ENOENT:
            raise FileChanged(loc.path, "vanished", err.os_errno) from err
        raise


def _stat_at(dfd: int, name: str, path: Path) -> os.stat_result | None:
    """lstat of ``name`` in ``dfd``, or None if there is nothing there."""
    try:
        return os.stat(name, dir_fd=dfd, follow_symlinks=False)
    except FileNotFoundError:
        return None
    except OSError as err:
        raise _os_error(path, err) from err


def _stat_expected(dfd: int, name: str, path: Path) -> os.stat_result:
    st = _stat_at(dfd, name, path)
    if st is None:
        raise FileChanged(path, "vanished", errno.ENOENT)
    return st


def lstat(loc: Location) -> os.stat_result:
    """The status of ``loc`` itself (a symlink is not followed)."""
    with _closing(open_parent(loc)) as dfd, _reporting(loc.path):
        return os.stat(_name(loc), dir_fd=dfd, follow_symlinks=False)


def exists(loc: Location) -> bool:
    """Whether anything (a symlink included) is at ``loc``."""
    try:
        lstat(loc)
    except FileOpsError as err:
        if err.os_errno == errno.ENOENT:
            return False
        raise
    return True


def file_stat(st: os.stat_result) -> FileStat:
    return FileStat.of(st)


def _verify(st: os.stat_result, path: Path, expect: FileStat | None) -> os.stat_result:
    """``st`` unless it is not a regular file (NotRegular) or not ``expect`` (FileChanged)."""
    if not stat.S_ISREG(st.st_mode):
        kind = _KINDS.get(stat.S_IFMT(st.st_mode), "device or socket")
        raise NotRegular(path, f"is a {kind}, not a regular file")
    found = file_stat(st)
    if expect is not None and found != expect:
        changes = ", ".join(
            f"{f.name} {getattr(expect, f.name)} -> {getattr(found, f.name)}"
            for f in fields(FileStat)
            if getattr(expect, f.name) != getattr(found, f.name)
        )
        raise FileChanged(path, f"changed since it was fingerprinted ({changes})")
    return st


def check_same(loc: Location, expect: FileStat) -> os.stat_result:
    """The status of ``loc`` if it is still the expected regular file."""
    with _closing(_expected_parent(loc)) as dfd:
        return _verify(_stat_expected(dfd, _name(loc), loc.path), loc.path, expect)


def _open_regular(dfd: int, name: str, path: Path, expect: FileStat | None) -> int:
    """Open a regular file for reading without following a symlink, checked before and after."""
    _verify(_stat_expected(dfd, name, path), path, expect)
    with _reporting(path):
        fd = os.open(name, _READ_FLAGS, dir_fd=dfd)
    try:
        _verify(os.fstat(fd), path, expect)
    except BaseException:
        os.close(fd)
        raise
    return fd


def open_file(loc: Location) -> int:
    """A read-only fd of the regular file at ``loc``; no component from the root on is followed
    if it is a symlink. The caller closes it."""
    with _closing(_expected_parent(loc)) as dfd:
        return _open_regular(dfd, _name(loc), loc.path, None)


def _renameat2(sfd: int, sname: str, dfd: int, dname: str, flags: int = _RENAME_NOREPLACE) -> None:
    if _renameat2_c is None:
        raise OSError(errno.ENOSYS, os.strerror(errno.ENOSYS))
    if _renameat2_c(sfd, os.fsencode(sname), dfd, os.fsencode(dname), flags):
        code = ctypes.get_errno()
        raise OSError(code, os.strerror(code))


def _rename_noreplace(sfd: int, sname: str, dfd: int, dname: str) -> None:
    """renameat2(RENAME_NOREPLACE); where unsupported, link, then unlink the same inode."""
    try:
        _renameat2(sfd, sname, dfd, dname)
    except OSError as err:
        if err.errno not in _NO_RENAMEAT2:
            raise
    else:
        return
    os.link(sname, dname, src_dir_fd=sfd, dst_dir_fd=dfd, follow_symlinks=False)
    old = os.stat(sname, dir_fd=sfd, follow_symlinks=False)
    new = os.stat(dname, dir_fd=dfd, follow_symlinks=False)
    if (old.st_dev, old.st_ino) != (new.st_dev, new.st_ino):  # src swapped: keep both names
        raise OSError(errno.ESTALE, f"{sname} was replaced while being linked")
    try:
        os.fsync(dfd)
        os.unlink(sname, dir_fd=sfd)
    except OSError:
        with suppress(OSError):
            os.unlink(dname, dir_fd=dfd)
        raise


def _sync_dirs(sfd: int, dfd: int) -> None:
    os.fsync(dfd)
    os.fsync(sfd)  # cheap when it is the same directory


def _finish_rename(m: _Move) -> None:
    """After the rename: verify what moved, apply the mode, make it durable; else put it back."""
    try:
        fd = _open_regular(m.dfd, m.dname, m.dst.path, m.expect)
        with _closing(fd), _reporting(m.dst.path):
            info = os.fstat(fd)
            if m.mode is not None and info.st_nlink > 1:  # linked elsewhere since the check
                raise _GainedName(m.src.path, "gained another name during the move")
            if m.mode is not None and stat.S_IMODE(info.st_mode) != m.mode:
                _chmod_if_allowed(fd, m.mode)
            os.fsync(fd)
            _sync_dirs(m.sfd, m.dfd)
    except FileOpsError as err:
        try:
            _rename_noreplace(m.dfd, m.dname, m.sfd, m.sname)
            _sync_dirs(m.sfd, m.dfd)
        except OSError as back:
            why = _os_error(m.src.path, back).reason
            raise FileOpsError(m.dst.path, f"{err.reason}; not put back: {why}") from err
        if isinstance(err, _GainedName):
            raise  # processed again, it is copied
        if isinstance(err, FileChanged | NotRegular):
            raise FileChanged(m.src.path, f"was replaced during the move ({err.reason})") from err
        raise


def _sole_name(fd: int, path: Path) -> None:
    """Refuse to change the attributes of a file with other names: they would change too."""
    others = os.fstat(fd).st_nlink - 1
    if others > 0:
        raise FileOpsError(path, f"has {others} other name(s); its attributes are left alone")


def _chmod_if_allowed(fd: int, mode: int) -> None:
    """Only the owner (or root) may change the mode: others leave it as it is."""
    with contextlib.suppress(PermissionError):
        os.fchmod(fd, mode)


def _copy_bytes(in_fd: int, out_fd: int) -> int:
    """Copy all of in_fd into the empty out_fd, in the kernel where possible; the byte count."""
    steps: tuple[Callable[[int], int], ...] = (
        lambda at: os.copy_file_range(in_fd, out_fd, _CHUNK, at, at),
        lambda at: os.sendfile(out_fd, in_fd, at, _CHUNK),  # out_fd's position is ``at`` too
        lambda at: os.pwrite(out_fd, os.pread(in_fd, _CHUNK, at), at),
    )
    for step in steps:
        copied = 0
        try:
            while count := step(copied):
                copied += count
            return copied
        except OSError as err:
            if copied or err.errno not in _NO_FAST_COPY or step is steps[-1]:
                raise
    raise AssertionError("unreachable: read and write never decline")


def _chown(fd: int, uid: int, gid: int) -> None:
    """fchown; not being allowed to is ignored unless running as root."""
    try:
        os.fchown(fd, uid, gid)
    except PermissionError:
        if os.geteuid() == 0:
            raise


def _fill_tmp(m: _Move, in_fd: int, out_fd: int) -> os.stat_result:
    """Copy bytes, owner, mode and times into the temporary file and make it durable."""
    st = os.fstat(in_fd)
    copied = _copy_bytes(in_fd, out_fd)
    _verify(os.fstat(in_fd), m.src.path, m.expect)
    if copied != m.expect.size:
        raise FileChanged(m.src.path, f"read {copied} bytes, expected {m.expect.size}")
    _chown(out_fd, st.st_uid, st.st_gid)
    os.fchmod(out_fd, stat.S_IMODE(st.st_mode) if m.mode is None else m.mode)
    os.utime(out_fd, ns=(st.st_atime_ns, st.st_mtime_ns))
    os.fsync(out_fd)
    return os.fstat(out_fd)


def _copy_to_dst(m: _Move, in_fd: int, tmp_name: str) -> os.stat_result:
    """Write a complete copy as ``tmp_name``, then give it dst's name (never replacing)."""
    if _stat_at(m.dfd, m.dname, m.dst.path) is not None:
        raise TargetExists(m.dst.path, _EXISTS)
    with _reporting(m.dst.path.parent / tmp_name):
        out_fd = os.open(tmp_name, _TMP_FLAGS, 0o600, dir_fd=m.dfd)
    try:
        with _closing(out_fd), _reporting(m.dst.path):
            copy = _fill_tmp(m, in_fd, out_fd)
            os.link(tmp_name, m.dname, src_dir_fd=m.dfd, dst_dir_fd=m.dfd, follow_symlinks=False)
        return copy
    finally:
        with suppress(OSError):
            os.unlink(tmp_name, dir_fd=m.dfd)


def _copy_move(m: _Move, tmp_name: str) -> None:
    """Other filesystem: copy via a temporary file in dst's directory, then remove src."""
    with _closing(_open_regular(m.sfd, m.sname, m.src.path, m.expect)) as in_fd:
        copy = _copy_to_dst(m, in_fd, tmp_name)
    try:
        with _reporting(m.dst.path):
            os.fsync(m.dfd)
        _take_source(m, private_name(tmp_name))
    except FileOpsError:
        with suppress(OSError):
            now = os.stat(m.dname, dir_fd=m.dfd, follow_symlinks=False)
            if (now.st_dev, now.st_ino) == (copy.st_dev, copy.st_ino):
                os.unlink(m.dname, dir_fd=m.dfd)
                os.fsync(m.dfd)
        raise


def private_name(tmp_name: str) -> str:
    """The name the source is taken under, beside itself, before it is removed."""
    return f"{tmp_name}.src"


def _take_source(m: _Move, private: str) -> None:
    """Remove exactly the expected source, never a file that just replaced it.

    Checking the name and then unlinking it would race an upload renamed onto the same name;
    so the file is first renamed to a private name, checked there, and only then unlinked
    (or put back, if it was not ours after all).
    """
    with _reporting(m.src.path):
        _rename_noreplace(m.sfd, m.sname, m.sfd, private)
    taken = _stat_expected(m.sfd, private, m.src.path)
    try:
        _verify(taken, m.src.path, m.expect)
    except FileOpsError:
        with _reporting(m.src.path):
            _rename_noreplace(m.sfd, private, m.sfd, m.sname)
        if taken.st_ino == m.expect.inode and taken.st_dev == m.expect.device:
            raise  # our file, changed since: the copy is stale and is withdrawn
        return  # another file took the name: ours is gone from there, and whole at dst
    with _reporting(m.src.path):
        os.unlink(private, dir_fd=m.sfd)
        os.fsync(m.sfd)


def _rename_error(m: _Move, err: OSError) -> FileOpsError:
    if err.errno == errno.EEXIST:
        return TargetExists(m.dst.path, _EXISTS, err.errno)
    if err.errno == errno.ENOENT:
        return FileChanged(m.src.path, "vanished", err.errno)
    return _os_error(f"{m.src.path} -> {m.dst.path}", err)


def move(
    src: Location, dst: Location, *, expect: FileStat, tmp_name: str, mode: int | None = None
) -> MoveResult:
    """Move exactly the expected file from ``src`` to ``dst``, never replacing anything.

    ``mode``, if given, becomes the destination's permission bits; a file with other names is
    then copied, and only this name removed (``MoveResult.other_names``). On any error the
    source is where it was, whole, and no partial destination or temporary file is left behind.
    """
    _check_component(tmp_name)
    with _closing(_expected_parent(src)) as sfd:
        st = _verify(_stat_expected(sfd, _name(src), src.path), src.path, expect)
        with _closing(open_parent(dst, create=True)) as dfd:
            m = _Move(src, dst, sfd, dfd, expect, mode, _name(src), _name(dst))
            if mode is not None and st.st_nlink > 1:  # other names: never change their inode
                _copy_move(m, tmp_name)
                return MoveResult(os.fstat(dfd).st_dev != st.st_dev, st.st_nlink - 1)
            try:
                _rename_noreplace(sfd, m.sname, dfd, m.dname)
            except OSError as err:
                if err.errno != errno.EXDEV:
                    raise _rename_error(m, err) from err
                _copy_move(m, tmp_name)
                return MoveResult(cross_device=True)
            _finish_rename(m)
    return MoveResult(cross_device=False)


def unique_name(directory: Location, name: str) -> str:
    """The first of ``name``, ``stem~1.ext``, ``stem~2.ext``… not present in ``directory``."""
    _check_component(name)
    try:
        dfd = open_dir(directory.root, directory.relative.parts, create=False, mode=0)
    except FileOpsError as err:
        if err.os_errno == errno.ENOENT:
            return name
        raise
    suffix = PurePosixPath(name).suffix
    stem = name[: len(name) - len(suffix)]
    with _closing(dfd):
        for n in range(10_000):
            candidate = f"{stem}~{n}{suffix}" if n else name
            if _stat_at(dfd, candidate, directory.path / candidate) is None:
                return candidate
    raise FileOpsError(directory.path, f"no free name like {name!r}")


def sha256_of(loc: Location) -> str:
    """The sha256 of a regular file's bytes (a symlink is refused, not followed)."""
    digest = hashlib.sha256()
    with _closing(open_file(loc)) as fd, _reporting(loc.path):
        while chunk := os.read(fd, _CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def remove(loc: Location, *, expect: FileStat | None = None) -> None:
    """Unlink a regular file (if ``expect``, only while it is that file); fsync the directory."""
    with _closing(_expected_parent(loc)) as dfd:
        _verify(_stat_expected(dfd, _name(loc), loc.path), loc.path, expect)
        with _reporting(loc.path):
            os.unlink(_name(loc), dir_fd=dfd)
            os.fsync(dfd)


def set_mode(loc: Location, mode: int) -> None:
    """Set a regular file's permission bits (never through a symlink, never with other names)."""
    with _closing(open_file(loc)) as fd, _reporting(loc.path):
        _sole_name(fd, loc.path)
        os.fchmod(fd, mode)
        os.fsync(fd)


def restore_times_owner(loc: Location, *, atime_ns: int, mtime_ns: int, uid: int, gid: int) -> None:
    """Restore times, and the owner when allowed (root); set-id bits survive the chown. A file
    with other names is refused: they would change too."""
    with _closing(open_file(loc)) as fd, _reporting(loc.path):
        _sole_name(fd, loc.path)
        mode = stat.S_IMODE(os.fstat(fd).st_mode)
        _chown(fd, uid, gid)
        if stat.S_IMODE(os.fstat(fd).st_mode) != mode:
            os.fchmod(fd, mode)
        os.utime(fd, ns=(atime_ns, mtime_ns))
        os.fsync(fd)


def remove_if_content(loc: Location, sha256: str) -> None:
    """Unlink a regular file only while it still holds the bytes with this ``sha256``."""
    before = file_stat(lstat(loc))
    if sha256_of(loc) != sha256:
        raise FileChanged(loc.path, "its content differs from the journal; left alone")
    remove(loc, expect=before)


def remove_empty_dirs(directory: Location) -> list[Path]:
    """Remove ``directory`` and then its parents while each is empty, never the root itself;
    a symlink is never followed (``rmdir`` of one fails). Returns what was removed."""
    parts, removed = directory.relative.parts, []
    while parts:
        try:
            with _closing(open_dir(directory.root, parts[:-1])) as dfd:
                os.rmdir(parts[-1], dir_fd=dfd)
                os.fsync(dfd)
        except (FileOpsError, OSError):  # not empty, not a directory, gone: stop there
            break
        removed.append(directory.root.joinpath(*parts))
        parts = parts[:-1]
    return removed


# -- hard links: a duplicate's name given to the kept copy's inode (``on_duplicate: hardlink``)
#
# Crash states of :func:`link_to_keeper` (``tmp`` and ``priv`` beside the duplicate's name);
# the journal records both names and the duplicate's expected ``FileStat``:
#
#   name        tmp       priv   meaning                            recovery
#   duplicate   -         -      not started, or rolled back        nothing to do
#   duplicate   keeper's  -      linked, the duplicate not taken    remove tmp: rolled back
#   -           keeper's  dup    taken, the link not yet named      priv back to its name,
#                                                                   remove tmp: rolled back
#   keeper's    -         dup    named, the duplicate not removed   ``remove(priv, expect)``
#   keeper's    -         -      done                               nothing to do
#
# tmp is removed only while it is another name of the kept copy's inode (``remove_extra_name``).


class NotLinkable(FileOpsError):
    """No hard link replaces this duplicate (another filesystem, other bytes…); it stays."""


def _digest(fd: int) -> str:
    digest, at = hashlib.sha256(), 0
    while chunk := os.pread(fd, _CHUNK, at):
        digest.update(chunk)
        at += len(chunk)
    return digest.hexdigest()


def _checked_keeper(kfd: int, keeper: Location, dup: os.stat_result, sha256: str) -> os.stat_result:
    """The kept copy's status, once it is a regular file on the duplicate's filesystem, not the
    duplicate itself, holding exactly ``sha256``."""
    with _closing(_open_regular(kfd, _name(keeper), keeper.path, None)) as fd:
        info = os.fstat(fd)
        if info.st_dev != dup.st_dev:
            raise NotLinkable(keeper.path, "the kept copy is on another filesystem")
        if info.st_ino == dup.st_ino:
            raise NotLinkable(keeper.path, "already the same file (a hard link)")
        with _reporting(keeper.path):
            if _digest(fd) != sha256:
                raise NotLinkable(keeper.path, "the kept copy's bytes differ")
        return info


def _checked_duplicate(sfd: int, dup: Location, expect: FileStat, sha256: str) -> os.stat_result:
    with _closing(_open_regular(sfd, _name(dup), dup.path, expect)) as fd, _reporting(dup.path):
        if _digest(fd) != sha256:
            raise FileChanged(dup.path, "its bytes changed since it was fingerprinted")
        return os.fstat(fd)


def link_to_keeper(
    dup: Location, keeper: Location, *, expect: FileStat, sha256: str, tmp_name: str
) -> None:
    """Replace the name ``dup`` by a hard link to ``keeper``, when both hold exactly the bytes
    ``sha256`` on one filesystem (else NotLinkable, and nothing changed). The kept copy is
    linked under ``tmp_name`` beside the duplicate, the duplicate is taken under its private
    name and checked there, the link gets its name (never replacing), then the private name
    goes. On any error the duplicate is back at its name, whole."""
    _check_component(tmp_name)
    private = private_name(tmp_name)
    with _closing(_expected_parent(dup)) as sfd, _closing(_expected_parent(keeper)) as kfd:
        dup_info = _checked_duplicate(sfd, dup, expect, sha256)
        kept = _checked_keeper(kfd, keeper, dup_info, sha256)
        with _reporting(dup.path.parent / tmp_name):
            os.link(_name(keeper), tmp_name, src_dir_fd=kfd, dst_dir_fd=sfd, follow_symlinks=False)
        try:
            linked = _stat_expected(sfd, tmp_name, dup.path.parent / tmp_name)
            if (linked.st_ino, linked.st_size, linked.st_mtime_ns) != (
                kept.st_ino, kept.st_size, kept.st_mtime_ns,
            ):  # fmt: skip
                raise FileChanged(keeper.path, "was replaced or changed while being linked")
            with _reporting(dup.path):
                os.fsync(sfd)
            _swap_in_link(sfd, dup, expect, tmp_name, private)
        except BaseException:
            with suppress(OSError):
                os.unlink(tmp_name, dir_fd=sfd)
            raise
        with _reporting(dup.path):
            os.unlink(private, dir_fd=sfd)
            os.fsync(sfd)


def _swap_in_link(sfd: int, dup: Location, expect: FileStat, tmp_name: str, private: str) -> None:
    """Take the duplicate under ``private``, check it, give the link its name; else put it back."""
    name = _name(dup)
    with _reporting(dup.path):
        _rename_noreplace(sfd, name, sfd, private)
    try:
        _verify(_stat_expected(sfd, private, dup.path), dup.path, expect)
        with _reporting(dup.path):
            _rename_noreplace(sfd, tmp_name, sfd, name)
    except BaseException:
        with _reporting(f"{dup.path} (kept meanwhile as {private})"):
            _rename_noreplace(sfd, private, sfd, name)
            os.fsync(sfd)
        raise
    with _reporting(dup.path):
        os.fsync(sfd)


def remove_extra_name(loc: Location, other: Location) -> None:
    """Unlink ``loc`` only while it is another name of the file at ``other`` (same inode)."""
    here, there = lstat(loc), lstat(other)
    if (here.st_dev, here.st_ino) != (there.st_dev, there.st_ino) or not stat.S_ISREG(here.st_mode):
        raise FileChanged(loc.path, f"is not another name of {other.path}; left alone")
    remove(loc, expect=file_stat(here))


def rename_back(private: Location, name: str, *, expect: FileStat) -> None:
    """Give the expected file at ``private`` the name ``name`` in its directory again."""
    _check_component(name)
    with _closing(_expected_parent(private)) as dfd:
        _verify(_stat_expected(dfd, _name(private), private.path), private.path, expect)
        with _reporting(private.path.parent / name):
            _rename_noreplace(dfd, _name(private), dfd, name)
            os.fsync(dfd)


@dataclass(frozen=True, slots=True)
class Attributes:
    """What a file had before it became a hard link: given back to its independent copy."""

    mode: int
    uid: int
    gid: int
    atime_ns: int
    mtime_ns: int


def unshare(loc: Location, *, sha256: str, tmp_name: str, attrs: Attributes) -> None:
    """Make the name ``loc`` of a file with other names an independent copy of it again, with
    ``attrs``: a complete copy is written as ``tmp_name`` beside it, then exchanged with the
    name in one step (the name always holds these bytes); the old name, now ``tmp_name``, goes
    while it is still the shared inode. NotLinkable when the name has no other names."""
    _check_component(tmp_name)
    with _closing(_expected_parent(loc)) as dfd:
        with _closing(_open_regular(dfd, _name(loc), loc.path, None)) as in_fd:
            shared = os.fstat(in_fd)
            if shared.st_nlink < 2:
                raise NotLinkable(loc.path, "has no other name: already an independent copy")
            with _reporting(loc.path):
                if _digest(in_fd) != sha256:
                    raise FileChanged(loc.path, "its bytes differ from the journal's")
            _write_copy(dfd, in_fd, loc, tmp_name, attrs)
        try:
            with _reporting(loc.path):
                _renameat2(dfd, tmp_name, dfd, _name(loc), _RENAME_EXCHANGE)
        except FileOpsError:
            with suppress(OSError):
                os.unlink(tmp_name, dir_fd=dfd)
            raise
        old = _stat_expected(dfd, tmp_name, loc.path.parent / tmp_name)
        with _reporting(loc.path):
            if (old.st_dev, old.st_ino) != (shared.st_dev, shared.st_ino):  # replaced meanwhile
                _renameat2(dfd, tmp_name, dfd, _name(loc), _RENAME_EXCHANGE)
                os.unlink(tmp_name, dir_fd=dfd)
                raise FileChanged(loc.path, "was replaced during the undo; left alone")
            os.unlink(tmp_name, dir_fd=dfd)
            os.fsync(dfd)


def _write_copy(dfd: int, in_fd: int, loc: Location, tmp_name: str, attrs: Attributes) -> None:
    with _reporting(loc.path.parent / tmp_name):
        out_fd = os.open(tmp_name, _TMP_FLAGS, 0o600, dir_fd=dfd)
    try:
        with _closing(out_fd), _reporting(loc.path.parent / tmp_name):
            if _copy_bytes(in_fd, out_fd) != os.fstat(in_fd).st_size:
                raise FileChanged(loc.path, "changed while being copied")
            _chown(out_fd, attrs.uid, attrs.gid)
            os.fchmod(out_fd, stat.S_IMODE(attrs.mode))
            os.utime(out_fd, ns=(attrs.atime_ns, attrs.mtime_ns))
            os.fsync(out_fd)
    except BaseException:
        with suppress(OSError):
            os.unlink(tmp_name, dir_fd=dfd)
        raise
