"""Retroactive bans: a block entry that is new (or enabled again) reaches the files already there.

The entry is matched against the stored fingerprints of the files of the incoming trees, not
by decoding them again: their hashes are read column-wise (one query) and compared with the
few new entries by XOR and popcount, with match.py's rule (an identical sha256; dHash and pHash
both within their thresholds; PDQ within its threshold when both qualities reach the floor;
flat images by sha256 only). This only *finds* the files: each is then processed like any
file (``Pipeline.process`` with its stored fingerprint), so the whole verdict (an allow-list
entry still suppresses), the exemptions of narrow restores, the watch's ``on_known``, the
journal and the log line are the live ones. A file whose row is stale (its stat changed) is
offered to the settler instead, to be fingerprinted again like any changed file.

The daemon keeps where it stands (the last entry id seen, the entries disabled then) in the
store's counters (``Store.retro_state``), saved once a batch's files are handed over: a new
session's first look finds the entries added or enabled again since, while no daemon ran, and
matches them like live bans (a daemon killed before saving matches them again: the files it
acted on are gone or exempt by then). The first daemon on a store starts from the entries it
finds; a dry run keeps nothing.

What it does not find (README, "What a ban does not catch"): mirrored or rotated copies, and
bordered, padded or captioned ones, among the stored files. A live upload is searched in its 8
orientations and its trimmed regions (``Fingerprint.turned``, ``regions``), but those are the
query's, computed at decode time and never stored; here the entry is the query, and an entry
has its hashes as they are. The orientations could be turned to the entry's side: ``known add``
from a picture holds the picture's 7 other orientations (``Fingerprint.turned``), and comparing
them with the stored files, at the turned thresholds, for the watches whose ``orientations``
count lists, finds what the live search would. That needs them stored per entry (a table,
a migration), and hash-list imports have no picture (PDQ's turns follow from its DCT signs,
dHash's and pHash's do not). Regions cannot move to the entry's side (a border is not added to
a hash): that needs the files' region hashes stored. Not built; ``scan --act`` (and a stored
file reached by a retroactive ban) decodes the files again and finds both.

Library trees are not reached: a library is the user's own collection, indexed for
duplicates, and a new ban sweeping it is what ``scan --act`` does when asked (README).
"""

from __future__ import annotations

import logging
import os
import queue
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from imagewatchd import retrobulk
from imagewatchd.config import Config
from imagewatchd.errors import DatabaseUnreachable
from imagewatchd.hashindex import hamming
from imagewatchd.incoming import Columns, StoredHashes
from imagewatchd.match import Matcher
from imagewatchd.models import (
    Arrival,
    Candidate,
    FileStat,
    ListKind,
    Role,
    SettledFile,
    Thresholds,
    VerdictKind,
)
from imagewatchd.names import shown
from imagewatchd.pdqindex import words
from imagewatchd.rows import EntryRow, FileRow
from imagewatchd.store import Store, damage

log = logging.getLogger(__name__)

LOOP_LIMIT = 64  # new entries compared one by one with the arrays; more: joined (retrobulk)


@dataclass(frozen=True, slots=True)
class Hit:
    """An incoming file that new entries match by its stored fingerprint."""

    row: FileRow
    entries: tuple[int, ...]


@dataclass(frozen=True, slots=True)
class Reach:
    """What new entries reach among the stored incoming files (what ``known add`` prints)."""

    acted: int  # known now: the watch's on_known applies
    allowed: int  # an allow-list entry suppresses the ban
    kept: int  # an undo or restore put the file back there: it stays


def block_entries(store: Store, ids: Sequence[int]) -> list[EntryRow]:
    found: list[EntryRow] = []
    for at in range(0, len(ids), 500):
        found += store.entries(ids=ids[at : at + 500])
    return [e for e in found if e.enabled and e.list_kind is ListKind.BLOCK]


def find(
    store: Store, thresholds: Thresholds, entry_ids: Sequence[int], columns: Columns | None = None
) -> list[Hit]:
    """The incoming files that these entries (the enabled block ones) match, in id order.

    ``columns`` are the stored hashes (the daemon's copy), else read from the store; every file
    they point to is checked against its current row, by the same rule. Many entries (an
    import) are joined with the files as arrays (``retrobulk``).
    """
    if len(entry_ids) > LOOP_LIMIT:
        pairs = retrobulk.candidates(store, thresholds, entry_ids, columns)
    else:
        pairs = _candidates(store, thresholds, block_entries(store, entry_ids), columns)
    wanted = sorted({entry_id for ids in pairs.values() for entry_id in ids})
    entries = {e.id: e for e in block_entries(store, wanted)}
    hits = []
    for file_id, row in sorted(store.files_by_id(pairs).items()):
        found = pairs[file_id] & entries.keys()
        matched = tuple(sorted(e for e in found if _matches(row, entries[e], thresholds)))
        if matched:
            hits.append(Hit(row, matched))
    return hits


def _candidates(
    store: Store, t: Thresholds, entries: list[EntryRow], columns: Columns | None
) -> retrobulk.Pairs:
    """(file, entry) pairs that may match, for a few entries: each compared with the arrays."""
    pairs: retrobulk.Pairs = {}
    by_sha256 = store.incoming_files_by_sha256(e.sha256 for e in entries if e.sha256 is not None)
    for row in by_sha256:
        pairs.setdefault(row.id, set()).update(e.id for e in entries if e.sha256 == row.sha256)
    floor = t.pdq_quality
    near = [e for e in entries if not e.flat and e.dhash is not None and e.phash is not None]
    pdq = [
        e for e in entries
        if not e.flat and e.pdq is not None and (e.pdq_quality is None or e.pdq_quality >= floor)
    ]  # fmt: skip
    if not near and not pdq:
        return pairs
    files = columns if columns is not None else Columns.read(store, t.pdq_query_quality)
    for entry in near:
        assert entry.dhash is not None and entry.phash is not None
        close = np.bitwise_count(files.dhashes ^ np.uint64(entry.dhash)) <= t.dhash
        close &= np.bitwise_count(files.phashes ^ np.uint64(entry.phash)) <= t.phash
        for file_id in files.ids[close].tolist():
            pairs.setdefault(file_id, set()).add(entry.id)
    for entry, query in zip(pdq, words([e.pdq or 0 for e in pdq]), strict=True):
        distance = np.bitwise_count(files.pdqs ^ query).sum(axis=1, dtype=np.int64)
        for file_id in files.pdq_ids[distance <= t.pdq].tolist():
            pairs.setdefault(file_id, set()).add(entry.id)
    return pairs


def _matches(row: FileRow, entry: EntryRow, t: Thresholds) -> bool:
    """match.py's rule for one stored file and one entry, on the file's current row."""
    fp = row.fingerprint()
    if row.role is not Role.INCOMING or row.error is not None or fp is None:
        return False
    if entry.sha256 is not None and entry.sha256 == fp.sha256:
        return True
    if fp.flat or entry.flat:
        return False
    if (
        entry.dhash is not None
        and entry.phash is not None
        and (
            hamming(fp.dhash, entry.dhash) <= t.dhash and hamming(fp.phash, entry.phash) <= t.phash
        )
    ):
        return True
    if entry.pdq is None or fp.pdq is None or fp.pdq_quality < t.pdq_query_quality:
        return False
    good = entry.pdq_quality is None or entry.pdq_quality >= t.pdq_quality
    return good and hamming(fp.pdq, entry.pdq) <= t.pdq


def reach(store: Store, config: Config, entry_ids: Sequence[int]) -> Reach:
    """How many stored incoming files the entries match, and what becomes of them, by the
    whole verdict over every list (the CLI's count; the daemon does the acting)."""
    hits = find(store, config.matching.thresholds, entry_ids)
    if not hits:
        return Reach(0, 0, 0)
    matcher = Matcher(store, config.matching.thresholds)
    matcher.refresh_entries()
    acted = allowed = kept = 0
    for hit in hits:
        fp = hit.row.fingerprint()
        if fp is None:
            continue
        verdict = matcher.match(fp)  # with the file's stored colours (colours.screen)
        if verdict.kind is not VerdictKind.KNOWN:  # allow-listed, or set aside as recoloured
            allowed += bool(verdict.suppressed)
        elif store.exemption(hit.row.path, fp.sha256) is not None:
            kept += 1
        else:
            acted += 1
    return Reach(acted, allowed, kept)


def summary(store: Store, config: Config, entry_ids: Sequence[int], daemon: int | None) -> str:
    """What ``known add``/``import``/``enable`` print about the files already there."""
    found = reach(store, config, entry_ids)
    text = f"stored incoming files matched: {found.acted}"
    spared = [f"{n} {why}" for n, why in ((found.allowed, "allow-listed"),
              (found.kept, "kept by a restore")) if n]  # fmt: skip
    text += f" (and {', '.join(spared)})" if spared else ""
    if not found.acted:
        return text
    if daemon is not None:
        return text + f"; the running daemon{f' (PID {daemon})' if daemon else ''} acts on them"
    roots = " ".join(shown(str(w.path)) for w in config.watches if w.role is Role.INCOMING)
    return text + (f"; no daemon is running: it acts on them when it starts "
                   f"(`imagewatchd scan --act {roots or 'DIR'}` does now)")  # fmt: skip


def incoming_watch(config: Config, path: str) -> int | None:
    """The incoming watch whose tree holds ``path`` (the deepest, if they nest)."""
    best: int | None = None
    for number, watch in enumerate(config.watches):
        if watch.role is not Role.INCOMING or not Path(path).is_relative_to(watch.path):
            continue
        if best is None or len(str(watch.path)) > len(str(config.watches[best].path)):
            best = number
    return best


def offer(config: Config, hit: Hit) -> SettledFile | Candidate | None:
    """What to hand the daemon for a hit: the file itself, to be matched again by its stored
    fingerprint; a candidate to settle and fingerprint, if it changed; nothing if it is gone."""
    watch = incoming_watch(config, hit.row.path)
    if watch is None:
        return None
    try:
        stat = FileStat.of(os.lstat(hit.row.path))
    except OSError as exc:
        log.debug("%s: not reached by a retroactive ban: %s", hit.row.path, exc.strerror)
        return None
    if not hit.row.unchanged(stat):
        return Candidate(hit.row.path, watch, Arrival.SCAN)
    return SettledFile(hit.row.path, watch, stat, retro=hit.entries)


@dataclass(frozen=True, slots=True)
class Batch:
    """Entries to match, and where the daemon stands once they are: the last entry id seen
    and the entries disabled then (``NewBans.run`` saves it in the store)."""

    ids: tuple[int, ...]
    last_id: int
    disabled: frozenset[int]


class NewBans:
    """Block entries added or enabled again since the last look (the daemon's side).

    ``look`` runs before the matcher's ``refresh_entries``, so that every entry it reports is
    in the index the workers match with; the finding runs on its own thread (``run``). Where
    the last session stood (the last entry id, the disabled entries) is kept in the store once
    a batch is matched, so the first look of a session catches up with the entries added or
    enabled again while no daemon ran (``keep=False``, a dry run: it is not kept).
    """

    def __init__(self, store: Store, floor: int, keep: bool = True) -> None:
        self.store = store
        self.keep = keep
        self.stored = StoredHashes(floor)  # loaded by ``run``, on its own thread
        self.counters: tuple[int, int] | None = None  # the first look compares with the store
        state = store.retro_state()  # None: no daemon saved one yet; from now on, then
        self.last_id, disabled = state or (store.last_entry_id(), store.disabled_entry_ids())
        self.disabled = frozenset(disabled)
        self.saved: tuple[int, frozenset[int]] | None = None  # where the store says it stands
        if state is None:
            self.record(store, Batch((), self.last_id, self.disabled))
        self.saved = (self.last_id, self.disabled)
        self.pending: queue.Queue[Batch] = queue.Queue()

    def look(self) -> list[int]:
        """The block entries new or re-enabled since the last look; queued for ``run``."""
        counters = self.store.entry_counters()
        if counters == self.counters:
            return []
        changed = self.counters is None or counters[1] != self.counters[1]
        self.counters = counters
        ids = set(self.store.block_entry_ids(self.last_id))
        self.last_id = max([self.last_id, *ids])
        if changed:
            disabled = frozenset(self.store.disabled_entry_ids())
            ids.update(self.disabled - disabled)  # enabled again (or removed: find drops them)
            self.disabled = disabled
        self.pending.put(Batch(tuple(sorted(ids)), self.last_id, self.disabled))
        return sorted(ids)

    def run(
        self, store: Store, config: Config, stop: threading.Event,
        send: Callable[[SettledFile | Candidate], None],
    ) -> None:  # fmt: skip
        """Until ``stop``: find the files each batch of entries matches, and ``send`` them."""
        start = time.monotonic()
        loaded = len(self.stored.columns(store))  # now, not when the first ban waits for it
        log.info("retroactive bans: %d stored incoming file hashes in memory (%.1f s)", loaded,
                 time.monotonic() - start)  # fmt: skip
        while not stop.is_set():
            try:
                batch = self.pending.get(timeout=0.5)
            except queue.Empty:
                continue
            try:
                matched = not batch.ids or self._match(store, config, batch.ids, send)
            except DatabaseUnreachable:  # an outage (session.py): matched once it is over
                self.pending.put(batch)
                raise
            if matched:
                self.record(store, batch)

    def _match(
        self, store: Store, config: Config, ids: Sequence[int],
        send: Callable[[SettledFile | Candidate], None],
    ) -> bool:  # fmt: skip
        """Find the files these entries match and ``send`` them; False if it failed."""
        try:
            columns = self.stored.columns(store)
            hits = find(store, config.matching.thresholds, ids, columns)
        except Exception as exc:  # e.g. the database busy for longer than its timeout
            if damage(exc) is not None or isinstance(exc, DatabaseUnreachable):
                raise
            log.error("entries %s: not matched against the stored files: %r; "
                      "`imagewatchd scan --act` does it", _ids(ids), exc)  # fmt: skip
            log.debug("traceback", exc_info=True)
            return False
        offers = [item for item in (offer(config, hit) for hit in hits) if item is not None]
        log.info("entries %s: %d stored incoming file(s) match; matching them again",
                 _ids(ids), len(offers))  # fmt: skip
        for item in offers:
            send(item)
        return True

    def record(self, store: Store, batch: Batch) -> None:
        """Keep where the daemon stands (the files found are handed over), if it moved."""
        if not self.keep or (batch.last_id, batch.disabled) == self.saved:
            return
        disabled = frozenset[int]() if self.saved is None else self.saved[1]
        store.save_retro_state(batch.last_id, set(batch.disabled - disabled),
                               set(disabled - batch.disabled))  # fmt: skip
        self.saved = (batch.last_id, batch.disabled)


def _ids(ids: Iterable[int]) -> str:
    return ",".join(str(i) for i in ids)
