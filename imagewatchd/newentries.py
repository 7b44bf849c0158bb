"""Many entries to add at once (a hash list import), each held as a plain tuple.

A ``NewEntry`` is a frozen dataclass: making a million of them takes seconds, as long as the
store takes to write them. ``Entries`` holds the same fields as tuples, in ``NewEntry``'s
order, and is a sequence of ``NewEntry`` to whoever reads it as one; the store writes its
tuples as they are (``fields``). Entries made from a picture (with centre crops) stay
``NewEntry`` values: there are never many.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from typing import overload

from imagewatchd.rows import NewEntry

# sha256, dhash, phash, label, source, flat, enabled, pdq, pdq_quality: NewEntry's order
Fields = tuple[str | None, int | None, int | None, str, str, bool, bool, int | None, int | None]


class Entries(Sequence[NewEntry]):
    """Entries without centre crops, as tuples of ``NewEntry``'s fields."""

    __slots__ = ("rows",)

    def __init__(self, rows: list[Fields]) -> None:
        self.rows = rows

    def __len__(self) -> int:
        return len(self.rows)

    @overload
    def __getitem__(self, index: int) -> NewEntry: ...

    @overload
    def __getitem__(self, index: slice) -> Sequence[NewEntry]: ...

    def __getitem__(self, index: int | slice) -> NewEntry | Sequence[NewEntry]:
        if isinstance(index, slice):
            return Entries(self.rows[index])
        return NewEntry(*self.rows[index])


def fields(entries: Iterable[NewEntry]) -> Iterator[Fields]:
    """Each entry's fields (its centre crops left out: see ``crops``)."""
    if isinstance(entries, Entries):
        yield from entries.rows
        return
    for e in entries:
        yield (e.sha256, e.dhash, e.phash, e.label, e.source, e.flat, e.enabled, e.pdq,
               e.pdq_quality)  # fmt: skip


def grids(entries: Sequence[NewEntry]) -> list[tuple[int, bytes]]:
    """(position, grid) of the entries made from a picture that have a block grid."""
    if isinstance(entries, Entries):
        return []
    return [(at, e.grid) for at, e in enumerate(entries) if e.grid]


def colours(entries: Sequence[NewEntry]) -> list[tuple[int, bytes]]:
    """(position, colour signature) of the entries made from a picture that have one."""
    if isinstance(entries, Entries):
        return []
    return [(at, e.colours) for at, e in enumerate(entries) if e.colours]


def crops(entries: Sequence[NewEntry]) -> list[tuple[int, str, int, int]]:
    """(position, name, dHash, pHash) of the entries' centre crops."""
    if isinstance(entries, Entries):
        return []
    return [(at, *crop) for at, e in enumerate(entries) for crop in e.regions]
