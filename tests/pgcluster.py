"""A throwaway PostgreSQL cluster for the test suite: Debian's server binaries, a temporary data
directory, a Unix socket in a temporary directory and no TCP, run as an unprivileged user (the
``postgres`` system user when the suite runs as root, else the current user), stopped at the
end. Each test gets a fresh database (``Cluster.database``).
"""

from __future__ import annotations

import contextlib
import glob
import itertools
import os
import pwd
import shutil
import subprocess
import tempfile
from pathlib import Path

import psycopg

ROLE = "imagewatchd"  # the cluster's superuser; trusted on the socket only
INSTALL = "apt-get install -y postgresql"


class MissingServer(RuntimeError):
    """The PostgreSQL server binaries are not installed."""


def server_bin() -> Path:
    """The newest installed server's bin directory (``/usr/lib/postgresql/<version>/bin``)."""
    found = sorted(
        glob.glob("/usr/lib/postgresql/*/bin/initdb"),
        key=lambda name: int(Path(name).parts[-3]) if Path(name).parts[-3].isdigit() else 0,
    )
    if not found:
        raise MissingServer(
            "the PostgreSQL tests need Debian's PostgreSQL server (/usr/lib/postgresql/*/bin/"
            f"initdb, pg_ctl), which is not installed: run `{INSTALL}` (the README's test "
            "command installs it)"
        )
    return Path(found[-1]).parent


def server_user() -> pwd.struct_passwd:
    """Who runs the server: never root (PostgreSQL refuses to)."""
    if os.geteuid() != 0:
        return pwd.getpwuid(os.geteuid())
    try:
        return pwd.getpwnam("postgres")
    except KeyError:
        raise MissingServer(f"running as root, and there is no postgres user: {INSTALL}") from None


class Cluster:
    """A running cluster; ``stop`` ends it and removes its files."""

    def __init__(self) -> None:
        self.bin = server_bin()
        self.user = server_user()
        self.base = Path(tempfile.mkdtemp(prefix="imagewatchd-pg-"))
        os.chown(self.base, self.user.pw_uid, self.user.pw_gid)
        self.data = self.base / "data"
        self.socket_dir = self.base
        self._names = itertools.count(1)
        self._run("initdb", "-D", str(self.data), "-U", ROLE, "--auth=trust", "-E", "UTF8",
                  "--locale=C", "--no-sync")  # fmt: skip
        self.start()

    def start(self) -> None:
        """Start the server (again, after ``pause``)."""
        options = f"-k {self.socket_dir} -c listen_addresses='' -F"
        log = str(self.base / "server.log")
        self._run("pg_ctl", "-D", str(self.data), "-o", options, "-l", log, "-w", "start")

    def pause(self) -> None:
        """Stop the server, keeping its data (an outage); ``start`` ends it."""
        self._run("pg_ctl", "-D", str(self.data), "-m", "fast", "-w", "stop")

    def _run(self, program: str, *args: str) -> None:
        user = None if os.geteuid() != 0 else self.user.pw_name
        done = subprocess.run(
            [str(self.bin / program), *args], user=user, cwd=self.base,
            capture_output=True, text=True, check=False,
        )  # fmt: skip
        if done.returncode != 0:
            raise RuntimeError(f"{program} failed ({done.returncode}): {done.stderr.strip()}")

    def url(self, dbname: str) -> str:
        return f"postgresql://{ROLE}@/{dbname}?host={self.socket_dir}"

    def database(self) -> str:
        """A fresh, empty database; its URL."""
        name = f"test{next(self._names)}"
        with psycopg.connect(self.url("postgres"), autocommit=True) as admin:
            admin.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def drop(self, url: str) -> None:
        name = url.rsplit("/", 1)[1].split("?", maxsplit=1)[0]
        with psycopg.connect(self.url("postgres"), autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    def stop(self) -> None:
        with contextlib.suppress(RuntimeError):
            self._run("pg_ctl", "-D", str(self.data), "-m", "fast", "-w", "stop")
        shutil.rmtree(self.base, ignore_errors=True)
