"""The daemon is ready without reading the whole database: before it acts, it checks what
start-up reads (the journal rows recovery finishes, the lists); the rest is checked in the
background once it is ready, and damage found there stops it as damage found anywhere does."""

from __future__ import annotations

import shutil
import sqlite3
from pathlib import Path

import pytest

from imagewatchd.errors import EXIT_DAMAGED
from imagewatchd.models import FileStat, Fingerprint, Role
from imagewatchd.rows import NewAction
from imagewatchd.store import Store
from imagewatchd.store import sqlite_check as store_check
from tests.daemon_harness import Daemon
from tests.test_damaged_db import DAMAGED, clear_exit, config, site, tree
from tests.test_query_plans import scans, traced

__all__ = ["site"]  # the fixture, used by name


def _action(store: Store, name: str) -> int:
    stat = FileStat(size=1, mtime_ns=1, device=1, inode=1)
    action = NewAction(
        "quarantine", "/in", name, "/q", name, None, "a" * 64, stat, 1, 0, 0, 0o644,
        "known", "{}", "watches[0].on_known",
    )  # fmt: skip
    return store.intend(action, 1.0)


def _journal(tmp_path: Path) -> tuple[Path, int, int]:
    """A store with a finished and an unfinished (intended) action; their ids."""
    path = tmp_path / "j.db"
    with Store(path) as store:
        done = _action(store, "done.jpg")
        store.finish(done, "done", 2.0)
        intended = _action(store, "intended.jpg")
    return path, done, intended


def _problems(path: Path) -> tuple[list[str], list[str]]:
    """(what start-up finds, what the whole quick check finds)."""
    with Store(path) as store:
        return store.startup_check(), store.check(thorough=False)


def test_start_up_checks_the_rows_recovery_reads(tmp_path: Path) -> None:
    path, done, intended = _journal(tmp_path)
    assert _problems(path) == ([], [])
    with sqlite3.connect(path) as db:
        db.execute("UPDATE actions SET sha256 = 'not hex' WHERE id = ?", (done,))
    startup, whole = _problems(path)
    assert startup == []  # recovery never reads a finished action
    assert whole == [f"actions row {done}: damaged value in sha256"]
    with sqlite3.connect(path) as db:
        db.execute("UPDATE actions SET size = 'big' WHERE id = ?", (intended,))
    startup, whole = _problems(path)
    assert startup == [f"actions row {intended}: damaged value in size"]
    assert len(whole) == 2


def test_start_up_reads_no_table_that_grows_with_the_library(tmp_path: Path) -> None:
    path, _, _ = _journal(tmp_path)
    with Store(path) as store:
        with traced(store) as statements:
            assert store.startup_check() == []
        found = scans(store, [s for s in statements if not s.endswith(" LIMIT 1")])
    assert [s for s in statements if '"files"' in s] == [
        'SELECT * FROM "files" ORDER BY rowid ASC LIMIT 1',  # one row each: the tree's edges
        'SELECT * FROM "files" ORDER BY rowid DESC LIMIT 1',
    ]
    assert not [(s, plan) for s, plan in found if "actions" in plan], found


def test_damage_only_the_background_check_finds_stops_the_ready_daemon(
    site: dict[str, Path], tmp_path: Path
) -> None:
    daemon = Daemon(tmp_path, config(site))
    daemon.db.parent.mkdir(parents=True)
    shutil.copy(site["db"], daemon.db)
    with sqlite3.connect(daemon.db) as db:  # a library row: start-up does not read it
        db.execute("UPDATE files SET dhash = 'not a number' WHERE id = 5")
    before = tree(site["uploads"]), tree(site["library"])
    daemon.start(wait=False)
    try:
        assert daemon.proc is not None
        assert daemon.proc.wait(timeout=60) == EXIT_DAMAGED
        log = daemon.log()
        assert clear_exit(daemon) == EXIT_DAMAGED
    finally:
        daemon.kill()
    assert log.index("watching ") < log.index(DAMAGED), log  # ready first, then the check
    assert "files row 5: damaged value" in log  # by the check, or by whatever read it first
    assert (tree(site["uploads"]), tree(site["library"])) == before
    assert not site["quarantine"].exists()


def test_a_sound_database_is_checked_once_after_ready(
    site: dict[str, Path], tmp_path: Path
) -> None:
    daemon = Daemon(tmp_path, config(site))
    daemon.db.parent.mkdir(parents=True)
    shutil.copy(site["db"], daemon.db)
    daemon.start()
    try:
        daemon.wait_for(r"database check: ok \(")
        assert daemon.log().index("watching ") < daemon.log().index("database check: ok")
        assert daemon.stop(timeout=20) == 0
    finally:
        daemon.kill()


def test_the_startup_rows_are_tables_the_whole_check_covers() -> None:
    assert set(store_check.STARTUP_ROWS) <= set(store_check.RULES)


def test_a_damaged_value_read_before_the_check_ends_is_damage(tmp_path: Path) -> None:
    """Until the background check ends, a thread may read a damaged row first: that is damage
    too (one line naming the row), not a traceback."""
    with Store(tmp_path / "t.db") as store:
        fp = Fingerprint("ab" * 32, 1, 2, 1, 1, "JPEG", False)
        file_id = store.save_file("/lib/a.jpg", FileStat(1, 2, 3, 4), Role.LIBRARY, fp, 1.0)
    with sqlite3.connect(tmp_path / "t.db") as db:
        db.execute("UPDATE files SET dhash = 'x' WHERE id = ?", (file_id,))
    with Store(tmp_path / "t.db") as store, pytest.raises(store_check.DAMAGE_ERRORS) as caught:
        store.get_file("/lib/a.jpg")
    assert store_check.damage(caught.value) == (
        f"files row {file_id}: damaged value (a hash stored as str)"
    )
