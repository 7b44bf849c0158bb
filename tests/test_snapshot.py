"""The library index's snapshot: mapped from disk, brought up to date by the store's change log,
and equal to a fresh load from the store whatever happened in between."""

from __future__ import annotations

import logging
import random
import shutil
import time
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from imagewatchd import snapshot
from imagewatchd.background import SnapshotKeeper
from imagewatchd.hashindex import HammingIndex
from imagewatchd.models import FileStat, Fingerprint, Role
from imagewatchd.store import Store

STAT = FileStat(device=1, inode=2, size=3, mtime_ns=4)


def content(index: HammingIndex) -> list[tuple[int, int, int]]:
    arrays = index.arrays()
    rows = zip(*(arrays[n].tolist() for n in ("keys", "dhashes", "phashes")), strict=True)
    return sorted(rows)


def fresh(store: Store) -> list[tuple[int, int, int]]:
    index = HammingIndex()
    index.add_many(*store.library_hashes())
    return content(index)


def change_randomly(store: Store, rng: random.Random, steps: int) -> None:
    """Adds, re-fingerprints, removals, role changes, errors, flat pictures, renames."""
    for _ in range(steps):
        path = f"/lib/{rng.randint(0, 40)}.jpg"
        what = rng.random()
        if what < 0.1:
            store.forget_path(path)
        elif what < 0.15:
            store.save_file_error(path, STAT, Role.LIBRARY, "broken", 1.0)
        elif what < 0.2:
            store.rename_paths(path, f"/lib/{rng.randint(0, 40)}.jpg")
        else:
            role = Role.INCOMING if rng.random() < 0.1 else Role.LIBRARY
            fp = Fingerprint("ab" * 32, rng.getrandbits(64), rng.getrandbits(64), 1, 1, "JPEG",
                             rng.random() < 0.1)  # fmt: skip
            store.save_file(path, STAT, role, fp, 1.0)


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 2**32))
def test_a_snapshot_brought_up_to_date_equals_a_fresh_load(
    tmp_path_factory: pytest.TempPathFactory, seed: int
) -> None:
    rng = random.Random(seed)
    with Store(tmp_path_factory.mktemp("db") / "t.db") as store:
        change_randomly(store, rng, rng.randint(0, 60))
        first = snapshot.load_library(store, min_rows=0)
        assert snapshot.path_for(store).exists()
        assert content(first) == fresh(store)
        change_randomly(store, rng, rng.randint(0, 60))
        again = snapshot.load_library(store, min_rows=0)
        assert content(again) == fresh(store)


def test_the_snapshot_is_mapped_and_only_the_changes_are_read(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with Store(tmp_path / "t.db") as store:
        change_randomly(store, random.Random(1), 50)
        snapshot.load_library(store, min_rows=0)
        store.save_file("/lib/new.jpg", STAT, Role.LIBRARY, Fingerprint("cd" * 32, 5, 6, 1, 1,
                        "PNG", False), 2.0)  # fmt: skip
        with caplog.at_level(logging.DEBUG, logger="imagewatchd.snapshot"):
            index = snapshot.load_library(store, min_rows=0)
        assert "1 changes applied" in caplog.text
        found = snapshot.read(snapshot.path_for(store))
        assert found is not None and isinstance(found.arrays["chunk_values"], np.memmap)
        assert content(index) == fresh(store)


def test_a_foreign_damaged_or_outdated_snapshot_is_rebuilt(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with Store(tmp_path / "a.db") as a, Store(tmp_path / "b.db") as b:
        change_randomly(a, random.Random(1), 40)
        change_randomly(b, random.Random(2), 40)
        snapshot.load_library(a, min_rows=0)
        shutil.copy(snapshot.path_for(a), snapshot.path_for(b))  # another store's
        assert content(snapshot.load_library(b, min_rows=0)) == fresh(b)
        path = snapshot.path_for(b)
        path.write_bytes(path.read_bytes()[:-100])  # truncated
        assert content(snapshot.load_library(b, min_rows=0)) == fresh(b)
        assert "snapshot unusable, rebuilt: truncated" in caplog.text
        stale = path.read_bytes()
        change_randomly(b, random.Random(3), 40)
        store_id, last, _ = b.library_change_state()
        snapshot.save(
            b, snapshot.load_library(b, min_rows=0), snapshot.Snapshot(store_id, last, {})
        )
        path.write_bytes(stale)  # older than the log: its changes are forgotten
        assert content(snapshot.load_library(b, min_rows=0)) == fresh(b)


def test_the_change_log_holds_library_changes_only(tmp_path: Path) -> None:
    fp = Fingerprint("ab" * 32, 1, 2, 1, 1, "JPEG", False)
    with Store(tmp_path / "t.db") as store:
        _, start, _ = store.library_change_state()
        library = store.save_file("/lib/a.jpg", STAT, Role.LIBRARY, fp, 1.0)
        store.save_file("/in/b.jpg", STAT, Role.INCOMING, fp, 1.0)
        store.rename_paths("/lib/a.jpg", "/lib/c.jpg")
        store.touch_files([library], 2.0)
        assert store.library_changed_after(start) == [library]
        _, last, _ = store.library_change_state()
        store.forget_path("/lib/c.jpg")
        assert store.library_changed_after(last) == [library]
        store.trim_library_changes(last + 1)
        assert store.library_changed_after(0) == []
        assert store.library_change_state()[1:] == (last + 1, last + 1)


def _add_library_files(store: Store, first: int, count: int) -> None:
    for n in range(first, first + count):
        fp = Fingerprint(f"{n:064x}", n * 7919 + 1, n * 104729 + 1, 1, 1, "JPEG", False)
        store.save_file(f"/lib/k{n}.jpg", STAT, Role.LIBRARY, fp, 1.0)


def test_keep_bounds_the_change_log_while_the_daemon_runs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(snapshot, "RESAVE_CHANGES", 30)
    with Store(tmp_path / "t.db") as store:
        _add_library_files(store, 0, 100)
        snapshot.load_library(store, min_rows=0)  # a snapshot of 100 files; the log is empty
        assert store.library_change_state()[1:] == (100, 100)
        _add_library_files(store, 100, 30)  # within the bound: kept, and applied at each load
        assert not snapshot.keep(store, min_rows=0)
        assert len(snapshot.load_library(store, min_rows=0)) == 130
        assert snapshot.read(snapshot.path_for(store)).seq == 100  # type: ignore[union-attr]
        _add_library_files(store, 130, 5)  # past it: rewritten, and the log forgotten
        assert snapshot.keep(store, min_rows=0)
        assert store.library_change_state()[1:] == (135, 135)
        assert store.library_changed_after(0) == []
        assert content(snapshot.load_library(store, min_rows=0)) == fresh(store)


def test_keep_forgets_a_log_that_no_snapshot_needs(tmp_path: Path) -> None:
    with Store(tmp_path / "t.db") as store:
        snapshot.load_library(store)  # a small library: no snapshot file
        _add_library_files(store, 0, 20)
        assert len(store.library_changed_after(0)) == 20
        assert not snapshot.keep(store)
        assert store.library_changed_after(0) == []
        assert content(snapshot.load_library(store)) == fresh(store)


def test_the_daemons_keeper_keeps_the_log_bounded(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(snapshot, "RESAVE_CHANGES", 10)
    damaged: list[object] = []
    with Store(tmp_path / "t.db") as store:
        _add_library_files(store, 0, 50)
        snapshot.load_library(store, min_rows=0)
        keeper = SnapshotKeeper(store.path, damaged.append, every=0.05)
        keeper.start_once()
        try:
            _add_library_files(store, 50, 20)
            deadline = time.monotonic() + 30  # the keeper rewrites within a few of its periods
            while store.library_change_state()[2] != 70:
                assert time.monotonic() < deadline, "the log was not trimmed"
                time.sleep(0.05)
        finally:
            keeper.stop()
        assert snapshot.read(snapshot.path_for(store)).seq == 70  # type: ignore[union-attr]
    assert damaged == []
