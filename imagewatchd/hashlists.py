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
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from imagewatchd.fingerprint import FLAT_BITS, flat_hash
from imagewatchd.hashlines import Lines, leading_hashes, words64
from imagewatchd.newentries import Entries, Fields, fields
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
    entries: Sequence[NewEntry]  # a list import's: newentries.Entries
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
    lines = Lines.of(text)
    if lines is None:
        return _parse_lines(text, lambda line: _hex_entry(line, source))
    found: dict[int, Fields] = {}
    rows, digests = leading_hashes(lines, 64, b" ")
    hexes = digests.tobytes().hex()
    for at, (row, label) in enumerate(_labels(lines, rows, 64)):
        found[row] = (hexes[at * 64 : at * 64 + 64], None, None, label, source, False, True,
                      None, None)  # fmt: skip
    rows, pairs = leading_hashes(lines, 32, b" ")
    hashes = words64(pairs)
    bits = np.bitwise_count(hashes[:, 0])
    flat = ((bits <= FLAT_BITS) | (bits >= 64 - FLAT_BITS)).tolist()  # fingerprint.flat_hash
    for (row, label), dhash, phash, is_flat in zip(
        _labels(lines, rows, 32), hashes[:, 0].tolist(), hashes[:, 1].tolist(), flat, strict=True
    ):
        found[row] = (None, dhash, phash, label, source, is_flat, True, None, None)
    return _the_rest(lines, found, lambda line: _hex_entry(line, source))


def _labels(
    lines: Lines, rows: NDArray[np.intp], digits: int, strip: bool = True
) -> Iterator[tuple[int, str]]:
    """(row, what follows its hash and separator, stripped) for these rows."""
    starts, ends = (lines.starts[rows] + digits + 1).tolist(), lines.ends[rows].tolist()
    data = lines.data
    for row, start, end in zip(rows.tolist(), starts, ends, strict=True):
        if end < start:
            yield row, ""
            continue
        tail = data[start:end].decode("utf-8", "surrogateescape")
        yield row, tail.strip() if strip else tail


def _the_rest(
    lines: Lines, found: dict[int, Fields], entry: Callable[[str], NewEntry],
    problems: dict[int, str] | None = None,
) -> Parsed:  # fmt: skip
    """The entries of the lines read in bulk, and of the others one line at a time (blank
    lines and ``#`` comments skipped, each bad line named), in the file's order."""
    problems = problems if problems is not None else {}
    for row in range(len(lines)):
        if row in found:
            continue
        line = lines.text(row).strip()
        if not line or line.startswith("#"):
            continue
        try:
            (found[row],) = fields([entry(line)])
        except ValueError as exc:
            problems[row] = str(exc)
    entries = Entries([found[row] for row in sorted(found)])
    return Parsed(entries, [f"line {row + 1}: {problems[row]}" for row in sorted(problems)])


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
    reader = csv.reader(io.StringIO(text))
    columns = [c.strip().lower() for c in next(reader, [])]
    unknown = [c for c in columns if c not in _CSV_READ]
    if unknown or not {"sha256", "dhash", "phash", "pdq"} & set(columns):
        expected = ", ".join(CSV_COLUMNS)
        detail = f"unknown column(s) {', '.join(unknown)}" if unknown else "no hash column"
        return Parsed([], [f"line 1: {detail} (columns: {expected})"])
    fast = _CsvRow(columns, source)
    entries: list[Fields] = []
    problems: list[str] = []
    for row in reader:
        if not row:
            continue  # a blank line, as csv.DictReader skips it
        try:
            entries.append(fast.entry(row) or next(fields([
                _csv_entry(dict(zip(columns, row, strict=False)), source)])))  # fmt: skip
        except ValueError as exc:
            problems.append(f"line {reader.line_num}: {exc}")
    return Parsed(Entries(entries), problems)


class _CsvRow:
    """A CSV row of the usual shape read without a dictionary (each cell as given, no blanks
    around it, hashes of their full width); None for any other, which ``_csv_entry`` reads."""

    def __init__(self, columns: list[str], source: str) -> None:
        self.width = len(columns)
        self.at = {name: at for at, name in enumerate(columns)}  # the last, as a dict's
        self.source = source

    def entry(self, row: list[str]) -> Fields | None:
        if len(row) != self.width:
            return None
        try:
            sha256, dhash, phash, pdq = (self._hex(row, name, digits) for name, digits in
                                         (("sha256", 64), ("dhash", 16), ("phash", 16),
                                          ("pdq", 64)))  # fmt: skip
            quality = _QUALITIES[self._cell(row, "pdq_quality")]
            enabled, flat = (_YES_NO[self._cell(row, name).lower()] for name in ("enabled", "flat"))
        except KeyError:
            return None
        if (dhash is None) != (phash is None) or (sha256 is None and dhash is None and pdq is None):
            return None
        d, p = (None if v is None else int(v, 16) for v in (dhash, phash))
        return (
            None if sha256 is None else sha256.lower(), d, p, self._cell(row, "label"),
            self._cell(row, "source") or self.source,
            flat is True or (d is not None and flat_hash(d)), enabled is not False,
            None if pdq is None else int(pdq, 16), quality,
        )  # fmt: skip

    def _cell(self, row: list[str], name: str) -> str:
        at = self.at.get(name)
        return "" if at is None else row[at]

    def _hex(self, row: list[str], name: str, digits: int) -> str | None:
        """None for an empty cell; KeyError for one to read the slow way."""
        value = self._cell(row, name)
        if value and (len(value) != digits or not _HEX.fullmatch(value)):
            raise KeyError(name)
        return value or None


_QUALITIES: dict[str, int | None] = {"": None} | {str(n): n for n in range(101)}
_YES_NO: dict[str, bool | None] = {
    "": None,
    "1": True,
    "true": True,
    "yes": True,
    "0": False,
    "false": False,
    "no": False,
}


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
    lines = Lines.of(text)
    if lines is None:
        return _parse_lines(text, lambda line: _pdq_entry(line, source))
    found: dict[int, Fields] = {}
    problems: dict[int, str] = {}
    rows, hashes = leading_hashes(lines, 64, b", ")
    hexes = hashes.tobytes().hex()
    commas = lines.separators(rows, 64) == ord(",")
    for at, ((row, tail), comma) in enumerate(zip(_labels(lines, rows, 64, strip=False),
                                                  commas.tolist(), strict=True)):  # fmt: skip
        try:
            quality, label = _pdq_tail(tail, comma) if tail else (None, "")
        except ValueError as exc:
            problems[row] = str(exc)
            continue
        pdq = int(hexes[at * 64 : at * 64 + 64], 16)
        found[row] = (None, None, None, label, source, False, True, pdq, quality)
    return _the_rest(lines, found, lambda line: _pdq_entry(line, source), problems)


def _pdq_entry(line: str, source: str) -> NewEntry:
    comma = "," in line.split(None, 1)[0]
    token, _, rest = line.partition("," if comma else " ")
    if not _HEX.fullmatch(token) or len(token) != 64:
        raise ValueError(f"a PDQ must be 64 hex digits, got {token[:70]!r}")
    quality, label = _pdq_tail(rest, comma)
    return NewEntry(None, None, None, label=label, source=source, pdq=int(token, 16),
                    pdq_quality=quality)  # fmt: skip


def _pdq_tail(rest: str, comma: bool) -> tuple[int | None, str]:
    """(quality, label) from what follows a PDQ and its separator (a comma, or a blank)."""
    if comma:
        quality_text, _, label = rest.partition(",")
    else:
        quality_text, _, label = rest.strip().partition(" ")
        if quality_text and not _DIGITS.fullmatch(quality_text):  # no quality: a label follows
            quality_text, label = "", rest
    quality = _quality(quality_text.strip()) if quality_text.strip() else None
    return quality, label.strip()


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
