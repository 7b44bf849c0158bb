"""The host's local snapshot of the shared bank's entry index (PostgreSQL fleets).

In the state directory (``postgresql.bank-index``, beside the library's snapshot): the entry
index's arrays, its centre crops', its PDQs' and the entries' grids (``entrygrids.py``), keyed
by the bank's identity (``bank_id``, made by PostgreSQL migration 4) and the last change of the
bank's change log they reflect. Written
atomically as the library's snapshot is (``snapshot.write_arrays``), read memory-mapped. A start
maps it and applies the changes logged since (``bankindex.refresh``); a snapshot of another
bank, or older than the changes the bank still logs, is ignored and the bank is loaded whole.
``load(state_dir)`` needs no database: a host that cannot reach it enforces what it last had.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from imagewatchd import snapshot
from imagewatchd.entrygrids import EntryGrids
from imagewatchd.hashindex import HammingIndex
from imagewatchd.pdqindex import PdqIndex
from imagewatchd.store.location import LOCAL_NAME

log = logging.getLogger(__name__)

MAGIC = b"IWDBANK2\n"  # 2: the entries' grids too
OLD_MAGIC = b"IWDBANK1\n"  # an earlier version's: no grids
NAME = LOCAL_NAME + ".bank-index"
MIN_ENTRIES = 100_000  # smaller banks load from the database at once: no snapshot file
RESAVE_CHANGES = 10_000  # more changes applied since the snapshot than this (or a twentieth
RESAVE_FRACTION = 20  # of the bank) rewrite it


@dataclass(frozen=True, slots=True)
class BankSnapshot:
    """The entry indexes as a snapshot held them, and what they reflect."""

    bank_id: int
    seq: int  # the last change of the bank's change log applied to them
    entries: HammingIndex
    regions: HammingIndex
    pdq: PdqIndex
    grids: EntryGrids = field(default_factory=EntryGrids)


def path_in(state_dir: Path) -> Path:
    return state_dir / NAME


def resave_bound(entries: int) -> int:
    return max(RESAVE_CHANGES, entries // RESAVE_FRACTION)


def load(state_dir: Path, *, without_grids: bool = False) -> BankSnapshot | None:
    """The snapshot in ``state_dir``, its arrays memory-mapped; None if there is none or it is
    unusable (said in one line). ``without_grids``: an earlier version's snapshot, which has
    no grids, will do (a start while the database cannot be reached: better every ban but the
    watermark stage than none); otherwise it is unusable, and the bank is loaded whole."""
    path = path_in(state_dir)
    try:
        with open(path, "rb") as source:
            old = source.read(len(OLD_MAGIC)) == OLD_MAGIC
        if old and not without_grids:
            log.info("%s: bank snapshot of an earlier version, the bank is loaded whole", path)
            return None
        header, arrays = snapshot.read_arrays(path, OLD_MAGIC if old else MAGIC)
        if old:
            log.warning("%s: bank snapshot of an earlier version: no block grids, so no "
                        "watermark second stage until the bank is loaded whole", path)  # fmt: skip
        return _indexes(int(header["bank_id"]), int(header["seq"]), arrays)
    except FileNotFoundError:
        return None
    except (OSError, ValueError, KeyError, TypeError) as exc:
        log.warning("%s: bank snapshot unusable, the bank is loaded whole: %s", path, exc)
        return None


def _indexes(bank_id: int, seq: int, arrays: snapshot.Arrays) -> BankSnapshot:
    def part(prefix: str) -> snapshot.Arrays:
        return {f: arrays[f"{prefix}.{f}"] for f in snapshot.FIELDS}

    hashes = np.asarray(arrays["pdq.hashes"]).reshape(-1, 4)
    grids = EntryGrids() if "grids.ids" not in arrays else EntryGrids.from_arrays(
        arrays["grids.ids"], arrays["grids.data"], arrays["grids.dhashes"], arrays["grids.phashes"]
    )  # fmt: skip
    return BankSnapshot(
        bank_id, seq, HammingIndex.from_arrays(part("entries")),
        HammingIndex.from_arrays(part("regions")), PdqIndex.from_arrays(arrays["pdq.keys"], hashes),
        grids,
    )  # fmt: skip


def save(state_dir: Path, bank: BankSnapshot) -> bool:
    """Write the snapshot atomically; a failure is one line, and False."""
    path = path_in(state_dir)
    arrays: snapshot.Arrays = {}
    for prefix, index in (("entries", bank.entries), ("regions", bank.regions)):
        arrays.update({f"{prefix}.{name}": a for name, a in index.arrays().items()})
    pdq = bank.pdq.arrays()
    arrays["pdq.keys"], arrays["pdq.hashes"] = pdq["keys"], pdq["hashes"].reshape(-1)
    ids, grids, dhashes, phashes = bank.grids.arrays()
    arrays["grids.ids"], arrays["grids.data"] = ids, grids.reshape(-1)
    arrays["grids.dhashes"], arrays["grids.phashes"] = dhashes, phashes
    try:
        snapshot.write_arrays(path, MAGIC, {"bank_id": bank.bank_id, "seq": bank.seq}, arrays)
    except OSError as exc:
        log.warning("%s: bank snapshot not written: %s", path, exc.strerror or exc)
        return False
    log.info("%s: bank snapshot written (%d entries, change %d)", path, len(bank.entries),
             bank.seq)  # fmt: skip
    return True
