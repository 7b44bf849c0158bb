"""A one-line progress display for terminals; silent when the stream is not a terminal."""

from __future__ import annotations

import time
from typing import TextIO


class Progress:
    def __init__(self, stream: TextIO, total: int, label: str, interval: float = 0.1) -> None:
        self.stream = stream
        self.total = total
        self.label = label
        self.interval = interval
        self.enabled = stream.isatty()
        self._last = 0.0
        self._width = 0

    def update(self, done: int, detail: str = "") -> None:
        if not self.enabled:
            return
        now = time.monotonic()
        if now - self._last < self.interval and done < self.total:
            return
        self._last = now
        percent = 100 * done // self.total if self.total else 100
        bar = "#" * (percent // 5) + "-" * (20 - percent // 5)
        line = f"{self.label} [{bar}] {done}/{self.total} {detail}"
        self.stream.write("\r" + line.ljust(self._width))
        self._width = len(line)
        self.stream.flush()

    def close(self) -> None:
        if self.enabled and self._width:
            self.stream.write("\r" + " " * self._width + "\r")
            self.stream.flush()
