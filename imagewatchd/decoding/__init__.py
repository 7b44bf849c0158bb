"""Decoders: an open image file in, its ``(FileStat, Fingerprint)`` out.

Two implementations behind one small interface: :class:`~imagewatchd.decoding.pool.WorkerPool`
decodes in worker processes with memory and time limits and nothing to write, so a decoder
crash, an out-of-memory or a hang costs a worker, never the caller; ``InlineDecoder`` decodes in
this process (``compare``, unit tests). Callers open the file themselves and pass the fd: the
decoder never sees a path, and the caller never holds the file's bytes.
"""

from __future__ import annotations

import errno
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from imagewatchd.config import Config
from imagewatchd.errors import FingerprintError, NotATreeFile
from imagewatchd.fileops import FileChanged, FileOpsError, Location, UnsafePath, open_file
from imagewatchd.fingerprint import Limits, open_path
from imagewatchd.models import FileStat, Fingerprint


@dataclass(frozen=True, slots=True)
class Settings:
    """What the decoders of one configuration may do."""

    limits: Limits = field(default_factory=Limits)
    timeout: float = 30.0  # seconds a worker may take for one file
    workers: int = 2


def settings_of(config: Config) -> Settings:
    decoding = config.decoding
    limits = Limits(max_pixels=config.matching.max_pixels, memory_bytes=decoding.memory_mb << 20)
    return Settings(limits, decoding.timeout_seconds, config.workers)


class Decoder(Protocol):
    def fingerprint(
        self, fd: int, name: object, *, crops: bool = False
    ) -> tuple[FileStat, Fingerprint]:
        """Read and fingerprint the open regular file ``fd`` (``name`` only for log lines),
        with its colour signature (every file's, stored with it); any problem is a
        ``FingerprintError`` with the reason. The caller closes ``fd``. ``crops``: with the
        centre crops' hashes a list entry stores (``known add``)."""

    def thumbnail(self, fd: int, name: object) -> tuple[str, bytes]:
        """(sha256 of the bytes read, a small JPEG: ``thumbnail.SIZE`` pixels a side at most)
        of the open file ``fd``; any problem is a ``FingerprintError``. The caller closes it."""

    def close(self) -> None: ...


def open_decoder(config: Config, *, start: bool = False) -> Decoder:
    """The decoder for commands and the daemon: a pool of isolated worker processes, started
    now (``start``) or as files arrive."""
    from imagewatchd.decoding.pool import WorkerPool  # noqa: PLC0415 (a cycle: pool needs us)

    pool = WorkerPool(settings_of(config))
    if start:
        pool.start()
    return pool


def fingerprint_path(
    decoder: Decoder, path: Path, *, crops: bool = False
) -> tuple[FileStat, Fingerprint]:
    """A path given on the command line: its last component is not followed if a symlink."""
    fd = open_path(path)
    try:
        return decoder.fingerprint(fd, path, crops=crops)
    except FingerprintError as exc:
        raise FingerprintError(path, exc.reason) from exc
    finally:
        os.close(fd)


def fingerprint_at(decoder: Decoder, loc: Location) -> tuple[FileStat, Fingerprint]:
    """A file inside a tree: no component from the tree's root on is followed."""
    try:
        fd = open_file(loc)
    except FileChanged as exc:
        raise NotATreeFile(loc.path, "no such file (it vanished?)") from exc
    except UnsafePath as exc:
        raise NotATreeFile(loc.path, f"not read: {exc}") from exc
    except FileOpsError as exc:
        reason = "permission denied" if exc.os_errno in (errno.EACCES, errno.EPERM) else exc.reason
        where = "" if exc.path == loc.path else f"{exc.path}: "
        raise FingerprintError(loc.path, where + reason) from exc
    try:
        return decoder.fingerprint(fd, loc.path)
    except FingerprintError as exc:
        raise FingerprintError(loc.path, exc.reason) from exc
    finally:
        os.close(fd)
