"""Act stage: Verdict → Outcome. The only stage that changes files, always through ``fileops``.

Every move is journalled before it happens (intended) and after (done, failed or rolled back),
so that ``recover`` can finish or roll back whatever a crash interrupted.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path, PurePosixPath

from imagewatchd import fileops, report, trash
from imagewatchd.config import Action, Config, Watch
from imagewatchd.errors import StoreError
from imagewatchd.fileops import FileChanged, FileOpsError, Location, NotLinkable, TargetExists
from imagewatchd.match import entry_ids
from imagewatchd.models import FileStat, Fingerprint, SettledFile, Verdict, VerdictKind
from imagewatchd.rows import NewAction
from imagewatchd.store import Store

log = logging.getLogger(__name__)

QUARANTINE_MODE = 0o600  # not readable by others, not executable
RENAME_TRIES = 5


@dataclass(frozen=True, slots=True)
class Decision:
    """What to do about one file, and the rule that says so."""

    action: Action | None
    rule: str


def decide(verdict: Verdict, watch: Watch, index: int) -> Decision:
    if verdict.kind is VerdictKind.KNOWN:
        return Decision(watch.on_known, f"watches[{index}].on_known")
    if verdict.kind is VerdictKind.DUPLICATE:
        return Decision(watch.on_duplicate, f"watches[{index}].on_duplicate")
    if verdict.kind is VerdictKind.SIMILAR:
        return Decision(watch.on_similar, f"watches[{index}].on_similar")
    return Decision(None, "")


def evidence_json(verdict: Verdict, config: Config) -> str:
    t = config.matching.thresholds
    return json.dumps({
        "matches": [report.match_json(m) for m in verdict.matches],
        "thresholds": {"dhash": t.dhash, "phash": t.phash, "similar_dhash": t.similar_dhash,
                       "similar_phash": t.similar_phash},
    })  # fmt: skip


def quarantine_name(fp: Fingerprint, now: float) -> str:
    """A daemon-chosen name: when, and which content; no extension, so nothing opens it."""
    return f"{time.strftime('%Y%m%d-%H%M%S', time.gmtime(now))}-{fp.sha256[:16]}"


def ensure_quarantine(directory: Path) -> None:
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    os.chmod(directory, 0o700)


@dataclass(frozen=True, slots=True)
class Moved:
    action_id: int
    destination: Path | None  # None: deleted
    unrecorded: str | None = None  # why the journal does not say "done" yet
    other_names: int = 0  # a hard link, copied: its other names were left untouched

    @property
    def note(self) -> str:
        """What the log line adds to the destination, if anything."""
        if not self.other_names:
            return ""
        return f"hard link: copied, {self.other_names} other name(s) untouched"


@dataclass(frozen=True, slots=True)
class Unrecorded:
    """A move that happened, whose journal entry could not be finished (e.g. a full disk)."""

    action_id: int
    source: Path
    destination: Path | None  # None: deleted
    when: float
    reason: str


class Backlog:
    """Moves not yet recorded as done, shared by the daemon's workers; written when possible.

    Whatever is still here at exit stays ``intended`` in the journal: the next start-up's
    recovery finds the file at its destination and finishes the entry.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._items: list[Unrecorded] = []

    def add(self, item: Unrecorded) -> None:
        with self._lock:
            self._items.append(item)

    def __len__(self) -> int:
        with self._lock:
            return len(self._items)

    def flush(self, store: Store) -> int:
        """Record what can be recorded now; returns how many are still waiting."""
        with self._lock:
            items, self._items = self._items, []
        waiting: list[Unrecorded] = []
        for item in items:
            try:
                store.finish(item.action_id, "done", item.when)
            except StoreError as exc:
                waiting.append(replace(item, reason=str(exc)))
                continue
            log.info("%s: moved to %s, now recorded [action %d]", item.source, item.destination,
                     item.action_id)  # fmt: skip
        with self._lock:
            self._items = waiting + self._items
            return len(self._items)

    def abandon(self) -> None:
        """At exit: say which entries the next start-up's recovery will finish."""
        with self._lock:
            for item in self._items:
                log.warning(
                    "%s: moved to %s, still not recorded: %s; the next start-up's recovery "
                    "records it [action %d]", item.source, item.destination, item.reason,
                    item.action_id,
                )  # fmt: skip
            self._items = []


class Actor:
    """Carries out decisions for the files of the configured watches."""

    def __init__(
        self,
        store: Store,
        config: Config,
        quarantine_dir: Path,
        *,
        dry_run: bool = False,
        clock: Callable[[], float] = time.time,
        backlog: Backlog | None = None,
        batch_id: int | None = None,
        prune: bool = False,
    ) -> None:
        self.store = store
        self.config = config
        self.quarantine_dir = quarantine_dir
        self.dry_run = dry_run
        self.clock = clock
        self.backlog = backlog if backlog is not None else Backlog()
        self.batch_id = batch_id  # journalled with each action: one ``scan --act`` run
        self.prune = prune  # remove the directories a move empties (one-shot commands only)

    def act(
        self, settled: SettledFile, fp: Fingerprint, verdict: Verdict, decision: Decision
    ) -> Moved | None:
        """Carry out the decision; None when the file stays where it is.

        Raises ``FileChanged`` when the file is no longer the one fingerprinted (the caller
        processes it again) and ``FileOpsError`` when the move failed (the file stays).
        """
        if decision.action is None:
            return None
        watch = self.config.watches[settled.watch]
        src = Location(watch.path, PurePosixPath(os.path.relpath(settled.path, watch.path)))
        if self.dry_run:
            return None
        hits = entry_ids(verdict.matches)
        if hits:
            self.store.record_hits(hits, self.clock())
        if decision.action is Action.LOG:
            self._journal_log(src, settled.stat, fp, verdict, decision)
            return None
        special = {Action.TRASH: self._trash, Action.DELETE: self._delete,
                   Action.HARDLINK: self._hardlink}.get(decision.action)  # fmt: skip
        if special is not None:
            return special(src, settled.stat, fp, verdict, decision)
        if decision.action is Action.QUARANTINE:
            ensure_quarantine(self.quarantine_dir)
            dst = Location(self.quarantine_dir, PurePosixPath(quarantine_name(fp, self.clock())))
        else:
            assert watch.move_to is not None  # config validation guarantees it
            watch.move_to.mkdir(parents=True, exist_ok=True)
            dst = Location(watch.move_to, src.relative)
        kind = decision.action.value
        mode = QUARANTINE_MODE if decision.action is Action.QUARANTINE else None
        return self.move(src, dst, settled.stat, fp.sha256, kind, verdict, decision.rule, mode=mode)

    def move(
        self,
        src: Location,
        dst: Location,
        expect: FileStat,
        sha256: str,
        kind: str,
        verdict: Verdict | str,
        rule: str,
        *,
        reverses: int | None = None,
        mode: int | None = None,
        exempt: bool = False,
    ) -> Moved:
        """Journal, then move without ever replacing; retries under a fresh name if taken.

        With ``exempt``, the file is kept at its destination (with this content) before it
        arrives there: an undo's file must not be acted on again by a running daemon.
        """
        info = fileops.check_same(src, expect)
        dst = _free(dst)
        evidence = verdict if isinstance(verdict, str) else evidence_json(verdict, self.config)
        verdict_kind = "" if isinstance(verdict, str) else verdict.kind.value
        tmp_name = f".imagewatchd-{uuid.uuid4().hex}.tmp"
        action = NewAction(
            kind=kind, src_root=str(src.root), src_rel=str(src.relative), dst_root=str(dst.root),
            dst_rel=str(dst.relative), tmp_name=tmp_name, sha256=sha256, stat=expect,
            atime_ns=info.st_atime_ns, uid=info.st_uid, gid=info.st_gid, mode=info.st_mode,
            verdict=verdict_kind, evidence=evidence, rule=rule, reverses=reverses,
            batch_id=self.batch_id,
        )  # fmt: skip
        action_id = self.store.intend(action, self.clock())
        with self._or_abandon(action_id, exempt):
            if exempt:
                self.store.exempt(action_id, str(dst.path), sha256, self.clock())
            dst, other_names = self._move(action_id, src, dst, expect, tmp_name, mode, exempt)
        moved = self._done(action_id, src, dst, other_names)
        self._prune(src, "moving")
        return moved

    def _move(
        self, action_id: int, src: Location, dst: Location, expect: FileStat, tmp_name: str,
        mode: int | None, exempt: bool,
    ) -> tuple[Location, int]:  # fmt: skip
        """The move itself, under a fresh name while the chosen one is taken: where it went,
        and how many other names of the file were left untouched (a hard link is copied)."""
        for _ in range(RENAME_TRIES):
            try:
                result = fileops.move(src, dst, expect=expect, tmp_name=tmp_name, mode=mode)
                return dst, result.other_names
            except TargetExists:
                dst = _free(dst)
                self.store.retarget(action_id, str(dst.relative))
                if exempt:
                    self.store.move_exemption(action_id, str(dst.path))
        raise FileOpsError(dst.path, "no free destination name")

    @contextmanager
    def _or_abandon(self, action_id: int, exempt: bool = False) -> Iterator[None]:
        """Around the file operation of a journalled action: if the file changed meanwhile it
        is rolled back, if the operation failed it is failed; either way the error goes on."""
        try:
            yield
        except FileChanged as exc:
            self._abandon(action_id, "rolled_back", str(exc), exempt)
            raise
        except FileOpsError as exc:
            self._abandon(action_id, "failed", exc.reason, exempt)
            raise

    def _prune(self, src: Location, how: str) -> None:
        """One-shot commands remove the directories an action emptied (never the root)."""
        if not self.prune:
            return
        for gone in fileops.remove_empty_dirs(Location(src.root, src.relative.parent)):
            log.info("%s: removed, emptied by %s %s", gone, how, src.path)

    def _abandon(self, action_id: int, state: str, note: str, exempt: bool) -> None:
        """The file did not move: say so in the journal (recovery does it if this fails)."""
        try:
            if exempt:
                self.store.drop_exemption(action_id)
            self.store.finish(action_id, state, self.clock(), note)
        except Exception as exc:  # the first error is the one to report
            log.debug("action %d: not finished as %s: %r", action_id, state, exc)

    def _done(self, action_id: int, src: Location, dst: Location | None, other_names: int) -> Moved:
        """The file moved (or was deleted: no ``dst``); its journal entry says so now, or as
        soon as it can be written."""
        now = self.clock()
        where = None if dst is None else dst.path
        try:
            self.store.finish(action_id, "done", now)
        except StoreError as exc:
            self.backlog.add(Unrecorded(action_id, src.path, where, now, str(exc)))
            return Moved(action_id, where, str(exc), other_names)
        return Moved(action_id, where, None, other_names)

    def _journal_log(
        self, src: Location, stat: FileStat, fp: Fingerprint, verdict: Verdict, decision: Decision
    ) -> None:
        action_id = self.store.intend(self._in_place("log", src, stat, fp, verdict, decision),
                                      self.clock())  # fmt: skip
        self.store.finish(action_id, "done", self.clock())

    def _in_place(
        self, kind: str, src: Location, stat: FileStat, fp: Fingerprint, verdict: Verdict,
        decision: Decision,
    ) -> NewAction:  # fmt: skip
        """An action that leaves nothing anywhere: a log line, or a deletion."""
        return NewAction(
            kind=kind, src_root=str(src.root), src_rel=str(src.relative), dst_root=None,
            dst_rel=None, tmp_name=None, sha256=fp.sha256, stat=stat, atime_ns=0, uid=-1,
            gid=-1, mode=0, verdict=verdict.kind.value,
            evidence=evidence_json(verdict, self.config), rule=decision.rule,
            batch_id=self.batch_id,
        )  # fmt: skip

    def _trash(
        self, src: Location, stat: FileStat, fp: Fingerprint, verdict: Verdict, decision: Decision
    ) -> Moved:
        """To the freedesktop.org trash: its info file claims the name, then the file moves."""
        try:
            bin_ = trash.trash_for(src.path)
        except OSError as exc:
            raise FileOpsError(src.path, f"no trash for it: {exc.strerror}") from exc
        name = trash.claim(bin_, src.relative.name, src.path, self.clock())
        dst = Location(bin_.files, PurePosixPath(name))
        try:
            moved = self.move(src, dst, stat, fp.sha256, "trash", verdict, decision.rule)
        except BaseException:
            trash.release(bin_, name)
            raise
        if moved.destination is not None and moved.destination.name != name:
            trash.rename_claim(bin_, name, moved.destination.name)  # taken meanwhile
        return moved

    def _delete(
        self, src: Location, stat: FileStat, fp: Fingerprint, verdict: Verdict, decision: Decision
    ) -> Moved:
        """Delete for good (a watch that opted in): journalled first, while it is that file."""
        fileops.check_same(src, stat)
        action_id = self.store.intend(
            self._in_place("delete", src, stat, fp, verdict, decision), self.clock()
        )
        with self._or_abandon(action_id):
            fileops.remove(src, expect=stat)
        moved = self._done(action_id, src, None, 0)
        self._prune(src, "deleting")
        return moved

    def _hardlink(
        self, src: Location, stat: FileStat, fp: Fingerprint, verdict: Verdict, decision: Decision
    ) -> Moved:
        """The duplicate's name becomes a hard link to the kept copy: only a copy with exactly
        these bytes on the same filesystem (checked again by ``fileops`` as it links)."""
        keeper = self._keeper(src, fp, verdict)
        info = fileops.check_same(src, stat)
        tmp_name = f".imagewatchd-{uuid.uuid4().hex}.tmp"
        action = NewAction(
            kind="hardlink", src_root=str(src.root), src_rel=str(src.relative),
            dst_root=str(keeper.root), dst_rel=str(keeper.relative), tmp_name=tmp_name,
            sha256=fp.sha256, stat=stat, atime_ns=info.st_atime_ns, uid=info.st_uid,
            gid=info.st_gid, mode=info.st_mode, verdict=verdict.kind.value,
            evidence=evidence_json(verdict, self.config), rule=decision.rule,
            batch_id=self.batch_id,
        )  # fmt: skip
        action_id = self.store.intend(action, self.clock())
        with self._or_abandon(action_id):
            fileops.link_to_keeper(src, keeper, expect=stat, sha256=fp.sha256, tmp_name=tmp_name)
        return self._done(action_id, src, keeper, 0)

    def _keeper(self, src: Location, fp: Fingerprint, verdict: Verdict) -> Location:
        """The kept copy (in the library, or waiting in an inbox) with exactly these bytes,
        reached from its watch's root."""
        same = [m.path for m in verdict.matches if m.source != "list" and m.exact and m.path]
        if not same:
            raise NotLinkable(src.path, "not byte-identical to the kept copy (a near "
                              "duplicate): not linked")  # fmt: skip
        path = Path(same[0])
        roots = [w.path for w in self.config.watches if path.is_relative_to(w.path)]
        root = max(roots, key=lambda p: len(p.parts), default=Path(path.anchor))
        return Location(root, PurePosixPath(path.relative_to(root)))


def _free(dst: Location) -> Location:
    """``dst`` itself, or the first free ``name~N`` beside it."""
    parent = Location(dst.root, dst.relative.parent)
    return Location(dst.root, dst.relative.parent / fileops.unique_name(parent, dst.relative.name))
