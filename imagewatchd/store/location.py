"""Where the store is: a SQLite file (the default), or a PostgreSQL database named by a URL.

A PostgreSQL store still has a local name, ``path``: this host's files about the database (the
daemon's lock, the library index snapshot, the review page's thumbnails) sit beside it, as they
sit beside a SQLite file. The URL is handed to libpq as it is, so libpq's environment variables
(``PGHOST``, ``PGUSER``, ``PGPASSFILE``…) and password file fill in what it leaves out.
"""

from __future__ import annotations

import re
import socket
from dataclasses import dataclass
from pathlib import Path

URL_SCHEMES = ("postgresql://", "postgres://")
LOCAL_NAME = "postgresql"  # a PostgreSQL store's local name in the state directory
PASSWORD = re.compile(r"(://[^:/?#@]*:)[^@/?#]*@")


def is_url(value: str) -> bool:
    return value.startswith(URL_SCHEMES)


@dataclass(frozen=True, slots=True)
class Location:
    path: Path  # the SQLite file, or a PostgreSQL store's local name
    url: str | None = None  # postgresql://...; None for SQLite
    host: str = ""  # this host's name in a shared PostgreSQL store (config ``host:``)

    @classmethod
    def of(cls, value: str | Path, state_dir: Path, host: str = "") -> Location:
        """``value`` as configured: a path, or a ``postgresql://`` URL."""
        if isinstance(value, str) and is_url(value):
            return cls(state_dir / LOCAL_NAME, value, host or socket.gethostname())
        return cls(Path(value).expanduser())

    @property
    def shared(self) -> bool:
        """Is this a database that several hosts may share?"""
        return self.url is not None

    def __str__(self) -> str:
        """For messages: the file, or the URL without its password."""
        return str(self.path) if self.url is None else PASSWORD.sub(r"\1***@", self.url)


Where = Path | Location  # what ``Store`` opens: a SQLite file's path, or a location


def local_path(where: Where) -> Path:
    """The SQLite file, or a PostgreSQL store's local name."""
    return where.path if isinstance(where, Location) else where
