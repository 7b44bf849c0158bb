"""Hash list files: plain hex (one hash per line), PDQ lists, and CSV with a header.

Plain hex lines hold a 64-digit sha256 (an exact entry) or 32 digits, the dHash then the pHash
(a near entry), optionally followed by a label. A single 16-digit perceptual hash is refused:
one 64-bit hash alone is not enough evidence to act on.

PDQ lines, as trust-and-safety teams exchange them, hold a 64-digit PDQ, optionally followed by
its quality (0..100) and a label, separated by blanks or by commas (the form Meta's
``pdq-photo-hasher`` prints: ``hash,quality,name``). Lines starting with ``#`` are comments.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from imagewatchd.fingerprint import flat_hash
from imagewatchd.rows import EntryRow, NewEntry

CSV_COLUMNS = (
    "id", "sha256", "dhash", "phash", "label", "source", "added", "enabled", "hits", "flat",
    "pdq", "pdq_quality",
)  # fmt: skip
_CSV_READ = frozenset(CSV_COLUMNS) | {"list", "kind", "last_hit"}
_HEX = re.compile(r"[0-9a-fA-F]+")
_DIGITS = re.compile(r"[0-9]{1,3}")


@dataclass(frozen=True, slots=True)
class Parsed:
    entries: list[NewEntry]
    problems: list[str]  # "line N: reason", one per bad line


def detect_format(text: str) -> str:
    first = next((line for line in text.splitlines() if line.strip()), "").lower()
    columns = ("sha256", "dhash", "phash", "pdq")
    return "csv" if "," in first and any(c in first for c in columns) else "hex"


def _hex_field(value: str, digits: int, name: str) -> int:
    value = value.strip().lower().removeprefix("0x")
    if len(value) != digits or not _HEX.fullmatch(value):
        raise ValueError(f"{name} must be {digits} hex digits, got {value!r}")
    return int(value, 16)


def _parse_lines(text: str, entry: Callable[[str], NewEntry]) -> Parsed:
    """One entry per line; blank lines and ``#`` comments skipped, each bad line named."""
    entries: list[NewEntry] = []
    problems: list[str] = []
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        try:
            entries.append(entry(line))
        except ValueError as exc:
            problems.append(f"line {number}: {exc}")
    return Parsed(entries, problems)


def parse_hex(text: str, source: str) -> Parsed:
    return _parse_lines(text, lambda line: _hex_entry(line, source))


def _hex_entry(line: str, source: str) -> NewEntry:
    token, _, label = line.partition(" ")
    token, label = token.lower().removeprefix("sha256:"), label.strip()
    if not _HEX.fullmatch(token):
        raise ValueError(f"not a hex hash: {token[:70]!r}")
    if len(token) == 64:
        return NewEntry(sha256=token, dhash=None, phash=None, label=label, source=source)
    if len(token) == 32:
        dhash, phash = int(token[:16], 16), int(token[16:], 16)
        return NewEntry(None, dhash, phash, label=label, source=source, flat=flat_hash(dhash))
    if len(token) == 16:
        raise ValueError(
            "a single 64-bit hash is not enough evidence; give the dHash and pHash together "
            "(32 hex digits) or use CSV with dhash and phash columns"
        )
    raise ValueError(f"expected 64 hex digits (sha256) or 32 (dHash+pHash), got {len(token)}")


def parse_csv(text: str, source: str) -> Parsed:
    reader = csv.DictReader(io.StringIO(text))
    columns = [c.strip().lower() for c in reader.fieldnames or []]
    unknown = [c for c in columns if c not in _CSV_READ]
    if unknown or not {"sha256", "dhash", "phash", "pdq"} & set(columns):
        expected = ", ".join(CSV_COLUMNS)
        detail = f"unknown column(s) {', '.join(unknown)}" if unknown else "no hash column"
        return Parsed([], [f"line 1: {detail} (columns: {expected})"])
    reader.fieldnames = columns
    entries: list[NewEntry] = []
    problems: list[str] = []
    for row in reader:
        try:
            entries.append(_csv_entry(row, source))
        except ValueError as exc:
            problems.append(f"line {reader.line_num}: {exc}")
    return Parsed(entries, problems)


def _csv_entry(row: dict[str, str | None], source: str) -> NewEntry:
    def cell(name: str) -> str:
        return (row.get(name) or "").strip()

    sha256 = cell("sha256").lower() or None
    if sha256 is not None:
        _hex_field(sha256, 64, "sha256")
    dhash = _hex_field(cell("dhash"), 16, "dhash") if cell("dhash") else None
    phash = _hex_field(cell("phash"), 16, "phash") if cell("phash") else None
    if (dhash is None) != (phash is None):
        raise ValueError("dhash and phash must be given together")
    pdq = _hex_field(cell("pdq"), 64, "pdq") if cell("pdq") else None
    quality = _quality(cell("pdq_quality")) if cell("pdq_quality") else None
    if sha256 is None and dhash is None and pdq is None:
        raise ValueError("a row needs a sha256, a dhash and a phash, or a pdq")
    enabled = cell("enabled").lower() not in ("0", "false", "no")
    return NewEntry(
        sha256=sha256, dhash=dhash, phash=phash, label=row.get("label") or "",
        source=row.get("source") or source,
        flat=cell("flat").lower() in ("1", "true", "yes")
        or (dhash is not None and flat_hash(dhash)),
        enabled=enabled, pdq=pdq, pdq_quality=quality,
    )  # fmt: skip


def _quality(value: str) -> int:
    if not _DIGITS.fullmatch(value) or not 0 <= int(value) <= 100:
        raise ValueError(f"a PDQ quality is a whole number from 0 to 100, got {value[:20]!r}")
    return int(value)


def parse_pdq(text: str, source: str) -> Parsed:
    """A PDQ list: ``HASH [QUALITY] [LABEL]`` or ``HASH,QUALITY,LABEL`` per line."""
    return _parse_lines(text, lambda line: _pdq_entry(line, source))


def _pdq_entry(line: str, source: str) -> NewEntry:
    if "," in line.split(None, 1)[0]:
        token, _, rest = line.partition(",")
        quality_text, _, label = rest.partition(",")
    else:
        token, _, rest = line.partition(" ")
        quality_text, _, label = rest.strip().partition(" ")
        if quality_text and not _DIGITS.fullmatch(quality_text):  # no quality: a label follows
            quality_text, label = "", rest
    if not _HEX.fullmatch(token) or len(token) != 64:
        raise ValueError(f"a PDQ must be 64 hex digits, got {token[:70]!r}")
    quality = _quality(quality_text.strip()) if quality_text.strip() else None
    return NewEntry(
        None, None, None, label=label.strip(), source=source, pdq=int(token, 16),
        pdq_quality=quality,
    )  # fmt: skip


def format_hex(entries: Iterable[EntryRow]) -> str:
    """The dHash+pHash pair where the entry near-matches with one, else its sha256."""
    lines = []
    for entry in entries:
        near = entry.dhash is not None and entry.phash is not None
        if near and not (entry.flat and entry.sha256):
            token = f"{entry.dhash:016x}{entry.phash:016x}"
        else:
            token = entry.sha256 or ""
        lines.append(f"{token} {entry.label}".rstrip())
    return "".join(line + "\n" for line in lines)


def format_pdq(entries: Iterable[EntryRow]) -> str:
    """One line per entry that has a PDQ: ``HASH QUALITY LABEL`` (the quality when known)."""
    lines = []
    for entry in entries:
        if entry.pdq is None:
            continue
        quality = "" if entry.pdq_quality is None else str(entry.pdq_quality)
        lines.append(" ".join(p for p in (f"{entry.pdq:064x}", quality, entry.label) if p))
    return "".join(line + "\n" for line in lines)


def format_csv(entries: Iterable[EntryRow]) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    for e in entries:
        writer.writerow((
            e.id, e.sha256 or "",
            "" if e.dhash is None else f"{e.dhash:016x}",
            "" if e.phash is None else f"{e.phash:016x}",
            e.label, e.source, f"{e.added:.3f}", int(e.enabled), e.hits, int(e.flat),
            "" if e.pdq is None else f"{e.pdq:064x}",
            "" if e.pdq_quality is None else e.pdq_quality,
        ))  # fmt: skip
    return out.getvalue()


PARSERS: dict[str, Callable[[str, str], Parsed]] = {
    "hex": parse_hex, "pdq": parse_pdq, "csv": parse_csv,
}  # fmt: skip
FORMATTERS: dict[str, Callable[[Iterable[EntryRow]], str]] = {
    "hex": format_hex, "pdq": format_pdq, "csv": format_csv,
}  # fmt: skip
