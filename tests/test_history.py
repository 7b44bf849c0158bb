"""Migration 8 (batches, the action kind ``delete``), and the store's action and batch queries."""

from __future__ import annotations

import os
import sqlite3
from dataclasses import replace
from pathlib import Path, PurePosixPath

import pytest

from imagewatchd import fileops, journal
from imagewatchd.fileops import Location
from imagewatchd.models import FileStat
from imagewatchd.rows import NewAction
from imagewatchd.schema import MIGRATIONS
from imagewatchd.store import Store
from tests.conftest import database_at_version

SHA = "ab" * 32


def _action(kind: str = "move", batch_id: int | None = None) -> NewAction:
    return NewAction(
        kind=kind, src_root="/w", src_rel="a\udcff.jpg", dst_root="/m", dst_rel="a.jpg",
        tmp_name=None, sha256=SHA, stat=FileStat(1, 2, 3, 4), atime_ns=5, uid=6, gid=7,
        mode=0o100644, verdict="duplicate", evidence="{}", rule="watches[0].on_duplicate",
        batch_id=batch_id,
    )  # fmt: skip


def _version_7(path: Path) -> None:
    """A database as imagewatchd left it before migration 8: one action, its exemption."""
    db = database_at_version(path, 7)
    db.execute(
        "INSERT INTO actions (kind, state, src_root, src_rel, dst_root, dst_rel, sha256, device,"
        " inode, size, mtime_ns, atime_ns, uid, gid, mode, verdict, evidence, rule, created)"
        " VALUES ('restore', 'done', ?, ?, ?, 'q1', ?, 1, 2, 3, 4, 5, 6, 7, 8, '', '{}', 'c', 9)",
        (b"/w", os.fsencode("a\udcff.jpg"), b"/q", SHA),
    )
    db.execute("INSERT INTO exemptions VALUES (1, ?, ?, 9)", (b"/w/a\xff.jpg", SHA))
    db.commit()
    db.close()


def test_migrations_from_7_keep_actions_exemptions_and_byte_paths(tmp_path: Path) -> None:
    """Migrations 8 and 10 rebuild the actions table: nothing in it is lost."""
    path = tmp_path / "t.db"
    _version_7(path)
    with Store(path) as store:
        assert store.schema_version() == MIGRATIONS[-1][0] >= 10
        (old,) = store.actions()
        assert (old.kind, old.state, old.src_rel, old.batch_id) == ("restore", "done",
                                                                   "a\udcff.jpg", None)  # fmt: skip
        assert store.exemption("/w/a\udcff.jpg", SHA) == 1  # not lost to ON DELETE CASCADE
        deleted = store.intend(_action("delete"), now=10.0)
        store.finish(deleted, "done", 11.0)
        store.finish(old.id, "deleted", 11.0)
        assert store.check(thorough=True) == []
    db = sqlite3.connect(path)
    kinds = db.execute("SELECT typeof(src_rel), kind, state FROM actions ORDER BY id").fetchall()
    assert kinds == [("blob", "restore", "deleted"), ("blob", "delete", "done")]
    db.close()


def test_batches_group_actions_and_queries_filter_them(tmp_path: Path) -> None:
    with Store(tmp_path / "t.db") as store:
        assert store.batch() is None
        first = store.start_batch("scan --act /w", now=100.0)
        a = store.intend(_action(batch_id=first), now=101.0)
        store.finish_batch(first, now=102.0)
        second = store.start_batch("scan --act /v", now=200.0)
        b = store.intend(_action(batch_id=second), now=201.0)
        c = store.intend(_action(), now=300.0)
        last = store.batch()
        assert last is not None
        assert (last.id, last.command, last.finished, last.actions) == (second, "scan --act /v",
                                                                        None, 1)  # fmt: skip
        assert [r.id for r in store.actions(batch=first)] == [a]
        assert [r.id for r in store.actions(since=200.0)] == [b, c]
        assert [r.id for r in store.actions(ids=(a, b))] == [a, b]
        assert store.batch(999) is None


def _quarantined(tmp_path: Path) -> tuple[Store, int, Path]:
    """A quarantine action (done) whose file is in ``q``; (store, its id, the stored file)."""
    (tmp_path / "q").mkdir()
    stored = tmp_path / "q" / "20260101-000000-abab"
    stored.write_bytes(b"x")
    store = Store(tmp_path / "t.db")
    action = replace(_action("quarantine"), dst_root=str(tmp_path / "q"), dst_rel=stored.name)
    action_id = store.intend(action, now=1.0)
    store.finish(action_id, "done", 2.0)
    return store, action_id, stored


@pytest.mark.parametrize("file_gone", [False, True])
def test_recovery_settles_a_delete_a_crash_interrupted(tmp_path: Path, file_gone: bool) -> None:
    store, quarantine_id, stored = _quarantined(tmp_path)
    info = stored.stat()
    delete = replace(_action("delete"), src_root=str(stored.parent), src_rel=stored.name,
                     dst_root=None, dst_rel=None, stat=FileStat.of(info),
                     reverses=quarantine_id)  # fmt: skip
    delete_id = store.intend(delete, now=3.0)
    if file_gone:
        stored.unlink()  # the crash came after the unlink, before the journal said so
    assert journal.recover(store) == 1
    settled, quarantined = store.action(delete_id), store.action(quarantine_id)
    assert settled is not None and quarantined is not None
    want = ("done", "deleted") if file_gone else ("rolled_back", "done")
    assert (settled.state, quarantined.state) == want
    assert stored.exists() is not file_gone
    store.close()


def test_remove_empty_dirs_stops_at_files_symlinks_and_the_root(tmp_path: Path) -> None:
    root = tmp_path / "root"
    (root / "a" / "b" / "c").mkdir(parents=True)
    (root / "keep").mkdir()
    (root / "keep" / "f").write_text("f")
    (tmp_path / "elsewhere").mkdir()
    (root / "keep" / "link").symlink_to(tmp_path / "elsewhere")
    removed = fileops.remove_empty_dirs(Location(root, PurePosixPath("a/b/c")))
    assert removed == [root / "a" / "b" / "c", root / "a" / "b", root / "a"]
    assert root.is_dir()
    assert fileops.remove_empty_dirs(Location(root, PurePosixPath("keep/link"))) == []
    assert (tmp_path / "elsewhere").is_dir() and (root / "keep" / "link").is_symlink()
    assert fileops.remove_empty_dirs(Location(root, PurePosixPath("keep"))) == []
    assert fileops.remove_empty_dirs(Location(root, PurePosixPath("."))) == []
