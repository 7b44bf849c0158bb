"""The quarantine's life and directory removal against a real running daemon."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.daemon_harness import Daemon, iw
from tests.test_daemon_journal import banned_daemon, upload


@pytest.fixture
def started() -> Iterator[list[Daemon]]:
    running: list[Daemon] = []
    yield running
    for daemon in running:
        daemon.kill()


def test_the_daemon_keeps_upload_directories_and_a_delete_runs_beside_it(
    tmp_path: Path, started: list[Daemon]
) -> None:
    base = tmp_path
    daemon = banned_daemon(base, base / "quarantine")
    started.append(daemon.start())
    (base / "uploads" / "2026" / "11").mkdir(parents=True)
    banned = upload(base / "uploads" / "2026" / "11" / "a.jpg", 1)
    assert "-> quarantine" in daemon.processed(banned)
    assert (base / "uploads" / "2026" / "11").is_dir()  # the uploader may write here next
    listed = iw(daemon.db, "quarantine", "list", "--json", config=daemon.config_path)
    (row,) = json.loads(listed.stdout)
    deleted = iw(daemon.db, "quarantine", "delete", str(row["id"]), config=daemon.config_path)
    assert deleted.returncode == 0, deleted.stderr
    assert f"action {row['id']}: deleted {row['stored']}" in deleted.stdout
    assert list((base / "quarantine").iterdir()) == []
    marker = upload(base / "uploads" / "b.jpg", 2)
    assert "-> quarantine" in daemon.processed(marker)  # the daemon goes on as before
    assert daemon.stop() == 0
