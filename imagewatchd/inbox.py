"""An inbox's arrivals: what becomes of a photo that lands in an incoming watch feeding a
library (``library:``), and the filing itself.

Arrivals are decided one at a time under the library's lock, against the library, which holds
every photo filed before: a second copy of a new photo (in the same inbox or another) is a
duplicate of the first one filed. Which of the two stays is the keep policy's word, not the
order: the arrival is ranked as the library file it would become against the copies it
matches; when it wins, the copies it beat get their library watch's ``on_duplicate`` and it is
filed; otherwise it gets the inbox's ``on_duplicate``. A unique arrival (clean, or only
similar to a library photo while ``on_similar`` leaves it in place) gets ``on_new``.

Arrivals are compared with each other too (imagewatchd/peers.py): an arrival new to the library
that duplicates a copy still waiting in one of the library's inboxes (``on_new: none``, or not
filed) is ranked with those copies by the library's keep policy (``rank_peers``), whatever
the order they arrived in: the keeper stays (and is filed, with ``on_new: file``); every other
copy gets its inbox's ``on_duplicate``.

Filing is a move like any other (the journal's intend/finish, crash recovery, ``undo``), of
kind ``file``, into the library root at the template's path, never replacing a file (a free
``name~N`` instead).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field, replace
from pathlib import Path, PurePosixPath

from imagewatchd import fileops
from imagewatchd.act import Actor, Moved
from imagewatchd.arrivals import NEWCOMER, Ranking, _row_of, rank_arrival
from imagewatchd.config import Action, Config, Watch
from imagewatchd.dupes import ordered_group
from imagewatchd.fileops import FileOpsError, Location
from imagewatchd.filing import Inbox, OnNew, UnsafeName, captured_at
from imagewatchd.keep import Criterion, KeepPolicy
from imagewatchd.models import Fingerprint, Role, SettledFile, Verdict, VerdictKind
from imagewatchd.peers import INBOX
from imagewatchd.store import Store

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Plan:
    """What to do with one inbox arrival: file it at ``target`` (after displacing the copies
    it beat, ``ranking.beaten``), or not (``target`` None; ``why`` says why, if it matters)."""

    target: Location | None = None
    ranking: Ranking = field(default_factory=Ranking)
    why: str = ""


def unique(verdict: Verdict, watch: Watch) -> bool:
    """New to the library: nothing matched, or only similar and ``on_similar`` leaves it."""
    if verdict.kind is VerdictKind.CLEAN:
        return True
    return verdict.kind is VerdictKind.SIMILAR and watch.on_similar is Action.LOG


def plan(
    store: Store, config: Config, settled: SettledFile, fp: Fingerprint, verdict: Verdict
) -> Plan:
    """Where an inbox arrival goes (read-only): filed, or left to the watch's rules."""
    watch = config.watches[settled.watch]
    inbox = watch.inbox
    filed = unique(verdict, watch) or verdict.kind is VerdictKind.DUPLICATE
    if inbox is None or inbox.on_new is not OnNew.FILE or not filed:
        return Plan()
    undone_by = store.exemption(settled.path, fp.sha256)
    if undone_by is not None:
        return Plan(why=f"kept: undone by action {undone_by}")
    try:
        target = wanted(inbox, settled, fp)
        # a duplicate is ranked as the library file it would become now (a free name)
        as_filed = replace(settled, path=str(free(target).path))
    except (UnsafeName, FileOpsError, ValueError) as exc:
        if verdict.kind is VerdictKind.DUPLICATE:
            return Plan()  # the inbox's on_duplicate, as if it were not filed at all
        return Plan(why=f"not filed: {exc}")
    if verdict.kind is not VerdictKind.DUPLICATE:
        return Plan(target)
    ranking = rank_arrival(store, config, as_filed, fp, verdict)
    return Plan(target, ranking) if ranking.wins and not _by_name(ranking) else Plan()


def _by_name(ranking: Ranking) -> bool:
    """Won on the path alone: an arrival's name in the library is the template's, not the
    user's, so it never displaces a copy as good as itself."""
    return all(part.startswith(f"{Criterion.PATH}:") for part in ranking.reason.split("; "))


def wanted(inbox: Inbox, settled: SettledFile, fp: Fingerprint) -> Location:
    """The template's path in the library for this photo (taken or not)."""
    when = captured_at(fp.provenance, settled.stat.mtime_ns)
    relative = inbox.template.render(Path(settled.path).name, when, fp.provenance.camera)
    return Location(inbox.library, relative)


def free(target: Location) -> Location:
    """``target``, or the first free ``name~N`` beside it."""
    parent = Location(target.root, target.relative.parent)
    return Location(
        target.root, parent.relative / fileops.unique_name(parent, target.relative.name)
    )


def file_into(
    actor: Actor, settled: SettledFile, fp: Fingerprint, verdict: Verdict, target: Location,
    rule: str,
) -> Moved:  # fmt: skip
    """Move the arrival into the library, journalled as kind ``file`` (undoable); the move
    takes a free ``name~N`` if ``target`` is taken by then."""
    root = actor.config.watches[settled.watch].path
    src = Location(root, PurePosixPath(Path(settled.path).relative_to(root)))
    return actor.move(src, target, settled.stat, fp.sha256, "file", verdict, rule)


def rank_peers(
    store: Store, config: Config, settled: SettledFile, fp: Fingerprint, verdict: Verdict
) -> Ranking:
    """An arrival ranked with the copies waiting in its library's inboxes that it duplicates,
    as one group, by the library's keep policy (a ``dupes keep`` decision first): the copies
    its keeper beats (each gets its inbox's ``on_duplicate``) and the keeper."""
    ids = [m.file_id for m in verdict.matches if m.source == INBOX and m.file_id is not None]
    found = store.files_by_id(ids).values() if ids else []
    olds = [r for r in found if r.path != settled.path and r.fingerprint() is not None]
    if not olds:
        return Ranking()
    rows = [replace(_row_of(settled, fp), role=Role.INCOMING), *olds]
    kept, _ = store.decisions_among(r.sha256 for r in rows if r.sha256)
    group = ordered_group(rows, kept, library_policy(config, settled.watch))
    beaten = tuple(r for r in group.files[1:] if r.id != NEWCOMER and group.kept_by(r) is None)
    return Ranking(beaten, group.best, group.reason)


def library_policy(config: Config, index: int) -> KeepPolicy:
    """The keep policy of the library that the inbox ``watches[index]`` feeds."""
    inbox = config.watches[index].inbox
    for watch in config.watches:
        if inbox is not None and watch.path == inbox.library:
            return watch.keep
    return KeepPolicy()


def inbox_of(config: Config, path: str) -> int | None:
    """The index of the inbox watch holding ``path``, if one does."""
    for index, watch in enumerate(config.watches):
        if watch.inbox is not None and PurePosixPath(path).is_relative_to(watch.path):
            return index
    return None
