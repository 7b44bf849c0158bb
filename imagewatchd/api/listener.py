"""The API's socket file: bound under a temporary name, given its mode and group, then renamed
into place, so that nobody ever connects to a socket with the wrong permissions.

A socket file left by a daemon that died is replaced; one that a live daemon serves (another
database's daemon configured with the same path) is never taken over.
"""

from __future__ import annotations

import contextlib
import errno
import grp
import logging
import os
import socket
import stat
from pathlib import Path

log = logging.getLogger(__name__)

SOCKET_MODE = 0o660
BACKLOG = 16
MAX_PATH = 107  # sun_path holds 108 bytes with the terminating NUL


class ListenError(Exception):
    """The socket cannot be served: the reason, naming the path."""


def listen(path: Path, group: str | None) -> tuple[socket.socket, os.stat_result]:
    """A listening socket at ``path`` (mode 0660, ``group``), and its file's identity."""
    raw = os.fsencode(path)
    if len(raw) + 5 > MAX_PATH:
        raise ListenError(f"{path}: too long for a Unix socket (at most {MAX_PATH - 5} bytes)")
    _check_replaceable(path)
    path.parent.mkdir(mode=0o755, parents=True, exist_ok=True)
    temporary = raw + b".new"
    _remove_stale_temporary(temporary)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
    try:
        sock.bind(temporary)
        os.chmod(temporary, SOCKET_MODE)
        if group is not None:
            os.chown(temporary, -1, _gid(group))
        sock.listen(BACKLOG)
        os.rename(temporary, raw)
        return sock, os.stat(raw)
    except BaseException:
        sock.close()
        _unlink(temporary)
        raise


def _gid(group: str) -> int:
    try:
        return grp.getgrnam(group).gr_gid
    except KeyError:
        raise ListenError(f"api.group: no group named {group!r}") from None


def _check_replaceable(path: Path) -> None:
    """Nothing there, or a socket nobody serves; else ``ListenError``."""
    try:
        info = os.lstat(path)
    except FileNotFoundError:
        return
    if not stat.S_ISSOCK(info.st_mode):
        raise ListenError(f"{path}: exists and is not a socket; not replaced")
    if _answers(path):
        raise ListenError(f"{path}: another daemon serves this socket; not replaced")
    log.info("%s: replacing the socket left by a daemon that is gone", path)


def _answers(path: Path | bytes) -> bool:
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
    probe.settimeout(1.0)
    try:
        probe.connect(os.fsencode(path))
    except OSError as exc:
        return exc.errno not in (errno.ECONNREFUSED, errno.ENOENT)
    finally:
        probe.close()
    return True


def _remove_stale_temporary(temporary: bytes) -> None:
    try:
        info = os.lstat(temporary)
    except FileNotFoundError:
        return
    if stat.S_ISSOCK(info.st_mode) and not _answers(temporary):
        _unlink(temporary)


def _unlink(raw: bytes) -> None:
    with contextlib.suppress(FileNotFoundError):
        os.unlink(raw)


def remove(path: Path, identity: os.stat_result) -> None:
    """Remove the socket file at exit, if it is still ours (not replaced meanwhile)."""
    try:
        now = os.lstat(path)
    except FileNotFoundError:
        return
    if (now.st_dev, now.st_ino) == (identity.st_dev, identity.st_ino):
        _unlink(os.fsencode(path))
