"""Inboxes and where they file photos: a watch's ``library``, ``on_new`` and ``file_to`` keys,
and the path template (``{year}/{month}/{name}``) rendered for one photo.

A template is checked once, when the config is read: relative, no ``..``, no empty part, only
the known fields, no format specs, and a last part that names the file (``{name}`` or
``{stem}``). Rendering substitutes values made safe (no ``/``, no control characters) and
checks the result again: no value can make a path that leaves the library root.
"""

from __future__ import annotations

import datetime as dt
import enum
import os
import string
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from imagewatchd.provenance import Provenance

INBOX_KEYS = ("library", "on_new", "file_to")
FIELDS = ("year", "month", "day", "name", "stem", "ext", "camera")
DEFAULT_TEMPLATE = "{year}/{month}/{name}"
NAME_MAX = 255  # bytes in one file name (Linux)
Problem = Callable[[str, str], None]


class OnNew(enum.StrEnum):
    NONE = "none"  # a unique arrival stays in the inbox
    FILE = "file"  # ... or is filed into the library at the template's path


class UnsafeName(ValueError):
    """A rendered path that must not be used (the photo stays in the inbox)."""


@dataclass(frozen=True, slots=True)
class Template:
    """A checked path template: its text and its parts (each a list of literal/field pieces)."""

    text: str = DEFAULT_TEMPLATE

    def render(self, name: str, captured: dt.datetime, camera: str | None) -> PurePosixPath:
        """The path below the library root for a photo named ``name`` taken at ``captured``."""
        suffix = PurePosixPath(name).suffix
        stem = name[: len(name) - len(suffix)] if suffix else name
        values = {
            "year": f"{captured.year:04d}", "month": f"{captured.month:02d}",
            "day": f"{captured.day:02d}", "name": name, "stem": stem, "ext": suffix[1:],
            "camera": _safe(camera or "").strip() or "unknown camera",
        }  # fmt: skip
        parts = []
        for part in self.text.split("/"):
            rendered = "".join(
                literal + (_safe(values[field]) if field else "")
                for literal, field, _, _ in string.Formatter().parse(part)
            )
            if rendered.strip() in ("", ".", "..") or len(os.fsencode(rendered)) > NAME_MAX:
                raise UnsafeName(f"the template {self.text!r} gives an unusable name {rendered!r}")
            parts.append(rendered)
        return PurePosixPath(*parts)


@dataclass(frozen=True, slots=True)
class Inbox:
    """An incoming watch that feeds a library watch: its arrivals are compared with the
    library and with each other; a unique one gets ``on_new``."""

    library: Path
    on_new: OnNew = OnNew.NONE
    template: Template = Template()


def captured_at(provenance: Provenance, mtime_ns: int) -> dt.datetime:
    """When the photo was taken: EXIF DateTimeOriginal, else the file's mtime (local time)."""
    if provenance.captured:
        try:
            return dt.datetime.fromisoformat(provenance.captured)
        except ValueError:
            pass
    return dt.datetime.fromtimestamp(mtime_ns / 1e9)


def parse_inbox(
    section: Mapping[str, Any], at: str, incoming: bool, problem: Problem
) -> Inbox | None:
    """The inbox the keys give, or None (a watch that names no library)."""
    if "library" not in section:
        for key in ("on_new", "file_to"):
            if key in section:
                problem(f"{at}.{key}", "only for an inbox: a watch with 'library: PATH'")
        return None
    if not incoming:
        problem(f"{at}.library", "an inbox is an incoming watch (role: incoming)")
    library = section["library"]
    if not isinstance(library, str) or not Path(library).expanduser().is_absolute():
        problem(f"{at}.library", f"expected the absolute path of a library watch, got {library!r}")
        return None
    on_new = section.get("on_new", OnNew.NONE.value)
    if on_new not in {o.value for o in OnNew}:
        problem(f"{at}.on_new", f"expected one of none | file, got {on_new!r}")
        on_new = OnNew.NONE.value
    text = section.get("file_to", DEFAULT_TEMPLATE)
    trouble = template_problem(text)
    if trouble is not None:
        problem(f"{at}.file_to", trouble)
        text = DEFAULT_TEMPLATE
    return Inbox(Path(library).expanduser(), OnNew(on_new), Template(text))


def template_problem(text: object) -> str | None:  # noqa: PLR0911
    """Why ``text`` is not a usable path template, or None."""
    if not isinstance(text, str) or not text.strip():
        return f"expected a path template like {DEFAULT_TEMPLATE!r}, got {text!r}"
    if text.startswith(("/", "~")):
        return f"must be relative to the library, like {DEFAULT_TEMPLATE!r}, got {text!r}"
    if any(ord(c) < 32 or c == "\x7f" for c in text):
        return f"a control character in {text!r}"
    fields: list[list[str]] = []
    for part in text.split("/"):
        if part.strip() in ("", ".", ".."):
            return f"{text!r}: an empty, '.' or '..' part (each part is a folder or the name)"
        try:
            pieces = list(string.Formatter().parse(part))
        except ValueError as exc:
            return f"{text!r}: {exc} (a literal brace is not allowed)"
        fields.append([f for _, f, _, _ in pieces if f is not None])
        for _, field, spec, conversion in pieces:
            if field is not None and (field not in FIELDS or spec or conversion):
                known = ", ".join(f"{{{f}}}" for f in FIELDS)
                return f"{text!r}: unknown field {{{field}}}: the fields are {known}"
    if not {"name", "stem"} & set(fields[-1]):
        return f"{text!r}: the last part must name the file, with {{name}} or {{stem}}"
    return None


def _safe(value: str) -> str:
    """A value as part of one file name: no separator, no control character."""
    return "".join("_" if c == "/" or ord(c) < 32 or c == "\x7f" else c for c in value)
