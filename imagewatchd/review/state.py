"""What the review page works on: the store, the index and the groups, held between requests,
and the decisions and actions it takes, through the same store, journal and functions as the
CLI (``dupes keep`` and ``not-duplicate``, ``scan --act``'s group rule, ``quarantine restore``
and ``delete``), so that the daemon honours them at once and ``undo`` works.

A ``Store`` belongs to one thread: every store access runs on one thread of its own (a
one-worker executor), whichever server thread asks.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from imagewatchd import paths, service
from imagewatchd.act import Actor
from imagewatchd.config import Config, Watch
from imagewatchd.decisions import content_id
from imagewatchd.decoding import Decoder
from imagewatchd.dupes import DupeGroup, duplicate_groups, groups_among
from imagewatchd.errors import FingerprintError, ImagewatchdError, UsageError
from imagewatchd.history import when, where
from imagewatchd.journal import destination, source
from imagewatchd.keepconfig import Policies
from imagewatchd.match import Matcher
from imagewatchd.models import Role
from imagewatchd.names import shown
from imagewatchd.quarantine import delete, entry_summary
from imagewatchd.review.thumbs import Thumbnails
from imagewatchd.rows import ActionRow
from imagewatchd.similar import similar_groups
from imagewatchd.store import Store, Where, local_path
from imagewatchd.store.decisions import KEEP, NOT_DUPLICATE

log = logging.getLogger(__name__)
T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Quarantined:
    id: int
    when: str
    original: str  # shown
    stored: str  # shown
    verdict: str
    entry: str  # shown: list, entry and label, or the library file


class Review:
    def __init__(self, config: Config, db_path: Where, decoder: Decoder) -> None:
        self.config = config
        self.db_path = db_path
        self.decoder = decoder
        self.thumbs = Thumbnails(local_path(db_path).parent / "thumbs", decoder)
        self.quarantine_dir = paths.quarantine_dir(config.quarantine_dir)
        self._worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="review-store")
        self._store: Store | None = None
        self._matcher: Matcher | None = None
        self._groups: list[DupeGroup] | None = None
        self.policies = Policies.of(config.watches)

    def run(self, task: Callable[[], T]) -> T:
        """``task`` on the store's own thread."""
        return self._worker.submit(task).result()

    def close(self) -> None:
        self.run(self._close)
        self._worker.shutdown()

    def _close(self) -> None:
        if self._store is not None:
            self._store.close()
            self._store = None

    # -- on the store's thread ---------------------------------------------------------------

    @property
    def store(self) -> Store:
        if self._store is None:
            self._store = Store(self.db_path)
        return self._store

    @property
    def matcher(self) -> Matcher:
        if self._matcher is None:
            self._matcher = Matcher.load(self.store, self.config.matching.thresholds)
        return self._matcher

    def groups(self) -> list[DupeGroup]:
        if self._groups is None:
            self._groups = duplicate_groups(self.matcher, policies=self.policies)
        return self._groups

    def similar(self) -> list[DupeGroup]:
        """Groups of similar pictures (burst shots): shown, never acted on."""
        return similar_groups(self.matcher, duplicates=self.groups())

    def prune(self) -> int:
        """Drop the thumbnails no file row or quarantined file needs any more."""
        return self.thumbs.prune(self.store.sha256s_in_use)

    def _regroup(self, group: DupeGroup) -> None:
        """What a decision or an action left of one group: a full search takes seconds at
        10,000 groups, and a decision can only reorder or split the group it is about."""
        rows = self.store.files_by_id(r.id for r in group.files).values()
        left = [r for r in rows if r.role is Role.LIBRARY and r.error is None]
        groups = self.groups()
        groups.remove(group)
        groups.extend(groups_among(self.matcher, left, self.policies))
        groups.sort(key=lambda g: g.best.path)

    def _row(self, file_id: int) -> tuple[DupeGroup, int]:
        for group in self.groups():
            for row in group.files:
                if row.id == file_id:
                    return group, row.id
        raise UsageError(f"file {file_id} is in no duplicate group (any more): reload the page")

    def keep(self, file_id: int) -> str:
        group, _ = self._row(file_id)
        row = next(r for r in group.files if r.id == file_id)
        sha256 = self._content(row.path, row.sha256)
        number, new = self.store.add_decision(KEEP, sha256, None, shown(row.path), time.time())
        self._regroup(group)
        return f"decision {number}: keep {shown(row.path)}" + ("" if new else " (taken before)")

    def not_duplicate(self, file_id: int, other_id: int) -> str:
        group, _ = self._row(file_id)
        rows = {r.id: r for r in group.files}
        if other_id not in rows:
            raise UsageError("the two files are not in one group (any more): reload the page")
        a, b = rows[file_id], rows[other_id]
        sha_a, sha_b = self._content(a.path, a.sha256), self._content(b.path, b.sha256)
        if sha_a == sha_b:
            raise UsageError(f"{a.path} and {b.path} hold identical bytes")
        names = f"{shown(a.path)} | {shown(b.path)}"
        number, new = self.store.add_decision(NOT_DUPLICATE, sha_a, sha_b, names, time.time())
        self._regroup(group)
        return f"decision {number}: not duplicates: {names}" + ("" if new else " (taken before)")

    @staticmethod
    def _content(path: str, stored: str | None) -> str:
        """The file's content now, as ``dupes keep`` reads it; it must be what was indexed."""
        try:
            sha256 = content_id(Path(path))
        except FingerprintError as exc:
            raise UsageError(f"{path}: {exc.reason}") from exc
        if sha256 != stored:
            raise UsageError(f"{path} changed since it was indexed: scan it again")
        return sha256

    def apply(self, keeper_id: int) -> str:
        """The library watch's ``on_duplicate`` for the group's copies of its keeper, as one
        batch (``undo --batch N`` puts them back)."""
        group, _ = self._row(keeper_id)
        if group.best.id != keeper_id:
            raise UsageError("the group's keeper has changed: reload the page")
        index, watch = self._watch_of(group.best.path)
        batch = self.store.start_batch(f"review apply {shown(group.best.path)}", time.time())
        actor = Actor(self.store, self.config, self.quarantine_dir, batch_id=batch, prune=True)
        try:
            errors = service.act_on_group(
                group, watch.path, index, watch, self.store, self.matcher, actor
            )
        finally:
            self.store.finish_batch(batch, time.time())
            self._regroup(group)
        failed = f", {errors} error(s)" if errors else ""
        return f"batch {batch}: applied {watch.on_duplicate} to the copies{failed}; undo it" \
            f" with: imagewatchd undo --batch {batch}"  # fmt: skip

    def _watch_of(self, path: str) -> tuple[int, Watch]:
        for index, watch in enumerate(self.config.watches):
            if watch.role is Role.LIBRARY and Path(path).is_relative_to(watch.path):
                return index, watch
        raise UsageError(f"{path}: in no library watch of the configuration")

    def quarantined(self) -> list[Quarantined]:
        rows = self.store.actions(kind="quarantine", state="done")
        return [_quarantined(a) for a in reversed(rows)]

    def restore(self, action_id: int) -> str:
        actor = Actor(self.store, self.config, self.quarantine_dir, prune=True)
        back = service.restore_one(
            self.config, self.store, actor, self.decoder, action_id, force=False
        )
        return f"action {action_id}: back at {shown(str(back))}"

    def delete(self, action_id: int) -> str:
        a = delete(self.store, self.quarantine_dir, action_id)
        return f"action {action_id}: deleted {shown(where(a))}"

    def file_source(self, file_id: int) -> tuple[str, str | None] | None:
        row = self.store.files_by_id([file_id]).get(file_id)
        return None if row is None else (row.path, row.sha256)

    def quarantine_source(self, action_id: int) -> tuple[str, str | None] | None:
        a = self.store.action(action_id)
        if a is None or a.kind != "quarantine" or a.state != "done":
            return None
        return str(destination(a).path), a.sha256


def _quarantined(a: ActionRow) -> Quarantined:
    return Quarantined(
        a.id, when(a.created), shown(str(source(a).path)), shown(where(a)), a.verdict,
        shown(entry_summary(a)),
    )  # fmt: skip


# what a click may meet: said on the page, escaped (their messages hold names as they are)
ACTION_ERRORS = (ImagewatchdError,)  # a refusal, a file, the store, the decoders
