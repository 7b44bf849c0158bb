"""The one-shot commands, run as a user runs them: real subprocesses on real files."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path

import pytest
from PIL import Image

from tests.conftest import MakeImage, Run, photo

Cli = Callable[..., Run]


@pytest.fixture
def library(tmp_path: Path, make_image: MakeImage) -> Path:
    for seed in range(4):
        make_image(f"lib/photo{seed}.jpg", seed=seed, size=(800, 600), quality=90)
    make_image("lib/sub/photo0-small.png", seed=0, size=(400, 300))  # duplicate of photo0
    make_image("lib/.hidden/ignored.jpg", seed=9)
    (tmp_path / "lib" / "notes.txt").write_text("not an image, not included")
    Image.new("RGB", (300, 300), "red").save(tmp_path / "lib" / "flat-red.png")
    Image.new("RGB", (200, 100), "blue").save(tmp_path / "lib" / "flat-blue.png")
    return tmp_path / "lib"


def test_scan_indexes_then_skips_unchanged(cli: Cli, library: Path) -> None:
    first = json.loads(cli("scan", str(library), "--json", check=0).out)
    assert first == {"files": 7, "new": 7, "changed": 0, "unchanged": 0, "errors": 0,
                     "removed": 0, "duplicate_groups": 1}  # fmt: skip
    os.utime(library / "photo1.jpg", ns=(1, 1))
    (library / "photo2.jpg").unlink()
    second = json.loads(cli("scan", str(library), "--json", check=0).out)
    assert (second["unchanged"], second["changed"], second["removed"]) == (5, 1, 1)
    text = cli("scan", str(library), check=0).out
    assert text.strip().startswith("files 6, new 0, changed 0, unchanged 6, errors 0")


def test_scan_reports_bad_files_and_carries_on(cli: Cli, library: Path) -> None:
    (library / "empty.jpg").write_bytes(b"")
    (library / "text.png").write_text("hello")
    good = (library / "photo0.jpg").read_bytes()
    (library / "truncated.jpg").write_bytes(good[: len(good) // 3])
    result = cli("scan", str(library), "--json", check=2)
    assert json.loads(result.out)["errors"] == 3
    assert json.loads(result.out)["new"] == 7
    lines = [line for line in result.err.splitlines() if line]
    assert f"WARNING: {library / 'empty.jpg'}: empty file" in lines
    assert f"WARNING: {library / 'text.png'}: not an image in a supported format" in lines
    assert any(
        line.startswith(f"WARNING: {library / 'truncated.jpg'}: cannot decode") for line in lines
    )
    assert "Traceback" not in result.err


def test_check_json_contract_and_exit_status(
    cli: Cli, library: Path, make_image: MakeImage
) -> None:
    cli("scan", str(library), check=0)
    dup = make_image("in/dup.webp", seed=1, size=(500, 375), quality=70)
    clean = make_image("in/new.png", seed=42)
    assert cli("check", str(clean), check=0).out.strip() == f"{clean}: clean"
    result = cli("check", "--json", str(dup), str(clean), check=1)
    dup_obj, clean_obj = result.json_lines()
    assert dup_obj["verdict"] == "duplicate"
    assert dup_obj["error"] is None
    (match,) = dup_obj["matches"]
    assert match["path"] == str(library / "photo1.jpg")
    assert 0 <= match["dhash_distance"] <= 10 and 0 <= match["phash_distance"] <= 10
    assert clean_obj["verdict"] == "clean" and clean_obj["matches"] == []
    missing = cli("check", "--json", str(clean), "/nonexistent/x.jpg", check=2).json_lines()[1]
    assert missing["verdict"] == "error"
    assert missing["error"] == "no such file or directory"


def test_known_add_check_and_flat(cli: Cli, tmp_path: Path, make_image: MakeImage) -> None:
    banned = make_image("banned/cat.jpg", seed=5, size=(1024, 768), quality=92)
    added = cli(
        "known",
        "add",
        "--create",
        "--list",
        "banned",
        "--label",
        "cat",
        str(tmp_path / "banned"),
        check=0,
    )
    assert "banned: added 1, already listed 0, errors 0" in added.out
    cli("known", "add", "--create", "--list", "banned", str(banned), check=0)  # idempotent
    variant = make_image("up/small.png", seed=5, size=(300, 225))
    text = cli("check", str(variant), check=1).out.splitlines()
    assert text[0] == f"{variant}: known"
    assert text[1].startswith("  list 'banned' (block) entry 1 'cat': dHash distance")
    assert "(threshold 6)" in text[1]
    red = tmp_path / "up" / "red.png"
    Image.new("RGB", (64, 64), (200, 10, 10)).save(red)
    flat = cli("check", str(red), check=0).out
    assert "flat image: only an identical file can match it" in flat


def test_lists_import_export_disable(cli: Cli, tmp_path: Path, make_image: MakeImage) -> None:
    cli("lists", "create", "ok", "--kind", "allow", check=0)
    cli("lists", "create", "ok", check=2)
    banned = make_image("b.png", seed=6)
    cli("known", "add", "--create", "--list", "banned", str(banned), check=0)
    exported = cli("known", "export", "--list", "banned", "--format", "csv", check=0).out
    assert exported.splitlines()[0] == (
        "id,sha256,dhash,phash,label,source,added,enabled,hits,flat,pdq,pdq_quality"
    )
    (tmp_path / "list.csv").write_text(exported)
    hex_text = cli("known", "export", "--list", "banned", "--format", "hex", check=0).out
    (tmp_path / "list.txt").write_text(hex_text + "0123\n")
    bad = cli("known", "import", "--create", "--list", "other", str(tmp_path / "list.txt"), check=2)
    assert "line 2: expected 64 hex digits" in bad.err and "nothing imported" in bad.err
    partial = cli(
        "known",
        "import",
        "--create",
        "--list",
        "other",
        "--skip-invalid",
        str(tmp_path / "list.txt"),
        check=0,
    )
    assert "imported 1" in partial.out
    again = cli(
        "known", "import", "--create", "--list", "other", str(tmp_path / "list.csv"), check=0
    )
    assert "imported 1, already listed 0" in again.out  # csv carries the sha256 too: a new entry
    listed = json.loads(cli("lists", "list", "--json", check=0).out)
    assert {(x["name"], x["kind"], x["entries"]) for x in listed} == {
        ("ok", "allow", 0), ("banned", "block", 1), ("other", "block", 2)}  # fmt: skip
    assert cli("check", str(banned), check=1).out.count("list ") == 3
    ids = [str(e["id"]) for e in json.loads(cli("known", "list", "--json", check=0).out)]
    cli("known", "disable", *ids, check=0)
    assert cli("check", str(banned), check=0).out.strip() == f"{banned}: clean"
    cli("known", "remove", "999", check=2)
    cli("lists", "remove", "banned", check=2)
    cli("lists", "remove", "banned", "--force", check=0)


def test_allow_list_entry_suppresses(cli: Cli, make_image: MakeImage) -> None:
    picture = make_image("p.jpg", seed=8, quality=90)
    cli("known", "add", "--create", "--list", "banned", str(picture), check=0)
    cli("lists", "create", "reviewed", "--kind", "allow", check=0)
    cli("known", "add", "--create", "--list", "reviewed", str(picture), check=0)
    obj = cli("check", "--json", str(picture), check=0).json_lines()[0]
    assert obj["verdict"] == "clean"
    assert [m["list"] for m in obj["allowed_by"]] == ["reviewed"]


def test_dupes_best_copy_first(cli: Cli, library: Path) -> None:
    photo(0, (1600, 1200)).save(library / "photo0-big.jpg", quality=90)  # as original as photo0
    cli("scan", str(library), check=0)
    groups = json.loads(cli("dupes", "--json", check=0).out)["groups"]
    assert len(groups) == 1
    assert [Path(f["path"]).name for f in groups[0]["files"]] == [
        "photo0-big.jpg", "photo0.jpg", "photo0-small.png"]  # fmt: skip
    text = cli("dupes", check=0).out.splitlines()
    assert text[0] == "group 1 (3 files)"
    why = "pixels: 1600x1200 over 800x600; original: JPEG quality 90 (the other: no evidence)"
    assert text[1] == f"  why: {why}"  # photo0-small.png: no JPEG quality, a re-encode
    assert text[2].startswith(f"  keep {library / 'photo0-big.jpg'}  1600x1200")


def test_compare(cli: Cli, make_image: MakeImage) -> None:
    a = make_image("a.jpg", seed=3, quality=90)
    b = make_image("b.png", seed=3, size=(320, 240))
    c = make_image("c.png", seed=4)
    same = json.loads(cli("compare", "--json", str(a), str(b), check=0).out)
    assert same["match"] is True and same["identical"] is False
    other = cli("compare", str(a), str(c), check=0).out.splitlines()
    assert other[2] == "identical bytes: no"
    assert (
        other[3]
        == "as a list entry made from the first (orientations on, the default for lists): no match"
    )
    assert "as a library photo: not a duplicate, not similar" in other


def test_errors_are_one_line_without_traceback(cli: Cli, tmp_path: Path) -> None:
    bogus = tmp_path / "bogus.db"
    bogus.write_bytes(b"garbage" * 1000)
    result = cli("--db", str(bogus), "status", check=65)
    assert result.err.startswith(f"imagewatchd: error: {bogus}: the database is damaged (file")
    assert "Traceback" not in result.err
    result = cli("scan", str(tmp_path / "nowhere"), check=2)
    assert result.err.strip() == f"imagewatchd: error: {tmp_path / 'nowhere'}: not a directory"
    assert (
        cli("compare", str(tmp_path / "x.png"), str(tmp_path / "y.png"), check=2).err.count("\n")
        == 1
    )
    debug = cli("--debug", "--db", str(bogus), "status", check=65)
    assert "Traceback" in debug.err


def test_db_flag_works_after_the_command(cli: Cli, tmp_path: Path) -> None:
    db = tmp_path / "elsewhere.db"
    cli("status", "--db", str(db), check=0)
    assert db.exists()
    cli("lists", "create", "x", "--db", str(db), check=0)
    assert "x" in cli("--db", str(db), "lists", "list", check=0).out


def test_console_script_and_module_agree(cli: Cli) -> None:
    assert cli("--version", check=0).out.startswith("imagewatchd ")


def test_scan_act_dedupes_a_library_keeping_the_best(
    cli: Cli, tmp_path: Path, library: Path, make_image: MakeImage
) -> None:
    photo(0, (1600, 1200)).save(library / "photo0-big.jpg", quality=90)  # as original as photo0
    banned = make_image("banned.jpg", seed=3, size=(800, 600), quality=90)  # = lib/photo3.jpg
    cli("known", "add", "--create", "--list", "banned", str(banned), check=0)
    config = tmp_path / "config.yaml"
    config.write_text(
        f"quarantine_dir: {tmp_path / 'q'}\n"
        f"watches:\n  - path: {library}\n    role: library\n    on_known: quarantine\n"
        f"    on_duplicate: move\n    move_to: {tmp_path / 'dupes'}\n"
    )
    before = sorted(p.name for p in library.rglob("*") if p.is_file())
    dry = cli("--config", str(config), "scan", "--act", "--dry-run", check=0).out
    assert f"keep {library / 'photo0-big.jpg'}" in dry
    assert f"{library / 'sub' / 'photo0-small.png'}: duplicate -> would move" in dry
    assert f"{library / 'photo3.jpg'}: known -> would quarantine" in dry
    assert sorted(p.name for p in library.rglob("*") if p.is_file()) == before
    cli("--config", str(config), "scan", "--act", check=0)
    assert (tmp_path / "dupes" / "sub" / "photo0-small.png").exists()
    assert (tmp_path / "dupes" / "photo0.jpg").exists()
    assert (library / "photo0-big.jpg").exists()
    assert not (library / "photo3.jpg").exists()
    assert len(list((tmp_path / "q").iterdir())) == 1
    assert "no duplicates" in cli("--config", str(config), "dupes", check=0).out
    outside = cli("--config", str(config), "scan", "--act", str(tmp_path), check=2)
    assert "not inside a configured watch" in outside.err


def test_scan_act_applies_new_bans_to_files_seen_before(
    cli: Cli, tmp_path: Path, make_image: MakeImage
) -> None:
    upload = make_image("uploads/a.jpg", seed=12, quality=90)
    config = tmp_path / "config.yaml"
    config.write_text(
        f"quarantine_dir: {tmp_path / 'q'}\n"
        f"watches:\n  - path: {tmp_path / 'uploads'}\n    role: incoming\n"
        f"    on_known: quarantine\n"
    )
    first = cli("--config", str(config), "scan", "--act", check=0).out
    assert f"{upload}: clean -> none" in first
    cli(
        "known", "add", "--create", "--list", "banned", str(upload), check=0
    )  # banned after it was seen
    cli("--config", str(config), "scan", "--act", check=0)
    assert not upload.exists()
    assert len(list((tmp_path / "q").iterdir())) == 1
    result = cli("--config", str(config), "scan", "--dry-run", check=2)
    assert "--dry-run goes with --act" in result.err


def test_hex_export_keeps_flat_entries_exact(cli: Cli, tmp_path: Path) -> None:
    red = tmp_path / "red.png"
    Image.new("RGB", (100, 100), "red").save(red)
    cli("known", "add", "--create", "--list", "flat", str(red), check=0)
    exported = cli("known", "export", "--list", "flat", "--format", "hex", check=0).out
    (tmp_path / "flat.txt").write_text(exported)
    cli("known", "import", "--create", "--list", "again", str(tmp_path / "flat.txt"), check=0)
    cli("known", "disable", "1", check=0)
    assert cli("check", str(red), check=1).out.splitlines()[1].startswith("  list 'again'")
