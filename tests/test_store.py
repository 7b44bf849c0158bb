"""The store, on both backends (``new_store``): round trips of files and list entries; and
the SQLite file's migrations and WAL."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from imagewatchd.errors import DatabaseDamaged, StoreError
from imagewatchd.models import FileStat, Fingerprint, ListKind, Role
from imagewatchd.rows import NewAction, NewEntry, to_signed, to_unsigned
from imagewatchd.schema import MIGRATIONS
from imagewatchd.store import Store
from tests.conftest import OpenStore

hashes = st.integers(min_value=0, max_value=2**64 - 1)
sha256s = st.text("0123456789abcdef", min_size=64, max_size=64)


@given(hashes)
def test_signed_conversion_round_trips(value: int) -> None:
    signed = to_signed(value)
    assert -(2**63) <= signed < 2**63
    assert to_unsigned(signed) == value


@settings(max_examples=40, deadline=None)
@given(
    sha=sha256s, dhash=hashes, phash=hashes, flat=st.booleans(),
    size=st.integers(0, 2**40), mtime=st.integers(0, 2**62),
)  # fmt: skip
def test_file_rows_round_trip(
    new_store: OpenStore, sha: str, dhash: int, phash: int, flat: bool,
    size: int, mtime: int,
) -> None:  # fmt: skip
    with new_store() as store:
        stat = FileStat(device=2049, inode=1234, size=size, mtime_ns=mtime)
        fp = Fingerprint(sha, dhash, phash, 4000, 3000, "JPEG", flat)
        file_id = store.save_file("/lib/a.jpg", stat, Role.LIBRARY, fp, now=1000.0)
        row = store.get_file("/lib/a.jpg")
        assert row is not None
        assert (row.id, row.stat, row.sha256, row.dhash, row.phash, row.flat) == (
            file_id, stat, sha, dhash, phash, flat,
        )  # fmt: skip
        assert row.unchanged(stat)
        assert not row.unchanged(FileStat(2049, 1234, size + 1, mtime))
        assert not row.unchanged(FileStat(2049, 999, size, mtime))
        assert store.files_by_sha256(sha, Role.LIBRARY) == [row]


@settings(max_examples=30, deadline=None)
@given(
    st.lists(
        st.tuples(st.one_of(st.none(), sha256s), st.one_of(st.none(), st.tuples(hashes, hashes)),
                  st.text(max_size=20)).filter(lambda t: t[0] is not None or t[1] is not None),
        max_size=12,
    )
)  # fmt: skip
def test_entries_round_trip(
    new_store: OpenStore,
    items: list[tuple[str | None, tuple[int, int] | None, str]],
) -> None:
    with new_store() as store:
        list_id = store.create_list("banned", ListKind.BLOCK, "", now=1.0)
        new = [
            NewEntry(sha, pair[0] if pair else None, pair[1] if pair else None, label=label)
            for sha, pair, label in items
        ]
        added, skipped = store.add_entries(list_id, new, now=2.0)
        distinct = {(e.sha256, e.dhash, e.phash) for e in new}
        assert len(added) == len(distinct)
        assert skipped == len(new) - len(distinct)
        rows = store.entries("banned")
        assert {(r.sha256, r.dhash, r.phash) for r in rows} == distinct
        assert all(r.list_kind is ListKind.BLOCK and r.enabled for r in rows)
        _, dhashes, phashes = store.near_entry_hashes_after(0)
        near = set(zip(dhashes.tolist(), phashes.tolist(), strict=True))
        assert near == {(e.dhash, e.phash) for e in new if e.dhash is not None}


def test_wal_migrations_and_reopen(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "dir" / "t.db"
    with Store(path) as store:
        assert store.schema_version() == MIGRATIONS[-1][0]
        store.create_list("x", ListKind.ALLOW, "d", now=1.0)
    with Store(path) as store:  # reopening applies nothing twice
        assert store.schema_version() == MIGRATIONS[-1][0]
        assert [r.name for r in store.lists()] == ["x"]
    db = sqlite3.connect(path)
    assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert db.execute("SELECT COUNT(*) FROM migrations").fetchone()[0] == len(MIGRATIONS)
    db.close()


def test_database_from_a_newer_version_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "t.db"
    Store(path).close()
    db = sqlite3.connect(path)
    db.execute("INSERT INTO migrations VALUES (99, 'future', 0)")
    db.commit()
    db.close()
    with pytest.raises(StoreError, match="newer imagewatchd"):
        Store(path)


def test_unreadable_or_bogus_database(tmp_path: Path) -> None:
    bogus = tmp_path / "bogus.db"
    bogus.write_bytes(b"this is not a database" * 100)
    with pytest.raises(DatabaseDamaged, match=r"the database is damaged \(file is not a database"):
        Store(bogus)
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(StoreError, match="cannot open the database"):
        Store(blocker / "t.db")


def test_transaction_rolls_back_on_error(new_store: OpenStore) -> None:
    with new_store() as store:

        def create_then_fail() -> None:
            with store.transaction():
                store.create_list("a", ListKind.BLOCK, "", now=1.0)
                raise RuntimeError("boom")

        with pytest.raises(RuntimeError):
            create_then_fail()
        assert store.lists() == []
        with store.transaction():
            store.create_list("b", ListKind.BLOCK, "", now=1.0)
            with pytest.raises(store.errors):  # the savepoint rolls back
                store.create_list("b", ListKind.BLOCK, "", now=1.0)
        assert [r.name for r in store.lists()] == ["b"]


def test_disable_remove_and_hits(new_store: OpenStore) -> None:
    with new_store() as store:
        list_id = store.create_list("b", ListKind.BLOCK, "", now=1.0)
        (first, second), _ = store.add_entries(
            list_id, [NewEntry("a" * 64, 1, 2), NewEntry(None, 3, 4)], now=1.0
        )
        store.set_entries_enabled([first], False)
        assert store.entries_by_sha256("a" * 64) == []
        assert store.near_entry_hashes_after(0)[0].tolist() == [second]
        store.record_hits([second, second], now=5.0)
        (row,) = store.entries(ids=[second])
        assert (row.hits, row.last_hit) == (2, 5.0)
        assert store.remove_entries([first]) == 1
        store.delete_list(list_id)
        assert store.entries() == []


def test_library_hashes_are_the_matchable_library_rows_column_wise(new_store: OpenStore) -> None:
    """Library rows with both hashes and structure, in id order; 64-bit hashes intact."""
    stat = FileStat(device=1, inode=2, size=3, mtime_ns=4)
    high = (1 << 64) - 5
    with new_store() as store:
        kept = store.save_file(
            "/l/a.jpg", stat, Role.LIBRARY, Fingerprint("a" * 64, high, 7, 1, 1, "JPEG", False), 1.0
        )
        store.save_file(
            "/l/flat.jpg", stat, Role.LIBRARY, Fingerprint("b" * 64, 1, 2, 1, 1, "PNG", True), 1.0
        )
        store.save_file(
            "/in/c.jpg", stat, Role.INCOMING, Fingerprint("c" * 64, 1, 2, 1, 1, "PNG", False), 1.0
        )
        store.save_file_error("/l/bad.jpg", stat, Role.LIBRARY, "broken", 1.0)
        last = store.save_file(
            "/l/z.jpg", stat, Role.LIBRARY, Fingerprint("d" * 64, 0, high, 1, 1, "JPEG", False), 1.0
        )
        ids, dhashes, phashes = store.library_hashes()
    assert ids.tolist() == [kept, last]
    assert (dhashes.tolist(), phashes.tolist()) == ([high, 0], [7, high])


@pytest.mark.parametrize(
    "kind", ["log", "move", "quarantine", "restore", "undo", "delete", "trash", "hardlink", "file"]
)
def test_every_kind_of_action_is_journalled(new_store: OpenStore, kind: str) -> None:
    stat = FileStat(device=1, inode=2, size=3, mtime_ns=4)
    action = NewAction(
        kind=kind, src_root="/in", src_rel="a.jpg", dst_root="/lib", dst_rel="2026/a.jpg",
        tmp_name=None, sha256="ab" * 32, stat=stat, atime_ns=0, uid=0, gid=0, mode=0o644,
        verdict="clean", evidence="{}", rule="watches[1].on_new",
    )  # fmt: skip
    with new_store() as store:
        action_id = store.intend(action, now=1.0)
        store.finish(action_id, "done", now=2.0)
        row = store.action(action_id)
        assert row is not None and (row.kind, row.state) == (kind, "done")
