"""The entries' grids held in memory (imagewatchd/entrygrids.py) follow the store: written in
the entry's own transaction, loaded and refreshed with the entry indexes (SQLite), applied
change by change and kept in the bank snapshot (PostgreSQL), bounded in memory."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from imagewatchd import bank_snapshot, bankindex, snapshot
from imagewatchd.blockgrid import SIZE
from imagewatchd.entrygrids import EntryGrids
from imagewatchd.hashindex import HammingIndex
from imagewatchd.match import Matcher
from imagewatchd.models import ListKind, Thresholds
from imagewatchd.pdqindex import PdqIndex
from imagewatchd.rows import NewEntry
from imagewatchd.store import Location, Store

THRESHOLDS = Thresholds(dhash=6, phash=4)


def grid(n: int) -> bytes:
    return np.random.default_rng(n).integers(0, 256, SIZE, dtype=np.uint8).tobytes()


def picture(n: int) -> NewEntry:
    """An entry as ``known add`` makes it from a picture: hashes, a crop and a grid."""
    crops = (("crop5", 7000 + n, 8000 + n),)
    return NewEntry(f"{n:064x}", 1000 + n, 5000 + n, str(n), regions=crops, grid=grid(n))


def imported(n: int) -> NewEntry:
    return NewEntry(None, 3000 + n, 9000 + n, str(n))


def stacked(numbers: list[int]) -> np.ndarray:
    return np.stack([np.frombuffer(grid(n), np.uint8) for n in numbers])


def hashes(numbers: list[int]) -> tuple[np.ndarray, np.ndarray]:
    values = np.array(numbers, np.uint64)
    return values, values << np.uint64(32)


def test_grids_are_held_and_looked_up_by_id_through_merges_and_removals() -> None:
    held = EntryGrids()
    numbers = list(range(1, 6001))
    held.add_many(numbers, stacked(numbers), *hashes(numbers))
    assert len(held) == 6000 and held.get([5, 6000, 7000]) == {5: grid(5), 6000: grid(6000)}
    held.add_many([7000, 5], stacked([7, 8]), *hashes([7, 8]))
    held.remove_many([6000, 12345])
    assert held.get([5, 6000, 7000]) == {5: grid(8), 7000: grid(7)}
    again = EntryGrids.from_arrays(*held.arrays())
    assert len(again) == len(held) == 6000
    assert again.get([5, 7000, 6000, 1]) == {5: grid(8), 7000: grid(7), 1: grid(1)}


def test_any_within_looks_at_the_entries_held_only() -> None:
    """The second stage's first look, in main and in recent: exact, removals included."""
    held = EntryGrids()
    numbers = list(range(0, 60_000, 10))
    held.add_many(numbers, stacked([1] * len(numbers)), *hashes(numbers))
    held.add_many([7], stacked([7]), *hashes([1 << 20]))  # recent: dHash 2**20
    assert held.any_within(11, 11 << 32, 0, 0) is False  # 0, 10, 20…: no 11
    assert held.any_within(11, 11 << 32, 1, 1) is True  # 10: one bit off in each hash
    assert held.any_within(1 << 20, 1 << 52, 0, 0) is True  # the recent one
    held.remove_many([7])
    assert held.any_within(1 << 20, 1 << 52, 0, 0) is False
    assert held.any_within(50, 50 << 32, 0, 0) is True
    held.remove_many([50])
    assert held.any_within(50, 50 << 32, 0, 0) is False


def test_grids_cost_their_bytes_id_and_hashes_per_entry_that_has_one() -> None:
    held = EntryGrids()
    ids = np.arange(100_000)
    held.add_many(ids, np.zeros((len(ids), SIZE), np.uint8), *hashes(ids.tolist()))
    assert held.nbytes <= len(ids) * (SIZE + 8 + 16 + 1)
    with pytest.raises(ValueError, match="one grid"):
        held.add_many([1, 2], np.zeros((2, 10), np.uint8), *hashes([1, 2]))


def test_sqlite_grids_are_written_with_their_entries_and_follow_the_index(
    tmp_path: Path,
) -> None:
    with Store(tmp_path / "db.sqlite") as store:
        banned = store.create_list("banned", ListKind.BLOCK, "", 1.0)
        ids, _ = store.add_entries(banned, [picture(1), picture(2), imported(3)], 1.0)
        assert store.entry_grids(ids) == {ids[0]: grid(1), ids[1]: grid(2)}  # no second step
        matcher = Matcher.load(store, THRESHOLDS)
        grids = matcher.indexes.grids
        assert len(grids) == 2 and grids.get(ids) == {ids[0]: grid(1), ids[1]: grid(2)}
        (late,), _ = store.add_entries(banned, [picture(4)], 2.0)
        assert matcher.refresh_entries() and matcher.indexes.grids is grids  # incremental
        assert grids.get([late]) == {late: grid(4)}
        store.set_entries_enabled([ids[0]], False)
        assert matcher.refresh_entries() and matcher.indexes.rebuilds == 2
        assert matcher.indexes.grids.get([*ids, late]) == {ids[1]: grid(2), late: grid(4)}


@pytest.mark.usefixtures("pg_url")
def test_bank_grids_follow_every_change_and_the_snapshot(
    pg_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(bank_snapshot, "MIN_ENTRIES", 3)
    for host in "ab":
        (tmp_path / host).mkdir()
    where = {host: Location(tmp_path / host / "postgresql", pg_url, host) for host in "ab"}
    with Store(where["a"]) as a, Store(where["b"]) as b:
        banned = a.create_list("banned", ListKind.BLOCK, "", 1.0)
        ids, _ = a.add_entries(banned, [picture(1), picture(2), imported(3)], 1.0)
        assert a.entry_grids(ids) == {ids[0]: grid(1), ids[1]: grid(2)}
        matcher = Matcher.load(b, THRESHOLDS)  # the whole bank; the snapshot written
        grids = matcher.indexes.grids
        assert grids.get(ids) == {ids[0]: grid(1), ids[1]: grid(2)}
        (late,), _ = a.add_entries(banned, [picture(4)], 2.0)
        a.set_entries_enabled([ids[0]], False)
        a.remove_entries([ids[1]])
        assert matcher.refresh_entries() and matcher.indexes.grids is grids  # applied
        assert grids.get([*ids, late]) == {late: grid(4)}
        a.set_entries_enabled([ids[0]], True)
        assert matcher.refresh_entries()
        assert grids.get([*ids, late]) == {ids[0]: grid(1), late: grid(4)}
        assert matcher.indexes.rebuilds == 1
    offline = bankindex.offline(tmp_path / "b")  # the snapshot of the first load: no database
    assert offline is not None
    assert offline.grids.get(ids) == {ids[0]: grid(1), ids[1]: grid(2)}


def test_an_earlier_versions_snapshot_serves_an_offline_start_without_grids(
    tmp_path: Path,
) -> None:
    """A snapshot written before the grids (IWDBANK1): an online start loads the bank whole,
    a start while the database cannot be reached enforces it without the second stage."""
    entries, regions = HammingIndex(), HammingIndex()
    entries.add_many(np.array([1, 2, 3]), *hashes([1, 2, 3]))
    held = EntryGrids()
    held.add_many(np.array([1, 2]), stacked([1, 2]), *hashes([1, 2]))
    bank = bank_snapshot.BankSnapshot(7, 40, entries, regions, PdqIndex(), held)
    assert bank_snapshot.save(tmp_path, bank)
    path = bank_snapshot.path_in(tmp_path)
    _, arrays = snapshot.read_arrays(path, bank_snapshot.MAGIC)
    older = {name: np.array(a) for name, a in arrays.items() if not name.startswith("grids.")}
    path.unlink()
    snapshot.write_arrays(path, bank_snapshot.OLD_MAGIC, {"bank_id": 7, "seq": 40}, older)
    assert bank_snapshot.load(tmp_path) is None
    found = bank_snapshot.load(tmp_path, without_grids=True)
    assert found is not None and (found.bank_id, found.seq) == (7, 40)
    assert len(found.entries) == 3 and len(found.grids) == 0
    indexes = bankindex.offline(tmp_path)
    assert indexes is not None and len(indexes.entries) == 3 and indexes.applied == 40
