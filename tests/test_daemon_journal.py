"""The journal against a running daemon: undo, failed moves retried, records that lag a move.

Real ``imagewatchd run`` subprocesses on real directories; a full disk is a real tmpfs mount.
"""

from __future__ import annotations

import errno
import json
import os
import re
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import closing, contextmanager
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import photo
from tests.daemon_harness import Daemon, iw
from tests.test_notify import Listener

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


def banned_daemon(
    base: Path, quarantine: Path, settle: float = SETTLE, env: dict[str, str] | None = None
) -> Daemon:
    (base / "uploads").mkdir(parents=True, exist_ok=True)
    config = uploads_config(base, quarantine)
    config["watches"][0]["settle_seconds"] = settle
    daemon = Daemon(base, config, env=env)
    banned = base / "banned.jpg"
    photo(100, (800, 600)).save(banned, quality=90)
    added = iw(daemon.db, "known", "add", "--create", "--list", "banned", str(banned))
    assert added.returncode == 0, added.stderr
    return daemon


def upload(path: Path, number: int, scale: int = 1) -> Path:
    """A variant of the banned picture, distinct bytes per number."""
    photo(100, (scale * (400 + 8 * number), scale * (300 + 6 * number))).save(path, quality=85)
    return path


def query(db: Path, sql: str, *params: object) -> list[tuple[Any, ...]]:
    with closing(sqlite3.connect(db, timeout=30)) as conn:
        return conn.execute(sql, params).fetchall()


@contextmanager
def tmpfs(where: Path, size: str) -> Iterator[Path]:
    """A small filesystem of its own at ``where`` (the tests run as root; skipped if not)."""
    where.mkdir(parents=True, exist_ok=True)
    mount = ["mount", "-t", "tmpfs", "-o", f"size={size},mode=0700", "tmpfs", str(where)]
    mounted = subprocess.run(mount, capture_output=True, text=True, check=False)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.strip()}")
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], check=False)


def fill(directory: Path) -> Path:
    """Fill the filesystem of ``directory`` to the last byte; returns the filler file."""
    filler = directory / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        for size in (1 << 20, 4096, 1):
            while _write_some(fd, size):
                pass
    finally:
        os.close(fd)
    return filler


def _write_some(fd: int, size: int) -> bool:
    try:
        return os.write(fd, bytes(size)) == size
    except OSError as exc:
        if exc.errno != errno.ENOSPC:
            raise
        return False


def status(daemon: Daemon) -> dict[str, Any]:
    done = iw(daemon.db, "status", "--json", config=daemon.config_path)
    assert done.returncode == 0, done.stderr
    result: dict[str, Any] = json.loads(done.stdout)
    return result


def wait_status(
    daemon: Daemon, condition: Callable[[dict[str, Any]], bool], timeout: float = 10.0
) -> dict[str, Any]:
    """``imagewatchd status --json`` until ``condition`` holds for it."""
    deadline = time.monotonic() + timeout
    while True:
        current = status(daemon)
        if condition(current):
            return current
        assert time.monotonic() < deadline, f"status never matched: {current}"
        time.sleep(0.2)


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
                os.fsencode(path.name),
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


# -- #6: a failed move is retried with backoff ------------------------------------------------


def status_line(listener: Listener, text: str, timeout: float = 10.0) -> str:
    """The first STATUS= the service manager got that contains ``text``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for message in listener.drain():
            for line in message.splitlines():
                if line.startswith("STATUS=") and text in line:
                    return line
    raise AssertionError(f"no STATUS with {text!r} in {listener.messages}")


def test_a_quarantine_onto_a_full_disk_is_retried_once_space_is_freed(
    tmp_path: Path, daemons: list[Daemon]
) -> None:
    listener = Listener(str(tmp_path / "notify.sock"))
    with closing(listener.sock), tmpfs(tmp_path / "small", "1m") as small:  # closed on a skip too
        quarantine = small / "quarantine"
        quarantine.mkdir(mode=0o700)
        env = {"NOTIFY_SOCKET": str(tmp_path / "notify.sock")}
        daemon = banned_daemon(tmp_path, quarantine, env=env)
        daemons.append(daemon.start())
        filler = fill(small)
        banned = upload(tmp_path / "uploads" / "banned-upload.jpg", 1)
        (failed,) = daemon.wait_for(r"banned-upload\.jpg: known: quarantine failed")
        assert "no space left on device; retrying in 5 s" in failed.lower(), failed
        assert banned.exists()
        pending = wait_status(daemon, lambda s: s["retries"]["pending"] == 1)
        assert pending["retries"]["path"] == str(banned), pending
        assert "no space left" in pending["retries"]["reason"].lower(), pending
        status_line(listener, "; 1 retries pending, next in ")
        filler.unlink()
        freed = time.monotonic()
        line = daemon.processed(banned, timeout=30)
        assert "-> quarantine" in line, line
        assert time.monotonic() - freed < 5 + 3, "not retried within the backoff"
        assert not banned.exists()
        assert len(daemon.wait_for(r"reconcile: \d+ file")) == 1, "a rescan did the retry"
        wait_status(daemon, lambda s: s["retries"]["pending"] == 0)
        status_line(listener, "; no retries;")
        assert daemon.stop() == 0


def test_a_file_not_processed_because_the_database_is_full_is_retried(
    tmp_path: Path, daemons: list[Daemon]
) -> None:
    with tmpfs(tmp_path / "state", "4m") as state:
        daemon = banned_daemon(tmp_path, tmp_path / "quarantine")
        daemons.append(daemon.start())
        filler = fill(state)
        banned = upload(tmp_path / "uploads" / "db-full.jpg", 1)
        daemon.wait_for(
            rf"ERROR: {re.escape(str(banned))}: not processed: OperationalError\('database or "
            r"disk is full'\); retrying in 5 s"
        )
        assert banned.exists()
        filler.unlink()
        assert "-> quarantine" in daemon.processed(banned, timeout=15)
        assert not banned.exists()
        assert daemon.stop() == 0


def test_retries_back_off_while_the_disk_stays_full(tmp_path: Path, daemons: list[Daemon]) -> None:
    with tmpfs(tmp_path / "small", "1m") as small:
        quarantine = small / "quarantine"
        quarantine.mkdir(mode=0o700)
        daemon = banned_daemon(tmp_path, quarantine)
        daemons.append(daemon.start())
        fill(small)
        upload(tmp_path / "uploads" / "stuck.jpg", 1)
        lines = daemon.wait_for(r"stuck\.jpg: known: quarantine failed", timeout=40, count=3)
        delays = [int(re.findall(r"retrying in (\d+) s", line)[0]) for line in lines]
        assert delays == [5, 10, 20], lines
        assert daemon.stop() == 0


# -- #7: a journal entry that cannot be written after the move -----------------------------------

# The real daemon, with one test hook: while the trigger file exists, each move is followed at
# once by filling the database's filesystem, so that the journal's "done" cannot be written.
FILL_AFTER_MOVE = """
import errno, os, sys
from pathlib import Path
from imagewatchd import cli, fileops

trigger = Path(sys.argv[1])
original = fileops.move

def move_then_fill(*args, **kwargs):
    result = original(*args, **kwargs)
    if trigger.exists():
        fd = os.open(trigger.parent / "filler", os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        try:
            for size in (1 << 20, 4096, 1):
                while True:
                    try:
                        os.write(fd, bytes(size))
                    except OSError as exc:
                        if exc.errno != errno.ENOSPC:
                            raise
                        break
        finally:
            os.close(fd)
    return result

fileops.move = move_then_fill
sys.exit(cli.main(sys.argv[2:]))
"""
UNRECORDED = (
    r"known .* -> quarantine .* \[action (\d+)\], not yet recorded: database or disk is full; "
    r"recorded once the database can be written"
)


def full_database_daemon(base: Path, state: Path) -> tuple[Daemon, Path]:
    daemon = banned_daemon(base, base / "quarantine")
    trigger = state / "fill-after-move"
    daemon.program = [sys.executable, "-c", FILL_AFTER_MOVE, str(trigger)]
    return daemon, trigger


def action_state(db: Path, action_id: str) -> str:
    ((state,),) = query(db, "SELECT state FROM actions WHERE id = ?", int(action_id))
    return str(state)


def test_a_move_recorded_late_says_so_and_is_recorded_once_space_is_freed(
    tmp_path: Path, daemons: list[Daemon]
) -> None:
    with tmpfs(tmp_path / "state", "4m") as state:
        daemon, trigger = full_database_daemon(tmp_path, state)
        daemons.append(daemon.start())
        trigger.touch()
        banned = upload(tmp_path / "uploads" / "late.jpg", 1)
        (line,) = daemon.wait_for(rf"WARNING: {re.escape(str(banned))}: {UNRECORDED}")
        action_id = re.findall(r"\[action (\d+)\]", line)[0]
        assert not banned.exists()
        assert "not processed" not in daemon.log()
        trigger.unlink()
        (state / "filler").unlink()
        daemon.wait_for(
            rf"{re.escape(str(banned))}: moved to .*, now recorded \[action {action_id}\]"
        )
        assert action_state(daemon.db, action_id) == "done"
        assert daemon.stop() == 0


def test_a_move_not_yet_recorded_at_exit_is_finished_by_the_next_start(
    tmp_path: Path, daemons: list[Daemon]
) -> None:
    with tmpfs(tmp_path / "state", "4m") as state:
        daemon, trigger = full_database_daemon(tmp_path, state)
        daemons.append(daemon.start())
        trigger.touch()
        banned = upload(tmp_path / "uploads" / "at-exit.jpg", 1)
        (line,) = daemon.wait_for(UNRECORDED)
        action_id = re.findall(r"\[action (\d+)\]", line)[0]
        assert daemon.stop(timeout=30) == 0  # a clean exit, although it could not record it
        daemon.wait_for(
            rf"WARNING: {re.escape(str(banned))}: moved to .*, still not recorded: database or "
            rf"disk is full; the next start-up's recovery records it \[action {action_id}\]"
        )
        assert action_state(daemon.db, action_id) == "intended"
        trigger.unlink()
        (state / "filler").unlink()
        daemon.start()
        daemon.wait_for(rf"recovered action {action_id} \(quarantine {re.escape(str(banned))}\)"
                        r": done$")  # fmt: skip
        assert action_state(daemon.db, action_id) == "done"
        assert daemon.stop() == 0
