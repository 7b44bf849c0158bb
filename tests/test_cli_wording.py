"""What the one-shot commands say: once per file, truthful counts, clear refusals."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from tests.conftest import MakeImage, Run

Cli = Callable[..., Run]


def test_scan_act_says_each_file_once(cli: Cli, tmp_path: Path, make_image: MakeImage) -> None:
    """On a terminal standard output and the log are one screen: one line per file in all."""
    clean = make_image("uploads/clean.jpg", seed=12, quality=90)
    banned = make_image("uploads/banned.jpg", seed=13, quality=90)
    cli("known", "add", "--create", "--list", "banned", str(banned), check=0)
    config = tmp_path / "config.yaml"
    config.write_text(
        f"quarantine_dir: {tmp_path / 'q'}\n"
        f"watches:\n  - path: {tmp_path / 'uploads'}\n    role: incoming\n"
        f"    on_known: quarantine\n"
    )
    run = cli("--config", str(config), "scan", "--act", check=0)
    screen = run.out + run.err
    assert screen.count(f"{clean}:") == 1, screen
    assert screen.count(f"{banned}:") == 1, screen
    assert f"{clean}: clean -> none" in run.out
    assert f"{banned}: known list=banned" in run.out
    assert f"-> quarantine {tmp_path / 'q'}" in run.out  # where it went, and the action id
    assert "[action 1]" in run.out


def test_known_add_and_import_create_a_list_only_when_asked(
    cli: Cli, tmp_path: Path, make_image: MakeImage
) -> None:
    banned = make_image("banned.jpg", seed=3, quality=90)
    cli("known", "add", "--create", "--list", "banned", str(banned), check=0)
    typo = cli("known", "add", "--list", "baned", str(banned), check=2)
    assert typo.err.strip() == (
        "imagewatchd: error: no list named 'baned' (existing lists: 'banned'); "
        "add --create to create it"
    )
    exported = cli("known", "export", "--list", "banned", "--format", "hex", check=0).out
    (tmp_path / "list.txt").write_text(exported)
    typo = cli("known", "import", "--list", "baned", str(tmp_path / "list.txt"), check=2)
    assert "no list named 'baned'" in typo.err
    names = [row["name"] for row in json.loads(cli("lists", "list", "--json", check=0).out)]
    assert names == ["banned"]
    again = cli("known", "add", "--create", "--list", "banned", str(banned), check=0)
    assert "added 0, already listed 1" in again.out  # --create on an existing list: that list
    cli("known", "import", "--create", "--list", "more", str(tmp_path / "list.txt"), check=0)
    names = [row["name"] for row in json.loads(cli("lists", "list", "--json", check=0).out)]
    assert names == ["banned", "more"]


def test_disable_and_enable_count_what_changed(
    cli: Cli, tmp_path: Path, make_image: MakeImage
) -> None:
    for seed in (3, 4):
        make_image(f"banned/{seed}.jpg", seed=seed, quality=90)
    cli("known", "add", "--create", "--list", "banned", str(tmp_path / "banned"), check=0)
    assert cli("known", "disable", "1", check=0).out == "disabled 1 entry\n"
    assert cli("known", "disable", "1", check=0).out == "disabled 0 entries, 1 already disabled\n"
    assert cli("known", "disable", "1", "2", check=0).out == (
        "disabled 1 entry, 1 already disabled\n"
    )
    assert cli("known", "enable", "1", "2", check=0).out == "enabled 2 entries\n"
    assert cli("known", "remove", "2", check=0).out == "removed 1 entry\n"
