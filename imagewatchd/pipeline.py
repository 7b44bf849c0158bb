"""One settled file through fingerprint → match → act → record, with one log line.

The stages run inline here; threads and queues belong to ``session.py``, so tests and one-shot
commands run exactly the same code.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from dataclasses import replace
from pathlib import Path, PurePosixPath

from imagewatchd import colours, inbox
from imagewatchd.act import Actor, Decision, Moved, decide
from imagewatchd.arrivals import NEWCOMER, Ranking, rank_arrival, watch_of, with_relatives
from imagewatchd.config import Action, Config
from imagewatchd.decoding import Decoder, fingerprint_at
from imagewatchd.errors import FingerprintError, NotATreeFile
from imagewatchd.fileops import FileChanged, FileOpsError, Location, NotLinkable
from imagewatchd.hashindex import hamming
from imagewatchd.kin import Kin
from imagewatchd.match import Matcher
from imagewatchd.models import (
    SAME,
    FileStat,
    Fingerprint,
    Match,
    Outcome,
    Role,
    SettledFile,
    Thresholds,
    Verdict,
    VerdictKind,
)  # fmt: skip
from imagewatchd.peers import INBOX, Peers, inboxes_of
from imagewatchd.rows import FileRow
from imagewatchd.store import Store

log = logging.getLogger("imagewatchd.pipeline")


def evidence(match: Match, thresholds: Thresholds) -> str:
    """The strongest match in a few words, for the log line."""
    if match.source == "list":
        where = f"list={match.list_name} entry={match.entry_id}"
        if match.label:
            where += f" label={match.label!r}"
    else:
        where = f"{match.source}={match.path}"
    if match.exact:
        return f"{where} sha256=identical"
    turned = "" if match.orientation == SAME else f" orientation={match.orientation}"
    turned += f" region={match.region}" if match.region else ""
    turned += f" grid={match.grid:.4f}" if match.grid is not None else ""  # verify.py
    return (
        f"{where} dhash={match.dhash_distance}/{thresholds.dhash} "
        f"phash={match.phash_distance}/{thresholds.phash}{turned}"
    )


class Pipeline:
    """Processes settled files for one thread, with that thread's store; ``decoder`` (shared
    by every thread) fingerprints them."""

    def __init__(
        self,
        store: Store,
        matcher: Matcher,
        actor: Actor,
        config: Config,
        decoder: Decoder,
        clock: Callable[[], float] = time.time,
        retry: Callable[[SettledFile, str], float] | None = None,
    ) -> None:
        """``retry`` schedules another try of a file whose action failed; returns the delay."""
        self.decoder = decoder
        self.store = store
        self.matcher = matcher
        self.actor = actor
        self.config = config
        self.clock = clock
        self.retry = retry
        # where the one line per processed file goes: the log, or (scan --act) standard output
        self.announce: Callable[[str], None] = _log_line
        # told of each fingerprint saved (the daemon's copy of the incoming files' hashes)
        self.saved: Callable[[int, Role, Fingerprint], None] | None = None
        # held while a library file is matched, decided and acted on: the daemon's workers
        # share one, so that arrivals are ranked against each other one at a time
        self.serial: AbstractContextManager[object] = threading.Lock()
        # what the run remembers of the library's groups (kin.py): the daemon's workers share
        # one, used under ``serial``
        self.kin = Kin()
        # the copies waiting in each library's inboxes (peers.py): the daemon's workers share
        # one, loaded at start, used under ``serial``
        self.peers = Peers(inboxes_of(config))

    def process(self, settled: SettledFile, *, act: bool = True, recheck: bool = False) -> Outcome:
        """Fingerprint, match and act on one file; ``act=False`` only indexes it.

        An unchanged file is skipped, unless ``recheck`` asks for its stored fingerprint to be
        matched again (``scan --act``: lists may have grown since), or it is reached by new
        block entries (``settled.retro``, a retroactive ban).
        """
        row = self.store.get_file(settled.path)
        if row is not None and row.unchanged(settled.stat):
            stored = row.fingerprint()
            if not (recheck or settled.retro) or stored is None:
                self.peers.seen(self.config.watches[settled.watch], row)
                return Outcome(settled.path, None, "unchanged")
            file_stat, fp = row.stat, stored
            # a stored fingerprint has none of the query's own parts (other orientations,
            # regions, their PDQs): decoded again, it matches as a new upload would
            fresh = not stored.flat
        else:
            fresh = True
        if fresh:
            try:
                file_stat, fp = fingerprint_at(self.decoder, self._location(settled))
            except FingerprintError as exc:
                return self._failed(settled, exc)
        found = replace(settled, stat=file_stat)
        watch = self.config.watches[settled.watch]
        library = watch.role is Role.LIBRARY or watch.inbox is not None
        with self.serial if library else nullcontext():  # arrivals decided one at a time
            return self._conclude(found, row, fp, act)

    def _conclude(
        self, found: SettledFile, row: FileRow | None, fp: Fingerprint, act: bool
    ) -> Outcome:
        """Match, decide, act and record: for a library, under ``serial``, so that files
        arriving together are decided by the keep policy, not by which finished first. The
        similar band is searched for a library (its burst shots are reported), or where
        ``on_similar`` acts; an incoming watch that only logs has no use for it."""
        watch = self.config.watches[found.watch]
        library = watch.role is Role.LIBRARY
        verdict = self.matcher.match(
            fp, exclude_file=row.id if row else None, orientations=watch.orientations,
            similar=library or watch.on_similar is not Action.LOG,
        )  # fmt: skip
        if library:
            thresholds = self.matcher.thresholds
            verdict = with_relatives(self.store, self.kin, found, fp, verdict, thresholds)
        alone = verdict  # what the library says: an arrival's filing goes by it
        mine = row.id if row else None
        verdict = self.peers.joined(self.store, watch, mine, fp, verdict, self.matcher.thresholds)
        decision, kept = self._decide(found, row, fp, verdict, act)
        decision, kept, keeper = self._better_arrival(found, fp, verdict, decision, kept)
        decision, kept, peers = self._among_peers(found, fp, verdict, decision, kept)
        if act and watch.inbox is not None and (peers is None or peers.wins):  # as if alone
            filing = inbox.plan(self.store, self.config, found, fp, alone)
            if filing.target is not None or filing.why:
                return self._file(found, row, fp, alone, filing)
        if found.retro and decision.action is not None:  # the journal says why it acts now
            decision = replace(decision, rule=f"{decision.rule} ({_retroactive(found)})")
        try:
            moved = self.actor.act(found, fp, verdict, decision)
        except FileChanged as exc:
            log.info("%s: changed while being processed (%s); processing it again", found.path,
                     exc)  # fmt: skip
            return Outcome(found.path, verdict.kind, "changed", detail=str(exc))
        except NotLinkable as exc:  # no hard link here (other bytes, filesystem): it stays
            kept = f"not linked: {exc.reason}"
            moved = None
        except FileOpsError as exc:
            return self._act_failed(found, verdict, decision, exc)
        won = (keeper is not None and keeper.id == NEWCOMER) or (peers is not None and peers.wins)
        if moved is not None:
            if keeper is not None:  # a copy moved away stands for its group's keeper
                self.kin.departed(row.id if row else None, fp, keeper.path)
            outcome = self._moved(found, row, verdict, decision, moved)
        elif self.actor.dry_run and won:
            # a winner unrecorded: a real run after it must still move the copies it beat
            outcome = Outcome(found.path, verdict.kind, "none", detail=f"{kept}; dry run: "
                              "not recorded")  # fmt: skip
        else:
            outcome = self._record(
                found, fp, verdict, decision, self.config.watches[found.watch].role
            )
            outcome = replace(outcome, action="none", detail=kept) if kept else outcome
        self._log(outcome, verdict, moved, found)
        return outcome

    def _better_arrival(
        self, settled: SettledFile, fp: Fingerprint, verdict: Verdict, decision: Decision,
        kept: str,
    ) -> tuple[Decision, str, FileRow | None]:  # fmt: skip
        """A library newcomer about to get on_duplicate is ranked with the copies it matches,
        as one group: the copies the group's keeper beats get on_duplicate (now, before the
        newcomer is recorded: a crash in between leaves it a newcomer still; when the newcomer
        loses and only logs, the others are not logged again); the newcomer stays when it is
        the keeper, or in a reference folder. Also gives the keeper."""
        if decision.action is None or verdict.kind is not VerdictKind.DUPLICATE:
            return decision, kept, None
        if self.config.watches[settled.watch].role is not Role.LIBRARY:
            return decision, kept, None
        ranking = rank_arrival(self.store, self.config, settled, fp, verdict)
        if ranking.wins or decision.action is not Action.LOG:  # a log changes no library
            for old in ranking.beaten:
                self._displace(old, ranking)
        if ranking.wins:
            return Decision(None, ""), f"kept: a better copy ({ranking.reason})", ranking.keeper
        if ranking.held:
            return Decision(None, ""), "kept: in a reference folder", ranking.keeper
        return decision, kept, ranking.keeper

    def _among_peers(
        self, settled: SettledFile, fp: Fingerprint, verdict: Verdict, decision: Decision,
        kept: str,
    ) -> tuple[Decision, str, Ranking | None]:  # fmt: skip
        """An inbox arrival about to get on_duplicate for copies waiting in the inboxes is
        ranked with them, as one group (inbox.rank_peers): the copies the group's keeper
        beats get their inbox's on_duplicate (when the arrival loses and only logs, the others
        are not logged again); the arrival stays when it is the keeper. Also gives the
        ranking (None: not ranked); an arrival that lost is not filed."""
        if decision.action is None or not any(m.source == INBOX for m in verdict.matches):
            return decision, kept, None
        ranking = inbox.rank_peers(self.store, self.config, settled, fp, verdict)
        if ranking.wins or decision.action is not Action.LOG:
            for old in ranking.beaten:
                self._displace(old, ranking, INBOX)
        if ranking.wins:
            return Decision(None, ""), f"kept: a better copy ({ranking.reason})", ranking
        return decision, kept, ranking

    def _file(
        self, found: SettledFile, row: FileRow | None, fp: Fingerprint, verdict: Verdict,
        filing: inbox.Plan,
    ) -> Outcome:  # fmt: skip
        """An inbox arrival filed into its library (the copies it beat displaced first), or
        kept in the inbox for the reason the plan gives."""
        if filing.target is None:
            outcome = self._record(found, fp, verdict, Decision(None, ""), Role.INCOMING)
            outcome = replace(outcome, action="none", detail=filing.why)
            self._log(outcome, verdict, None, found)
            return outcome
        for old in filing.ranking.beaten:
            self._displace(old, filing.ranking)
        better = f"a better copy ({filing.ranking.reason})" if filing.ranking.beaten else ""
        rule = f"watches[{found.watch}].on_new" + (f" ({better})" if better else "")
        moved = None
        if not self.actor.dry_run:
            try:
                moved = inbox.file_into(self.actor, found, fp, verdict, filing.target, rule)
            except FileChanged as exc:
                log.info("%s: changed while being processed (%s); processing it again",
                         found.path, exc)  # fmt: skip
                return Outcome(found.path, verdict.kind, "changed", detail=str(exc))
            except FileOpsError as exc:
                return self._act_failed(found, verdict, Decision(None, rule), exc, "file")
            self._index_filed(found, row, fp, moved)
        where = filing.target.path if moved is None else moved.destination
        action, number = ("would file", None) if moved is None else ("file", moved.action_id)
        outcome = Outcome(found.path, verdict.kind, action, str(where), number, better)
        self._log(outcome, verdict, moved, found)
        return outcome

    def _index_filed(
        self, found: SettledFile, row: FileRow | None, fp: Fingerprint, moved: Moved
    ) -> None:
        """A filed photo is a library file now: recorded and indexed at its new path (if the
        database cannot take it now, the library's next reconcile indexes it)."""
        assert moved.destination is not None  # a filing always goes somewhere
        try:
            if row is not None:
                self.store.forget_path(found.path)
                self.peers.remove(row.id)  # out of the inbox
            stat = FileStat.of(os.lstat(moved.destination))
            file_id = self.store.save_file(str(moved.destination), stat, Role.LIBRARY, fp,
                                           self.clock())  # fmt: skip
        except Exception as exc:  # the move stands
            log.warning("%s: filed, not indexed yet: %r", moved.destination, exc)
            return
        self.matcher.add_library_file(file_id, fp)

    def _displace(self, old: FileRow, ranking: Ranking, source: str = "library") -> None:
        """A library copy (``source`` inbox: a copy waiting in an inbox) the group's keeper
        beat gets its watch's on_duplicate; a failure leaves it."""
        keeper, peer = ranking.keeper, source == INBOX
        index = (inbox.inbox_of if peer else watch_of)(self.config, old.path)
        old_fp = old.fingerprint()
        keeper_fp = None if keeper is None else keeper.fingerprint()
        if index is None or old_fp is None or keeper is None or keeper_fp is None:
            return
        match = _library_match(old_fp, keeper_fp, keeper.path, source)
        verdict = Verdict(VerdictKind.DUPLICATE, (match,))
        better = "a better copy arrived" if ranking.wins else "a better copy is in its group"
        rule = f"watches[{index}].on_duplicate ({better})"
        decision = Decision(self.config.watches[index].on_duplicate, rule)
        settled = SettledFile(old.path, index, old.stat)
        try:
            moved = self.actor.act(settled, old_fp, verdict, decision)
        except FileChanged as exc:
            log.info("%s: changed since it was indexed (%s): left alone", old.path, exc)
            return
        except FileOpsError as exc:
            log.error("%s: duplicate: %s failed, the file stays: %s", old.path, decision.action,
                      exc)  # fmt: skip
            return
        if moved is not None:
            if not peer:
                self.kin.departed(old.id, old_fp, keeper.path)
                self.kin.displaced(old.path, keeper.path)
            outcome = self._moved(settled, old, verdict, decision, moved)
        else:
            done = f"would {decision.action}" if self.actor.dry_run else str(decision.action)
            outcome = Outcome(old.path, VerdictKind.DUPLICATE, done)
        self._log(outcome, verdict, moved, settled)

    def _decide(
        self, settled: SettledFile, row: FileRow | None, fp: Fingerprint, verdict: Verdict,
        act: bool,
    ) -> tuple[Decision, str]:  # fmt: skip
        """The watch's decision, unless the file is no newcomer or an undo put it here."""
        watch = self.config.watches[settled.watch]
        decision = decide(verdict, watch, settled.watch) if act else Decision(None, "")
        near = verdict.kind in (VerdictKind.DUPLICATE, VerdictKind.SIMILAR)
        if near and not self._newcomer(settled, row, watch.role):
            return Decision(None, ""), ""  # an edited or renamed library photo is no newcomer
        if decision.action is None:
            return decision, ""
        kept_by = self.store.kept(fp.sha256) if verdict.kind is VerdictKind.DUPLICATE else None
        if kept_by is not None:
            return Decision(None, ""), f"kept: by decision {kept_by}"
        undone_by = self.store.exemption(settled.path, fp.sha256)
        if undone_by is None:
            return decision, ""
        return Decision(None, ""), f"kept: undone by action {undone_by}"

    def _act_failed(
        self, settled: SettledFile, verdict: Verdict, decision: Decision, exc: FileOpsError,
        what: str = "",
    ) -> Outcome:  # fmt: skip
        """The file stays; the daemon tries again later (a full disk may be freed)."""
        delay = self.retry(settled, exc.reason) if self.retry is not None else None
        again = "" if delay is None else f"; retrying in {delay:.0f} s"
        log.error("%s: %s: %s failed, the file stays: %s%s", settled.path, verdict.kind.value,
                  what or decision.action, exc, again)  # fmt: skip
        return Outcome(settled.path, verdict.kind, "error", detail=str(exc))

    def _moved(
        self, settled: SettledFile, row: FileRow | None, verdict: Verdict, decision: Decision,
        moved: Moved,
    ) -> Outcome:  # fmt: skip
        if row is not None:
            self.matcher.remove_library_file(row.id)
            self.peers.remove(row.id)
            try:
                self.store.forget_path(settled.path)
            except Exception as exc:  # the move stands; a rescan forgets the stale row
                log.debug("%s: row not forgotten yet: %r", settled.path, exc)
        return Outcome(
            settled.path, verdict.kind, str(decision.action),
            None if moved.destination is None else str(moved.destination),
            moved.action_id, moved.note,
        )  # fmt: skip

    def _location(self, settled: SettledFile) -> Location:
        """The file as reached from its watch's root: no directory below it is followed."""
        root = self.config.watches[settled.watch].path
        return Location(root, PurePosixPath(Path(settled.path).relative_to(root)))

    def _newcomer(self, settled: SettledFile, row: FileRow | None, role: Role) -> bool:
        """New to a library: no row for the path, and not a known file under a new name.

        A row for the same inode whose path is gone is a rename (forgotten here); one whose path
        still exists is a hard link: the same file, not a duplicate.
        """
        if role is not Role.LIBRARY:
            return True
        if row is not None:
            return False
        same = self.store.files_by_inode(settled.stat.device, settled.stat.inode)
        for old in same:
            if not os.path.lexists(old.path):
                self.matcher.remove_library_file(old.id)
                self.store.forget_path(old.path)
        return not same

    def _record(
        self, settled: SettledFile, fp: Fingerprint, verdict: Verdict, decision: Decision,
        role: Role,
    ) -> Outcome:  # fmt: skip
        if self.actor.dry_run and decision.action not in (None, Action.LOG):
            # not recorded: a real run after the dry run must still act on it
            return Outcome(settled.path, verdict.kind, f"would {decision.action}")
        file_id = self.store.save_file(settled.path, settled.stat, role, fp, self.clock())
        if self.saved is not None:
            self.saved(file_id, role, fp)
        if role is Role.LIBRARY:
            self.matcher.add_library_file(file_id, fp)
            self.kin.recorded(file_id, fp)
        # waiting in an inbox (if it is one): later arrivals are compared with it
        self.peers.add(self.config.watches[settled.watch], file_id, fp)
        if decision.action is not None:
            done = f"would {decision.action}" if self.actor.dry_run else str(decision.action)
        else:
            done = "indexed" if role is Role.LIBRARY else "none"
        return Outcome(settled.path, verdict.kind, done)

    def _failed(self, settled: SettledFile, exc: FingerprintError) -> Outcome:
        if isinstance(exc, NotATreeFile):  # gone, or behind a symlink: nothing to record
            if "vanished" in exc.reason:
                log.debug("%s: %s", settled.path, exc.reason)
                return Outcome(settled.path, None, "vanished")
            log.warning("%s: %s", settled.path, exc.reason)
            return Outcome(settled.path, None, "skipped", detail=exc.reason)
        log.warning("%s: error: %s", settled.path, exc.reason)
        watch = self.config.watches[settled.watch]
        self.store.save_file_error(settled.path, settled.stat, watch.role, exc.reason, self.clock())
        return Outcome(settled.path, VerdictKind.ERROR, "error", detail=exc.reason)

    def _log(
        self, outcome: Outcome, verdict: Verdict, moved: Moved | None, settled: SettledFile
    ) -> None:
        thresholds = self.config.matching.thresholds
        if verdict.kind is VerdictKind.SIMILAR:  # the distances against the band's limits
            thresholds = replace(thresholds, dhash=thresholds.similar_dhash,
                                 phash=thresholds.similar_phash)  # fmt: skip
        kind = verdict.kind.value
        if verdict.matches:
            extra = len(verdict.matches) - 1
            kind += " " + evidence(verdict.matches[0], thresholds)
            kind += f" (+{extra} more)" if extra else ""
        elif verdict.allowed_by:
            kind += f" allowed-by={verdict.allowed_by[0].list_name}"
        elif verdict.flat:
            kind += " flat"
        if verdict.recoloured:  # near matches of lists that ignore recoloured copies
            extra = len(verdict.recoloured) - 1
            kind += " " + colours.described(verdict.recoloured[0])
            kind += f" (+{extra} more)" if extra else ""
        where = f" {outcome.destination}" if outcome.destination else ""
        where += f" [action {outcome.action_id}]" if outcome.action_id is not None else ""
        if outcome.detail and (outcome.action_id is not None or outcome.action == "none"):
            where += f" ({outcome.detail})"  # a hard link copied; a file an undo put back
        if settled.retro:
            where += f" ({_retroactive(settled)})"
        if moved is not None and moved.unrecorded is not None:
            log.warning("%s: %s -> %s%s, not yet recorded: %s; recorded once the database can "
                        "be written", outcome.path, kind, outcome.action, where,
                        moved.unrecorded)  # fmt: skip
            return
        self.announce(f"{outcome.path}: {kind} -> {outcome.action}{where}")


def _library_match(
    fp: Fingerprint, winner: Fingerprint, path: str, source: str = "library"
) -> Match:
    exact = fp.sha256 == winner.sha256
    return Match(
        source=source, exact=exact, path=path,
        dhash_distance=0 if exact else hamming(fp.dhash, winner.dhash),
        phash_distance=0 if exact else hamming(fp.phash, winner.phash),
    )  # fmt: skip


def _retroactive(settled: SettledFile) -> str:
    """Why a file seen before is matched again now: new or re-enabled block entries."""
    ids = ",".join(str(i) for i in settled.retro)
    return f"retroactive: entr{'y' if len(settled.retro) == 1 else 'ies'} {ids}"


def _log_line(line: str) -> None:
    log.info("%s", line)
