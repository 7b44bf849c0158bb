"""Retroactive bans in bulk: which stored incoming files many new entries (an import) may match.

``retroactive.find`` compares a few new entries with the stored files one entry at a time; an
import of a million hashes is matched here as arrays instead. With no stored incoming file
there is nothing to search, and nothing is read. Otherwise the entries' hashes are read
column-wise (their ids from the first new one on, kept if they are among the new ones), and
joined with the files' in one pass per kind of evidence: sha256 by a dictionary, dHash+pHash by
``hashjoin.cross_pairs``, PDQ by a ``PdqIndex`` of the larger side searched with the smaller.
The answer is candidate (file, entry) pairs: ``retroactive.find`` checks each by the live rule
on the file's current row and the entry's whole row.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from numpy.typing import NDArray

from imagewatchd.hashjoin import cross_pairs
from imagewatchd.incoming import Columns
from imagewatchd.models import Thresholds
from imagewatchd.pdqindex import PdqIndex, Words, words_of_bytes
from imagewatchd.store import Store

Pairs = dict[int, set[int]]  # file id -> the ids of the entries that may match it
SEARCH_BLOCK = 1024  # PDQ queries searched at once


def candidates(
    store: Store, t: Thresholds, entry_ids: Sequence[int], columns: Columns | None
) -> Pairs:
    """(file, entry) pairs that may match, for many new entries; {} if no incoming file."""
    files = store.incoming_sha256s()
    if not files or not entry_ids:
        return {}
    wanted = np.unique(np.asarray(entry_ids, dtype=np.int64))
    after = int(wanted[0]) - 1
    pairs: Pairs = {}
    by_sha256: dict[str, list[int]] = {}
    for file_id, sha256 in files:
        by_sha256.setdefault(sha256, []).append(file_id)
    new = set(wanted.tolist())
    for entry_id, sha256 in store.sha256_entries_after(after):
        for file_id in by_sha256.get(sha256, ()) if entry_id in new else ():
            pairs.setdefault(file_id, set()).add(entry_id)
    columns = columns if columns is not None else Columns.read(store, t.pdq_query_quality)
    ids, dhashes, phashes = store.near_entry_hashes_after(after)
    keep = np.isin(ids, wanted)
    near = cross_pairs((columns.ids, columns.dhashes, columns.phashes),
                       (ids[keep], dhashes[keep], phashes[keep]), t.dhash, t.phash)  # fmt: skip
    _add(pairs, *near)
    if len(columns.pdq_ids):
        ids, stored = store.pdq_entry_hashes_after(after, t.pdq_quality)
        keep = np.isin(ids, wanted)
        found = pdq_pairs(columns.pdq_ids, columns.pdqs, ids[keep],
                          words_of_bytes(stored[keep]), t.pdq)  # fmt: skip
        _add(pairs, *found)
    return pairs


def _add(pairs: Pairs, file_ids: NDArray[np.int64], entry_ids: NDArray[np.int64]) -> None:
    for file_id, entry_id in zip(file_ids.tolist(), entry_ids.tolist(), strict=True):
        pairs.setdefault(file_id, set()).add(entry_id)


def pdq_pairs(
    first_keys: NDArray[np.int64], first: Words, second_keys: NDArray[np.int64], second: Words,
    threshold: int,
) -> tuple[NDArray[np.int64], NDArray[np.int64]]:  # fmt: skip
    """(keys of ``first``, keys of ``second``) of every pair within ``threshold`` bits: the
    larger side indexed, the smaller one's PDQs searched in it, a block at a time."""
    swapped = len(first_keys) > len(second_keys)
    (small_keys, small), (large_keys, large) = (
        ((second_keys, second), (first_keys, first)) if swapped
        else ((first_keys, first), (second_keys, second))
    )  # fmt: skip
    own: list[int] = []
    other: list[int] = []
    if len(small_keys) and len(large_keys):
        index = PdqIndex()
        index.add_many(np.arange(len(large_keys), dtype=np.int64), large)
        queries = [int.from_bytes(row.astype("<u8").tobytes(), "little") for row in small]
        for start in range(0, len(queries), SEARCH_BLOCK):
            found = index.search_many(queries[start : start + SEARCH_BLOCK], threshold)
            for view, hits in enumerate(found, start):
                own += [view] * len(hits)
                other += [row for row, _ in hits]
    mine = small_keys[np.asarray(own, dtype=np.intp)].astype(np.int64)
    theirs = large_keys[np.asarray(other, dtype=np.intp)].astype(np.int64)
    return (theirs, mine) if swapped else (mine, theirs)
