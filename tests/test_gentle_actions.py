"""Gentler actions for a library: the freedesktop.org trash (undoable), and deletion only for a
watch that allows it (journalled, not undoable)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import unquote_to_bytes

import pytest
import yaml

from imagewatchd import journal, trash
from imagewatchd.config import load
from imagewatchd.errors import ConfigError
from imagewatchd.models import FileStat
from imagewatchd.paths import Located
from imagewatchd.rows import NewAction
from imagewatchd.store import Store
from tests.conftest import photo
from tests.daemon_harness import ENV, Daemon, sha256


@pytest.fixture
def library(tmp_path: Path) -> Path:
    lib = tmp_path / "library"
    (lib / "2019").mkdir(parents=True)
    photo(21, (800, 600)).save(lib / "2019" / "keeper.jpg", quality=92)
    photo(21, (400, 300)).save(lib / "copy.jpg", quality=92)
    photo(22).save(lib / "other.jpg", quality=92)
    return lib


@pytest.fixture
def data_home(tmp_path: Path) -> Path:
    """The home trash's parent, on the test directory's filesystem."""
    return tmp_path / "data"


def write_config(tmp_path: Path, library: Path, **watch: object) -> Path:
    path = tmp_path / "config.yaml"
    entry = {"path": str(library), "role": "library", **watch}
    path.write_text(yaml.safe_dump({"watches": [entry]}))
    return path


def iw(tmp_path: Path, config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**ENV, "XDG_DATA_HOME": str(tmp_path / "data"), "IMAGEWATCHD_CONFIG": ""}
    return subprocess.run(
        [sys.executable, "-m", "imagewatchd", "--config", str(config), "--db",
         str(tmp_path / "state" / "db"), *args],
        capture_output=True, text=True, env=env, timeout=120, check=False,
    )  # fmt: skip


def info_of(info_file: Path) -> dict[str, str]:
    lines = info_file.read_text().splitlines()
    assert lines[0] == "[Trash Info]"
    return dict(line.split("=", 1) for line in lines[1:])


def test_scan_act_trashes_a_copy_and_undo_takes_it_out_again(
    tmp_path: Path, library: Path, data_home: Path
) -> None:
    config = write_config(tmp_path, library, on_duplicate="trash")
    copy = library / "copy.jpg"
    digest = sha256(copy)
    done = iw(tmp_path, config, "scan", "--act")
    assert done.returncode == 0, done
    trashed = data_home / "Trash" / "files" / "copy.jpg"
    assert f"{copy}: duplicate -> trash {trashed} [action 1]" in done.stdout
    assert not copy.exists() and sha256(trashed) == digest
    info = info_of(data_home / "Trash" / "info" / "copy.jpg.trashinfo")
    assert unquote_to_bytes(info["Path"]) == os.fsencode(copy)
    assert len(info["DeletionDate"]) == len("2026-11-30T12:00:00")
    assert (library / "2019" / "keeper.jpg").exists()
    listed = json.loads(iw(tmp_path, config, "actions", "list", "--json").stdout)
    assert [(a["kind"], a["state"]) for a in listed] == [("trash", "done")]
    undone = iw(tmp_path, config, "undo", "--last")
    assert undone.returncode == 0, undone
    assert sha256(copy) == digest
    assert not trashed.exists()
    assert list((data_home / "Trash" / "info").iterdir()) == []


def test_a_second_file_of_the_same_name_gets_its_own_trash_name(
    tmp_path: Path, library: Path, data_home: Path
) -> None:
    bin_ = trash.trash_for(library / "copy.jpg", home=data_home / "Trash")
    first = trash.claim(bin_, "copy.jpg", library / "copy.jpg", 0.0)
    (bin_.files / first).write_bytes(b"x")
    second = trash.claim(bin_, "copy.jpg", library / "sub" / "copy.jpg", 0.0)
    assert (first, second) == ("copy.jpg", "copy.1.jpg")
    assert unquote_to_bytes(info_of(bin_.info_file(second))["Path"]).endswith(b"sub/copy.jpg")
    trash.release(bin_, second)
    assert not bin_.info_file(second).exists()
    assert oct(bin_.root.stat().st_mode & 0o777) == "0o700"


@pytest.fixture
def other_filesystem() -> Iterator[Path]:
    """A directory on /dev/shm (tmpfs): another filesystem than the test's home trash."""
    shm = Path("/dev/shm")
    if os.stat(shm).st_dev == os.stat(Path.cwd()).st_dev:
        pytest.skip("/dev/shm is not a filesystem of its own here")
    place = shm / f"imagewatchd-test-{os.getpid()}"
    place.mkdir()
    yield place
    shutil.rmtree(place)
    shutil.rmtree(shm / f".Trash-{os.getuid()}", ignore_errors=True)


def test_a_file_on_another_filesystem_goes_to_that_filesystems_trash(
    other_filesystem: Path, data_home: Path
) -> None:
    picture = other_filesystem / "a.jpg"
    picture.write_bytes(b"x")
    bin_ = trash.trash_for(picture, home=data_home / "Trash")
    assert bin_.root == Path("/dev/shm") / f".Trash-{os.getuid()}"
    name = trash.claim(bin_, "a.jpg", picture, 0.0)
    path = unquote_to_bytes(info_of(bin_.info_file(name))["Path"])
    assert path == os.fsencode(picture.relative_to("/dev/shm"))  # relative to the mount's top


def test_delete_needs_allow_delete_and_is_journalled_but_not_undoable(
    tmp_path: Path, library: Path
) -> None:
    config = write_config(tmp_path, library, on_duplicate="delete")
    with pytest.raises(ConfigError) as refused:
        load(Located(config, "--config"))
    assert any("allow_delete: true" in p for p in refused.value.problems)
    config = write_config(tmp_path, library, on_duplicate="delete", allow_delete=True)
    done = iw(tmp_path, config, "scan", "--act")
    assert done.returncode == 0, done
    assert f"{library / 'copy.jpg'}: duplicate -> delete [action 1]" in done.stdout
    assert not (library / "copy.jpg").exists()
    assert (library / "2019" / "keeper.jpg").exists() and (library / "other.jpg").exists()
    listed = json.loads(iw(tmp_path, config, "actions", "list", "--json").stdout)
    assert [(a["kind"], a["state"], a["destination"]) for a in listed] == [("delete", "done", None)]
    refused_undo = iw(tmp_path, config, "undo", "1")
    assert refused_undo.returncode != 0
    assert "no quarantine, move, trash, hardlink or file action" in refused_undo.stderr


def test_the_daemon_trashes_a_newcomer_duplicate(
    tmp_path: Path, library: Path, data_home: Path
) -> None:
    (library / "copy.jpg").unlink()
    daemon = Daemon(
        tmp_path,
        {"rescan_interval": 0, "watches": [{"path": str(library), "role": "library",
         "on_duplicate": "trash", "settle_seconds": 0.3}]},
        env={"XDG_DATA_HOME": str(data_home)},
    )  # fmt: skip
    try:
        daemon.start()
        photo(21, (400, 300)).save(library / "new copy.jpg", quality=92)
        line = daemon.processed(library / "new copy.jpg")
        trashed = data_home / "Trash" / "files" / "new copy.jpg"
        assert f"-> trash {trashed} [action " in line
        assert (data_home / "Trash" / "info" / "new copy.jpg.trashinfo").exists()
        assert daemon.stop() == 0
    finally:
        daemon.kill()


def test_recovery_frees_the_trash_name_of_a_move_that_never_happened(
    tmp_path: Path, library: Path, data_home: Path
) -> None:
    """A crash after the name was claimed, before the file moved: the info file goes."""
    copy = library / "copy.jpg"
    bin_ = trash.trash_for(copy, home=data_home / "Trash")
    name = trash.claim(bin_, "copy.jpg", copy, 0.0)
    info = os.lstat(copy)
    with Store(tmp_path / "db") as store:
        store.intend(NewAction(
            kind="trash", src_root=str(library), src_rel="copy.jpg", dst_root=str(bin_.files),
            dst_rel=name, tmp_name=".imagewatchd-x.tmp", sha256=sha256(copy),
            stat=FileStat.of(info), atime_ns=info.st_atime_ns, uid=info.st_uid, gid=info.st_gid,
            mode=info.st_mode, verdict="duplicate", evidence="{}", rule="test",
        ), 0.0)  # fmt: skip
        assert journal.recover(store) == 1
        assert [a.state for a in store.actions()] == ["rolled_back"]
    assert copy.exists()
    assert not bin_.info_file(name).exists()


def test_a_dry_run_of_trash_leaves_the_file_for_the_real_run(
    tmp_path: Path, library: Path, data_home: Path
) -> None:
    (library / "copy.jpg").unlink()
    config = {"rescan_interval": 0, "watches": [{"path": str(library), "role": "library",
              "on_duplicate": "trash", "settle_seconds": 0.3}]}  # fmt: skip
    env = {"XDG_DATA_HOME": str(data_home)}
    first = Daemon(tmp_path, config, env=env)
    try:
        first.start()  # the library's first index: existing photos are no newcomers
        first.wait_for("first index complete")
        assert first.stop() == 0
    finally:
        first.kill()
    dry = Daemon(tmp_path, config, "--dry-run", env=env)
    try:
        dry.start()
        photo(21, (400, 300)).save(library / "late.jpg", quality=92)
        assert "-> would trash" in dry.processed(library / "late.jpg")
        assert dry.stop() == 0
    finally:
        dry.kill()
    real = Daemon(tmp_path, config, env=env)
    try:
        real.start()  # the start-up reconcile finds it: not recorded by the dry run
        assert "-> trash " in real.processed(library / "late.jpg")
        assert not (library / "late.jpg").exists()
        assert real.stop() == 0
    finally:
        real.kill()
