"""The in-process decoder: no isolation, for one-shot comparisons and tests."""

from __future__ import annotations

import hashlib
import warnings

from imagewatchd.decoding import Settings
from imagewatchd.fingerprint import fingerprint_fd, read_fd
from imagewatchd.models import FileStat, Fingerprint
from imagewatchd.thumbnail import thumbnail_bytes


class InlineDecoder:
    """Decodes in this process: no isolation, for one-shot comparisons and tests."""

    def __init__(self, settings: Settings | None = None) -> None:
        self.settings = settings or Settings()

    def fingerprint(
        self, fd: int, name: object, *, crops: bool = False
    ) -> tuple[FileStat, Fingerprint]:
        """A decoder's complaint about one file (Pillow's ``Corrupt EXIF data``) is dropped, as
        the workers drop it: the file's own line says what matters, raw warnings never do."""
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return fingerprint_fd(fd, self.settings.limits, crops=crops)

    def thumbnail(self, fd: int, name: object) -> tuple[str, bytes]:
        limits = self.settings.limits
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            _, data = read_fd(fd, limits.max_bytes)
            jpeg = thumbnail_bytes(data, limits.max_pixels, limits.memory_bytes)
        return hashlib.sha256(data).hexdigest(), jpeg

    def close(self) -> None:
        pass
