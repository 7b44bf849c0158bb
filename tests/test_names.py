"""Escaping of file names at human boundaries: one line, no control sequences, reversible."""

from __future__ import annotations

import io
import logging
import os
import re
import unicodedata

from hypothesis import given
from hypothesis import strategies as st

from imagewatchd import logsetup
from imagewatchd.names import shown, unshown


@given(st.binary(max_size=64))
def test_any_byte_name_is_shown_on_one_printable_line_and_comes_back_exactly(raw: bytes) -> None:
    name = os.fsdecode(raw)
    text = shown(name)
    assert all(unicodedata.category(c) not in ("Cc", "Cf", "Zl", "Zp", "Cs") for c in text)
    assert os.fsencode(unshown(text)) == raw


@given(st.text(max_size=64))
def test_any_text_comes_back_exactly(name: str) -> None:
    assert unshown(shown(name)) == name


STAMP = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d ")  # the daemon's lines, off the journal


def test_the_documented_escapes() -> None:
    assert shown("a\nINFO: forged") == "a\\nINFO: forged"
    assert shown("x\ry\tz\\") == "x\\ry\\tz\\\\"
    assert shown("\x1b[2J\x07") == "\\x1b[2J\\x07"
    assert shown(os.fsdecode(b"badutf8-\xff\xfe\xc0.png")) == "badutf8-\\xff\\xfe\\xc0.png"
    assert shown(b"raw-\xff") == "raw-\\xff"
    assert shown("evil\u202egpj.exe") == "evil\\u202egpj.exe"
    assert shown("caf\u00e9 \u65e5\u672c.jpg") == "caf\u00e9 \u65e5\u672c.jpg"  # printable: as is


def test_a_log_record_is_one_line_whatever_the_name_holds() -> None:
    stream = io.StringIO()
    logsetup.setup(debug=False, daemon=True, stream=stream)
    try:
        name = os.fsdecode(b"/up/nl\nINFO: /forged/evil.jpg: clean -> none\x1b]0;x\x07\xff.png")
        logging.getLogger("imagewatchd.test").info("%s: clean -> none", name)
    finally:
        logging.getLogger().handlers.clear()
    lines = [STAMP.sub("", line, count=1) for line in stream.getvalue().splitlines()]
    assert lines == [
        "INFO: /up/nl\\nINFO: /forged/evil.jpg: clean -> none\\x1b]0;x\\x07\\xff.png: clean -> none"
    ]


def test_invisible_and_look_alike_characters_are_shown_as_escapes() -> None:
    assert shown("soft\u00adhyphen") == "soft\\u00adhyphen"
    assert shown("no\u00a0break") == "no\\u00a0break"
    assert shown("tag\U000e0001") == "tag\\U000e0001"
    assert unshown("tag\\U000e0001") == "tag\U000e0001"
