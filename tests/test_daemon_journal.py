"""The journal against a running daemon: undo, failed moves retried, records that lag a move.

Real ``imagewatchd run`` subprocesses on real directories; a full disk is a real tmpfs mount.
"""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import photo
from tests.daemon_harness import Daemon, iw

SETTLE = 0.3


def uploads_config(base: Path, quarantine: Path, **extra: Any) -> dict[str, Any]:
    return {
        "quarantine_dir": str(quarantine),
        "rescan_interval": 3600,  # no rescan timer fires during a test
        "watches": [
            {"path": str(base / "uploads"), "role": "incoming", "on_known": "quarantine",
             "on_duplicate": "log", "include": ["*"], "settle_seconds": SETTLE},
        ],
        **extra,
    }  # fmt: skip


def banned_daemon(base: Path, quarantine: Path, settle: float = SETTLE) -> Daemon:
    (base / "uploads").mkdir(parents=True, exist_ok=True)
    config = uploads_config(base, quarantine)
    config["watches"][0]["settle_seconds"] = settle
    daemon = Daemon(base, config)
    banned = base / "banned.jpg"
    photo(100, (800, 600)).save(banned, quality=90)
    added = iw(daemon.db, "known", "add", "--list", "banned", str(banned))
    assert added.returncode == 0, added.stderr
    return daemon


def upload(path: Path, number: int, scale: int = 1) -> Path:
    """A variant of the banned picture, distinct bytes per number."""
    photo(100, (scale * (400 + 8 * number), scale * (300 + 6 * number))).save(path, quality=85)
    return path


def query(db: Path, sql: str, *params: object) -> list[tuple[Any, ...]]:
    with closing(sqlite3.connect(db, timeout=30)) as conn:
        return conn.execute(sql, params).fetchall()


@pytest.fixture
def daemons() -> Iterator[list[Daemon]]:
    made: list[Daemon] = []
    yield made
    for daemon in made:
        daemon.kill()


# -- #8: undo while the daemon runs ----------------------------------------------------------


UNDO_ROUNDS = 3
UNDO_FILES = 3
UNDO_SCALE = 7  # PNGs of ~3000 x 2000: reading one back takes longer than the daemon's settle


def test_files_undone_while_the_daemon_runs_are_not_moved_again(
    tmp_path: Path, daemons: list[Daemon]
) -> None:
    """Each file is put back at the instant the daemon may see it: the decision to keep it
    must be on record before it arrives, not after (issue 7, #8)."""
    daemon = banned_daemon(tmp_path, tmp_path / "quarantine", settle=0.05)
    daemons.append(daemon.start())
    uploads = tmp_path / "uploads"
    for round_ in range(UNDO_ROUNDS):
        files = [upload(uploads / f"r{round_}-{n}.png", n, UNDO_SCALE) for n in range(UNDO_FILES)]
        for path in files:
            assert "-> quarantine" in daemon.processed(path)
        ids = [
            str(row[0])
            for path in files
            for row in query(
                daemon.db, "SELECT id FROM actions WHERE kind = 'quarantine' AND src_rel = ?",
                path.name,
            )
        ]  # fmt: skip
        undone = iw(daemon.db, "undo", *ids)
        assert undone.returncode == 0, undone.stderr
        marker = upload(uploads / f"marker-{round_}.jpg", 40 + round_)
        daemon.processed(marker)  # the daemon has caught up with the files put back
        log = daemon.log()
        for path in files:
            assert path.exists(), f"{path} was moved again after undo:\n{log}"
            assert log.count(f"INFO: {path}: known") <= 2, log
        kept = re.findall(r"-> none \(kept: undone by action (\d+)\)", log)
        undo_ids = {str(r[0]) for r in query(daemon.db, "SELECT id FROM actions WHERE kind ="
                                             " 'restore'")}  # fmt: skip
        assert set(kept) <= undo_ids
    assert daemon.stop() == 0
