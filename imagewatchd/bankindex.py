"""The entry indexes kept up to date from the bank's change log (PostgreSQL fleets).

A host loads its entry indexes once (from its bank snapshot, ``bank_snapshot.py``, else from
the bank whole) and then applies each change after the last sequence it applied: the changed
entries are re-read by id, those enabled (re)added, the others (disabled, removed, their list
deleted) removed. Nothing is rebuilt for a change of any kind; ``Indexes.rebuilds`` counts
whole loads. The head is one counter row: the daemon polls it every supervision tick, so a lost
wake-up costs at most a tick. Where the host stands is recorded in the database (``record``) and
reported by status and metrics. A SQLite store has no change log (``refresh`` gives None).
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from imagewatchd import bank_snapshot
from imagewatchd.entrygrids import EntryGrids
from imagewatchd.hashindex import HammingIndex
from imagewatchd.pdqindex import PdqIndex, words_of_bytes
from imagewatchd.rows import REGIONS
from imagewatchd.store import Store
from imagewatchd.store.banklog import BankLogQueries, BankState

if TYPE_CHECKING:
    from imagewatchd.match import Indexes

log = logging.getLogger(__name__)

WHOLE_MIN = 100_000  # more changes than this (and than half the bank): load it whole instead


def start(indexes: Indexes, store: Store) -> None:
    """Take the entry indexes from the bank snapshot in the state directory, if it is this
    bank's and not older than the changes the bank still logs; ``refresh`` then applies the
    changes since."""
    state = store.bank_state()
    if state is None:
        return
    state_dir = store.path.parent
    found = bank_snapshot.load(state_dir)
    if found is None or found.bank_id != state.bank_id:
        return
    if not state.trimmed <= found.seq <= state.head:
        log.info("%s: bank snapshot too old (change %d), the bank is loaded whole",
                 bank_snapshot.path_in(state_dir), found.seq)  # fmt: skip
        return
    indexes.entries, indexes.regions, indexes.pdq = found.entries, found.regions, found.pdq
    indexes.grids = found.grids
    indexes.bank_id, indexes.applied, indexes.saved = found.bank_id, found.seq, found.seq
    path = bank_snapshot.path_in(state_dir)
    log.info("%s: bank snapshot loaded: %d entries through change %d, head %d", path,
             len(found.entries), found.seq, state.head)  # fmt: skip


def offline(state_dir: Path) -> Indexes | None:
    """The entry indexes from the bank snapshot alone, for a start while the database cannot
    be reached (said in one line); None without a usable snapshot. Once a store answers again,
    ``refresh`` applies the changes since (the snapshot's bank and change are kept)."""
    from imagewatchd.match import Indexes  # noqa: PLC0415 (match imports this module)

    found = bank_snapshot.load(state_dir, without_grids=True)
    if found is None:
        return None
    log.warning("%s: the database cannot be reached: enforcing the bank snapshot alone "
                "(%d entries through change %d)", bank_snapshot.path_in(state_dir),
                len(found.entries), found.seq)  # fmt: skip
    return Indexes(entries=found.entries, regions=found.regions, pdq=found.pdq,
                   grids=found.grids, bank_id=found.bank_id, applied=found.seq,
                   saved=found.seq)  # fmt: skip


def refresh(indexes: Indexes, store: Store, floor: int) -> bool | None:
    """Apply the bank's changes after the last one applied (under ``indexes.lock``); True if
    any were, None if the store has no change log."""
    state = store.bank_state()
    if state is None or not isinstance(store, BankLogQueries):
        return None
    indexes.head = state.head
    current = indexes.bank_id == state.bank_id and state.trimmed <= indexes.applied
    if current and state.head <= indexes.applied:
        return False
    changed = store.bank_changed_after(indexes.applied, state.head) if current else []
    if not current or len(changed) > max(WHOLE_MIN, len(indexes.entries) // 2):
        load_whole(indexes, store, floor)
    else:
        apply(indexes, store, changed, floor)
    indexes.bank_id, indexes.applied = state.bank_id, state.head
    _keep_snapshot(indexes, store, state)
    return True


def load_whole(indexes: Indexes, store: Store, floor: int) -> None:
    """Every enabled entry, into fresh indexes (a first load, or another bank)."""
    entries, regions, pdq = HammingIndex(), HammingIndex(), PdqIndex()
    entries.add_many(*store.near_entry_hashes_after(0))
    regions.add_many(*store.entry_region_hashes_after(0))
    pdq_ids, pdqs = store.pdq_entry_hashes_after(0, floor)
    pdq.add_many(pdq_ids, words_of_bytes(pdqs))
    grids = EntryGrids()
    grids.add_many(*store.enabled_grids_after(0))
    indexes.entries, indexes.regions, indexes.pdq, indexes.grids = entries, regions, pdq, grids
    indexes.rebuilds += 1


def apply(indexes: Indexes, store: Store, changed: list[int], floor: int) -> None:
    """The changed entries re-read: those enabled replace their old selves, the rest go."""
    assert isinstance(store, BankLogQueries)  # a store with a change log
    ids = np.asarray(changed, dtype=np.int64)
    near = store.near_entry_hashes_of(changed)
    crops = store.entry_region_hashes_of(changed)
    pdq_ids, pdqs = store.pdq_entry_hashes_of(changed, floor)
    indexes.entries.remove_many(np.setdiff1d(ids, near[0]))
    indexes.entries.add_many(*near)  # an add replaces the entry with the same key
    region_keys = (ids[:, None] * len(REGIONS) + np.arange(len(REGIONS))).ravel()
    indexes.regions.remove_many(np.setdiff1d(region_keys, crops[0]))
    indexes.regions.add_many(*crops)
    indexes.pdq.remove_many(ids)
    indexes.pdq.add_many(pdq_ids, words_of_bytes(pdqs))
    grids = store.enabled_grids_of(changed)
    indexes.grids.remove_many(np.setdiff1d(ids, grids[0]))
    indexes.grids.add_many(*grids)
    log.debug("bank changes applied: %d entries", len(changed))


def record(indexes: Indexes, store: Store) -> None:
    """Record in the database how far this host has got, when that moved (a per-host row)."""
    if indexes.bank_id is None or indexes.recorded == indexes.applied:
        return
    if isinstance(store, BankLogQueries):
        store.record_bank_applied(indexes.applied, indexes.head, time.time())
        indexes.recorded = indexes.applied


def _keep_snapshot(indexes: Indexes, store: Store, state: BankState) -> None:
    """Write the bank snapshot after a whole load of a large bank, or once the changes applied
    since the snapshot exceed ``bank_snapshot.resave_bound``."""
    entries = len(indexes.entries)
    if entries < bank_snapshot.MIN_ENTRIES and indexes.saved < 0:
        return
    if indexes.saved >= 0 and state.head - indexes.saved <= bank_snapshot.resave_bound(entries):
        return
    bank = bank_snapshot.BankSnapshot(
        state.bank_id, state.head, indexes.entries, indexes.regions, indexes.pdq, indexes.grids
    )
    if bank_snapshot.save(store.path.parent, bank):
        indexes.saved = state.head
