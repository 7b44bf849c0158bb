"""The error hierarchy: each class carries its exit status; ``cli.main`` maps them."""

from __future__ import annotations

from pathlib import Path

# Exit statuses, like clamscan for ``check`` and sysexits(3) for configuration.
EXIT_OK = 0
EXIT_MATCH = 1
EXIT_ERROR = 2
EXIT_CONFIG = 78  # EX_CONFIG: systemd's RestartPreventExitStatus keeps it from restart-looping
EXIT_DAMAGED = 65  # EX_DATAERR: a damaged database; a restart cannot repair it either


class ImagewatchdError(Exception):
    """Base class: a message meant for the user, and the exit status it implies."""

    exit_code = EXIT_ERROR


class ConfigError(ImagewatchdError):
    """The configuration is invalid; ``problems`` lists every problem found, one line each."""

    exit_code = EXIT_CONFIG

    def __init__(
        self, source: str, problems: list[str], watch_paths: tuple[tuple[int, Path], ...] = ()
    ) -> None:
        """``watch_paths``: the watches whose path was valid, by index (check-config looks)."""
        self.source = source
        self.problems = problems
        self.watch_paths = watch_paths
        super().__init__(f"{source}: " + "; ".join(problems))


class StoreError(ImagewatchdError):
    """The database cannot be opened, migrated or written."""


class DatabaseUnreachable(StoreError):
    """A database server cannot be reached: the connection failed or was lost (an outage, not
    a refusal by the database: a constraint error is a plain ``StoreError``)."""


class FingerprintError(ImagewatchdError):
    """One file could not be fingerprinted (unreadable, corrupt, not an image, too large)."""

    def __init__(self, path: object, reason: str) -> None:
        self.path = path
        self.reason = reason
        super().__init__(f"{path}: {reason}")


class NotATreeFile(FingerprintError):
    """Not a file of its tree (any more): it vanished, or a directory on its path has become a
    symlink, which is never followed. Nothing is recorded of it."""


class UsageError(ImagewatchdError):
    """A command was given arguments it cannot work with (a missing path, an unknown list)."""


DETAIL_LENGTH = 200


class DatabaseDamaged(StoreError):
    """The database file is damaged: nothing is acted on; a person must check or replace it."""

    exit_code = EXIT_DAMAGED

    def __init__(self, path: object, detail: str) -> None:
        self.path = path
        self.detail = " ".join(detail.split())[:DETAIL_LENGTH]  # SQLite may quote the schema
        super().__init__(
            f"{path}: the database is damaged ({self.detail}): run imagewatchd db check; "
            "restore a backup or move it aside to start afresh"
        )
