"""Frozen values that cross stage boundaries: Fingerprint → Verdict, and the store's rows."""

from __future__ import annotations

import enum
import os
from dataclasses import dataclass, field, replace

from imagewatchd.provenance import Provenance

# Bumped whenever canonicalisation or hashing changes, so stored fingerprints made by an older
# version are recomputed lazily instead of silently mismatching.
# 2: PDQ (256 bits and its quality) joins dHash and pHash.
# 3: flat means no structure (PDQ quality, pHash balance); the query's regions without
#    uniform borders or a caption bar are hashed too (searched, never stored).
CANON_VERSION = 3


class Role(enum.StrEnum):
    LIBRARY = "library"
    INCOMING = "incoming"


class ListKind(enum.StrEnum):
    BLOCK = "block"
    ALLOW = "allow"


class Orientations(enum.StrEnum):
    """Which matches a mirrored or rotated copy counts for (a watch's ``orientations``)."""

    NONE = "none"  # only the picture as it is
    LISTS = "lists"  # list entries, block and allow (the default)
    ALL = "all"  # list entries and library duplicates

    @property
    def lists(self) -> bool:
        return self is not Orientations.NONE

    @property
    def library(self) -> bool:
        return self is Orientations.ALL


SAME = "same"  # the orientation of a picture matched as it is (imagewatchd/dihedral.py)


class VerdictKind(enum.StrEnum):
    CLEAN = "clean"
    KNOWN = "known"
    DUPLICATE = "duplicate"
    SIMILAR = "similar"  # a library photo within the similar band only: never a duplicate
    ERROR = "error"


@dataclass(frozen=True, slots=True)
class FileStat:
    """The identity of a file's content as ``stat`` sees it; unchanged means not re-read."""

    device: int
    inode: int
    size: int
    mtime_ns: int

    @classmethod
    def of(cls, info: os.stat_result) -> FileStat:
        return cls(info.st_dev, info.st_ino, info.st_size, info.st_mtime_ns)


@dataclass(frozen=True, slots=True)
class Turned:
    """The query's hashes with one turn undone (imagewatchd/dihedral.py names the turns)."""

    turn: str  # how the copy was turned from the original: "mirrored", "rot90"…
    dhash: int
    phash: int
    pdq: int | None


@dataclass(frozen=True, slots=True)
class Fingerprint:
    """What the fingerprint stage learns about one image; pure data, no paths."""

    sha256: str
    dhash: int
    phash: int
    width: int
    height: int
    format: str
    flat: bool  # near-featureless (solid colour, blank scan): never near-matched
    pdq: int | None = None  # Meta's 256-bit PDQ (None: fingerprinted before it existed)
    pdq_quality: int = 0  # PDQ's own quality score, 0 (no structure) .. 100
    canon_version: int = CANON_VERSION
    # (dHash, pHash) of the picture without uniform borders or a caption bar, when that differs
    # from the whole (imagewatchd/regions.py): searched too, never stored.
    regions: tuple[tuple[int, int], ...] = field(default=(), compare=False)
    # the other 7 orientations' hashes, for matching mirrored and rotated copies: query-only,
    # never stored (a fingerprint read back from the store has none)
    turned: tuple[Turned, ...] = field(default=(), compare=False)
    # what the header says of where the picture came from (the keep policy's evidence)
    provenance: Provenance = field(default_factory=Provenance, compare=False)
    # (name, dHash, pHash) of centre crops (regions.CROPS: 2%, 5%, 10% cut from every side):
    # stored only for a list entry made from this picture (``known add``), so that a lightly
    # cropped copy of it matches (an ``entry_regions`` row each); a query's are not searched
    crops: tuple[tuple[str, int, int], ...] = field(default=(), compare=False)
    # the 16x16 block means (imagewatchd/blockgrid.py, 256 bytes; none when flat): stored for a
    # list entry made from this picture; a query's verifies candidates found at a wider radius
    grid: bytes = field(default=b"", compare=False)
    # (dHash, pHash) of other readings of the borders (regions.more_boxes: trimmed at a tight
    # tolerance, centred, on one axis, without one caption bar): query-only, never stored,
    # searched at the turned thresholds (more chances for a look-alike)
    more_regions: tuple[tuple[int, int], ...] = field(default=(), compare=False)
    # the colour signature (imagewatchd/colours.py, 17 bytes; b"" when flat or grey): stored
    # with the file and with a list entry made from this picture; tells a recoloured copy.
    # None: never computed (a file stored before colours were kept: decoded again for them)
    colours: bytes | None = field(default=None, compare=False)
    # (PDQ, quality) of the regions of ``regions`` and then ``more_regions``' boxes, every box
    # (regions.boxes, regions.more_boxes): a letterboxed or bordered copy's PDQ without its
    # bars, searched like the picture's own PDQ; query-only, never stored
    region_pdqs: tuple[tuple[int, int], ...] = field(default=(), compare=False)


@dataclass(frozen=True, slots=True)
class Thresholds:
    """A near match needs both distances within their threshold, or (list entries with a PDQ)
    the PDQ within ``pdq``, the entry's quality at least ``pdq_quality`` and the query's at
    least ``pdq_query_quality``."""

    dhash: int
    phash: int
    pdq: int = 31
    pdq_quality: int = 40  # the list entry's PDQ quality floor
    similar_dhash: int = 0  # the similar band: beyond dhash/phash, within these (both)
    similar_phash: int = 0
    pdq_query_quality: int = 20  # the picture's (docs/BENCHMARKS.md, "Issue 8: labels…")
    watermarks: bool = True  # the second stage for list entries (verify.py)

    def turned(self) -> Thresholds:
        """For a match in another orientation: one bit stricter on dHash and on pHash (whose
        distances are even: two), since 8 searches give a look-alike 8 chances; PDQ keeps its
        threshold (docs/BENCHMARKS.md, "Issue 8: orientations")."""
        return replace(self, dhash=max(self.dhash - 1, 0), phash=max(self.phash - 2, 0))


@dataclass(frozen=True, slots=True)
class Match:
    """One piece of evidence: which list entry or library file, and how close."""

    source: str  # "list", "library" or "inbox" (a copy waiting in an inbox, peers.py)
    exact: bool  # identical sha256
    dhash_distance: int
    phash_distance: int
    list_name: str | None = None
    list_kind: ListKind | None = None
    entry_id: int | None = None
    label: str | None = None
    file_id: int | None = None
    path: str | None = None
    pdq_distance: int | None = None  # when both sides have a PDQ
    by_pdq: bool = False  # matched by PDQ, not by dHash and pHash
    orientation: str = SAME  # how the query is turned from the match (dihedral.NAMES)
    region: str | None = None  # the entry's centre crop that matched ("crop5"), if not whole
    # found beyond the thresholds and confirmed by the block grids (imagewatchd/verify.py):
    # the correlation of the kept blocks' levels
    grid: float | None = None


@dataclass(frozen=True, slots=True)
class Verdict:
    """What the match stage concludes for one fingerprint, with all its evidence."""

    kind: VerdictKind
    matches: tuple[Match, ...] = ()
    allowed_by: tuple[Match, ...] = ()  # allow-list entries that suppressed block matches…
    suppressed: tuple[Match, ...] = ()  # …and the block matches they suppressed
    flat: bool = False  # near-featureless: only an identical sha256 can match
    # near list matches set aside: their list ignores recoloured copies and the hues disagree
    recoloured: tuple[SetAside, ...] = ()


@dataclass(frozen=True, slots=True)
class SetAside:
    """A near list match refused as a recoloured copy (imagewatchd/colours.py): the match,
    and the hue distance as it is and with the hues turned (shares of the circle)."""

    match: Match
    moved: float
    turned: float


class Arrival(enum.StrEnum):
    """How a candidate came to our attention; it decides how the file settles."""

    CLOSED = "closed"  # closed after writing: complete now (the fast path)
    CREATED = "created"  # a new name: written next (wait for the close) or moved/linked in
    MODIFIED = "modified"  # being written: wait for the close
    MOVED = "moved"  # renamed into place: no close will come, wait for a quiet period
    # its times or mode changed after the close (cp -p, tar, unzip, shutil.copy2 set the mtime
    # then): no close will come, wait for a quiet period
    ATTRIB = "attrib"
    SCAN = "scan"  # found by a reconcile scan: wait for a quiet period


@dataclass(frozen=True, slots=True)
class Candidate:
    """A path that may hold a new or changed image, from an event or a scan."""

    path: str
    watch: int  # index into the config's watches
    arrival: Arrival
    act: bool = True  # False: only index it (a library's first scan)


@dataclass(frozen=True, slots=True)
class SettledFile:
    """A candidate that is complete: nobody is writing it any more."""

    path: str
    watch: int
    stat: FileStat
    act: bool = True
    retro: tuple[int, ...] = ()  # new block entries that reach it: match its stored fingerprint


@dataclass(frozen=True, slots=True)
class Outcome:
    """What processing one file came to, for the log line and for tests."""

    path: str
    verdict: VerdictKind | None  # None: skipped (unchanged, vanished, not ours)
    action: str  # none | indexed | log | move | quarantine | skipped | error | changed
    destination: str | None = None
    action_id: int | None = None
    detail: str = ""
