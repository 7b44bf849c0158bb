"""Hash list lines read in bulk: numpy over the file's bytes, for a million-line list.

A line that starts with a hash of the width wanted (hex digits) followed by the end of the line
or by a separator is decoded here, for the whole file at once: the digits gathered into one
array, checked and turned into numbers with a lookup table. Every other line (blank, a comment,
leading blanks, a ``sha256:`` prefix, a wrong length, a digit that is not hex, a NUL…) is left
to the line-by-line parser of ``hashlists``, which skips it or names what is wrong with it, so
a bad line gets the error it always got. The lines are those of ``str.splitlines``: a text with
a line break other than LF or CRLF (a lone CR, a form feed, U+2028…) is not split here at all.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

_OTHER_BREAKS = ("\x0b", "\x0c", "\x1c", "\x1d", "\x1e", "\x85", "\u2028", "\u2029")
_DIGITS = np.full(256, 255, np.uint8)  # a byte's hex value, 255 when it is not a hex digit
_DIGITS[np.frombuffer(b"0123456789", np.uint8)] = np.arange(10)
_DIGITS[np.frombuffer(b"abcdef", np.uint8)] = np.arange(10, 16)
_DIGITS[np.frombuffer(b"ABCDEF", np.uint8)] = np.arange(10, 16)


@dataclass(frozen=True, slots=True)
class Lines:
    """A text's lines as offsets into its UTF-8 bytes (a CRLF's CR left out)."""

    data: bytes
    starts: NDArray[np.int64]
    ends: NDArray[np.int64]

    @classmethod
    def of(cls, text: str) -> Lines | None:
        """The lines, or None if ``str.splitlines`` would split them otherwise."""
        if any(mark in text for mark in _OTHER_BREAKS) or text.count("\r") != text.count("\r\n"):
            return None
        try:
            data = text.encode("utf-8", "surrogateescape")
        except UnicodeEncodeError:  # a lone surrogate that no byte stands for
            return None
        breaks = np.flatnonzero(np.frombuffer(data, np.uint8) == ord("\n"))
        starts = np.concatenate(([0], breaks + 1)).astype(np.int64)
        ends = np.concatenate((breaks, [len(data)])).astype(np.int64)
        if len(data) and data.endswith(b"\n"):  # no empty line after the last break
            starts, ends = starts[:-1], ends[:-1]
        crlf = ends > starts
        crlf[crlf] = np.frombuffer(data, np.uint8)[ends[crlf] - 1] == ord("\r")
        return cls(data, starts, ends - crlf)

    def __len__(self) -> int:
        return len(self.starts)

    def separators(self, rows: NDArray[np.intp], at: int) -> NDArray[np.uint8]:
        """The byte at offset ``at`` of each of these lines (0 past a line's end)."""
        where = self.starts[rows] + at
        inside = where < self.ends[rows]
        found = np.zeros(len(rows), np.uint8)
        found[inside] = np.frombuffer(self.data, np.uint8)[where[inside]]
        return found

    def text(self, line: int, start: int = 0) -> str:
        """Line ``line`` (0-based) from byte ``start`` of it on."""
        return self.data[self.starts[line] + start : self.ends[line]].decode(
            "utf-8", "surrogateescape"
        )


def leading_hashes(
    lines: Lines, digits: int, separators: bytes
) -> tuple[NDArray[np.intp], NDArray[np.uint8]]:
    """(the lines that start with ``digits`` hex digits followed by the line's end or one of
    ``separators``, their hashes as big-endian bytes: an (n, digits / 2) array)."""
    data = np.frombuffer(lines.data, np.uint8)
    length = lines.ends - lines.starts
    rows = np.flatnonzero(length >= digits)
    after = lines.starts[rows] + digits
    ends_there = after == lines.ends[rows]
    follows = np.zeros(len(rows), np.bool_)
    follows[~ends_there] = np.isin(data[after[~ends_there]], np.frombuffer(separators, np.uint8))
    rows = rows[ends_there | follows]
    values = _DIGITS[data[lines.starts[rows, None] + np.arange(digits)]]
    good = (values < 16).all(axis=1)
    rows, values = rows[good], values[good]
    return rows, (values[:, 0::2] << 4) | values[:, 1::2]


def words64(hashes: NDArray[np.uint8]) -> NDArray[np.uint64]:
    """Big-endian bytes (n, 8k) as (n, k) 64-bit words, most significant first."""
    return np.ascontiguousarray(hashes).view(">u8").astype(np.uint64)
