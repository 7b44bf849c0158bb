"""A PostgreSQL host that starts while its database cannot be reached (docs/FLEET.md, "Outages").

It enforces the bank it last had: the bank snapshot in its state directory (``bank_snapshot``,
kept for large banks) or the spool's copy of the bank (``store/spool.py``, kept by every running
daemon), whichever reflects the later change. The session starts with the outage on: it
journals on the spool, and when the database returns it catches up as a running daemon does
(the spool's journal copied; ``bankindex.refresh`` applies the bank's changes since the one the
indexes reflect). Without either copy the start fails with one line.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from imagewatchd import bank_snapshot, bankindex
from imagewatchd.errors import DatabaseUnreachable
from imagewatchd.match import Indexes
from imagewatchd.store import Location, Store
from imagewatchd.store import spool as spooling

if TYPE_CHECKING:
    from imagewatchd.outage import Outage

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class OfflineBank:
    """The entry indexes a start without the database enforces, and where they came from."""

    indexes: Indexes
    seq: int  # the last change of the bank they reflect (-1: not known)
    source: Path


def _spool_copy(where: Location) -> tuple[int | None, int, int]:
    """The spool's bank copy's identity, change and size; nothing without a spool."""
    if not spooling.spool_path(where).exists():
        return None, -1, 0
    with spooling.open_spool(where) as spool:
        return spooling.bank_copy(spool)


def available(where: Location) -> bool:
    """A bank snapshot or a spool holding a copy of the bank is there (cheap: no arrays read)."""
    if bank_snapshot.path_in(where.path.parent).exists():
        return True
    return _spool_copy(where)[2] > 0


def load(where: Location, spool: Store, floor: int) -> OfflineBank | None:
    """The later of the bank snapshot and the spool's copy of the bank, as entry indexes."""
    state_dir = where.path.parent
    found = bank_snapshot.load(state_dir, without_grids=True)
    bank_id, seq, entries = spooling.bank_copy(spool)
    if found is not None and (entries == 0 or found.seq >= seq):
        indexes = Indexes(entries=found.entries, regions=found.regions, pdq=found.pdq,
                          grids=found.grids, bank_id=found.bank_id, applied=found.seq,
                          saved=found.seq)  # fmt: skip
        return OfflineBank(indexes, found.seq, bank_snapshot.path_in(state_dir))
    if entries == 0:
        return None
    indexes = Indexes()
    bankindex.load_whole(indexes, spool, floor)
    indexes.bank_id, indexes.applied = bank_id, seq if bank_id is not None else -1
    return OfflineBank(indexes, seq, spooling.spool_path(where))


def no_bank(where: Location, exc: DatabaseUnreachable) -> DatabaseUnreachable:
    """The one line of a start that has nothing to enforce."""
    return DatabaseUnreachable(
        f"{exc}; no local copy of the bank to enforce meanwhile (neither "
        f"{bank_snapshot.path_in(where.path.parent)} nor a copy in "
        f"{spooling.spool_path(where)}): start once with the database reachable"
    )


def announce(where: Location, exc: DatabaseUnreachable, bank: OfflineBank) -> None:
    """The outage's one WARNING line, for a start during it."""
    change = f"change {bank.seq}" if bank.seq >= 0 else "its last copy"
    log.warning(
        "%s: the database is unreachable at start-up (%s); enforcing the bank as of %s "
        "(%d entries, from %s), journalling in %s until it returns",
        where, str(exc).removeprefix(f"{where}: "), change, len(bank.indexes.entries),
        bank.source, spooling.spool_path(where),
    )  # fmt: skip


def begin(
    where: Location, outage: Outage, exc: DatabaseUnreachable, floor: int
) -> tuple[Store, Indexes]:
    """A session's start without the database: the spool to work on (the outage on) and the
    entry indexes of the bank it last had; one line if there is no copy of the bank."""
    spool = spooling.open_spool(where)
    try:
        bank = load(where, spool, floor)
    except BaseException:
        spool.close()
        raise
    if bank is None:
        spool.close()
        raise no_bank(where, exc) from exc
    announce(where, exc, bank)
    outage.start_down(str(exc))
    return spool, bank.indexes
