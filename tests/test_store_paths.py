"""Paths in the store are the exact bytes of the file name, whatever they are (Linux paths)."""

from __future__ import annotations

import os
import sqlite3
from dataclasses import replace
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from imagewatchd.models import FileStat, Fingerprint, Role
from imagewatchd.rows import NewAction
from imagewatchd.store import Store
from tests.conftest import OpenStore, database_at_version

# A file name is any bytes but "/" and NUL; the interesting ones are not valid UTF-8.
names = st.binary(min_size=1, max_size=24).filter(lambda b: b"/" not in b and b"\0" not in b)
STAT = FileStat(device=1, inode=2, size=3, mtime_ns=4)
FP = Fingerprint("ab" * 32, 1, 2, 10, 10, "PNG", False)
BAD = os.fsdecode(b"badutf8-\xff\xfe\xc0.png")


def action_for(src_root: str, src_rel: str, dst_rel: str, reverses: int | None = None) -> NewAction:
    return NewAction(
        kind="quarantine", src_root=src_root, src_rel=src_rel, dst_root="/q", dst_rel=dst_rel,
        tmp_name=".tmp-" + dst_rel, sha256="ab" * 32, stat=STAT, atime_ns=0, uid=0, gid=0,
        mode=0o644, verdict="known", evidence="{}", rule="watches[0].on_known",
        reverses=reverses,
    )  # fmt: skip


@settings(max_examples=60, deadline=None)
@given(root=names, name=names, sub=names, other=names)
def test_any_byte_name_round_trips_through_the_store(
    new_store: OpenStore, root: bytes, name: bytes, sub: bytes, other: bytes
) -> None:
    top = os.fsdecode(b"/w/" + root)
    path = os.fsdecode(b"/w/" + root + b"/" + sub + b"/" + name)
    with new_store() as store:
        file_id = store.save_file(path, STAT, Role.INCOMING, FP, now=1.0)
        row = store.get_file(path)
        assert row is not None
        assert (row.id, os.fsencode(row.path)) == (file_id, os.fsencode(path))
        assert list(store.files_under(top)) == [(file_id, path)]
        store.mark_watch_indexed(top, now=1.0)
        assert store.watch_indexed(top)
        action_id = store.intend(action_for(top, os.fsdecode(sub + b"/" + name), BAD), now=1.0)
        store.retarget(action_id, os.fsdecode(other))
        store.finish(action_id, "failed", 2.0, error=f"{path}: no space left on device")
        action = store.action(action_id)
        assert action is not None
        assert (action.src_root, action.src_rel, action.dst_rel, action.tmp_name) == (
            top, os.fsdecode(sub + b"/" + name), os.fsdecode(other), ".tmp-" + BAD,
        )  # fmt: skip
        moved = os.fsdecode(b"/v/" + other)
        assert store.rename_paths(top, moved) == 1
        new_path = os.fsdecode(b"/v/" + other + b"/" + sub + b"/" + name)
        assert store.get_file(path) is None
        assert store.get_file(new_path) == replace(row, path=new_path)
        store.forget_path(new_path)
        assert store.get_file(new_path) is None


@settings(max_examples=40, deadline=None)
@given(root=names, paths=st.lists(st.lists(names, min_size=1, max_size=3), max_size=8))
def test_files_under_is_exactly_the_byte_prefix(
    new_store: OpenStore, root: bytes, paths: list[list[bytes]]
) -> None:
    """Siblings that share the root's first bytes ("/a0", "/a\\xff/x", "/a-b") are not under it."""
    candidates = {b"/" + b"/".join(parts) for parts in paths}
    candidates |= {b"/" + root + b"/" + b"/".join(p) for p in paths}
    candidates |= {b"/" + root + suffix for suffix in (b"0", b"\xff", b"-b", b".", b"")}
    with new_store() as store:
        ids = {store.save_file(os.fsdecode(p), STAT, Role.LIBRARY, FP, 1.0): p for p in candidates}
        top = b"/" + root
        expected = {(i, p) for i, p in ids.items() if p == top or p.startswith(top + b"/")}
        found = {(i, os.fsencode(p)) for i, p in store.files_under(os.fsdecode(top))}
        assert found == expected


def test_path_queries_search_the_unique_index_on_path(tmp_path: Path) -> None:
    with Store(tmp_path / "t.db") as store:
        for n in range(50):
            store.save_file(f"/w/{n}/a.png", STAT, Role.LIBRARY, FP, 1.0)
        statements: list[str] = []
        db = store._db
        assert isinstance(db, sqlite3.Connection)  # the plans are SQLite's
        db.set_trace_callback(statements.append)
        list(store.files_under("/w/1"))
        store.rename_paths("/w/2", "/w/two")
        store.get_file("/w/3/a.png")
        db.set_trace_callback(None)
        selects = [s for s in statements if s.lstrip().startswith("SELECT") and "path" in s]
        assert len(selects) == 3
        for statement in selects:
            plan = " | ".join(r[3] for r in store._db.execute("EXPLAIN QUERY PLAN " + statement))
            assert "SCAN files" not in plan, (statement, plan)
            assert "INDEX sqlite_autoindex_files_1 (path>? AND path<?)" in plan or (
                "(path=?)" in plan and ">" not in statement
            ), (statement, plan)


def _database_at_version_3(path: Path) -> None:
    db = database_at_version(path, 3)
    db.execute(
        "INSERT INTO files (id, path, device, inode, size, mtime_ns, role, sha256, first_seen,"
        " last_seen) VALUES (7, '/lib/caf\u00e9.jpg', 1, 2, 3, 4, 'library', 'ab', 1, 1)"
    )
    db.execute("INSERT INTO watches VALUES ('/lib', 5)")
    for action_id, reverses in ((1, None), (2, 1)):
        db.execute(
            "INSERT INTO actions (id, kind, state, src_root, src_rel, dst_root, dst_rel, tmp_name,"
            " sha256, device, inode, size, mtime_ns, atime_ns, uid, gid, mode, verdict, evidence,"
            " rule, reverses, created) VALUES (?, 'quarantine', 'done', '/up', 'd/x.png', '/q',"
            " 'q.png', NULL, 'ab', 1, 2, 3, 4, 5, 6, 7, 8, 'known', '{}', 'r', ?, 9)",
            (action_id, reverses),
        )
    db.close()


def test_migration_4_turns_stored_text_paths_into_their_bytes(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    _database_at_version_3(path)
    with Store(path) as store:
        assert store.schema_version() >= 4
        row = store.get_file("/lib/caf\u00e9.jpg")
        assert row is not None and row.id == 7
        assert store.watch_indexed("/lib")
        undo = store.action(2)
        assert undo is not None
        assert (undo.src_root, undo.src_rel, undo.dst_root, undo.dst_rel, undo.tmp_name) == (
            "/up", "d/x.png", "/q", "q.png", None,
        )  # fmt: skip
        assert undo.reverses == 1
        store.save_file(BAD, STAT, Role.INCOMING, FP, now=2.0)
    db = sqlite3.connect(path)
    kinds = db.execute(
        "SELECT typeof(path) FROM files UNION SELECT typeof(path) FROM watches"
        " UNION SELECT typeof(src_root) || typeof(src_rel) || typeof(dst_root)"
        " || typeof(dst_rel) FROM actions"
    ).fetchall()
    assert set(kinds) == {("blob",), ("blobblobblobblob",)}
    assert db.execute("SELECT path FROM files WHERE id = 7").fetchone() == (
        "/lib/caf\u00e9.jpg".encode(),
    )
    indexes = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type = 'index'")}
    assert {"files_sha256", "files_inode", "actions_state", "actions_kind"} <= indexes
    assert db.execute("PRAGMA foreign_key_check").fetchall() == []
    db.close()


def test_the_hashes_of_the_incoming_files_below_an_inbox_column_wise(new_store: OpenStore) -> None:
    big = (1 << 63) + 5  # a hash with its top bit set comes back unsigned
    with new_store() as store:
        inside = store.save_file(f"/in/{BAD}", STAT, Role.INCOMING, replace(FP, dhash=big), 1.0)
        deeper = store.save_file("/in/sub/b.png", STAT, Role.INCOMING, replace(FP, phash=7), 1.0)
        store.save_file("/in/flat.png", STAT, Role.INCOMING, replace(FP, flat=True), 1.0)
        store.save_file_error("/in/bad.png", STAT, Role.INCOMING, "truncated", 1.0)
        store.save_file("/in/lib.png", STAT, Role.LIBRARY, FP, 1.0)  # not an incoming file
        store.save_file("/in2/c.png", STAT, Role.INCOMING, FP, 1.0)  # beside, not below
        ids, dhashes, phashes = store.incoming_hashes_under(["/in", "/in/sub"])  # roots nest
        assert (ids.tolist(), dhashes.tolist(), phashes.tolist()) == (
            [inside, deeper], [big, 1], [2, 7],
        )  # fmt: skip
        assert len(store.incoming_hashes_under([])[0]) == 0
