"""The action journal after the fact: crash recovery, quarantine restore and undo.

``recover`` runs at start-up, before any watch: each action still marked intended is finished or
rolled back from what is on disk, so that every file is either where it was or where the journal
says it went, whole. Nothing here ever deletes the only copy of a file: a name is removed only
when the same content is known to be safe at the other name.
"""

from __future__ import annotations

import logging
import stat
import time
from collections.abc import Callable
from pathlib import Path, PurePosixPath

from imagewatchd import fileops, hardlinks, trash
from imagewatchd.act import QUARANTINE_MODE, Actor
from imagewatchd.decoding import Decoder, fingerprint_at
from imagewatchd.errors import UsageError
from imagewatchd.fileops import FileOpsError, Location
from imagewatchd.models import ListKind, Role
from imagewatchd.names import shown
from imagewatchd.rows import ActionRow
from imagewatchd.store import Store

log = logging.getLogger(__name__)


def source(action: ActionRow) -> Location:
    return Location(Path(action.src_root), PurePosixPath(action.src_rel))


def destination(action: ActionRow) -> Location:
    assert action.dst_root is not None
    assert action.dst_rel is not None
    return Location(Path(action.dst_root), PurePosixPath(action.dst_rel))


def recover(store: Store, clock: Callable[[], float] = time.time) -> int:
    """Finish or roll back every action a crash left intended; returns how many."""
    pending = store.actions(state="intended")
    for action in pending:
        try:
            state, note = _settle_action(action)
            if state == "done":
                _finish_attributes(store, action)
        except FileOpsError as exc:
            state, note = "failed", f"recovery: {exc}"
        store.finish(action.id, state, clock(), note)
        if state != "done":
            store.drop_exemption(action.id)  # an undo that did not happen keeps nothing
            if action.kind == "trash":  # the name it claimed in the trash is free again
                dst = destination(action)
                trash.release(trash.trash_of(dst.path.parent), dst.relative.name)
        if state == "done" and action.reverses is not None:
            store.finish(action.reverses, "deleted" if action.kind == "delete" else "undone",
                         clock())  # fmt: skip
        log.warning(
            "recovered action %d (%s %s): %s%s",
            action.id, action.kind, source(action).path, state, f" ({note})" if note else "",
        )  # fmt: skip
    return len(pending)


def _settle_action(action: ActionRow) -> tuple[str, str | None]:  # noqa: PLR0911
    if action.kind == "delete":  # from the quarantine: done once the file is gone
        return ("rolled_back", None) if fileops.exists(source(action)) else ("done", None)
    if action.kind == "hardlink":
        return hardlinks.settle(action)
    if hardlinks.is_undo(action):
        return hardlinks.settle_undo(action)
    if action.kind == "log" or action.dst_root is None:
        return "done", None
    src, dst = source(action), destination(action)
    tmp = Location(dst.root, dst.relative.parent / (action.tmp_name or ".none"))
    if action.tmp_name and fileops.exists(tmp):
        # a copy across filesystems was under way: the source has not been touched yet
        fileops.remove(tmp)
    taken = _taken_source(action, src, dst)
    if taken is not None:
        return taken
    if not fileops.exists(dst):
        if fileops.exists(src):
            return "rolled_back", None
        return "failed", "the file vanished (removed by someone else)"
    dst_info = fileops.lstat(dst)
    if fileops.exists(src):
        src_info = fileops.lstat(src)
        if (src_info.st_dev, src_info.st_ino) == (dst_info.st_dev, dst_info.st_ino):
            fileops.remove(src)  # two names of one file (link, then crash before unlink)
            return "done", "finished the move"
        if fileops.sha256_of(dst) == action.sha256:
            fileops.remove(src, expect=action.stat)  # the copy is whole; drop the original
            return "done", "finished the copy"
        return "rolled_back", "the destination name holds another file"
    if fileops.sha256_of(dst) == action.sha256:
        return "done", None
    return "failed", "the destination holds different content"


def _taken_source(action: ActionRow, src: Location, dst: Location) -> tuple[str, str] | None:
    """A copy across filesystems was removing its source under a private name."""
    if not action.tmp_name:
        return None
    private = Location(src.root, src.relative.parent / fileops.private_name(action.tmp_name))
    if not fileops.exists(private):
        return None
    if fileops.exists(dst) and fileops.sha256_of(dst) == action.sha256:
        fileops.remove(private, expect=action.stat)
        return "done", "finished the copy"
    return "failed", f"the original is kept at {private.path}"


def _finish_attributes(store: Store, action: ActionRow) -> None:
    """What a finished move does after the rename, redone: a crash may have come first."""
    if action.dst_root is None:
        return
    dst = destination(action)
    if action.kind == "quarantine":
        _best_effort(fileops.set_mode, dst, QUARANTINE_MODE)
        return
    original = store.action(action.reverses) if action.reverses is not None else None
    if original is None or action.kind not in ("restore", "undo"):
        return
    _best_effort(fileops.set_mode, dst, original.mode & 0o7777)
    try:
        fileops.restore_times_owner(
            dst, atime_ns=original.atime_ns, mtime_ns=original.stat.mtime_ns, uid=original.uid,
            gid=original.gid,
        )  # fmt: skip
    except FileOpsError as exc:
        log.warning("%s: times and owner not restored: %s", dst.path, exc.reason)


def _best_effort(set_mode: Callable[[Location, int], None], dst: Location, mode: int) -> None:
    try:
        set_mode(dst, mode)
    except FileOpsError as exc:  # not the owner: the quarantine's 0700 directory still guards it
        log.debug("%s: mode not set: %s", dst.path, exc.reason)


def reverse(
    store: Store, actor: Actor, action_id: int, *, force: bool, role: Role, decoder: Decoder
) -> Path:
    """Move a quarantined or moved file back; never overwrites (a free name is chosen).

    The file is exempted at the place it goes back to, with this content only: a running
    daemon leaves it there, while a copy elsewhere, an edit, and the ban itself are acted on as
    before. The exemption is on record before the file moves: the daemon may see it at once.
    A file whose bytes are exactly a block entry's goes back only with ``force``.
    """
    action = store.action(action_id)
    if action is None or action.kind not in ("quarantine", "move", "trash", "hardlink", "file"):
        raise UsageError(f"no quarantine, move, trash, hardlink or file action with id {action_id}")
    if action.state != "done":
        raise UsageError(_not_done(store, action))
    if action.kind == "hardlink":  # the name becomes an independent copy again
        return hardlinks.undo(store, action, actor.clock)
    here, back = destination(action), source(action)
    current = fileops.lstat(here)
    if not stat.S_ISREG(current.st_mode):
        raise UsageError(f"{here.path}: not a regular file; not restoring")
    if fileops.sha256_of(here) != action.sha256:
        raise UsageError(f"{here.path}: content differs from the journal; not restoring")
    banned = banned_exactly(store, action.sha256)
    if banned and not force:
        raise UsageError(
            f"{here.path} is exactly the banned picture of {banned}; --force puts this one file "
            "back and keeps it there, while the ban still holds for every other copy"
        )
    kind = "restore" if action.kind == "quarantine" else "undo"
    moved = actor.move(
        here, back, fileops.file_stat(current), action.sha256, kind,
        f'{{"reverses": {action.id}}}', "command", reverses=action.id,
        mode=action.mode & 0o7777, exempt=True,
    )  # fmt: skip
    assert moved.destination is not None  # a move always goes somewhere
    if action.kind == "trash":  # out of the trash: its info file goes too
        trash.release(trash.trash_of(here.path.parent), here.relative.name)
    restored = Location(back.root, PurePosixPath(moved.destination.relative_to(back.root)))
    fileops.restore_times_owner(
        restored, atime_ns=action.atime_ns, mtime_ns=action.stat.mtime_ns, uid=action.uid,
        gid=action.gid,
    )  # fmt: skip
    store.finish(action.id, "undone", actor.clock())
    if action.kind == "file":  # no longer a library file (the daemon's index checks on disk)
        store.forget_path(str(here.path))
    _remember(store, decoder, restored, role, actor.clock())
    return moved.destination


def banned_exactly(store: Store, sha256: str) -> str:
    """The enabled block entries listing exactly these bytes, for people ("" when none)."""
    entries = [e for e in store.entries_by_sha256(sha256) if e.list_kind is ListKind.BLOCK]
    return ", ".join(f"list {shown(e.list_name)} entry {e.id}" for e in entries)


def _not_done(store: Store, action: ActionRow) -> str:
    """Why an action cannot be reversed: already put back (by which action, to where), or not."""
    if action.state == "undone":
        by = store.actions(state="done", reverses=action.id)
        verb = "restored" if action.kind == "quarantine" else "undone"
        if by and by[-1].dst_root is not None:
            return (
                f"already {verb} by action {by[-1].id}: the file is at {destination(by[-1]).path}"
            )
        return f"already {verb}"
    return f"action {action.id} is {action.state}: nothing to put back"


def _remember(store: Store, decoder: Decoder, restored: Location, role: Role, now: float) -> None:
    """Record the restored file so that the daemon does not process it again."""
    try:
        file_stat, fp = fingerprint_at(decoder, restored)
    except Exception as exc:
        log.debug("%s: not recorded: %s", restored.path, exc)
        return
    store.save_file(str(restored.path), file_stat, role, fp, now)
