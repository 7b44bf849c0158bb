"""Hostile and non-UTF-8 file names through the real daemon: acted on, recorded, shown escaped."""

from __future__ import annotations

import json
import os
import re
import sqlite3
from contextlib import closing
from pathlib import Path

from tests.daemon_harness import Daemon, iw, sha256
from tests.test_daemon import WRITTEN, banned, config_for, daemon, site, write  # noqa: F401

BAD = b"badutf8-\xff\xfe\xc0.png"
HOSTILE = b"evil\nINFO: forged.jpg: clean -> none\r\x1b[2J\x1b]0;title\x07-\xff.png"
CLEAN = b"clean-\xc3\x28\x80.png"
RAW = (b"\xff", b"\xfe", b"\xc0", b"\x1b", b"\x07", b"\r")


def under(directory: Path, name: bytes) -> Path:
    return Path(os.fsdecode(os.fsencode(directory) + b"/" + name))


def test_names_that_are_not_utf8_are_quarantined_restored_and_recorded(
    daemon: Daemon,  # noqa: F811
    site: dict[str, Path],  # noqa: F811
) -> None:
    banned_file = write(under(site["uploads"], BAD), 100)
    hostile = write(under(site["uploads"], HOSTILE), 100, (320, 240))
    clean = write(under(site["uploads"], CLEAN), 7)
    uploads = str(site["uploads"])
    daemon.wait_for(re.escape(f"INFO: {uploads}/badutf8-\\xff\\xfe\\xc0.png: known list="))
    daemon.wait_for(re.escape(f"INFO: {uploads}/evil\\nINFO: forged.jpg: clean -> none\\r"
                              "\\x1b[2J\\x1b]0;title\\x07-\\xff.png: known list="))  # fmt: skip
    daemon.wait_for(re.escape(f"INFO: {uploads}/clean-\\xc3(\\x80.png: clean -> none"))
    log = daemon.log_path.read_bytes()
    assert not any(raw in log for raw in RAW)
    assert b"\nINFO: forged.jpg" not in log
    assert os.listdir(os.fsencode(site["uploads"])) == [CLEAN]
    assert sorted(sha256(p) for p in site["quarantine"].iterdir()) == sorted(
        {WRITTEN[banned_file], WRITTEN[hostile]}
    )
    with closing(sqlite3.connect(daemon.db)) as db:
        query = "SELECT role, sha256 FROM files WHERE path = ?"
        assert db.execute(query, (os.fsencode(clean),)).fetchall() == [("incoming", WRITTEN[clean])]
    status = iw(daemon.db, "status", "--json")
    assert json.loads(status.stdout)["files"]["incoming"] == 1

    listed = iw(daemon.db, "quarantine", "list")
    assert listed.returncode == 0, listed.stderr
    lines = listed.stdout.splitlines()
    assert len(lines) == 2
    assert not any(raw.decode("latin-1") in listed.stdout for raw in RAW)
    assert any(f"\t{uploads}/badutf8-\\xff\\xfe\\xc0.png\tknown\t" in line for line in lines)
    entries = json.loads(iw(daemon.db, "quarantine", "list", "--json").stdout)
    originals = {os.fsencode(e["original"]): e["id"] for e in entries}
    assert set(originals) == {os.fsencode(banned_file), os.fsencode(hostile)}

    for name, path in ((BAD, banned_file), (HOSTILE, hostile)):
        restored = iw(daemon.db, "quarantine", "restore", str(originals[os.fsencode(path)]))
        assert restored.returncode == 0, restored.stderr
        assert restored.stdout.count("\n") == 1
        assert not any(raw.decode("latin-1") in restored.stdout for raw in RAW)
        assert name in os.listdir(os.fsencode(site["uploads"]))
        assert sha256(path) == WRITTEN[path]
    assert restored.stdout.endswith(f"back at {uploads}/evil\\nINFO: forged.jpg: clean -> none"
                                    "\\r\\x1b[2J\\x1b]0;title\\x07-\\xff.png\n")  # fmt: skip
    assert list(site["quarantine"].iterdir()) == []
    assert daemon.stop() == 0
    assert banned_file.exists() and hostile.exists()  # allowed: the daemon left them alone
