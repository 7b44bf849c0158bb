"""The store's rows as frozen values, and their conversion from SQLite tuples.

Hashes are unsigned 64-bit values kept in SQLite's signed INTEGER by two's complement; a PDQ is
a 32-byte BLOB, big-endian (its hex is the hash's usual hex form). Paths are
kept as the exact bytes of the name (a BLOB, ``os.fsencode``) and come back as ``str`` the way
``os`` gives them (``os.fsdecode``: bytes that are not UTF-8 ride as lone surrogates).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from imagewatchd.models import CANON_VERSION, FileStat, Fingerprint, ListKind, Role
from imagewatchd.provenance import Provenance
from imagewatchd.regions import CROPS

# An entry region's key in the in-memory index: entry id * len(REGIONS) + the region's number
REGIONS = ("", *(name for name, _ in CROPS))


def region_of(key: int) -> tuple[int, str]:
    """(entry id, region name) of an entry region's key."""
    entry_id, code = divmod(key, len(REGIONS))
    return entry_id, REGIONS[code]


FILE_COLUMNS = (
    "id, path, device, inode, size, mtime_ns, role, sha256, dhash, phash, width, height,"
    " format, flat, canon_version, error, first_seen, last_seen, pdq, pdq_quality,"
    " camera, captured, software, jpeg_quality, colours"
)
ENTRY_COLUMNS = (
    "e.id, l.name, l.kind, e.sha256, e.dhash, e.phash, e.flat, e.label, e.source, e.added,"
    " e.enabled, e.hits, e.last_hit, e.pdq, e.pdq_quality"
)


def to_signed(value: int) -> int:
    return value - (1 << 64) if value >= (1 << 63) else value


class DamagedRow(ValueError):
    """A stored value of a type the code cannot decode: the database is damaged (what
    ``store.damage`` recognises, and ``db check`` names)."""


def to_unsigned(value: int) -> int:
    if not isinstance(value, int):
        raise TypeError(f"a hash stored as {type(value).__name__}")
    return value + (1 << 64) if value < 0 else value


def _unsigned_or_none(value: int | None) -> int | None:
    return None if value is None else to_unsigned(value)


def pdq_blob(value: int | None) -> bytes | None:
    return None if value is None else value.to_bytes(32, "big")


def pdq_of(value: bytes | None) -> int | None:
    return None if value is None else int.from_bytes(value, "big")


def path_of(value: bytes) -> str:
    """A stored path (its exact bytes) as a path inside the program."""
    return os.fsdecode(value)


def _path_or_none(value: bytes | None) -> str | None:
    return None if value is None else os.fsdecode(value)


@dataclass(frozen=True, slots=True)
class FileRow:
    id: int
    path: str
    stat: FileStat
    role: Role
    sha256: str | None
    dhash: int | None
    phash: int | None
    width: int | None
    height: int | None
    format: str | None
    flat: bool
    canon_version: int | None
    error: str | None
    first_seen: float
    last_seen: float
    pdq: int | None = None
    pdq_quality: int | None = None
    provenance: Provenance = field(default_factory=Provenance)  # none stored: no evidence
    colours: bytes | None = None  # the colour signature (colours.py); None: not computed

    def unchanged(self, stat: FileStat) -> bool:
        """Already read at this very (size, mtime, inode), by the current hashing?

        A file that could not be fingerprinted counts too: it is not read (and its error not
        logged) again until it changes.
        """
        same = (self.stat.size, self.stat.mtime_ns, self.stat.inode) == (
            stat.size, stat.mtime_ns, stat.inode,
        )  # fmt: skip
        return same and (self.error is not None or self.canon_version == CANON_VERSION)

    def fingerprint(self) -> Fingerprint | None:
        """The stored fingerprint, if the file had one."""
        if self.sha256 is None or self.dhash is None or self.phash is None:
            return None
        return Fingerprint(
            self.sha256, self.dhash, self.phash, self.width or 0, self.height or 0,
            self.format or "", self.flat, self.pdq, self.pdq_quality or 0,
            self.canon_version or CANON_VERSION, provenance=self.provenance,
            colours=self.colours,
        )  # fmt: skip


@dataclass(frozen=True, slots=True)
class ListRow:
    id: int
    name: str
    kind: ListKind
    description: str
    created: float
    entries: int
    enabled: int
    recoloured: str = "count"  # whether recoloured copies match (imagewatchd/colours.py)


@dataclass(frozen=True, slots=True)
class EntryRow:
    id: int
    list_name: str
    list_kind: ListKind
    sha256: str | None
    dhash: int | None
    phash: int | None
    flat: bool
    label: str
    source: str
    added: float
    enabled: bool
    hits: int
    last_hit: float | None
    pdq: int | None = None
    pdq_quality: int | None = None


@dataclass(frozen=True, slots=True)
class NewEntry:
    """An entry to add: a sha256 (exact), a dHash+pHash pair (near), a PDQ (near, with its
    quality when known), or several of these."""

    sha256: str | None
    dhash: int | None
    phash: int | None
    label: str = ""
    source: str = ""
    flat: bool = False
    enabled: bool = True
    pdq: int | None = None
    pdq_quality: int | None = None
    # (name, dHash, pHash) of the picture's centre crops (Fingerprint.crops): made from a picture
    regions: tuple[tuple[str, int, int], ...] = ()
    # its block grid (Fingerprint.grid: made from a picture), kept in the entry's transaction
    grid: bytes = b""
    # its colour signature (Fingerprint.colours: made from a picture), in the same transaction
    colours: bytes = b""


@dataclass(frozen=True, slots=True)
class NewAction:
    """An action about to be taken, with everything needed to finish or undo it after a crash."""

    kind: str  # log | move | quarantine | restore | undo | delete | trash | hardlink
    src_root: str
    src_rel: str
    dst_root: str | None
    dst_rel: str | None
    tmp_name: str | None
    sha256: str
    stat: FileStat
    atime_ns: int
    uid: int
    gid: int
    mode: int
    verdict: str
    evidence: str  # JSON: the matches, with distances and thresholds
    rule: str  # e.g. "watches[0].on_known"
    reverses: int | None = None
    batch_id: int | None = None  # the ``scan --act`` run (or other batch) it belongs to


@dataclass(frozen=True, slots=True)
class RetryRow:
    """A failed action or write the daemon tries again (``due``: wall-clock time)."""

    kind: str  # file | gone | renamed
    path: str
    attempts: int
    due: float
    reason: str


@dataclass(frozen=True, slots=True)
class BatchRow:
    """One run that acted on many files (a ``scan --act``): its actions share its id."""

    id: int
    command: str
    started: float
    finished: float | None
    actions: int


@dataclass(frozen=True, slots=True)
class ActionRow(NewAction):
    id: int = 0
    state: str = "intended"  # intended | done | failed | rolled_back | undone | deleted
    error: str | None = None
    created: float = 0.0
    finished: float | None = None


ACTION_COLUMNS = (
    "kind, src_root, src_rel, dst_root, dst_rel, tmp_name, sha256, device, inode, size,"
    " mtime_ns, atime_ns, uid, gid, mode, verdict, evidence, rule, reverses, id, state, error,"
    " created, finished, batch_id"
)


def _damaged(table: str, row: Sequence[Any], exc: Exception) -> DamagedRow:
    return DamagedRow(f"{table} row {row[0]}: damaged value ({exc})")


def action_row(r: Sequence[Any]) -> ActionRow:
    try:
        return _action_row(r)
    except (TypeError, ValueError) as exc:
        raise _damaged("actions", r[19:], exc) from exc


def _action_row(r: Sequence[Any]) -> ActionRow:
    return ActionRow(
        kind=r[0], src_root=path_of(r[1]), src_rel=path_of(r[2]), dst_root=_path_or_none(r[3]),
        dst_rel=_path_or_none(r[4]), tmp_name=_path_or_none(r[5]),
        sha256=r[6], stat=FileStat(r[7], r[8], r[9], r[10]), atime_ns=r[11], uid=r[12],
        gid=r[13], mode=r[14], verdict=r[15], evidence=r[16], rule=r[17], reverses=r[18],
        id=r[19], state=r[20], error=r[21], created=r[22], finished=r[23], batch_id=r[24],
    )  # fmt: skip


def file_row(row: Sequence[Any]) -> FileRow:
    try:
        return _file_row(row)
    except (TypeError, ValueError) as exc:
        raise _damaged("files", row, exc) from exc


def _file_row(row: Sequence[Any]) -> FileRow:
    return FileRow(
        id=row[0], path=path_of(row[1]), stat=FileStat(row[2], row[3], row[4], row[5]),
        role=Role(row[6]), sha256=row[7], dhash=_unsigned_or_none(row[8]),
        phash=_unsigned_or_none(row[9]), width=row[10], height=row[11], format=row[12],
        flat=bool(row[13]), canon_version=row[14], error=row[15], first_seen=row[16],
        last_seen=row[17], pdq=pdq_of(row[18]), pdq_quality=row[19],
        provenance=Provenance(row[20], row[21], row[22], row[23]),
        colours=None if row[24] is None else bytes(row[24]),
    )  # fmt: skip


def entry_row(row: Sequence[Any]) -> EntryRow:
    try:
        return _entry_row(row)
    except (TypeError, ValueError) as exc:
        raise _damaged("entries", row, exc) from exc


def _entry_row(row: Sequence[Any]) -> EntryRow:
    return EntryRow(
        id=row[0], list_name=row[1], list_kind=ListKind(row[2]), sha256=row[3],
        dhash=_unsigned_or_none(row[4]), phash=_unsigned_or_none(row[5]), flat=bool(row[6]),
        label=row[7], source=row[8], added=row[9], enabled=bool(row[10]), hits=row[11],
        last_hit=row[12], pdq=pdq_of(row[13]), pdq_quality=row[14],
    )  # fmt: skip
