"""Act stage: Verdict → Outcome. The only stage that changes files, always through ``fileops``.

Every move is journalled before it happens (intended) and after (done, failed or rolled back),
so that ``recover`` can finish or roll back whatever a crash interrupted.
"""

from __future__ import annotations

import json
import logging
import os
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from imagewatchd import fileops, report
from imagewatchd.config import Action, Config, Watch
from imagewatchd.fileops import FileChanged, FileOpsError, Location, TargetExists
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
    return Decision(None, "")


def evidence_json(verdict: Verdict, config: Config) -> str:
    t = config.matching.thresholds
    return json.dumps({
        "matches": [report.match_json(m) for m in verdict.matches],
        "thresholds": {"dhash": t.dhash, "phash": t.phash},
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
    destination: Path
    other_names: int = 0  # a hard link, copied: its other names were left untouched

    @property
    def note(self) -> str:
        """What the log line adds to the destination, if anything."""
        if not self.other_names:
            return ""
        return f"hard link: copied, {self.other_names} other name(s) untouched"


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
    ) -> None:
        self.store = store
        self.config = config
        self.quarantine_dir = quarantine_dir
        self.dry_run = dry_run
        self.clock = clock

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
    ) -> Moved:
        """Journal, then move without ever replacing; retries under a fresh name if taken."""
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
        )  # fmt: skip
        action_id = self.store.intend(action, self.clock())
        for _ in range(RENAME_TRIES):
            try:
                result = fileops.move(src, dst, expect=expect, tmp_name=tmp_name, mode=mode)
                break
            except TargetExists:
                dst = _free(dst)
                self.store.retarget(action_id, str(dst.relative))
            except FileChanged as exc:
                self.store.finish(action_id, "rolled_back", self.clock(), str(exc))
                raise
            except FileOpsError as exc:
                self.store.finish(action_id, "failed", self.clock(), str(exc))
                raise
        else:
            self.store.finish(action_id, "failed", self.clock(), "no free destination name")
            raise FileOpsError(dst.path, "no free destination name")
        self.store.finish(action_id, "done", self.clock())
        return Moved(action_id, dst.path, result.other_names)

    def _journal_log(
        self, src: Location, stat: FileStat, fp: Fingerprint, verdict: Verdict, decision: Decision
    ) -> None:
        action = NewAction(
            kind="log", src_root=str(src.root), src_rel=str(src.relative), dst_root=None,
            dst_rel=None, tmp_name=None, sha256=fp.sha256, stat=stat, atime_ns=0, uid=-1,
            gid=-1, mode=0, verdict=verdict.kind.value,
            evidence=evidence_json(verdict, self.config), rule=decision.rule,
        )  # fmt: skip
        action_id = self.store.intend(action, self.clock())
        self.store.finish(action_id, "done", self.clock())


def _free(dst: Location) -> Location:
    """``dst`` itself, or the first free ``name~N`` beside it."""
    parent = Location(dst.root, dst.relative.parent)
    return Location(dst.root, dst.relative.parent / fileops.unique_name(parent, dst.relative.name))
