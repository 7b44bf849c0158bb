"""Which copy of a duplicate group is kept: an ordered list of criteria, each able to say why.

In the spirit of dupeGuru's re-prioritize list and Czkawka's selection methods. The copies are
ordered by the first criterion that tells them apart; the path is always the last word, so the
order never depends on the order the copies were found in. The keeper is the first copy; the
reason for each other copy is the first criterion on which the keeper beat it.

Criteria (``KeepPolicy.order``):

- ``reference``: a copy under one of the watch's reference folders is always kept;
- ``original``: evidence of being the camera original: camera EXIF, a capture date, a JPEG
  quality a camera writes (``ORIGINAL_QUALITY``), each counting one, less one when an editor is
  named as the writing software (whose JPEG quality is then the editor's export setting, not
  a camera's: it does not count);
- ``pixels``: more pixels;
- ``quality``: a higher estimated JPEG quality (only when every copy is a JPEG: a quality
  estimate says nothing about a HEIC or a PNG, and skipping it for the whole group keeps the
  order the same whichever copy arrived first);
- ``format``: earlier in ``KeepPolicy.formats`` (by default JPEG first: what cameras write);
- ``size``: a larger file. A size says how much of the picture a file kept only against a file
  of its own format (a HEIC holds a picture in about half a JPEG's bytes, and a HEIC converted
  from a JPEG spends its bytes on the JPEG's artefacts), so the default order puts ``format``
  before it;
- ``oldest``: an older modification time;
- ``path``: matches a ``prefer`` pattern, does not match an ``avoid`` pattern, then the shorter
  path, then the path itself.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from fnmatch import fnmatchcase
from pathlib import PurePath

from imagewatchd.provenance import Provenance

# Camera firmware writes JPEGs at 90-98; messengers and web uploads re-encode at 70-85.
ORIGINAL_QUALITY = 90
# Software that rewrote a picture; a camera's firmware string is none of these.
EDITORS = (
    "photoshop", "lightroom", "gimp", "imagemagick", "graphicsmagick", "paint.net", "pixelmator",
    "snapseed", "picasa", "darktable", "rawtherapee", "affinity", "capture one", "luminar",
    "instagram", "whatsapp", "telegram", "facebook", "google", "libheif", "ffmpeg", "pillow",
    "shotwell", "digikam", "photos", "preview", "acdsee", "irfanview", "xnview", "faststone",
)  # fmt: skip


class Criterion(enum.StrEnum):
    REFERENCE = "reference"
    ORIGINAL = "original"
    PIXELS = "pixels"
    QUALITY = "quality"
    FORMAT = "format"
    SIZE = "size"
    OLDEST = "oldest"
    PATH = "path"


DEFAULT_ORDER = (
    Criterion.REFERENCE, Criterion.ORIGINAL, Criterion.PIXELS, Criterion.QUALITY,
    Criterion.FORMAT, Criterion.SIZE, Criterion.OLDEST, Criterion.PATH,
)  # fmt: skip
DEFAULT_FORMATS = ("JPEG", "HEIF", "AVIF", "PNG", "TIFF", "WEBP", "BMP", "GIF")


@dataclass(frozen=True, slots=True)
class KeepPolicy:
    order: tuple[Criterion, ...] = DEFAULT_ORDER
    reference: tuple[str, ...] = ()  # folders whose copies are always kept (absolute paths)
    formats: tuple[str, ...] = DEFAULT_FORMATS
    prefer: tuple[str, ...] = ()  # path patterns (fnmatch, whole path) that win
    avoid: tuple[str, ...] = ()  # path patterns that lose


@dataclass(frozen=True, slots=True)
class Copy:
    """One copy of a picture, as the policy sees it."""

    path: str
    width: int
    height: int
    format: str
    size: int
    mtime_ns: int
    provenance: Provenance = field(default_factory=Provenance)

    @property
    def pixels(self) -> int:
        return self.width * self.height


@dataclass(frozen=True, slots=True)
class Ranked:
    copy: Copy
    keeper: bool
    reason: str  # keeper: why it wins; others: why the keeper beat it


def rank(copies: Sequence[Copy], policy: KeepPolicy = KeepPolicy()) -> list[Ranked]:
    """The copies best first; the first is the keeper, each with its reason."""
    if not copies:
        return []
    all_jpeg = all(c.provenance.jpeg_quality is not None for c in copies)
    skip = {Criterion.PATH} | (set() if all_jpeg else {Criterion.QUALITY})
    order = (*(c for c in policy.order if c not in skip), Criterion.PATH)
    keys = [_KEYS[c] for c in order]

    def key(copy: Copy) -> tuple[tuple[object, ...], ...]:
        return tuple(k(copy, policy) for k in keys)

    ordered = sorted(copies, key=key)
    keeper = ordered[0]
    reasons = [_reason(order, keeper, other, policy) for other in ordered[1:]]
    first = _keeper_reason(reasons)
    return [Ranked(keeper, True, first)] + [
        Ranked(other, False, reason) for other, reason in zip(ordered[1:], reasons, strict=True)
    ]


def original_evidence(p: Provenance) -> list[str]:
    """What speaks for a camera original, in words; empty when nothing does."""
    evidence = []
    if p.camera:
        evidence.append(f"camera {p.camera}")
    if p.captured:
        evidence.append(f"captured {p.captured}")
    if p.jpeg_quality is not None and p.jpeg_quality >= ORIGINAL_QUALITY and not edited(p):
        evidence.append(f"JPEG quality {p.jpeg_quality}")
    return evidence


def original_score(p: Provenance) -> int:
    """Each piece of evidence counts one; an editor named as the writing software costs one
    (it re-encoded the picture, whatever EXIF it carried over)."""
    return len(original_evidence(p)) - edited(p)


def edited(p: Provenance) -> bool:
    software = (p.software or "").lower()
    return any(name in software for name in EDITORS)


def _reason(order: Sequence[Criterion], keeper: Copy, other: Copy, policy: KeepPolicy) -> str:
    for criterion in order:
        if _KEYS[criterion](keeper, policy) != _KEYS[criterion](other, policy):
            return f"{criterion}: {_SAY[criterion](keeper, other, policy)}"
    return "identical by every criterion"


def _keeper_reason(reasons: list[str]) -> str:
    return "; ".join(dict.fromkeys(reasons)) if reasons else "the only copy"


def in_reference(path: str, policy: KeepPolicy) -> bool:
    """Is this file in one of the policy's reference folders (always kept, never moved)?"""
    return any(PurePath(path).is_relative_to(folder) for folder in policy.reference)


def _format_rank(copy: Copy, policy: KeepPolicy) -> int:
    fmt = copy.format.upper()
    return policy.formats.index(fmt) if fmt in policy.formats else len(policy.formats)


def _path_key(copy: Copy, policy: KeepPolicy) -> tuple[object, ...]:
    preferred = any(fnmatchcase(copy.path, p) for p in policy.prefer)
    avoided = any(fnmatchcase(copy.path, p) for p in policy.avoid)
    return (not preferred, avoided, len(copy.path), copy.path)


def _quality_key(copy: Copy, _: KeepPolicy) -> tuple[object, ...]:
    return (-(copy.provenance.jpeg_quality or 0),)


Key = Callable[[Copy, KeepPolicy], tuple[object, ...]]
_KEYS: dict[Criterion, Key] = {
    Criterion.REFERENCE: lambda c, p: (not in_reference(c.path, p),),
    Criterion.ORIGINAL: lambda c, p: (-original_score(c.provenance),),
    Criterion.PIXELS: lambda c, p: (-c.pixels,),
    Criterion.QUALITY: _quality_key,
    Criterion.FORMAT: lambda c, p: (_format_rank(c, p),),
    Criterion.SIZE: lambda c, p: (-c.size,),
    Criterion.OLDEST: lambda c, p: (c.mtime_ns,),
    Criterion.PATH: _path_key,
}


def _say_original(keeper: Copy, other: Copy, _: KeepPolicy) -> str:
    return f"{_evidence_text(keeper.provenance)} (the other: {_evidence_text(other.provenance)})"


def _evidence_text(p: Provenance) -> str:
    text = ", ".join(original_evidence(p)) or "no evidence"
    return f"{text}; written by {p.software}" if edited(p) else text


def _say_path(keeper: Copy, other: Copy, policy: KeepPolicy) -> str:
    mine, theirs = _path_key(keeper, policy), _path_key(other, policy)
    if mine[0] != theirs[0]:
        return "matches a preferred path pattern"
    if mine[1] != theirs[1]:
        return "the other matches an avoided path pattern"
    return "shorter path" if mine[2] != theirs[2] else "first by name"


_SAY: dict[Criterion, Callable[[Copy, Copy, KeepPolicy], str]] = {
    Criterion.REFERENCE: lambda k, o, p: "in a reference folder",
    Criterion.ORIGINAL: _say_original,
    Criterion.PIXELS: lambda k, o, p: f"{k.width}x{k.height} over {o.width}x{o.height}",
    Criterion.QUALITY: lambda k, o, p: (
        f"JPEG quality {k.provenance.jpeg_quality} over {o.provenance.jpeg_quality}"
    ),
    Criterion.FORMAT: lambda k, o, p: f"{k.format} preferred to {o.format}",
    Criterion.SIZE: lambda k, o, p: f"{k.size} bytes over {o.size}",
    Criterion.OLDEST: lambda k, o, p: "older",
    Criterion.PATH: _say_path,
}
