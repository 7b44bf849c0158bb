"""A library watch's keep policy from its YAML keys: ``keep``, ``reference``, ``prefer``,
``avoid`` and ``formats`` (imagewatchd/keep.py says what each criterion means).

``keep`` lists criteria by name, best first; reference folders always come first whatever the
list says (a copy there is never moved), and the path is always the last word. A durable
``dupes keep`` decision comes before the whole policy (imagewatchd/dupes.py).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path, PurePath
from typing import Any, Protocol

from imagewatchd.fingerprint import ALLOWED_FORMATS
from imagewatchd.keep import DEFAULT_FORMATS, DEFAULT_ORDER, Criterion, KeepPolicy

KEEP_KEYS = ("keep", "reference", "prefer", "avoid", "formats")
FORMAT_NAMES = {**{f: f for f in ALLOWED_FORMATS}, "JPG": "JPEG", "HEIC": "HEIF", "TIF": "TIFF"}
Problem = Callable[[str, str], None]


def parse_keep(section: Mapping[str, Any], at: str, watch: Path, problem: Problem) -> KeepPolicy:
    """The policy the keys give (the default for the keys not given); problems are reported
    through ``problem(key path, message)`` and the default stands in."""
    order = _criteria(section.get("keep"), f"{at}.keep", problem)
    return KeepPolicy(
        order=(Criterion.REFERENCE, *(c for c in order if c is not Criterion.REFERENCE)),
        reference=_folders(section.get("reference"), f"{at}.reference", watch, problem),
        formats=_formats(section.get("formats"), f"{at}.formats", problem),
        prefer=_patterns(section.get("prefer"), f"{at}.prefer", problem),
        avoid=_patterns(section.get("avoid"), f"{at}.avoid", problem),
    )


def _strings(value: object, at: str, what: str, problem: Problem) -> list[str] | None:
    if value is None:
        return None
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(v, str) and v.strip() for v in value):
        problem(at, f"expected a list of {what}, got {value!r}")
        return None
    return [v.strip() for v in value]


def _criteria(value: object, at: str, problem: Problem) -> tuple[Criterion, ...]:
    names = _strings(value, at, "criteria", problem)
    if names is None:
        return DEFAULT_ORDER
    known = " | ".join(c.value for c in Criterion)
    order: list[Criterion] = []
    for i, name in enumerate(names):
        if name not in Criterion.__members__.values():
            problem(f"{at}[{i}]", f"expected one of {known}, got {name!r}")
        elif Criterion(name) in order:
            problem(f"{at}[{i}]", f"{name!r} is listed twice")
        else:
            order.append(Criterion(name))
    return tuple(order)


def _folders(value: object, at: str, watch: Path, problem: Problem) -> tuple[str, ...]:
    found = []
    for i, text in enumerate(_strings(value, at, "folders", problem) or []):
        folder = Path(text).expanduser()
        if not folder.is_absolute():
            problem(f"{at}[{i}]", f"must be an absolute path, got {text!r}")
        elif not folder.is_relative_to(watch):
            problem(f"{at}[{i}]", f"must be inside the watched tree ({watch})")
        else:
            found.append(str(folder))
    return tuple(found)


def _formats(value: object, at: str, problem: Problem) -> tuple[str, ...]:
    names = _strings(value, at, "image formats", problem)
    if names is None:
        return DEFAULT_FORMATS
    known = " | ".join(ALLOWED_FORMATS)
    formats: list[str] = []
    for i, name in enumerate(names):
        fmt = FORMAT_NAMES.get(name.upper())
        if fmt is None:
            problem(f"{at}[{i}]", f"expected one of {known}, got {name!r}")
        elif fmt not in formats:
            formats.append(fmt)
    return tuple(formats)


def _patterns(value: object, at: str, problem: Problem) -> tuple[str, ...]:
    return tuple(_strings(value, at, "glob patterns", problem) or ())


class _Watch(Protocol):
    @property
    def path(self) -> Path: ...
    @property
    def keep(self) -> KeepPolicy: ...


@dataclass(frozen=True, slots=True)
class Policies:
    """Each watch's keep policy by its folder; outside every watch, the default policy."""

    watches: tuple[tuple[str, KeepPolicy], ...] = ()

    @classmethod
    def of(cls, watches: Iterable[_Watch]) -> Policies:
        return cls(tuple((str(w.path), w.keep) for w in watches))

    def for_paths(self, paths: Sequence[str]) -> KeepPolicy:
        """The policy of the watch holding the first (by path) of these files that is in a
        watch, with the reference folders of every watch holding one of them: a copy in a
        reference folder is never moved, whichever watch's policy ranks its group."""
        holding = [self._holding(p) for p in sorted(paths)]
        found = [policy for policy in holding if policy is not None]
        if not found:
            return KeepPolicy()
        folders = dict.fromkeys(folder for policy in found for folder in policy.reference)
        return replace(found[0], reference=tuple(folders))

    def _holding(self, path: str) -> KeepPolicy | None:
        for folder, policy in self.watches:
            if PurePath(path).is_relative_to(folder):
                return policy
        return None
