"""Issue 11, items 4 and 5 through the real command line: the quarantine's whole life
(list, show, delete, purge) and the action history (batches, ranges, ``undo --last``)."""

from __future__ import annotations

import json
import os
import sqlite3
from collections.abc import Callable
from pathlib import Path

from tests.conftest import MakeImage, Run

Cli = Callable[..., Run]


def _library_config(tmp_path: Path, make_image: MakeImage) -> tuple[Path, Path]:
    """A library with a copy of photo0 two levels down; duplicates move to ``dupes``."""
    for seed in range(3):
        make_image(f"lib/photo{seed}.jpg", seed=seed, size=(800, 600), quality=90)
    make_image("lib/a/b/photo0-small.png", seed=0, size=(400, 300))
    make_image("lib/c/photo1-small.png", seed=1, size=(400, 300))
    (tmp_path / "lib" / "c" / "keep.txt").write_text("not an image: keeps c")
    config = tmp_path / "config.yaml"
    config.write_text(
        f"quarantine_dir: {tmp_path / 'q'}\n"
        f"watches:\n  - path: {tmp_path / 'lib'}\n    role: library\n"
        f"    on_duplicate: move\n    move_to: {tmp_path / 'dupes'}\n"
    )
    return config, tmp_path / "lib"


def test_scan_act_is_a_batch_that_undo_last_reverses_and_tidies(
    cli: Cli, tmp_path: Path, make_image: MakeImage
) -> None:
    config, lib = _library_config(tmp_path, make_image)
    acted = cli("--config", str(config), "scan", "--act", check=0).out.splitlines()
    assert acted[0] == f"batch 1: scan --act {lib}"
    assert acted[-1] == "batch 1 done; undo it with: imagewatchd undo --batch 1"
    assert (tmp_path / "dupes" / "a" / "b" / "photo0-small.png").exists()
    assert not (lib / "a").exists()  # emptied by the move: removed, up to the watch root
    assert (lib / "c").is_dir()  # still holds a file
    assert lib.is_dir()
    listed = json.loads(cli("--config", str(config), "actions", "list", "--batch", "1",
                            "--json", check=0).out)  # fmt: skip
    assert sorted((a["kind"], a["state"], a["batch"]) for a in listed) == [("move", "done", 1)] * 2
    text = cli("--config", str(config), "actions", "list", "--since", "1h", check=0).out
    assert f"move\tdone\tbatch 1\t{lib / 'a' / 'b' / 'photo0-small.png'} -> " in text
    assert cli("--config", str(config), "actions", "list", "--since", "2999-01-01",
               check=0).out == "no actions\n"  # fmt: skip
    undone = cli("--config", str(config), "undo", "--last", check=0).out
    assert undone.count("back at") == 2
    assert (lib / "a" / "b" / "photo0-small.png").exists()
    assert (lib / "c" / "photo1-small.png").exists()
    assert not (tmp_path / "dupes" / "a").exists()  # the directories it created in move_to
    assert (tmp_path / "dupes").is_dir()  # the configured root stays
    again = cli("--config", str(config), "undo", "--last", check=2)
    assert "nothing to undo" in again.err


def test_undo_of_a_range_continues_past_failures(
    cli: Cli, tmp_path: Path, make_image: MakeImage
) -> None:
    config, lib = _library_config(tmp_path, make_image)
    cli("--config", str(config), "scan", "--act", check=0)
    moved = tmp_path / "dupes" / "c" / "photo1-small.png"
    moved.write_bytes(moved.read_bytes() + b"edited")  # its undo must refuse, the other go on
    result = cli("--config", str(config), "undo", "1-40", check=2)
    assert "back at" in result.out and str(lib / "a" / "b" / "photo0-small.png") in result.out
    assert "content differs from the journal" in result.err
    assert moved.exists()
    assert cli("--config", str(config), "undo", "4-2", check=2).err.count("backwards") == 1
    assert "expected an action ID" in cli("--config", str(config), "undo", "x", check=2).err


def _quarantine_two(cli: Cli, tmp_path: Path, make_image: MakeImage) -> Path:
    banned = make_image("banned.jpg", seed=5, quality=90)
    make_image("uploads/one.jpg", seed=5, quality=90)
    make_image("uploads/tw\udcffo.jpg", seed=5, quality=80)
    cli(
        "known", "add", "--create", "--list", "bans", "--label", "the bad one", str(banned), check=0
    )
    config = tmp_path / "config.yaml"
    config.write_text(
        f"quarantine_dir: {tmp_path / 'q'}\n"
        f"watches:\n  - path: {tmp_path / 'uploads'}\n    role: incoming\n"
        f"    on_known: quarantine\n"
    )
    cli("--config", str(config), "scan", "--act", check=0)
    return config


def test_quarantine_list_show_delete_and_purge(
    cli: Cli, tmp_path: Path, make_image: MakeImage
) -> None:
    config = _quarantine_two(cli, tmp_path, make_image)
    rows = json.loads(cli("--config", str(config), "quarantine", "list", "--json", check=0).out)
    assert [r["original"] for r in rows] == [str(tmp_path / "uploads" / n)
                                             for n in ("one.jpg", "tw\udcffo.jpg")]  # fmt: skip
    assert rows[0]["match"]["label"] == "the bad one" and rows[0]["match"]["list"] == "bans"
    assert all(Path(r["stored"]).parent == tmp_path / "q" for r in rows)
    text = cli("--config", str(config), "quarantine", "list", check=0).out
    assert "list bans entry 1 'the bad one'" in text and "tw\\xffo.jpg" in text
    first, second = rows[0]["id"], rows[1]["id"]
    shown = cli("--config", str(config), "quarantine", "show", str(first), check=0).out
    assert f"original: {tmp_path / 'uploads' / 'one.jpg'}" in shown
    assert "match:    list bans entry 1 the bad one: dHash 0 pHash 0" in shown
    assert "thresholds: dHash" in shown and "mode 0644" in shown

    stored = Path(rows[1]["stored"])
    os.chmod(stored, 0o600)
    stored.write_bytes(b"swapped")  # not what the journal holds: left alone, with a reason
    refused = cli("--config", str(config), "quarantine", "delete", str(second), check=2).out
    assert "not deleted" in refused and "differs from the journal" in refused
    assert stored.exists()

    dry = cli("--config", str(config), "quarantine", "purge", "--older-than", "0s", "--dry-run",
              check=0).out  # fmt: skip
    assert f"action {first}: would delete" in dry and Path(rows[0]["stored"]).exists()
    assert (
        "nothing in the quarantine is older than 30d"
        in cli("--config", str(config), "quarantine", "purge", "--older-than", "30d", check=0).out
    )
    cli("--config", str(config), "quarantine", "delete", str(first), check=0)
    assert not Path(rows[0]["stored"]).exists()
    after = json.loads(cli("--config", str(config), "actions", "list", "--json", check=0).out)
    kinds = {(a["kind"], a["state"], a["reverses"]) for a in after}
    assert ("quarantine", "deleted", None) in kinds and ("delete", "done", first) in kinds
    restore = cli("--config", str(config), "quarantine", "restore", str(first), check=2)
    assert "deleted" in restore.err
    gone = cli("--config", str(config), "quarantine", "list", "--json", check=0).out
    assert [r["id"] for r in json.loads(gone)] == [second]


def test_delete_never_follows_a_symlink_out_of_the_quarantine(
    cli: Cli, tmp_path: Path, make_image: MakeImage
) -> None:
    config = _quarantine_two(cli, tmp_path, make_image)
    rows = json.loads(cli("--config", str(config), "quarantine", "list", "--json", check=0).out)
    stored = Path(rows[0]["stored"])
    outside = tmp_path / "precious.jpg"
    stored.rename(outside)
    stored.symlink_to(outside)
    result = cli("--config", str(config), "quarantine", "delete", str(rows[0]["id"]), check=2)
    assert "symbolic link" in result.out
    assert outside.exists() and stored.is_symlink()
    db = sqlite3.connect(tmp_path / "state" / "imagewatchd.db")
    states = db.execute("SELECT kind, state FROM actions WHERE kind = 'delete'").fetchall()
    db.close()
    assert states == [("delete", "failed")]
