"""The bank's change log on PostgreSQL: sequence numbers for every change, applied by another
host to its entry index incrementally (never rebuilt), recorded per host; the host's bank
snapshot, from which a restart applies only the changes since."""

from __future__ import annotations

import logging
from pathlib import Path

import psycopg
import pytest

from imagewatchd import bank_snapshot, bankindex
from imagewatchd.match import Matcher
from imagewatchd.models import ListKind, Thresholds
from imagewatchd.rows import NewEntry
from imagewatchd.store import Location, Store

THRESHOLDS = Thresholds(dhash=8, phash=8)
PDQ = (1 << 255) | 0xF0F0F0F0


def at(url: str, host: str, tmp_path: Path) -> Location:
    return Location(tmp_path / host / "postgresql", url, host)


def opened(url: str, host: str, tmp_path: Path) -> Store:
    (tmp_path / host).mkdir(exist_ok=True)
    return Store(at(url, host, tmp_path))


def entry(n: int, **more: object) -> NewEntry:
    return NewEntry(None, 1000 + n, 5000 + n, label=str(n), **more)  # type: ignore[arg-type]


def changes(url: str) -> list[tuple[int, int, str]]:
    with psycopg.connect(url) as db:
        rows = db.execute("SELECT seq, entry_id, kind FROM bank_changes ORDER BY seq")
        return [(int(s), int(e), str(k)) for s, e, k in rows]


def test_every_change_to_the_bank_gets_a_sequence_number(pg_url: str, tmp_path: Path) -> None:
    with opened(pg_url, "a", tmp_path) as a:
        banned = a.create_list("banned", ListKind.BLOCK, "", now=1.0)
        (one, two), _ = a.add_entries(banned, [entry(1), entry(2)], now=1.0)
        a.set_entries_enabled([one], False)
        a.set_entries_enabled([one], False)  # no change: not logged
        a.record_hits([two], now=2.0)  # a hit is not a change
        a.set_entries_enabled([one], True)
        a.remove_entries([two])
        a.delete_list(banned)
        state = a.bank_state()
    assert changes(pg_url) == [
        (1, one, "add"), (2, two, "add"), (3, one, "change"), (4, one, "change"),
        (5, two, "remove"), (6, one, "remove"),
    ]  # fmt: skip
    assert state is not None and state.head == 6


def test_a_change_on_one_host_is_applied_on_another_without_a_rebuild(
    pg_url: str, tmp_path: Path
) -> None:
    with opened(pg_url, "a", tmp_path) as a, opened(pg_url, "b", tmp_path) as b:
        banned = a.create_list("banned", ListKind.BLOCK, "", now=1.0)
        a.add_entries(banned, [entry(n) for n in range(10)], now=1.0)
        matcher = Matcher.load(b, THRESHOLDS)
        indexes, entries = matcher.indexes, matcher.indexes.entries
        assert (indexes.rebuilds, len(entries)) == (1, 10)
        crops = (("crop5", 77, 88),)
        (new,), _ = a.add_entries(banned, [entry(20, pdq=PDQ, regions=crops)], now=2.0)
        assert matcher.refresh_entries()
        assert new in entries and len(indexes.pdq) == 1 and len(indexes.regions) == 1
        a.set_entries_enabled([new], False)
        assert matcher.refresh_entries()
        assert new not in entries and len(indexes.pdq) == 0 and len(indexes.regions) == 0
        a.set_entries_enabled([new], True)
        assert matcher.refresh_entries()
        assert matcher.entries.search(1020, 5020, 0, 0) == [(new, 0, 0)]
        assert len(indexes.pdq) == 1 and len(indexes.regions) == 1
        a.remove_entries([new])
        assert matcher.refresh_entries()
        assert new not in entries and len(indexes.pdq) == 0 and len(indexes.regions) == 0
        a.delete_list(banned)
        assert matcher.refresh_entries()
        assert len(entries) == 0
        assert not matcher.refresh_entries()  # nothing new: one look at the head
        state = b.bank_state()
        assert state is not None and (indexes.applied, indexes.head) == (state.head, state.head)
        assert matcher.indexes.entries is entries and indexes.rebuilds == 1  # never rebuilt


def test_each_host_records_the_last_change_it_applied(pg_url: str, tmp_path: Path) -> None:
    with opened(pg_url, "a", tmp_path) as a, opened(pg_url, "b", tmp_path) as b:
        banned = a.create_list("banned", ListKind.BLOCK, "", now=1.0)
        a.add_entries(banned, [entry(1)], now=1.0)
        matcher = Matcher.load(b, THRESHOLDS)
        matcher.record_bank()
        a.add_entries(banned, [entry(2), entry(3)], now=1.0)
        with psycopg.connect(pg_url) as db:
            rows = db.execute((Path(__file__).parent.parent / "docs" / "staleness.sql")
                              .read_text()).fetchall()  # fmt: skip
    assert [(host, applied, head, behind) for host, applied, head, behind, _ in rows] == [
        ("b", 1, 3, 2)
    ]
    assert rows[0][4] is not None and rows[0][4] >= 0  # seconds since the oldest unapplied


def test_a_restart_loads_the_snapshot_and_applies_only_the_changes_since(
    pg_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(bank_snapshot, "MIN_ENTRIES", 5)
    with opened(pg_url, "a", tmp_path) as a:
        banned = a.create_list("banned", ListKind.BLOCK, "", now=1.0)
        ids, _ = a.add_entries(banned, [entry(n, pdq=PDQ + n) for n in range(10)], now=1.0)
        with opened(pg_url, "b", tmp_path) as b:
            first = Matcher.load(b, THRESHOLDS)  # the whole bank; the snapshot written
            assert first.indexes.saved == first.indexes.applied == 10
        (late,), _ = a.add_entries(banned, [entry(30)], now=2.0)
        a.set_entries_enabled(ids[:2], False)
    caplog.set_level(logging.DEBUG, "imagewatchd")
    with opened(pg_url, "b", tmp_path) as b:
        again = Matcher.load(b, THRESHOLDS)
    indexes = again.indexes
    assert indexes.rebuilds == 0 and indexes.saved == 10 and indexes.applied == 13
    assert "bank snapshot loaded: 10 entries through change 10, head 13" in caplog.text
    assert "bank changes applied: 3 entries" in caplog.text
    assert late in indexes.entries and ids[0] not in indexes.entries and ids[2] in indexes.entries
    assert len(indexes.entries) == 9 and len(indexes.pdq) == 8


def test_a_snapshot_of_another_bank_is_not_used(
    pg_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(bank_snapshot, "MIN_ENTRIES", 1)
    with opened(pg_url, "b", tmp_path) as b:
        banned = b.create_list("banned", ListKind.BLOCK, "", now=1.0)
        b.add_entries(banned, [entry(1)], now=1.0)
        Matcher.load(b, THRESHOLDS)
    found = bank_snapshot.load(tmp_path / "b")
    assert found is not None and found.seq == 1 and len(found.entries) == 1
    with psycopg.connect(pg_url, autocommit=True) as db:
        db.execute("UPDATE host_counters SET value = value + 1 WHERE name = 'bank_id'")
    with opened(pg_url, "b", tmp_path) as b:
        assert Matcher.load(b, THRESHOLDS).indexes.rebuilds == 1


def test_without_the_database_the_snapshot_alone_is_enforced_then_caught_up(
    pg_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(bank_snapshot, "MIN_ENTRIES", 1)
    with opened(pg_url, "b", tmp_path) as b:
        banned = b.create_list("banned", ListKind.BLOCK, "", now=1.0)
        (first,), _ = b.add_entries(banned, [entry(1)], now=1.0)
        Matcher.load(b, THRESHOLDS)
    indexes = bankindex.offline(tmp_path / "b")  # no store opened
    assert indexes is not None and first in indexes.entries and indexes.applied == 1
    assert "the database cannot be reached: enforcing the bank snapshot alone" in caplog.text
    with opened(pg_url, "a", tmp_path) as a, opened(pg_url, "b", tmp_path) as b:
        (second,), _ = a.add_entries(banned, [entry(2)], now=2.0)
        matcher = Matcher(b, THRESHOLDS, indexes)
        assert matcher.refresh_entries() and second in indexes.entries
        assert indexes.rebuilds == 0 and indexes.applied == 2
    assert bankindex.offline(tmp_path / "nowhere") is None
