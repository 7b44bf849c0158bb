"""The library index's snapshot on disk, so that start-up does not grow with the library.

Beside the database (``<db>.library-index``): the index's arrays as ``HammingIndex.arrays()``
gives them (sorted, ready to search), memory-mapped when read, keyed by the store's id and by
the number of the last library change it holds (the store logs every library insert, change
and removal; migration 7). Loading maps the file and applies the changes logged since (re-read
by id, column-wise); a missing, foreign, damaged or too old snapshot (its changes forgotten) is
rebuilt from the store. A snapshot is written atomically (temporary file, fsync, rename) after
a full load of a large library, or once the changes applied exceed ``resave_bound`` (a
twentieth of the library, at least 10,000); writing one lets the store forget the changes it
holds. A running daemon calls ``keep`` now and then, so that the log, and the next start-up's
work, stay within that bound however long it runs. Small libraries load column-wise in well
under a second and get no file.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from imagewatchd.hashindex import HammingIndex
from imagewatchd.store import Store

log = logging.getLogger(__name__)

MAGIC = b"IWDIDX1\n"
ALIGN = 64
MIN_ROWS = 100_000  # smaller libraries load from the store at once: no snapshot file
RESAVE_CHANGES = 10_000  # applying more changes than this (or a twentieth of the library)
RESAVE_FRACTION = 20  # writes a fresh snapshot
FIELDS = ("keys", "dhashes", "phashes", "sorted_keys", "key_rows", "chunk_values", "chunk_rows")
Arrays = dict[str, NDArray[Any]]


@dataclass(frozen=True, slots=True)
class Snapshot:
    store_id: int
    seq: int  # the last library change it holds
    arrays: Arrays


def path_for(store: Store) -> Path:
    return store.path.with_name(store.path.name + ".library-index")


def resave_bound(rows: int) -> int:
    """Changes past the snapshot that a load applies before it rewrites the snapshot (applying
    them costs a fraction of a rewrite: 500,000 at 10M rows)."""
    return max(RESAVE_CHANGES, rows // RESAVE_FRACTION)


def load_library(
    store: Store, *, min_rows: int = MIN_ROWS, resave_over: int | None = None
) -> HammingIndex:
    """The library index: from the snapshot brought up to date, else from the store. The
    snapshot is rewritten when more than ``resave_over`` changes (default: ``resave_bound``)
    had to be applied."""
    path = path_for(store)
    store_id, last, trimmed = store.library_change_state()  # read before the rows
    found = read(path)
    if found is None or found.store_id != store_id or not trimmed <= found.seq <= last:
        index = HammingIndex()
        index.add_many(*store.library_hashes())
        if len(index) >= min_rows:
            save(store, index, Snapshot(store_id, last, {}))
        elif found is None and last > trimmed:
            store.trim_library_changes(last)  # no snapshot needs them: keep the log short
        return index
    index = HammingIndex.from_arrays(found.arrays)
    changed = store.library_changed_after(found.seq)
    ids, dhashes, phashes = store.library_hashes(changed)
    for gone in np.setdiff1d(np.array(changed, np.int64), ids).tolist():
        index.remove(gone)
    index.add_many(ids, dhashes, phashes)
    log.debug("%s: library index loaded, %d changes applied", path, len(changed))
    if len(changed) > (resave_bound(len(index)) if resave_over is None else resave_over):
        save(store, index, Snapshot(store_id, last, {}))
    return index


def keep(store: Store, *, min_rows: int = MIN_ROWS) -> bool:
    """Keep the change log bounded while a daemon runs: rewrite the snapshot once more changes
    than ``resave_bound`` are logged past it; with no usable snapshot, forget the log (the next
    load reads the store whole). True when the snapshot was rewritten."""
    store_id, last, trimmed = store.library_change_state()
    found = read(path_for(store))
    if found is None or found.store_id != store_id or not trimmed <= found.seq <= last:
        if last > trimmed:
            store.trim_library_changes(last)
        return False
    if last - found.seq <= resave_bound(len(found.arrays["keys"])):
        return False
    load_library(store, min_rows=min_rows, resave_over=0)
    log.info("%s: library index snapshot rewritten (%d changes)", path_for(store),
             last - found.seq)  # fmt: skip
    return True


def save(store: Store, index: HammingIndex, key: Snapshot) -> None:
    """Write the snapshot atomically; the store may then forget the changes it holds."""
    path = path_for(store)
    try:
        write(path, Snapshot(key.store_id, key.seq, index.arrays()))
    except OSError as exc:
        log.warning("%s: library index snapshot not written: %s", path, exc.strerror or exc)
        return
    store.trim_library_changes(key.seq)


def write(path: Path, snapshot: Snapshot) -> None:
    """A header (the key, each array's type, length and offset), then the aligned arrays."""
    key = {"store_id": snapshot.store_id, "seq": snapshot.seq}
    write_arrays(path, MAGIC, key, {name: snapshot.arrays[name] for name in FIELDS})


def write_arrays(path: Path, magic: bytes, key: dict[str, Any], arrays: Arrays) -> None:
    """Atomically: ``magic``, a JSON header (``key``, each array's type, length and offset),
    then the arrays, each aligned (so that ``read_arrays`` can map them)."""
    layout: list[tuple[str, str, int, int]] = []
    offset = 0
    for name, array in arrays.items():
        layout.append((name, array.dtype.str, len(array), offset))
        offset += -(-array.nbytes // ALIGN) * ALIGN
    header = json.dumps({**key, "arrays": layout}).encode()
    start = -(-(len(magic) + 8 + len(header)) // ALIGN) * ALIGN
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(temporary, "wb") as out:
            out.write(magic + len(header).to_bytes(8, "little") + header)
            for name, _, _, at in layout:
                out.seek(start + at)
                out.write(np.ascontiguousarray(arrays[name]).data)
            out.truncate(start + offset)
            out.flush()
            os.fsync(out.fileno())
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)
    directory = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(directory)
    finally:
        os.close(directory)


def read(path: Path) -> Snapshot | None:
    """The snapshot, its arrays memory-mapped; None if there is none or it is unusable."""
    try:
        header, arrays = read_arrays(path, MAGIC)
        return Snapshot(int(header["store_id"]), int(header["seq"]), _checked(arrays))
    except FileNotFoundError:
        return None
    except (OSError, ValueError, KeyError, TypeError) as exc:
        log.warning("%s: library index snapshot unusable, rebuilt: %s", path, exc)
        return None


def read_arrays(path: Path, magic: bytes) -> tuple[dict[str, Any], Arrays]:
    """(the header, the arrays memory-mapped) of a file ``write_arrays`` wrote; raises
    ``OSError`` (``FileNotFoundError``: none), ``ValueError`` or ``KeyError`` if unusable."""
    with open(path, "rb") as source:
        head = source.read(len(magic) + 8)
        if head[: len(magic)] != magic:
            raise ValueError("not a snapshot of this kind")
        length = int.from_bytes(head[len(magic) :], "little")
        header = json.loads(source.read(length))
        size = os.fstat(source.fileno()).st_size
    start = -(-(len(magic) + 8 + length) // ALIGN) * ALIGN
    arrays = {
        name: _mapped(path, np.dtype(kind), count, start + at, size)
        for name, kind, count, at in header["arrays"]
    }
    return header, arrays


def _mapped(path: Path, dtype: np.dtype[Any], count: int, offset: int, size: int) -> NDArray[Any]:
    if offset + count * dtype.itemsize > size:
        raise ValueError("truncated")
    if count == 0:
        return np.zeros(0, dtype)
    return np.memmap(path, dtype, mode="r", offset=offset, shape=(count,))


def _checked(arrays: Arrays) -> Arrays:
    """The arrays if their lengths agree with each other (a cheap sanity check)."""
    rows = len(arrays["keys"])
    lengths = [len(arrays[name]) for name in FIELDS]
    if lengths != [rows] * 5 + [6 * rows] * 2:
        raise ValueError(f"array lengths {lengths} do not agree")
    return arrays
