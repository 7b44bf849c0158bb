"""Hostile file names through the commands: one escaped line per file for people, exact JSON."""

from __future__ import annotations

import json
import os
import unicodedata
from collections.abc import Callable
from pathlib import Path

from imagewatchd.names import shown, unshown
from tests.conftest import Run, photo

Cli = Callable[..., Run]

HOSTILE = b"evil\nINFO: forged.jpg: clean\r\x1b[2J\x1b]0;t\x07-\xff\xfe.png"
SHOWN_HOSTILE = "evil\\nINFO: forged.jpg: clean\\r\\x1b[2J\\x1b]0;t\\x07-\\xff\\xfe.png"
BAD = b"badutf8-\xff\xfe\xc0.png"
COPY = b"copy\x1b[31m\x9b.png"


def save(folder: Path, name: bytes, seed: int) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = Path(os.fsdecode(os.fsencode(folder) + b"/" + name))
    photo(seed, (320, 240)).save(path, "PNG")
    return path


def assert_printable(*texts: str) -> None:
    """No control character, surrogate or invisible formatting reached the terminal."""
    for text in texts:
        for line in text.splitlines():
            bad = [c for c in line if c not in "\t " and unicodedata.category(c)[0] in "CZ"]
            assert not bad, (line, bad)


def test_check_shows_one_escaped_line_per_file_and_json_carries_the_exact_bytes(
    cli: Cli, tmp_path: Path
) -> None:
    folder = tmp_path / "in"
    files = [save(folder, HOSTILE, 1), save(folder, BAD, 2), save(folder, COPY, 3)]
    text = cli("check", str(folder), check=0)
    assert_printable(text.out, text.err)
    assert sorted(text.out.splitlines()) == sorted(f"{shown(p)}: clean" for p in files)
    assert f"{folder}/{SHOWN_HOSTILE}: clean" in text.out.splitlines()
    assert f"{folder}/badutf8-\\xff\\xfe\\xc0.png: clean" in text.out.splitlines()
    as_json = cli("check", "--json", str(folder), os.fsdecode(files[0]), check=0)
    paths = [os.fsencode(obj["path"]) for obj in as_json.json_lines()]
    assert sorted(paths) == sorted([*map(os.fsencode, files), os.fsencode(files[0])])
    assert "\\udcff" in as_json.out  # how JSON carries a byte that is not UTF-8 (PEP 383)
    gone = os.fsdecode(os.fsencode(folder) + b"/gone\x1b[2J\xff.png")
    missing = cli("check", gone, check=2)
    assert missing.out == f"{folder}/gone\\x1b[2J\\xff.png: error: no such file or directory\n"


def test_lists_dupes_and_errors_show_names_escaped(cli: Cli, tmp_path: Path) -> None:
    library = tmp_path / "lib"
    hostile, copy = save(library, HOSTILE, 1), save(library, COPY, 1)
    added = cli("known", "add", "--create", "--list", "banned", str(hostile), check=0)
    listed = cli("known", "list", check=0)
    as_json = json.loads(cli("known", "list", "--json", check=0).out)
    assert_printable(added.out, added.err, listed.out)
    assert as_json[0]["label"] == SHOWN_HOSTILE  # display text: the name as shown
    assert unshown(listed.out.rstrip("\n").split("\t")[-1]) == SHOWN_HOSTILE
    known = cli("check", str(copy), check=1)
    assert_printable(known.out)
    assert known.out.splitlines()[0] == f"{shown(copy)}: known"
    assert len(known.out.splitlines()) == 2
    cli("scan", str(library), check=0)
    dupes = cli("dupes", check=0)
    assert_printable(dupes.out)
    assert len(dupes.out.splitlines()) == 4  # the group, why the keeper wins, a line per file
    assert any(shown(hostile) in line for line in dupes.out.splitlines())
    nowhere = os.fsdecode(os.fsencode(tmp_path) + b"/nowhere\n\x1b[2J\xff")
    failed = cli("scan", nowhere, check=2)
    expected = f"imagewatchd: error: {tmp_path}/nowhere\\n\\x1b[2J\\xff: not a directory\n"
    assert failed.err == expected


def test_scan_act_quarantine_list_and_restore_show_names_escaped(cli: Cli, tmp_path: Path) -> None:
    uploads = tmp_path / "uploads"
    hostile, bad = save(uploads, HOSTILE, 4), save(uploads, BAD, 5)
    cli("known", "add", "--create", "--list", "banned", str(hostile), check=0)
    config = tmp_path / "config.yaml"
    config.write_text(
        f"quarantine_dir: {tmp_path / 'q'}\n"
        f"watches:\n  - path: {uploads}\n    role: incoming\n    on_known: quarantine\n"
    )
    acted = cli("--config", str(config), "scan", "--act", check=0)
    assert_printable(acted.out, acted.err)
    clean, known = sorted(acted.out.splitlines()[1:-1])  # between the batch's lines
    assert clean == f"{uploads}/badutf8-\\xff\\xfe\\xc0.png: clean -> none"
    assert known.startswith(f"{uploads}/{SHOWN_HOSTILE}: known list=banned entry=1 ")
    assert f" -> quarantine {tmp_path / 'q'}/" in known
    assert os.listdir(os.fsencode(uploads)) == [os.fsencode(bad.name)]
    listed = cli("--config", str(config), "quarantine", "list", check=0)
    assert_printable(listed.out)
    (line,) = listed.out.splitlines()
    assert line.split("\t")[2] == f"{uploads}/{SHOWN_HOSTILE}"
    (entry,) = json.loads(cli("--config", str(config), "quarantine", "list", "--json", check=0).out)
    assert os.fsencode(entry["original"]) == os.fsencode(hostile)
    back = cli(
        "--config", str(config), "quarantine", "restore", "--force", str(entry["id"]), check=0
    )
    assert back.out == f"action {entry['id']}: back at {uploads}/{SHOWN_HOSTILE}\n"
    assert sorted(os.listdir(os.fsencode(uploads))) == sorted([BAD, HOSTILE])
