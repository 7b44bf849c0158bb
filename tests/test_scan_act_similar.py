"""``scan --act`` honours ``on_similar`` as the daemon does: of each group of similar library
pictures (burst shots, near frames) the keep policy's keeper stays and every other picture
similar to it gets the watch's ``on_similar``; a duplicate group counts as one picture."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import yaml

from tests.conftest import Run, photo
from tests.test_similar import frames

Cli = Callable[..., Run]


def _library(tmp_path: Path) -> Path:
    lib = tmp_path / "library"
    (lib / "burst").mkdir(parents=True)
    first, second = frames()
    first.save(lib / "burst" / "frame1.jpg", quality=92)
    second.save(lib / "burst" / "frame2.jpg", quality=70)  # the policy keeps frame1 (quality)
    first.resize((320, 240)).save(lib / "frame1 small.jpg", quality=80)  # a duplicate of frame1
    photo(35).save(lib / "other.jpg", quality=92)
    return lib


def _config(tmp_path: Path, lib: Path, on_similar: str) -> Path:
    watch = {"path": str(lib), "role": "library", "on_duplicate": "move", "on_similar": on_similar,
             "move_to": str(tmp_path / "aside")}  # fmt: skip
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump({"watches": [watch]}))
    return config


def test_scan_act_moves_the_similar_picture_the_policy_does_not_keep(
    tmp_path: Path, cli: Cli
) -> None:
    lib = _library(tmp_path)
    config = _config(tmp_path, lib, "move")
    dry = cli("--config", str(config), "scan", "--act", "--dry-run", str(lib), check=0).out
    assert f"{lib / 'burst' / 'frame2.jpg'}: similar -> would move" in dry, dry
    assert (lib / "burst" / "frame2.jpg").exists()
    out = cli("--config", str(config), "scan", "--act", str(lib), check=0).out
    assert f"{lib / 'burst' / 'frame2.jpg'}: similar -> move" in out, out
    aside = tmp_path / "aside"
    assert sorted(p.name for p in aside.rglob("*.jpg")) == ["frame1 small.jpg", "frame2.jpg"]
    assert sorted(p.name for p in lib.rglob("*.jpg")) == ["frame1.jpg", "other.jpg"]
    actions = json.loads(cli("--config", str(config), "actions", "list", "--json", check=0).out)
    similar = [a for a in actions if a["rule"] == "watches[0].on_similar"]
    assert [(a["kind"], a["verdict"], a["state"]) for a in similar] == [("move", "similar", "done")]
    cli("--config", str(config), "undo", "--last", check=0)
    assert (lib / "burst" / "frame2.jpg").exists()


def test_scan_act_logs_similar_pictures_by_default_and_moves_none(tmp_path: Path, cli: Cli) -> None:
    lib = _library(tmp_path)
    config = _config(tmp_path, lib, "log")
    out = cli("--config", str(config), "scan", "--act", str(lib), check=0).out
    assert f"{lib / 'burst' / 'frame2.jpg'}: similar -> log" in out, out
    assert (lib / "burst" / "frame1.jpg").exists() and (lib / "burst" / "frame2.jpg").exists()
