"""Default locations: a CLI flag, then ``IMAGEWATCHD_*``, then systemd, then platformdirs.

systemd passes ``$STATE_DIRECTORY`` and ``$CONFIGURATION_DIRECTORY`` to units that declare
``StateDirectory=`` / ``ConfigurationDirectory=``; each may hold several colon-separated paths,
of which the first is ours.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import platformdirs

from imagewatchd.store.location import Location, is_url

APP = "imagewatchd"
CONFIG_NAME = "config.yaml"
SOCKET_NAME = "api.sock"
DB_NAME = "imagewatchd.db"


@dataclass(frozen=True, slots=True)
class Located:
    """A path and where it came from, so that messages can say why that path was used."""

    path: Path
    origin: str  # "--config", "IMAGEWATCHD_CONFIG", "systemd", "default"

    @property
    def explicit(self) -> bool:
        """True when the user named this path; a missing explicit file is an error."""
        return self.origin not in ("systemd", "default")


def _first_dir(value: str | None) -> Path | None:
    if not value:
        return None
    first = value.split(":")[0]
    return Path(first) if first else None


def config_path(flag: str | None, env: Mapping[str, str] = os.environ) -> Located:
    if flag:
        return Located(Path(flag).expanduser(), "--config")
    if env.get("IMAGEWATCHD_CONFIG"):
        return Located(Path(env["IMAGEWATCHD_CONFIG"]).expanduser(), "IMAGEWATCHD_CONFIG")
    systemd = _first_dir(env.get("CONFIGURATION_DIRECTORY"))
    if systemd is not None:
        return Located(systemd / CONFIG_NAME, "systemd")
    return Located(Path(platformdirs.user_config_dir(APP)) / CONFIG_NAME, "default")


def state_dir(env: Mapping[str, str] = os.environ) -> Path:
    systemd = _first_dir(env.get("STATE_DIRECTORY"))
    if systemd is not None:
        return systemd
    return Path(platformdirs.user_state_dir(APP))


def database_path(
    flag: str | None, configured: Path | None, env: Mapping[str, str] = os.environ
) -> Path:
    """``--db``, then ``IMAGEWATCHD_DB``, then the config file's ``database``, then defaults."""
    if flag:
        return Path(flag).expanduser()
    if env.get("IMAGEWATCHD_DB"):
        return Path(env["IMAGEWATCHD_DB"]).expanduser()
    if configured is not None:
        return configured
    return state_dir(env) / DB_NAME


def database(
    flag: str | None, configured: Path | str | None, host: str = "",
    env: Mapping[str, str] = os.environ,
) -> Location:  # fmt: skip
    """The store: as ``database_path`` finds it, or a ``postgresql://`` URL given instead of a
    path (in ``--db``, ``IMAGEWATCHD_DB`` or the config file's ``database``)."""
    given = flag or env.get("IMAGEWATCHD_DB") or configured
    if isinstance(given, str) and is_url(given):
        return Location.of(given, state_dir(env), host)
    path = configured if isinstance(configured, Path) else None
    return Location(database_path(flag, path, env))


def quarantine_dir(configured: Path | None, env: Mapping[str, str] = os.environ) -> Path:
    return configured if configured is not None else state_dir(env) / "quarantine"


def socket_path(configured: Path | None, env: Mapping[str, str] = os.environ) -> Path:
    """The API's socket: ``IMAGEWATCHD_SOCKET``, then the config file's ``api.socket``, then
    systemd's ``$RUNTIME_DIRECTORY`` (``RuntimeDirectory=``), then the user's runtime directory
    (``$XDG_RUNTIME_DIR/imagewatchd``; without one, the state directory, private to the user)."""
    if env.get("IMAGEWATCHD_SOCKET"):
        return Path(env["IMAGEWATCHD_SOCKET"]).expanduser()
    if configured is not None:
        return configured
    systemd = _first_dir(env.get("RUNTIME_DIRECTORY"))
    if systemd is not None:
        return systemd / SOCKET_NAME
    if env.get("XDG_RUNTIME_DIR"):
        return Path(env["XDG_RUNTIME_DIR"]) / APP / SOCKET_NAME
    return state_dir(env) / SOCKET_NAME


def pictures_dir() -> Path:
    """The user's pictures directory: the library watched when there is no config file."""
    return Path(platformdirs.user_pictures_dir())
