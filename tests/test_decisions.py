"""Durable library decisions: ``dupes keep`` and ``dupes not-duplicate``, honoured by ``dupes``,
``scan --act`` and the running daemon, surviving renames."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from imagewatchd.store import Store
from tests.conftest import Run, photo
from tests.daemon_harness import Daemon, iw, sha256

CLI = Callable[..., Run]


@pytest.fixture
def library(tmp_path: Path) -> Path:
    """A library holding one picture in two sizes: a duplicate group of two."""
    lib = tmp_path / "library"
    lib.mkdir()
    photo(11, (800, 600)).save(lib / "big.jpg", quality=92)
    photo(11, (400, 300)).save(lib / "small.jpg", quality=92)
    photo(12).save(lib / "other.jpg", quality=92)
    return lib


@pytest.fixture
def config(tmp_path: Path, library: Path) -> Path:
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump({
        "watches": [{"path": str(library), "role": "library", "on_duplicate": "move",
                     "move_to": str(tmp_path / "dupes")}],
    }))  # fmt: skip
    return path


def groups(cli: CLI, config: Path) -> list[list[dict[str, Any]]]:
    out = cli("--config", str(config), "dupes", "--json", check=0).out
    found: list[list[dict[str, Any]]] = [g["files"] for g in json.loads(out)["groups"]]
    return found


def test_not_duplicate_splits_a_group_and_survives_a_rename(
    cli: CLI, config: Path, library: Path
) -> None:
    cli("--config", str(config), "scan", check=0)
    assert [[f["path"] for f in g] for g in groups(cli, config)] == [
        [str(library / "big.jpg"), str(library / "small.jpg")]
    ]
    said = cli("--config", str(config), "dupes", "not-duplicate", str(library / "big.jpg"),
               str(library / "small.jpg"), check=0).out  # fmt: skip
    assert said.startswith("decision 1: not duplicates: ")
    assert groups(cli, config) == []
    again = cli("--config", str(config), "dupes", "not-duplicate", str(library / "small.jpg"),
                str(library / "big.jpg"), check=0).out  # fmt: skip
    assert "decision 1:" in again and "(taken before)" in again
    (library / "small.jpg").rename(library / "renamed.jpg")
    cli("--config", str(config), "scan", check=0)
    assert groups(cli, config) == []  # the decision follows the picture, not the name
    listed = json.loads(cli("--config", str(config), "dupes", "decisions", "--json").out)
    assert [(d["id"], d["kind"]) for d in listed] == [(1, "not-duplicate")]
    assert sorted(listed[0]["pictures"]) == sorted(
        [sha256(library / "big.jpg"), sha256(library / "renamed.jpg")]
    )
    assert cli("--config", str(config), "dupes", "forget", "1", check=0).out.strip() == (
        "decision 1: forgotten"
    )
    assert len(groups(cli, config)) == 1
    assert cli("--config", str(config), "dupes", "forget", "1").code == 1  # gone already


def test_keep_makes_the_smaller_copy_the_keeper_for_dupes_and_scan_act(
    cli: CLI, config: Path, library: Path, tmp_path: Path
) -> None:
    cli("--config", str(config), "scan", check=0)
    assert groups(cli, config)[0][0]["path"] == str(library / "big.jpg")  # most pixels
    cli("--config", str(config), "dupes", "keep", str(library / "small.jpg"), check=0)
    first, second = groups(cli, config)[0]
    assert (first["path"], first["kept_by_decision"]) == (str(library / "small.jpg"), 1)
    assert (second["keep"], second["kept_by_decision"]) == (False, None)
    text = cli("--config", str(config), "dupes", check=0).out
    assert "kept by decision 1" in text
    out = cli("--config", str(config), "scan", "--act", check=0).out
    assert f"keep {library / 'small.jpg'}" in out
    assert (library / "small.jpg").exists()
    assert not (library / "big.jpg").exists()
    assert (tmp_path / "dupes" / "big.jpg").exists()


def test_scan_act_leaves_a_not_duplicate_pair_alone(cli: CLI, config: Path, library: Path) -> None:
    cli("--config", str(config), "dupes", "not-duplicate", str(library / "big.jpg"),
        str(library / "small.jpg"), check=0)  # fmt: skip
    cli("--config", str(config), "scan", "--act", check=0)
    assert (library / "big.jpg").exists() and (library / "small.jpg").exists()


def test_not_duplicate_refuses_identical_bytes_and_a_single_file(
    cli: CLI, config: Path, library: Path
) -> None:
    shutil.copy(library / "big.jpg", library / "copy.jpg")
    refused = cli("--config", str(config), "dupes", "not-duplicate", str(library / "big.jpg"),
                  str(library / "copy.jpg"))  # fmt: skip
    assert refused.code != 0 and "identical bytes" in refused.err
    assert cli("--config", str(config), "dupes", "not-duplicate", str(library / "big.jpg")).code
    missing = cli("--config", str(config), "dupes", "keep", str(library / "nope.jpg"))
    assert missing.code != 0 and "nope.jpg" in missing.err


def test_a_decision_is_one_indexed_lookup(tmp_path: Path) -> None:
    with Store(tmp_path / "db") as store:
        plans = [
            " ".join(row[3] for row in store._db.execute(f"EXPLAIN QUERY PLAN {sql}", args))
            for sql, args in [
                ("SELECT other FROM decisions WHERE kind = 'not_duplicate' AND sha256 = ?"
                 " UNION ALL SELECT sha256 FROM decisions WHERE other = ?"
                 " AND kind = 'not_duplicate'", ("a", "a")),
                ("SELECT id FROM decisions WHERE kind = 'keep' AND sha256 = ? AND other = ''",
                 ("a",)),
            ]
        ]  # fmt: skip
    for plan in plans:
        assert "SCAN" not in plan, plan


@pytest.fixture
def daemon(tmp_path: Path, library: Path) -> Iterator[Daemon]:
    d = Daemon(tmp_path, {
        "rescan_interval": 0,
        "watches": [{"path": str(library), "role": "library", "on_duplicate": "move",
                     "move_to": str(tmp_path / "dupes"), "settle_seconds": 0.3}],
    })  # fmt: skip
    yield d
    d.kill()


def test_the_running_daemon_honours_decisions_at_once(
    daemon: Daemon, library: Path, tmp_path: Path
) -> None:
    (library / "small.jpg").unlink()
    outside = tmp_path / "outside"
    outside.mkdir()
    photo(11, (400, 300)).save(outside / "different.jpg", quality=92)
    photo(11, (640, 480)).save(outside / "favourite.jpg", quality=80)
    daemon.start()
    assert iw(daemon.db, "dupes", "not-duplicate", str(library / "big.jpg"),
              str(outside / "different.jpg")).returncode == 0  # fmt: skip
    assert iw(daemon.db, "dupes", "keep", str(outside / "favourite.jpg")).returncode == 0
    # one at a time: favourite.jpg, once kept in the library, is a copy different.jpg matches
    shutil.copy(outside / "different.jpg", library / "different.jpg")
    assert "clean -> indexed" in daemon.processed(library / "different.jpg")
    shutil.copy(outside / "favourite.jpg", library / "favourite.jpg")
    line = daemon.processed(library / "favourite.jpg")
    assert "duplicate" in line and "kept: by decision 2" in line
    assert (library / "different.jpg").exists() and (library / "favourite.jpg").exists()
    photo(11, (500, 375)).save(library / "third.jpg", quality=85)  # no decision: moved
    assert "-> move" in daemon.processed(library / "third.jpg")
    assert daemon.stop() == 0
