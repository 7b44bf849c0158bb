"""Reconcile: walk every watched tree and queue what events missed.

Runs at start-up (files that arrived or changed while the daemon was down), on a timer, and
after events were lost. Unchanged files (same size, mtime and inode as stored) are skipped;
rows of files that are gone are forgotten. A library seen for the first time is only indexed:
its existing photos are not newcomers (``imagewatchd scan --act`` de-duplicates it on request).
"""

from __future__ import annotations

import logging
import queue
import threading

from imagewatchd.config import Config
from imagewatchd.filters import walk
from imagewatchd.match import Matcher
from imagewatchd.models import Arrival, Candidate, Role
from imagewatchd.scan import file_stat
from imagewatchd.store import Store
from imagewatchd.watch import Event, selection_of

log = logging.getLogger(__name__)


def reconcile(
    config: Config,
    store: Store,
    matcher: Matcher,
    events: queue.Queue[Event],
    stop: threading.Event,
) -> int:
    """Queue a scan candidate for every new or changed file; returns how many."""
    queued = 0
    for index, watch in enumerate(config.watches):
        if not watch.path.is_dir():
            continue
        known = dict((path, file_id) for file_id, path in store.files_under(str(watch.path)))
        first_time = watch.role is Role.LIBRARY and not known
        if first_time:
            log.info("%s: a library seen for the first time: indexing, not acting", watch.path)
        present: set[str] = set()
        todo: list[Candidate] = []
        for path, info in walk(watch.path, selection_of(watch), watch.recursive):
            if stop.is_set():
                return queued
            present.add(str(path))
            row = store.get_file(str(path)) if str(path) in known else None
            if row is None or not row.unchanged(file_stat(info)):
                todo.append(Candidate(str(path), index, Arrival.SCAN, not first_time))
        # forget what is gone first, so that a file renamed while we were down is not taken
        # for a duplicate of its own old name
        gone = [file_id for path, file_id in known.items() if path not in present]
        for file_id in gone:
            matcher.remove_library_file(file_id)
        store.forget_files(gone)
        for candidate in todo:
            if not _put(events, candidate, stop):
                return queued
            queued += 1
    return queued


def _put(events: queue.Queue[Event], item: Event, stop: threading.Event) -> bool:
    """Wait for room in the queue, unless the daemon is stopping."""
    while not stop.is_set():
        try:
            events.put(item, timeout=0.2)
            return True
        except queue.Full:
            continue
    return False
