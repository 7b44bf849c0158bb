"""The journal's side of ``on_duplicate: hardlink``: crash recovery, and undo.

A ``hardlink`` action's source is the duplicate's name, its destination the kept copy; its
``tmp_name`` is the link made beside the duplicate (and, by ``fileops.private_name``, the name
the duplicate is taken under): ``fileops``' crash table for ``link_to_keeper`` lists the states.
Its undo is an ``undo`` action without a destination whose ``tmp_name`` is the independent copy
written beside the name, and whose ``stat`` is the shared inode the name had before.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable
from pathlib import Path, PurePosixPath

from imagewatchd import fileops
from imagewatchd.fileops import Attributes, FileChanged, FileOpsError, Location
from imagewatchd.rows import ActionRow, NewAction
from imagewatchd.store import Store

log = logging.getLogger(__name__)


def _source(action: ActionRow) -> Location:
    return Location(Path(action.src_root), PurePosixPath(action.src_rel))


def _keeper(action: ActionRow) -> Location:
    assert action.dst_root is not None and action.dst_rel is not None
    return Location(Path(action.dst_root), PurePosixPath(action.dst_rel))


def _beside(loc: Location, name: str) -> Location:
    return Location(loc.root, loc.relative.parent / name)


def _same_file(a: Location, b: Location) -> bool:
    if not (fileops.exists(a) and fileops.exists(b)):
        return False
    x, y = fileops.lstat(a), fileops.lstat(b)
    return (x.st_dev, x.st_ino) == (y.st_dev, y.st_ino)


def _drop_link(tmp: Location, keeper: Location) -> None:
    """Remove the temporary link while it is a name of the kept copy; else leave it be."""
    try:
        fileops.remove_extra_name(tmp, keeper)
    except FileChanged as exc:
        log.warning("%s: left in place: %s", tmp.path, exc.reason)


def settle(action: ActionRow) -> tuple[str, str | None]:
    """Finish or roll back a ``hardlink`` action a crash interrupted."""
    dup, keeper = _source(action), _keeper(action)
    assert action.tmp_name is not None
    tmp = _beside(dup, action.tmp_name)
    private = _beside(dup, fileops.private_name(action.tmp_name))
    if fileops.exists(private):  # the duplicate was taken under its private name
        return _settle_taken(action, private, tmp)
    if fileops.exists(tmp):  # linked beside the duplicate, which was not taken yet
        _drop_link(tmp, keeper)
        return "rolled_back", None
    if _same_file(dup, keeper):
        return "done", None
    if fileops.exists(dup):
        return "rolled_back", None
    return "failed", "the file vanished (removed by someone else)"


def _settle_taken(action: ActionRow, private: Location, tmp: Location) -> tuple[str, str | None]:
    dup, keeper = _source(action), _keeper(action)
    if _same_file(dup, keeper):  # the link has its name: finish
        fileops.remove(private, expect=action.stat)
        return "done", "finished the hard link"
    if fileops.exists(dup):
        return "failed", f"another file took the name; the duplicate is at {private.path}"
    fileops.rename_back(private, dup.relative.name, expect=action.stat)
    if fileops.exists(tmp):
        _drop_link(tmp, keeper)
    return "rolled_back", None


def settle_undo(action: ActionRow) -> tuple[str, str | None]:
    """Finish or roll back the undo of a ``hardlink``: the name and the copy were exchanged in
    one step, so the temporary name is either the copy (not exchanged) or the shared inode."""
    loc = _source(action)
    assert action.tmp_name is not None
    tmp = _beside(loc, action.tmp_name)
    if fileops.exists(tmp):
        info = fileops.lstat(tmp)
        exchanged = (info.st_dev, info.st_ino) == (action.stat.device, action.stat.inode)
        fileops.remove(tmp, expect=fileops.file_stat(info))  # a name of the shared file, or
        return ("done", "finished the undo") if exchanged else ("rolled_back", None)  # a copy
    info = fileops.lstat(loc)
    if (info.st_dev, info.st_ino) == (action.stat.device, action.stat.inode):
        return "rolled_back", None
    return "done", None


def is_undo(action: ActionRow) -> bool:
    """An undo of a ``hardlink`` (no destination: the name stays where it is)."""
    return action.kind == "undo" and action.dst_root is None and action.tmp_name is not None


def undo(store: Store, action: ActionRow, clock: Callable[[], float]) -> Path:
    """Make the name an independent copy again, with the journalled mode, owner and times;
    exempted there first (a running daemon leaves it alone). Returns the name."""
    loc = _source(action)
    shared = fileops.lstat(loc)
    tmp_name = f".imagewatchd-{uuid.uuid4().hex}.tmp"
    undo_id = store.intend(
        NewAction(
            kind="undo", src_root=action.src_root, src_rel=action.src_rel, dst_root=None,
            dst_rel=None, tmp_name=tmp_name, sha256=action.sha256,
            stat=fileops.file_stat(shared), atime_ns=action.atime_ns, uid=action.uid,
            gid=action.gid, mode=action.mode, verdict="", evidence=f'{{"reverses": {action.id}}}',
            rule="command", reverses=action.id,
        ),
        clock(),
    )  # fmt: skip
    store.exempt(undo_id, str(loc.path), action.sha256, clock())
    attrs = Attributes(action.mode, action.uid, action.gid, action.atime_ns, action.stat.mtime_ns)
    try:
        fileops.unshare(loc, sha256=action.sha256, tmp_name=tmp_name, attrs=attrs)
    except FileOpsError as exc:
        store.drop_exemption(undo_id)
        store.finish(undo_id, "failed", clock(), exc.reason)
        raise
    store.finish(undo_id, "done", clock())
    store.finish(action.id, "undone", clock())
    return loc.path
