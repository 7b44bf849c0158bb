"""Run the real daemon as a subprocess on real directories, and read its log."""

from __future__ import annotations

import hashlib
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import yaml

ENV = {**os.environ, "OPENBLAS_NUM_THREADS": "1"}


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def iw(
    db: Path | str, *args: str, config: Path | None = None, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """A one-shot command on the daemon's database (a file, or a postgresql:// URL)."""
    extra = ["--config", str(config)] if config else []
    return subprocess.run(
        [sys.executable, "-m", "imagewatchd", "--db", str(db), *extra, *args],
        capture_output=True, text=True, env={**ENV, **(env or {})}, timeout=120, check=False,
    )  # fmt: skip


class Daemon:
    def __init__(
        self, base: Path, config: dict[str, Any], *extra: str, env: dict[str, str] | None = None,
        program: list[str] | None = None, url: str | None = None,
    ) -> None:  # fmt: skip
        """``program`` replaces ``python -m imagewatchd`` (a wrapper with a test hook); ``url``
        names a PostgreSQL database to run on instead of the SQLite file ``db``."""
        self.base = base
        self.db = base / "state" / "imagewatchd.db"
        self.url = url
        self.config_path = base / "config.yaml"
        self.log_path = base / f"daemon-{time.monotonic_ns()}.log"
        self.write_config(config)
        self.extra = extra
        # each daemon's own API socket, never the user's runtime directory
        self.env = {**ENV, "IMAGEWATCHD_SOCKET": str(base / "api.sock"), **(env or {})}
        self.socket = Path(self.env["IMAGEWATCHD_SOCKET"])
        self.program = program or [sys.executable, "-m", "imagewatchd"]
        self.proc: subprocess.Popen[bytes] | None = None

    def write_config(self, config: dict[str, Any]) -> None:
        self.config_path.write_text(yaml.safe_dump(config))

    def start(self, wait: bool = True, journal: bool = False) -> Daemon:
        """Start; with ``journal``, stderr is announced as the journal's stream."""
        self.log_path = self.base / f"daemon-{time.monotonic_ns()}.log"
        with self.log_path.open("wb") as log:
            env = dict(self.env)
            if journal:
                info = os.fstat(log.fileno())
                env["JOURNAL_STREAM"] = f"{info.st_dev}:{info.st_ino}"
            db = self.url or str(self.db)
            self.proc = subprocess.Popen(
                [*self.program, "--config", str(self.config_path), "--db", db, "run", *self.extra],
                stdout=log, stderr=subprocess.STDOUT, env=env,
            )  # fmt: skip
        if wait:
            self.wait_for(r"reconcile: \d+ file", timeout=60)
        return self

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait_for(self, pattern: str, timeout: float = 20.0, count: int = 1) -> list[str]:
        deadline = time.monotonic() + timeout
        regex = re.compile(pattern)
        while True:
            found = [line for line in self.log().splitlines() if regex.search(line)]
            if len(found) >= count:
                return found
            if self.proc is not None and self.proc.poll() is not None:
                raise AssertionError(f"daemon exited {self.proc.returncode}:\n{self.log()}")
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out waiting for {pattern!r}:\n{self.log()}")
            time.sleep(0.05)

    def processed(self, path: Path, timeout: float = 20.0) -> str:
        """The daemon's one log line for this file."""
        return self.wait_for(rf"INFO: {re.escape(str(path))}: \w+.* -> ", timeout)[-1]

    def signal(self, signum: int) -> None:
        assert self.proc is not None
        self.proc.send_signal(signum)

    def stop(self, timeout: float = 10.0) -> int:
        if self.proc is None or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else 0
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
