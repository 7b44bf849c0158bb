"""Reconcile: walk every watched tree and queue what events missed.

Runs at start-up (files that arrived or changed while the daemon was down), on a timer, and
after events were lost. Unchanged files (same size, mtime and inode as stored) are skipped;
rows of files that are gone are forgotten. A library seen for the first time is only indexed:
its existing photos are not newcomers (``imagewatchd scan --act`` de-duplicates it on request).
"""

from __future__ import annotations

import logging
import os
import queue
import threading
import time
from collections.abc import Collection
from dataclasses import dataclass, field

from imagewatchd.config import Config
from imagewatchd.filters import walk
from imagewatchd.match import Matcher
from imagewatchd.models import Arrival, Candidate, FileStat, Role
from imagewatchd.store import Store
from imagewatchd.watch import Event, selection_of

log = logging.getLogger(__name__)


@dataclass
class Reconciled:
    queued: int = 0
    first_index: dict[str, list[str]] = field(default_factory=dict)  # root → paths queued


def reconcile(
    config: Config,
    store: Store,
    matcher: Matcher,
    events: queue.Queue[Event],
    stop: threading.Event,
    skip: Collection[int] = (),
) -> Reconciled:
    """Queue a scan candidate for every new or changed file.

    Watches in ``skip`` are away (unmounted, say): an empty mount point is not an empty tree,
    and its files are not forgotten.
    """
    result = Reconciled()
    for index, watch in enumerate(config.watches):
        if index in skip or not watch.path.is_dir():
            continue
        known = dict((path, file_id) for file_id, path in store.files_under(str(watch.path)))
        first_time = watch.role is Role.LIBRARY and not store.watch_indexed(str(watch.path))
        if first_time:
            log.info("%s: a library seen for the first time: indexing, not acting", watch.path)
        present: set[str] = set()
        inodes: set[tuple[int, int]] = set()
        todo: list[Candidate] = []
        for path, info in walk(watch.path, selection_of(watch), watch.recursive):
            if stop.is_set():
                return result
            present.add(str(path))
            inodes.add((info.st_dev, info.st_ino))
            row = store.get_file(str(path)) if str(path) in known else None
            if row is None or not row.unchanged(FileStat.of(info)):
                todo.append(Candidate(str(path), index, Arrival.SCAN, not first_time))
        # forget what is gone, except files that were renamed while we were down: the pipeline
        # finds those by inode and carries their rows over, so they are no newcomers
        gone = _gone(store, known, present, inodes)
        for file_id in gone:
            matcher.remove_library_file(file_id)
        store.forget_files(gone)
        if first_time:
            result.first_index[str(watch.path)] = [c.path for c in todo]
        for candidate in todo:
            if not _put(events, candidate, stop):
                return result
            result.queued += 1
    return result


def _gone(
    store: Store, known: dict[str, int], present: set[str], inodes: set[tuple[int, int]]
) -> list[int]:
    missing = [path for path in known if path not in present]
    rows = [store.get_file(path) for path in missing]
    return [r.id for r in rows if r is not None and (r.stat.device, r.stat.inode) not in inodes]


def finish_first_index(store: Store, root: str, paths: list[str], stop: threading.Event) -> bool:
    """Once every file of a library's first index is recorded (or gone), say so for good.

    Until then, a restart indexes the rest without acting: existing photos are no newcomers.
    """
    waiting = list(paths)
    while waiting:
        waiting = [p for p in waiting if store.get_file(p) is None and os.path.lexists(p)]
        if waiting and stop.wait(0.5):
            return False
    store.mark_watch_indexed(root, time.time())
    log.info("%s: first index complete", root)
    return True


def _put(events: queue.Queue[Event], item: Event, stop: threading.Event) -> bool:
    """Wait for room in the queue, unless the daemon is stopping."""
    while not stop.is_set():
        try:
            events.put(item, timeout=0.2)
            return True
        except queue.Full:
            continue
    return False
