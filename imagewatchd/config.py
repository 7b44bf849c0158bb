"""YAML configuration → frozen dataclasses, validated once, up front.

Every problem is reported together, each naming its key path
(``watches[1].settle_seconds: expected a number, got 'ten'``); an unknown key is reported with
the closest valid key.
"""

from __future__ import annotations

import difflib
import enum
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import yaml

from imagewatchd import paths
from imagewatchd.errors import ConfigError
from imagewatchd.filing import INBOX_KEYS, Inbox, parse_inbox
from imagewatchd.fingerprint import DEFAULT_MAX_PIXELS, DEFAULT_MEMORY_BYTES
from imagewatchd.keep import KeepPolicy
from imagewatchd.keepconfig import KEEP_KEYS, parse_keep
from imagewatchd.models import Orientations, Role, Thresholds
from imagewatchd.store.location import is_url


class Action(enum.StrEnum):
    LOG = "log"
    MOVE = "move"
    QUARANTINE = "quarantine"
    TRASH = "trash"  # the freedesktop.org trash (a user's library)
    DELETE = "delete"  # for good: only with the watch's allow_delete
    HARDLINK = "hardlink"  # a duplicate's name becomes a hard link to the kept copy


# Chosen from measured precision and recall on real photographs: see docs/BENCHMARKS.md.
# (imagehash's pHash sets exactly 32 of its 64 bits, so its distances are always even.)
DEFAULT_DHASH_THRESHOLD = 6
DEFAULT_PHASH_THRESHOLD = 4
# The similar band beyond them (burst shots, near frames, stereo pairs): reported, never a
# duplicate (docs/BENCHMARKS.md, "Issue 10: the similar band", bench/similar.py).
DEFAULT_SIMILAR_DHASH = 14
DEFAULT_SIMILAR_PHASH = 12
# List entries with a PDQ also match by it: bits of 256 (Meta's documented default, 31, is what
# the benchmark set supports: docs/BENCHMARKS.md "Issue 8: PDQ"), and the quality both sides
# need (Meta recommends 50).
DEFAULT_PDQ_THRESHOLD = 31
DEFAULT_PDQ_MIN_QUALITY = 40  # a list entry's
DEFAULT_PDQ_QUERY_MIN_QUALITY = 20  # the picture's
IMAGE_EXTENSIONS = (
    "jpg", "jpeg", "jpe", "png", "gif", "webp", "tif", "tiff", "bmp", "heic", "heif", "hif",
    "avif",
)  # fmt: skip
DEFAULT_INCLUDE = tuple(f"*.{ext}" for ext in IMAGE_EXTENSIONS)


@dataclass(frozen=True, slots=True)
class Watch:
    path: Path
    role: Role = Role.LIBRARY
    recursive: bool = True
    include: tuple[str, ...] = DEFAULT_INCLUDE
    exclude: tuple[str, ...] = ()
    on_known: Action = Action.LOG
    on_duplicate: Action = Action.LOG
    on_similar: Action = Action.LOG  # a library newcomer only similar to a library photo
    move_to: Path | None = None
    settle_seconds: float = 2.0
    polling: bool = False
    allow_delete: bool = False  # "delete" deletes for good: it must be asked for twice
    orientations: Orientations = Orientations.LISTS
    keep: KeepPolicy = field(default_factory=KeepPolicy)  # which copy of a group stays
    inbox: Inbox | None = None  # an incoming watch that feeds a library watch (filing.py)


@dataclass(frozen=True, slots=True)
class Matching:
    dhash_threshold: int = DEFAULT_DHASH_THRESHOLD
    phash_threshold: int = DEFAULT_PHASH_THRESHOLD
    max_pixels: int = DEFAULT_MAX_PIXELS
    pdq_threshold: int = DEFAULT_PDQ_THRESHOLD
    pdq_min_quality: int = DEFAULT_PDQ_MIN_QUALITY
    pdq_query_min_quality: int = DEFAULT_PDQ_QUERY_MIN_QUALITY
    similar_dhash: int = DEFAULT_SIMILAR_DHASH
    similar_phash: int = DEFAULT_SIMILAR_PHASH
    watermarks: bool = True  # the second stage: README, "Watermarks"

    @property
    def thresholds(self) -> Thresholds:
        return Thresholds(
            self.dhash_threshold, self.phash_threshold, self.pdq_threshold, self.pdq_min_quality,
            max(self.similar_dhash, self.dhash_threshold),
            max(self.similar_phash, self.phash_threshold), self.pdq_query_min_quality,
            self.watermarks,
        )  # fmt: skip


@dataclass(frozen=True, slots=True)
class Decoding:
    """Limits of the worker processes that decode images (see README, "Isolated decoding")."""

    memory_mb: int = DEFAULT_MEMORY_BYTES >> 20
    timeout_seconds: float = 30.0


@dataclass(frozen=True, slots=True)
class Api:
    """The running daemon's local API (docs/API.md): a Unix socket, mode 0660."""

    enabled: bool = True
    socket: Path | None = None  # None: $RUNTIME_DIRECTORY or the user's runtime directory
    group: str | None = None  # the socket's group (None: the daemon's own group)
    max_request_mb: int = 32  # a larger request (an image to check) is refused with 413
    timeout_seconds: float = 10.0  # a client slower than this is disconnected


@dataclass(frozen=True, slots=True)
class Config:
    source: str
    database: Path | str | None = None  # a SQLite file, or a postgresql:// URL
    host: str = ""  # this host's name in a shared database ("": the machine's hostname)
    quarantine_dir: Path | None = None
    matching: Matching = field(default_factory=Matching)
    decoding: Decoding = field(default_factory=Decoding)
    watches: tuple[Watch, ...] = ()
    rescan_interval: float = 3600.0
    workers: int = 2
    api: Api = field(default_factory=Api)


TOP_KEYS = (
    "database", "quarantine_dir", "matching", "decoding", "watches", "rescan_interval", "workers",
    "api", "host",
)  # fmt: skip
MATCHING_KEYS = (
    "dhash_threshold", "phash_threshold", "max_pixels", "pdq_threshold", "pdq_min_quality",
    "pdq_query_min_quality", "similar_dhash", "similar_phash", "watermarks",
)  # fmt: skip
DECODING_KEYS = ("memory_mb", "timeout_seconds")
API_KEYS = ("enabled", "socket", "group", "max_request_mb", "timeout_seconds")
WATCH_KEYS = (
    "path", "role", "recursive", "include", "exclude", "on_known", "on_duplicate",
    "on_similar", "move_to", "settle_seconds", "polling", "allow_delete", "orientations",
    *KEEP_KEYS, *INBOX_KEYS,
)  # fmt: skip

E = TypeVar("E", bound=enum.StrEnum)


class _Reader:
    """Reads typed values out of parsed YAML, collecting every problem instead of stopping."""

    def __init__(self) -> None:
        self.problems: list[str] = []

    def problem(self, key: str, message: str) -> None:
        self.problems.append(f"{key}: {message}")

    def mapping(self, value: object, key: str, allowed: Iterable[str]) -> Mapping[str, Any]:
        if value is None:
            return {}
        if not isinstance(value, Mapping):
            self.problem(key or "<top>", f"expected a mapping, got {_show(value)}")
            return {}
        allowed = tuple(allowed)
        for name in value:
            if name not in allowed:
                close = difflib.get_close_matches(str(name), allowed, n=1, cutoff=0.6)
                hint = f"; did you mean '{close[0]}'?" if close else ""
                self.problem(_join(key, str(name)), f"unknown key{hint}")
        return value

    def number(self, section: Mapping[str, Any], key: str, at: str, default: float) -> float:
        value = section.get(key, default)
        if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
            self.problem(_join(at, key), f"expected a non-negative number, got {_show(value)}")
            return default
        return float(value)

    def integer(
        self, section: Mapping[str, Any], key: str, at: str, default: int, low: int, high: int
    ) -> int:
        value = section.get(key, default)
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            self.problem(
                _join(at, key), f"expected a whole number from {low} to {high}, got {_show(value)}"
            )
            return default
        return value

    def boolean(self, section: Mapping[str, Any], key: str, at: str, default: bool) -> bool:
        value = section.get(key, default)
        if not isinstance(value, bool):
            self.problem(_join(at, key), f"expected true or false, got {_show(value)}")
            return default
        return value

    def choice(self, section: Mapping[str, Any], key: str, at: str, default: E) -> E:
        value = section.get(key, default.value)
        kind = type(default)
        try:
            return kind(value)
        except ValueError:
            options = " | ".join(member.value for member in kind)
            self.problem(_join(at, key), f"expected one of {options}, got {_show(value)}")
            return default

    def path(self, section: Mapping[str, Any], key: str, at: str) -> Path | None:
        value = section.get(key)
        if value is None:
            return None
        if not isinstance(value, str) or not value.strip():
            self.problem(_join(at, key), f"expected a path, got {_show(value)}")
            return None
        result = Path(value).expanduser()
        if not result.is_absolute():
            self.problem(_join(at, key), f"must be an absolute path, got {_show(value)}")
            return None
        return result

    def globs(
        self, section: Mapping[str, Any], key: str, at: str, default: tuple[str, ...]
    ) -> tuple[str, ...]:
        value = section.get(key, list(default))
        if isinstance(value, str):
            value = [value]
        if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
            self.problem(_join(at, key), f"expected a list of glob patterns, got {_show(value)}")
            return default
        return tuple(value)


def _join(at: str, key: str) -> str:
    return f"{at}.{key}" if at else key


def _show(value: object) -> str:
    return repr(value) if isinstance(value, str) else f"{type(value).__name__} {value!r}"


def _database(reader: _Reader, top: Mapping[str, Any]) -> Path | str | None:
    """A path, or a ``postgresql://`` URL (kept as it is, for libpq)."""
    value = top.get("database")
    return value if isinstance(value, str) and is_url(value) else reader.path(top, "database", "")


def _host(reader: _Reader, top: Mapping[str, Any]) -> str:
    value = top.get("host", "")
    if not isinstance(value, str) or (value != value.strip()):
        reader.problem("host", f"expected a host name, got {_show(value)}")
        return ""
    return value


def parse(data: object, source: str) -> Config:
    """Validate parsed YAML; raise ``ConfigError`` listing every problem."""
    reader = _Reader()
    top = reader.mapping(data, "", TOP_KEYS)
    matching = _parse_matching(reader, top.get("matching"))
    indexed = _parse_watches(reader, top.get("watches"))
    watches = tuple(watch for _, watch in indexed)
    config = Config(
        source=source,
        database=_database(reader, top),
        host=_host(reader, top),
        quarantine_dir=reader.path(top, "quarantine_dir", ""),
        matching=matching,
        decoding=_parse_decoding(reader, top.get("decoding")),
        watches=watches,
        rescan_interval=reader.number(top, "rescan_interval", "", 3600.0),
        workers=reader.integer(top, "workers", "", 2, 1, 64),
        api=_parse_api(reader, top.get("api")),
    )
    quarantine = config.quarantine_dir
    for index, watch in indexed:
        if quarantine is not None and quarantine.is_relative_to(watch.path):
            reader.problem("quarantine_dir", f"inside watches[{index}] ({watch.path})")
    if reader.problems:
        found = tuple((index, watch.path) for index, watch in indexed)
        raise ConfigError(source, reader.problems, found)
    return config


def _parse_matching(reader: _Reader, value: object) -> Matching:
    section = reader.mapping(value, "matching", MATCHING_KEYS)
    return Matching(
        dhash_threshold=reader.integer(
            section, "dhash_threshold", "matching", DEFAULT_DHASH_THRESHOLD, 0, 32
        ),
        phash_threshold=reader.integer(
            section, "phash_threshold", "matching", DEFAULT_PHASH_THRESHOLD, 0, 32
        ),
        max_pixels=reader.integer(section, "max_pixels", "matching", DEFAULT_MAX_PIXELS, 1, 2**40),
        pdq_threshold=reader.integer(
            section, "pdq_threshold", "matching", DEFAULT_PDQ_THRESHOLD, 0, 128
        ),
        pdq_min_quality=reader.integer(
            section, "pdq_min_quality", "matching", DEFAULT_PDQ_MIN_QUALITY, 0, 100
        ),
        pdq_query_min_quality=reader.integer(
            section, "pdq_query_min_quality", "matching", DEFAULT_PDQ_QUERY_MIN_QUALITY, 0, 100
        ),
        similar_dhash=reader.integer(
            section, "similar_dhash", "matching", DEFAULT_SIMILAR_DHASH, 0, 32
        ),
        similar_phash=reader.integer(
            section, "similar_phash", "matching", DEFAULT_SIMILAR_PHASH, 0, 32
        ),
        watermarks=reader.boolean(section, "watermarks", "matching", True),
    )


def _parse_decoding(reader: _Reader, value: object) -> Decoding:
    section = reader.mapping(value, "decoding", DECODING_KEYS)
    default = Decoding()
    timeout = reader.number(section, "timeout_seconds", "decoding", default.timeout_seconds)
    if timeout < 1:
        reader.problem("decoding.timeout_seconds", f"must be at least 1, got {timeout:g}")
    return Decoding(
        memory_mb=reader.integer(section, "memory_mb", "decoding", default.memory_mb, 16, 65536),
        timeout_seconds=max(timeout, 1.0),
    )


def _parse_api(reader: _Reader, value: object) -> Api:
    section = reader.mapping(value, "api", API_KEYS)
    default = Api()
    group = section.get("group")
    if group is not None and (not isinstance(group, str) or not group):
        reader.problem("api.group", f"expected a group name, got {_show(group)}")
        group = None
    timeout = reader.number(section, "timeout_seconds", "api", default.timeout_seconds)
    if timeout < 1:
        reader.problem("api.timeout_seconds", f"must be at least 1, got {timeout:g}")
    return Api(
        enabled=reader.boolean(section, "enabled", "api", default.enabled),
        socket=reader.path(section, "socket", "api"),
        group=group,
        max_request_mb=reader.integer(
            section, "max_request_mb", "api", default.max_request_mb, 1, 4096
        ),
        timeout_seconds=max(timeout, 1.0),
    )


def _parse_watches(reader: _Reader, value: object) -> list[tuple[int, Watch]]:
    """The watches with a usable path, each with its index in the file."""
    if value is None:
        return []
    if not isinstance(value, list):
        reader.problem("watches", f"expected a list of watches, got {_show(value)}")
        return []
    watches: list[tuple[int, Watch]] = []
    for index, item in enumerate(value):
        watch = _parse_watch(reader, item, f"watches[{index}]")
        if watch is not None:
            watches.append((index, watch))
    _check_overlaps(reader, watches)
    _check_targets(reader, watches)
    _check_inboxes(reader, watches)
    return watches


def _check_inboxes(reader: _Reader, watches: list[tuple[int, Watch]]) -> None:
    """An inbox names the path of a library watch: the library it feeds."""
    libraries = {w.path for _, w in watches if w.role is Role.LIBRARY}
    for i, watch in watches:
        if watch.inbox is not None and watch.inbox.library not in libraries:
            reader.problem(f"watches[{i}].library", f"{watch.inbox.library} is not the path of "
                           "a library watch")  # fmt: skip


def _parse_watch(reader: _Reader, item: object, at: str) -> Watch | None:
    section = reader.mapping(item, at, WATCH_KEYS)
    if not section:
        if item is None or isinstance(item, Mapping):
            reader.problem(at, "a watch needs at least a path")
        return None
    path = reader.path(section, "path", at)
    if path is None and "path" not in section:
        reader.problem(_join(at, "path"), "required")
    role = reader.choice(section, "role", at, Role.LIBRARY)
    watch = Watch(  # every key is checked, even when the path is not usable
        path=path or Path("/"),
        role=role,
        recursive=reader.boolean(section, "recursive", at, True),
        include=reader.globs(section, "include", at, DEFAULT_INCLUDE),
        exclude=reader.globs(section, "exclude", at, ()),
        on_known=reader.choice(section, "on_known", at, Action.LOG),
        on_duplicate=reader.choice(section, "on_duplicate", at, Action.LOG),
        on_similar=reader.choice(section, "on_similar", at, Action.LOG),
        move_to=reader.path(section, "move_to", at),
        settle_seconds=reader.number(section, "settle_seconds", at, 2.0),
        polling=reader.boolean(section, "polling", at, False),
        allow_delete=reader.boolean(section, "allow_delete", at, False),
        orientations=_orientations(reader, section, at),
        keep=parse_keep(section, at, path or Path("/"), reader.problem),
        inbox=parse_inbox(section, at, role is Role.INCOMING, reader.problem),
    )
    if watch.role is Role.INCOMING and any(key in section for key in KEEP_KEYS):
        reader.problem(at, "a keep policy (keep, reference, prefer, avoid, formats) is for "
                       "library watches")  # fmt: skip
    moves = Action.MOVE in (watch.on_known, watch.on_duplicate, watch.on_similar)
    if moves and watch.move_to is None:
        reader.problem(_join(at, "move_to"), "required when an action is 'move'")
    for key in ("on_known", "on_similar"):
        if getattr(watch, key) is Action.HARDLINK:
            reader.problem(_join(at, key), "'hardlink' is for duplicates: only identical bytes "
                           "are linked to the kept copy")  # fmt: skip
    for key in ("on_known", "on_duplicate", "on_similar"):
        if getattr(watch, key) is Action.DELETE and not watch.allow_delete:
            reader.problem(
                _join(at, key), "'delete' needs allow_delete: true in the same watch (deleted "
                "files cannot be restored; 'trash' or 'move' can be undone)",
            )  # fmt: skip
    if path is None:
        return None
    if watch.move_to is not None and watch.move_to.is_relative_to(watch.path):
        reader.problem(_join(at, "move_to"), "must be outside the watched tree")
    return watch


def _orientations(reader: _Reader, section: Mapping[str, Any], at: str) -> Orientations:
    """``true`` is ``all``, ``false`` is ``none``; else one of the names."""
    value = section.get("orientations")
    if isinstance(value, bool):
        return Orientations.ALL if value else Orientations.NONE
    return reader.choice(section, "orientations", at, Orientations.LISTS)


def _check_overlaps(reader: _Reader, watches: list[tuple[int, Watch]]) -> None:
    """A file must belong to one watch only: no repeated or nested watch paths."""
    for i, first in watches:
        for j, second in watches:
            if j <= i:
                continue
            if first.path == second.path:
                reader.problem(f"watches[{j}].path", f"{first.path} is already watches[{i}]")
            elif second.path.is_relative_to(first.path) and first.recursive:
                reader.problem(f"watches[{j}].path", f"inside watches[{i}] ({first.path})")
            elif first.path.is_relative_to(second.path) and second.recursive:
                reader.problem(f"watches[{i}].path", f"inside watches[{j}] ({second.path})")


def _check_targets(reader: _Reader, watches: list[tuple[int, Watch]]) -> None:
    """A move target inside any watched tree would have moved files processed again."""
    for i, watch in watches:
        if watch.move_to is None:
            continue
        for j, other in watches:
            if j != i and watch.move_to.is_relative_to(other.path):
                reader.problem(f"watches[{i}].move_to", f"inside watches[{j}] ({other.path})")


def load(located: paths.Located) -> Config:
    """Read and validate the config file; with no file at a default location, use defaults."""
    path = located.path
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        if located.explicit:
            raise ConfigError(str(path), ["no such file"]) from None
        return default_config()
    except OSError as exc:
        raise ConfigError(str(path), [exc.strerror or str(exc)]) from exc
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}: " if mark is not None else ""
        reason = getattr(exc, "problem", None) or str(exc)
        raise ConfigError(str(path), [f"{where}invalid YAML: {reason}"]) from exc
    return parse(data, str(path))


def default_config() -> Config:
    """No config file: the user's pictures as a library, duplicates logged, nothing moved."""
    library = Watch(path=paths.pictures_dir(), role=Role.LIBRARY)
    return Config(source="<built-in default>", watches=(library,))
