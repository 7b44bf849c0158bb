"""File names at human boundaries: one stable, reversible escape for logs and terminal output.

Linux file names are bytes. Inside imagewatchd a path is a ``str`` exactly as ``os`` returns it:
bytes that are not valid UTF-8 are carried as lone surrogates U+DC80..U+DCFF (PEP 383's
``surrogateescape``), so ``os.fsencode(path)`` gives back the exact bytes. Whenever a name is
shown to a person (a log line, a terminal) it is escaped, so that no name can forge a log line,
move the cursor, recolour the terminal or reorder the text around it:

- ``\\`` for a backslash (so every escape below is unambiguous);
- ``\\n``, ``\\r``, ``\\t``; ``\\xHH`` for every other control character (C0 and DEL);
- ``\\xHH`` for each byte that is not valid UTF-8;
- ``\\uHHHH`` (``\\UHHHHHHHH`` beyond U+FFFF) for every other character that is not
  printable: C1 controls, the invisible format characters that change how the text around
  them is displayed (bidirectional overrides and isolates, zero-width characters, the soft
  hyphen), separators other than the space (line and paragraph separators, no-break spaces),
  unassigned and private-use code points: Unicode's categories C* and Z*, as
  ``str.isprintable`` defines them.

JSON output carries names exactly instead: undecodable bytes appear as ``\\udcHH`` escapes
(PEP 383), which ``json.loads`` followed by ``os.fsencode`` turns back into the exact bytes.
"""

from __future__ import annotations

import os
import re

_SHORT = {"\\": "\\\\", "\n": "\\n", "\r": "\\r", "\t": "\\t"}


def _escape(char: str) -> str:
    if char.isprintable() and char != "\\":
        return char
    short = _SHORT.get(char)
    if short is not None:
        return short
    code = ord(char)
    if code < 0x80:
        return f"\\x{code:02x}"
    if 0xDC80 <= code <= 0xDCFF:  # an undecodable byte, carried by surrogateescape
        return f"\\x{code - 0xDC00:02x}"
    return f"\\u{code:04x}" if code <= 0xFFFF else f"\\U{code:08x}"


def shown(text: object) -> str:
    """``text`` (a path, a name, or any message) as it may be shown to a person: one line."""
    value = os.fsdecode(text) if isinstance(text, bytes) else str(text)
    if value.isprintable() and "\\" not in value:
        return value
    return "".join(map(_escape, value))


def unshown(text: str) -> str:
    """The exact name behind ``shown(name)``: for tests, and for an operator's tooling."""
    return _ESCAPED.sub(_unescape, text)


_ESCAPED = re.compile(r"\\(?:x[0-9a-f]{2}|u[0-9a-f]{4}|U[0-9a-f]{8}|[nrt\\])")
_LONG = {value: key for key, value in _SHORT.items()}


def _unescape(found: re.Match[str]) -> str:
    escape = found.group()
    if escape in _LONG:
        return _LONG[escape]
    code = int(escape[2:], 16)
    return chr(code + 0xDC00 if escape[1] == "x" and code >= 0x80 else code)
