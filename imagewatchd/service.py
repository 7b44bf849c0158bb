"""Commands that act on files: ``run``, ``scan --act``, ``quarantine restore`` and ``undo``.

Their lines for people show names escaped (``names.shown``); ``--json`` carries them exactly.
"""

from __future__ import annotations

import argparse
import logging
import time
from contextlib import closing
from dataclasses import replace
from pathlib import Path

from imagewatchd import commands, paths
from imagewatchd.act import Actor, Decision, decide
from imagewatchd.config import Config, Watch
from imagewatchd.daemon import Daemon
from imagewatchd.decoding import Decoder, open_decoder
from imagewatchd.dupes import Among, DupeGroup, duplicate_groups, ordered_group
from imagewatchd.errors import EXIT_ERROR, EXIT_OK, UsageError
from imagewatchd.fileops import FileOpsError, NotLinkable
from imagewatchd.filters import walk
from imagewatchd.hashindex import hamming
from imagewatchd.history import undo_selection
from imagewatchd.journal import reverse
from imagewatchd.keepconfig import Policies
from imagewatchd.match import Matcher
from imagewatchd.models import (
    FileStat,
    Fingerprint,
    Match,
    Role,
    SettledFile,
    Thresholds,
    Verdict,
    VerdictKind,
)  # fmt: skip
from imagewatchd.names import shown
from imagewatchd.peers import Peers
from imagewatchd.pipeline import Pipeline
from imagewatchd.rows import FileRow
from imagewatchd.scan import Scanner
from imagewatchd.similar import similar_groups
from imagewatchd.store import Store
from imagewatchd.watch import selection_of

log = logging.getLogger(__name__)


def _say(line: str) -> None:
    """One line of output for people: names in it escaped."""
    print(shown(line))


def run(args: argparse.Namespace) -> int:
    located = paths.config_path(args.config)
    config = commands.load_config(args)
    if located.path and not located.explicit and config.source == "<built-in default>":
        for watch in config.watches:
            watch.path.mkdir(parents=True, exist_ok=True)  # the user's Pictures directory
    return Daemon(located, args.db, args.dry_run).run(config)


def _watch_for(config: Config, path: Path) -> tuple[int, Watch]:
    for index, watch in enumerate(config.watches):
        if path.is_relative_to(watch.path):
            return index, watch
    raise UsageError(f"{path}: not inside a configured watch; scan --act applies a watch's rules")


def scan_act(args: argparse.Namespace) -> int:
    """Apply the configured rules to existing trees in one shot."""
    config = commands.load_config(args)
    roots = [Path(p).absolute() for p in args.paths] or [w.path for w in config.watches]
    targets = [(root, *_watch_for(config, root)) for root in roots]
    with commands.open_store(args, config) as store:
        matcher = Matcher.load(store, config.matching.thresholds)
        quarantine = paths.quarantine_dir(config.quarantine_dir)
        batch = None if args.dry_run else _start_batch(store, roots)
        actor = Actor(store, config, quarantine, dry_run=args.dry_run, batch_id=batch, prune=True)
        decoder = open_decoder(config)
        pipeline = Pipeline(store, matcher, actor, config, decoder)
        pipeline.peers = Peers.load(store, config)  # an inbox's files compared with each other
        errors = 0
        try:
            for root, index, watch in targets:
                if watch.role is Role.LIBRARY:
                    errors += _dedupe(root, index, watch, store, matcher, actor, decoder)
                else:
                    errors += _check_tree(root, index, watch, pipeline)
        finally:
            decoder.close()
            if batch is not None:
                store.finish_batch(batch, time.time())
                _say(f"batch {batch} done; undo it with: imagewatchd undo --batch {batch}")
    return EXIT_ERROR if errors else EXIT_OK


def _start_batch(store: Store, roots: list[Path]) -> int:
    batch = store.start_batch("scan --act " + " ".join(str(r) for r in roots), time.time())
    _say(f"batch {batch}: scan --act {' '.join(str(r) for r in roots)}")
    return batch


def _check_tree(root: Path, index: int, watch: Watch, pipeline: Pipeline) -> int:
    """One line per file on standard output (a problem is the pipeline's own log line)."""
    errors = 0
    pipeline.announce = _say
    for path, info in walk(root, selection_of(watch), watch.recursive):
        outcome = pipeline.process(SettledFile(str(path), index, FileStat.of(info)), recheck=True)
        errors += outcome.action == "error"
        if outcome.action == "unchanged":
            _say(f"{path}: unchanged")
    return errors


def _dedupe(
    root: Path, index: int, watch: Watch, store: Store, matcher: Matcher, actor: Actor,
    decoder: Decoder,
) -> int:  # fmt: skip
    """Index the tree, then act on every copy but the best of each duplicate group."""
    summary = Scanner(store, matcher, selection_of(watch), decoder).scan([root])
    rows = [r for r in store.library_files() if Path(r.path).is_relative_to(root)]
    errors = summary.errors
    on_known = Decision(watch.on_known, f"watches[{index}].on_known")
    for row in rows:
        verdict = matcher.match(
            _fingerprint(row), exclude_file=row.id, orientations=watch.orientations
        )
        if verdict.kind is VerdictKind.KNOWN:
            errors += _act_on(row, verdict, on_known, index, store, matcher, actor)
    rows = [r for r in store.library_files() if Path(r.path).is_relative_to(root)]
    for group in duplicate_groups(matcher, rows, Policies.of([watch])):
        errors += act_on_group(group, root, index, watch, store, matcher, actor)
    policy = Policies.of([watch])
    for alike in similar_groups(matcher, Among.under(store, [root])):
        kept, _ = store.decisions_among(r.sha256 for r in alike.files if r.sha256)
        group = ordered_group(alike.files, kept, policy.for_paths([r.path for r in alike.files]))
        errors += act_on_group(group, root, index, watch, store, matcher, actor, similar=True)
    return errors


def act_on_group(
    group: DupeGroup, root: Path, index: int, watch: Watch, store: Store, matcher: Matcher,
    actor: Actor, *, similar: bool = False,
) -> int:  # fmt: skip
    """The watch's ``on_duplicate`` for every copy in ``root`` of the group's best file (as
    ``scan --act`` does, and the review page's "apply"); returns the number of errors. With
    ``similar``, a group of similar pictures: each one similar to the best gets ``on_similar``
    (what the daemon does to a newcomer only similar to a library photo)."""
    best, errors = group.best, 0
    _say(f"keep {best.path}" + (" (similar pictures)" if similar else ""))
    _say(f"  why: {group.reason}")
    different = store.not_duplicates(best.sha256) if best.sha256 else set()
    for row in group.files[1:]:
        if not Path(row.path).is_relative_to(root):
            _say(f"  {row.path}: outside {root}, left alone")
        elif (decided := group.kept_by(row)) is not None:
            _say(f"  {row.path}: kept by decision {decided}")
        elif row.id in group.reference:
            _say(f"  {row.path}: in a reference folder: left alone")
        elif row.sha256 in different:
            _say(f"  {row.path}: not a duplicate of {best.path} (a decision): left alone")
        elif not _matches(row, best, _band(matcher.thresholds, similar)):
            _say(f"  {row.path}: like another copy, but not like the best one: left alone")
        else:
            kind = VerdictKind.SIMILAR if similar else VerdictKind.DUPLICATE
            errors += _act_on_copy(row, best, index, watch, store, matcher, actor, kind)
    return errors


def _band(t: Thresholds, similar: bool) -> Thresholds:
    """The thresholds a copy must be within: the similar band's for similar pictures."""
    return replace(t, dhash=t.similar_dhash, phash=t.similar_phash) if similar else t


def _matches(row: FileRow, best: FileRow, t: Thresholds) -> bool:
    """Grouping is transitive, matching is not: act only on copies of the kept picture."""
    if row.sha256 == best.sha256:
        return True
    a, b = row.fingerprint(), best.fingerprint()
    if a is None or b is None or a.flat or b.flat:
        return False
    return hamming(a.dhash, b.dhash) <= t.dhash and hamming(a.phash, b.phash) <= t.phash


def _act_on_copy(
    row: FileRow, best: FileRow, index: int, watch: Watch, store: Store, matcher: Matcher,
    actor: Actor, kind: VerdictKind = VerdictKind.DUPLICATE,
) -> int:  # fmt: skip
    a, b = _fingerprint(row), _fingerprint(best)
    exact = a.sha256 == b.sha256
    match = Match(
        source="library", exact=exact, dhash_distance=0 if exact else hamming(a.dhash, b.dhash),
        phash_distance=0 if exact else hamming(a.phash, b.phash), file_id=best.id, path=best.path,
    )  # fmt: skip
    verdict = Verdict(kind, matches=(match,))
    decision = decide(verdict, watch, index)
    return _act_on(row, verdict, decision, index, store, matcher, actor)


def _fingerprint(row: FileRow) -> Fingerprint:
    fp = row.fingerprint()
    assert fp is not None  # library_files() holds fingerprinted rows only
    return fp


def _act_on(
    row: FileRow, verdict: Verdict, decision: Decision, index: int, store: Store,
    matcher: Matcher, actor: Actor,
) -> int:  # fmt: skip
    """One decision on an indexed library file; returns 1 on error."""
    settled = SettledFile(row.path, index, row.stat)
    kind = verdict.kind.value
    try:
        moved = actor.act(settled, _fingerprint(row), verdict, decision)
    except NotLinkable as exc:
        _say(f"  {row.path}: {kind}: not linked: {exc.reason}; left alone")
        return 0
    except (FileOpsError, ValueError) as exc:
        _say(f"  {row.path}: {kind}: error: {getattr(exc, 'reason', exc)}")
        return 1
    if moved is not None:
        matcher.remove_library_file(row.id)
        store.forget_path(row.path)
        where = "" if moved.destination is None else f" {moved.destination}"
        _say(f"  {row.path}: {kind} -> {decision.action}{where} [action {moved.action_id}]")
    else:
        verb = f"would {decision.action}" if actor.dry_run else str(decision.action)
        _say(f"  {row.path}: {kind} -> {verb}")
    return 0


def restore_one(
    config: Config, store: Store, actor: Actor, decoder: Decoder, action_id: int, *, force: bool
) -> Path:
    """Put one quarantined or moved file back (``quarantine restore``, ``undo``, the review
    page): raises ``UsageError`` or ``FileOpsError`` when it stays."""
    role = _role_at(config, store, action_id)
    return reverse(store, actor, action_id, force=force, role=role, decoder=decoder)


def _reverse_all(args: argparse.Namespace, *, selected: bool) -> int:
    """Put files back: the IDs given (``quarantine restore``), or what ``undo`` selects
    (IDs, ranges, ``--batch``, ``--last``)."""
    config = commands.load_config(args)
    failed = 0
    with commands.open_store(args, config) as store:
        ids = args.ids if not selected else undo_selection(args, store)
        # an undo removes the directories of move_to that it empties (a restore: none)
        actor = Actor(store, config, paths.quarantine_dir(config.quarantine_dir), prune=True)
        # started now: a restored file is recorded at once, before the daemon sees it
        with closing(open_decoder(config, start=True)) as decoder:
            for action_id in ids:
                try:
                    where = restore_one(config, store, actor, decoder, action_id, force=args.force)
                except (UsageError, FileOpsError) as exc:
                    log.error("action %d: %s", action_id, exc)
                    failed += 1
                    continue
                _say(f"action {action_id}: back at {where}")
    return EXIT_ERROR if failed else EXIT_OK


def _role_at(config: Config, store: Store, action_id: int) -> Role:
    action = store.action(action_id)
    if action is None:
        return Role.INCOMING
    original = Path(action.src_root) / action.src_rel
    for watch in config.watches:
        if original.is_relative_to(watch.path):
            return watch.role
    return Role.INCOMING


def quarantine_restore(args: argparse.Namespace) -> int:
    return _reverse_all(args, selected=False)


def undo(args: argparse.Namespace) -> int:
    return _reverse_all(args, selected=True)
