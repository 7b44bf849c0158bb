"""The outage spool's copies (``store/spool.py``): the bank into a SQLite spool, and the spool's
journal back into PostgreSQL. Real SQLite files, a real PostgreSQL database."""

from __future__ import annotations

from pathlib import Path

import psycopg
import pytest

from imagewatchd import bank_snapshot, offline
from imagewatchd.errors import StoreError
from imagewatchd.hashindex import HammingIndex
from imagewatchd.models import FileStat, ListKind, Role
from imagewatchd.pdqindex import PdqIndex
from imagewatchd.rows import NewAction, NewEntry
from imagewatchd.store import Location, Store
from imagewatchd.store.spool import (
    SpoolStore,
    bank_copy,
    catch_up,
    mirror_bank,
    open_spool,
    spool_path,
    spooled,
)


def action(
    kind: str, name: str, reverses: int | None = None, batch: int | None = None
) -> NewAction:
    return NewAction(
        kind=kind, src_root="/in", src_rel=name, dst_root="/q", dst_rel=name, tmp_name=None,
        sha256="ab" * 32, stat=FileStat(device=1, inode=2, size=3, mtime_ns=4), atime_ns=0,
        uid=0, gid=0, mode=0o644, verdict="known", evidence="{}", rule="watches[0].on_known",
        reverses=reverses, batch_id=batch,
    )  # fmt: skip


def test_the_bank_is_mirrored_with_hits_zeroed_then_incrementally(
    tmp_path: Path, pg_url: str
) -> None:
    with (
        Store(Location(tmp_path / "postgresql", pg_url, "h1")) as primary,
        Store(tmp_path / "spool.db") as spool,
    ):
        banned = primary.create_list("banned", ListKind.BLOCK, "", 1.0)
        (first,), _ = primary.add_entries(banned, [NewEntry("aa" * 32, 1, 2, "one")], 2.0)
        primary.record_hits([first], 3.0)
        assert mirror_bank(primary, spool, 0) == first
        (row,) = spool.entries(ids=[first])
        assert (row.label, row.hits) == ("one", 0)
        (second,), _ = primary.add_entries(banned, [NewEntry("bb" * 32, 3, 4, "two")], 4.0)
        assert mirror_bank(primary, spool, first) == second
        assert [r.label for r in spool.entries(ids=[first, second])] == ["one", "two"]


def test_an_entry_the_spools_copy_lacks_is_an_error_not_a_miss(tmp_path: Path) -> None:
    """The index may hold a ban made seconds before the outage that the copy has not yet."""
    with SpoolStore(tmp_path / "spool.db") as spool:
        banned = spool.create_list("banned", ListKind.BLOCK, "", 1.0)
        (entry,), _ = spool.add_entries(banned, [NewEntry("aa" * 32, 1, 2)], 2.0)
        assert [row.id for row in spool.entries(ids=[entry])] == [entry]
        with pytest.raises(StoreError, match=f"entry {entry + 1} is not in the local copy"):
            spool.entries(ids=[entry, entry + 1])


def test_the_spools_journal_is_copied_under_new_ids_and_the_spool_emptied(
    tmp_path: Path, pg_url: str
) -> None:
    with (
        Store(Location(tmp_path / "postgresql", pg_url, "h1")) as primary,
        Store(tmp_path / "spool.db") as spool,
    ):
        banned = primary.create_list("banned", ListKind.BLOCK, "", 1.0)
        (entry,), _ = primary.add_entries(banned, [NewEntry("aa" * 32, 1, 2)], 2.0)
        before = primary.intend(action("quarantine", "before.jpg"), 3.0)  # takes id 1 there
        mirror_bank(primary, spool, 0)
        batch = spool.start_batch("undo", 4.0)
        moved = spool.intend(action("quarantine", "a.jpg"), 5.0)
        spool.finish(moved, "done", 6.0)
        undo = spool.intend(action("undo", "a.jpg", reverses=moved, batch=batch), 7.0)
        spool.exempt(undo, "/in/a.jpg", "ab" * 32, 7.0)
        spool.finish(undo, "done", 8.0)
        spool.record_hits([entry], 6.0)
        stat = FileStat(device=1, inode=5, size=3, mtime_ns=4)
        spool.save_file_error("/in/b.jpg", stat, Role.INCOMING, "not an image", 6.0)
        assert spooled(spool) == 2
        assert catch_up(spool, primary) == 2
        rows = primary.actions()
        assert [(r.id == before, r.kind, r.state) for r in rows] == [
            (True, "quarantine", "intended"), (False, "quarantine", "done"),
            (False, "undo", "done"),
        ]  # fmt: skip
        _, copied, reverse = rows
        assert reverse.reverses == copied.id and reverse.batch_id is not None
        assert primary.exemption("/in/a.jpg", "ab" * 32) == reverse.id
        assert spooled(spool) == 0
        assert spool.get_file("/in/b.jpg") is None  # the return's rescan records it
        assert spool.entries(ids=[entry])[0].hits == 0
    with psycopg.connect(pg_url) as db:
        assert db.execute("SELECT hits, last_hit FROM entries").fetchall() == [(1, 6.0)]
        assert db.execute("SELECT DISTINCT host FROM host_actions").fetchall() == [("h1",)]


def test_a_start_without_the_database_takes_the_later_of_the_snapshot_and_the_spools_copy(
    tmp_path: Path, pg_url: str
) -> None:
    where = Location(tmp_path / "postgresql", pg_url, "h1")
    with Store(where) as primary, open_spool(where) as spool:
        assert offline.load(where, spool, 0) is None  # nothing to enforce: no copy of the bank
        banned = primary.create_list("banned", ListKind.BLOCK, "", 1.0)
        primary.add_entries(banned, [NewEntry("aa" * 32, 1, 2), NewEntry("bb" * 32, 3, 4)], 2.0)
        state = primary.bank_state()
        assert state is not None and state.head >= 1
        mirror_bank(primary, spool, 0)
        assert bank_copy(spool) == (state.bank_id, state.head, 2)
        assert offline.available(where)
        for seq, source in ((state.head - 1, spool_path(where)), (state.head, None)):
            one = HammingIndex()
            one.add_many([1], [1], [2])
            snap = bank_snapshot.BankSnapshot(state.bank_id, seq, one, HammingIndex(), PdqIndex())
            assert bank_snapshot.save(tmp_path, snap)
            bank = offline.load(where, spool, 0)
            assert bank is not None
            assert bank.source == (source or bank_snapshot.path_in(tmp_path))
            assert len(bank.indexes.entries) == (2 if source else 1)
            assert (bank.indexes.bank_id, bank.indexes.applied) == (state.bank_id, bank.seq)
