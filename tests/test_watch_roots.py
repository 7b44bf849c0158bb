"""Watch roots that go away and come back: unmounted and mounted again, or missing at start."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import photo
from tests.daemon_harness import Daemon, iw

needs_root = pytest.mark.skipif(
    os.geteuid() != 0 or shutil.which("mount") is None,
    reason="mounting a tmpfs on a watch root needs root and mount(8)",
)


def mount(path: Path) -> None:
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=16m", "tmpfs", str(path)], check=True)


def umount(path: Path) -> None:
    subprocess.run(["umount", str(path)], check=True)


@pytest.fixture
def uploads(tmp_path: Path) -> Iterator[Path]:
    root = tmp_path / "uploads"
    root.mkdir()
    yield root
    while os.path.ismount(root):
        umount(root)


def config(uploads: Path, quarantine: Path) -> dict[str, object]:
    return {
        "quarantine_dir": str(quarantine), "rescan_interval": 0,
        "watches": [{"path": str(uploads), "role": "incoming", "on_known": "quarantine",
                     "include": ["*"], "settle_seconds": 0.3}],
    }  # fmt: skip


def banned_daemon(tmp_path: Path, uploads: Path) -> Daemon:
    daemon = Daemon(tmp_path, config(uploads, tmp_path / "quarantine"))
    photo(100, (320, 240)).save(tmp_path / "banned.png")
    assert (
        iw(
            daemon.db, "known", "add", "--create", "--list", "b", str(tmp_path / "banned.png")
        ).returncode
        == 0
    )
    return daemon


@needs_root
def test_a_watch_root_unmounted_and_mounted_again_is_watched_again(
    tmp_path: Path, uploads: Path
) -> None:
    mount(uploads)
    daemon = banned_daemon(tmp_path, uploads).start()
    try:
        umount(uploads)
        daemon.wait_for(rf"WARNING: watches\[0\]: {uploads}: the watch root went away")
        mount(uploads)
        daemon.wait_for(rf"INFO: watches\[0\]: {uploads}: the watch root is back")
        upload = uploads / "again.png"
        shutil.copy(tmp_path / "banned.png", upload)
        assert "known list=b" in daemon.processed(upload)
        assert not upload.exists()
        assert daemon.log().count("the watch root went away") == 1
        assert daemon.stop() == 0
    finally:
        daemon.kill()


@needs_root
def test_a_rescan_while_the_root_is_away_forgets_nothing(tmp_path: Path, uploads: Path) -> None:
    """An empty mount point is not an empty tree: what is recorded of it stays recorded."""
    mount(uploads)
    photo(7, (320, 240)).save(uploads / "kept.png")
    daemon = banned_daemon(tmp_path, uploads)
    daemon.write_config({**config(uploads, tmp_path / "quarantine"), "rescan_interval": 1})
    daemon.start()
    try:
        daemon.processed(uploads / "kept.png")
        umount(uploads)
        daemon.wait_for("the watch root went away")
        rescans = len(daemon.wait_for(r"reconcile: \d+ file"))
        daemon.wait_for(r"reconcile: \d+ file", count=rescans + 2)
        assert '"incoming": 1' in iw(daemon.db, "status", "--json").stdout
        mount(uploads)  # a fresh, empty tmpfs: now the file is gone for real
        daemon.wait_for("the watch root is back")
        daemon.wait_for(r"reconcile: \d+ file", count=rescans + 4)
        assert '"files": {}' in iw(daemon.db, "status", "--json").stdout
    finally:
        daemon.kill()


def test_a_watch_directory_missing_at_start_is_watched_once_made(tmp_path: Path) -> None:
    uploads = tmp_path / "uploads"
    daemon = banned_daemon(tmp_path, uploads).start()
    try:
        line = daemon.wait_for(rf"watches\[0\]\.path: {uploads}: no such directory")[0]
        assert "next rescan" not in line
        assert "watched as soon as it appears" in line
        uploads.mkdir()
        daemon.wait_for(rf"INFO: watches\[0\]: {uploads}: the watch root is back")
        upload = uploads / "late.png"
        shutil.copy(tmp_path / "banned.png", upload)
        assert "known list=b" in daemon.processed(upload)
    finally:
        daemon.kill()


def test_check_config_warns_about_a_missing_watch_directory(tmp_path: Path) -> None:
    daemon = Daemon(tmp_path, config(tmp_path / "nowhere", tmp_path / "q"))
    result = iw(daemon.db, "check-config", str(daemon.config_path))
    assert result.returncode == 0
    assert f"warning: watches[0].path: {tmp_path / 'nowhere'}: no such directory" in result.stderr
    assert "1 not there yet" in result.stdout
