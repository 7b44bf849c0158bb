"""What a daemon run remembers of its library's duplicate groups, so that the library it ends
with does not depend on the order the files arrived in (issue 10).

Matching is not transitive: a framed screenshot S may match an upscaled copy U that matches the
original O, without matching O. Decided one at a time against what the library holds now, S
stayed when it arrived after U had been moved away (nothing left that it matches), and went
when it arrived before. Two memories let every arrival see its whole group:

- ``moved``: each library copy moved away as a duplicate, by its hashes (the picture and its
  trimmed regions), standing for the copy its group keeps (re-pointed when a better copy
  displaces that one): a newcomer that matches it is a duplicate of that keeper;
- ``regions``: the trimmed regions (imagewatchd/regions.py) of the library files fingerprinted
  in this run, so that a newcomer is found when a library file's region matches the whole
  newcomer, as the matcher finds a library file when the newcomer's region matches it whole:
  which of the two arrived first no longer decides whether they match.

The group a newcomer joins is then ranked whole (``arrivals.rank_arrival``). Kept in memory for
the run, read and changed only under the library's arrival lock: after a restart, copies moved
before it are no longer seen.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TypeVar

from imagewatchd.hashindex import HammingIndex
from imagewatchd.models import Fingerprint, Thresholds

Regions = tuple[tuple[int, int], ...]
K = TypeVar("K", int, str)
SLOTS = 16  # region keys per file id (a picture has a handful of trimmed regions)


@dataclass(frozen=True, slots=True)
class Relatives:
    """What a newcomer matches beyond the library index: library files by one of their
    regions (id → distances), and the keepers of moved copies (path → distances)."""

    by_region: dict[int, tuple[int, int]] = field(default_factory=dict)
    by_moved: dict[str, tuple[int, int]] = field(default_factory=dict)


class Kin:
    def __init__(self) -> None:
        self.moved = HammingIndex()
        self.keeper_of: dict[int, str] = {}  # moved copy's key → path of its group's keeper
        self.by_keeper: dict[str, set[int]] = {}
        self.regions = HammingIndex()
        self.regions_of: dict[int, Regions] = {}  # library file id → its regions
        self._next = 0

    def recorded(self, file_id: int, fp: Fingerprint) -> None:
        """A library file was recorded: its regions can be matched from now on."""
        self.forget(file_id)
        if fp.flat:
            return
        regions = fp.regions[:SLOTS]
        for slot, (dhash, phash) in enumerate(regions):
            self.regions.add(file_id * SLOTS + slot, dhash, phash)
        if regions:
            self.regions_of[file_id] = regions

    def forget(self, file_id: int) -> None:
        for slot in range(len(self.regions_of.pop(file_id, ()))):
            self.regions.remove(file_id * SLOTS + slot)

    def departed(self, file_id: int | None, fp: Fingerprint, keeper: str) -> None:
        """A copy was moved away as a duplicate of the group ``keeper`` keeps."""
        regions = fp.regions or (self.regions_of.get(file_id, ()) if file_id is not None else ())
        if file_id is not None:
            self.forget(file_id)
        if fp.flat:
            return
        for dhash, phash in ((fp.dhash, fp.phash), *regions[:SLOTS]):
            key, self._next = self._next, self._next + 1
            self.moved.add(key, dhash, phash)
            self.keeper_of[key] = keeper
            self.by_keeper.setdefault(keeper, set()).add(key)

    def displaced(self, old: str, keeper: str) -> None:
        """The copies moved for ``old`` now stand for the copy that displaced it."""
        keys = self.by_keeper.pop(old, set())
        for key in keys:
            self.keeper_of[key] = keeper
        if keys:
            self.by_keeper.setdefault(keeper, set()).update(keys)

    def relatives(self, fp: Fingerprint, t: Thresholds) -> Relatives:
        """Library files whose regions match ``fp`` whole, and the keepers of moved copies
        that match ``fp`` or one of its regions (both hashes within the duplicate
        thresholds); the closest distances each."""
        if fp.flat:
            return Relatives()
        by_region: dict[int, tuple[int, int]] = {}
        for key, dd, pd in self.regions.search(fp.dhash, fp.phash, t.dhash, t.phash):
            _closest(by_region, key // SLOTS, dd, pd)
        by_moved: dict[str, tuple[int, int]] = {}
        for dhash, phash in ((fp.dhash, fp.phash), *fp.regions):
            for key, dd, pd in self.moved.search(dhash, phash, t.dhash, t.phash):
                _closest(by_moved, self.keeper_of[key], dd, pd)
        return Relatives(by_region, by_moved)


def _closest(found: dict[K, tuple[int, int]], key: K, dd: int, pd: int) -> None:
    old = found.get(key)
    if old is None or dd + pd < sum(old):
        found[key] = (dd, pd)
