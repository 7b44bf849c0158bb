"""Thumbnails, made once by the decoding workers and kept in the state directory beside the
database (``thumbs/<sha256>.jpg``), until no file row or quarantined file needs them.

A thumbnail is named by the content it shows: the sha256 of the bytes the worker read, not the
one the store remembers, so a file edited since it was indexed never gets a stale picture.
"""

from __future__ import annotations

import logging
import os
import re
import tempfile
from collections.abc import Callable
from pathlib import Path

from imagewatchd.decoding import Decoder
from imagewatchd.errors import FingerprintError
from imagewatchd.fingerprint import open_path

log = logging.getLogger(__name__)

_NAME = re.compile(r"^[0-9a-f]{64}\.jpg$")


class Thumbnails:
    def __init__(self, directory: Path, decoder: Decoder) -> None:
        self.directory = directory
        self.decoder = decoder

    def path(self, sha256: str) -> Path:
        return self.directory / f"{sha256}.jpg"

    def get(self, path: str, sha256: str | None) -> bytes | None:
        """The thumbnail of the file at ``path`` (which the store says holds ``sha256``);
        None when it cannot be made (one log line says why)."""
        if sha256 is not None and _NAME.match(f"{sha256}.jpg"):
            try:
                return self.path(sha256).read_bytes()
            except FileNotFoundError:
                pass
        try:
            fd = open_path(Path(path))
        except FingerprintError as exc:
            log.warning("%s: no thumbnail: %s", path, exc.reason)
            return None
        try:
            content, jpeg = self.decoder.thumbnail(fd, path)
        except FingerprintError as exc:
            log.warning("%s: no thumbnail: %s", path, exc.reason)
            return None
        finally:
            os.close(fd)
        self._save(content, jpeg)
        return jpeg

    def _save(self, sha256: str, jpeg: bytes) -> None:
        """Atomically: a reader sees the whole thumbnail or none."""
        self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        fd, temporary = tempfile.mkstemp(dir=self.directory, prefix=".tmp-", suffix=".jpg")
        try:
            with os.fdopen(fd, "wb") as out:
                out.write(jpeg)
            os.replace(temporary, self.path(sha256))
        except OSError as exc:
            log.warning("%s: thumbnail not kept: %s", self.path(sha256), exc.strerror)
            Path(temporary).unlink(missing_ok=True)

    def prune(self, still_needed: Callable[[list[str]], set[str]]) -> int:
        """Remove the thumbnails whose sha256 ``still_needed`` does not return; how many."""
        try:
            names = os.listdir(self.directory)
        except FileNotFoundError:
            return 0
        names = [n for n in names if _NAME.match(n) or n.startswith(".tmp-")]
        shas = [n[:-4] for n in names if _NAME.match(n)]
        needed = still_needed(shas)
        gone = 0
        for name in names:
            if name[:-4] not in needed:
                (self.directory / name).unlink(missing_ok=True)
                gone += 1
        return gone
