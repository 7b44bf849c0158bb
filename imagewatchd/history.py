"""The action history: ``actions list``, the selections ``undo`` takes, and times given by
people (an ISO date/time, or a duration ago such as ``2h``, ``30d``, ``2w``).

Lines for people show names escaped (``names.shown``); ``--json`` carries them exactly.
"""

from __future__ import annotations

import argparse
import json
import re
import time
from datetime import UTC, datetime

from imagewatchd import commands
from imagewatchd.errors import EXIT_OK, UsageError
from imagewatchd.journal import source
from imagewatchd.names import shown
from imagewatchd.rows import ActionRow
from imagewatchd.store import Store

UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
UNDOABLE = ("move", "quarantine", "trash", "hardlink", "file")


def seconds(text: str) -> float:
    """A duration such as ``90s``, ``12h``, ``30d`` or ``2w``, in seconds."""
    found = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([smhdw])\s*", text)
    if found is None:
        raise UsageError(f"{text!r}: expected a duration like 12h, 30d or 2w")
    return float(found[1]) * UNITS[found[2]]


def moment(text: str, now: float) -> float:
    """An ISO date/time (local time unless it names its zone), or a duration before ``now``."""
    try:
        return now - seconds(text)
    except UsageError:
        pass
    try:
        return datetime.fromisoformat(text).timestamp()
    except ValueError:
        raise UsageError(f"{text!r}: expected an ISO date/time or a duration like 2h") from None


def when(timestamp: float) -> str:
    return datetime.fromtimestamp(timestamp, UTC).strftime("%Y-%m-%d %H:%M:%S")


def where(action: ActionRow) -> str:
    """Where the file went, if it went anywhere."""
    if action.dst_root is None or action.dst_rel is None:
        return ""
    return f"{action.dst_root.rstrip('/')}/{action.dst_rel}"


def action_json(a: ActionRow) -> dict[str, object]:
    return {
        "id": a.id, "kind": a.kind, "state": a.state, "batch": a.batch_id, "when": a.created,
        "finished": a.finished, "path": str(source(a).path), "destination": where(a) or None,
        "sha256": a.sha256, "verdict": a.verdict, "rule": a.rule, "reverses": a.reverses,
        "error": a.error,
    }  # fmt: skip


def actions_list(args: argparse.Namespace) -> int:
    config = commands.load_config(args)
    with commands.open_store(args, config) as store:
        since = None if args.since is None else moment(args.since, time.time())
        rows = store.actions(since=since, batch=args.batch)
    if args.json:
        print(json.dumps([action_json(a) for a in rows]))
        return EXIT_OK
    for a in rows:
        batch = f"batch {a.batch_id}" if a.batch_id is not None else ""
        arrow = f" -> {where(a)}" if where(a) else ""
        last = f"{source(a).path}{arrow}" + (f" ({a.error})" if a.error else "")
        print(
            "\t".join(shown(f) for f in (str(a.id), when(a.created), a.kind, a.state, batch, last))
        )
    if not rows:
        print("no actions")
    return EXIT_OK


def undo_selection(args: argparse.Namespace, store: Store) -> list[int]:
    """The action ids that ``undo`` is asked for: ids, ranges ``2-41``, ``--batch``, ``--last``.

    A range or a batch selects its moves and quarantines that are still done, last first;
    ids named one by one are taken as they are (and refused one by one if they cannot be).
    """
    chosen: list[int] = []
    for word in args.ids:
        chosen += _ids(word, store)
    batch = args.batch
    if args.last:
        last = store.batch()
        if last is None:
            raise UsageError("no batch to undo: no scan --act has acted yet")
        batch = last.id
    if batch is not None:
        if store.batch(batch) is None:
            raise UsageError(f"no batch with id {batch}")
        chosen += _undoable(store.actions(batch=batch))
    if not chosen:
        raise UsageError("nothing to undo: give action IDs, a range like 2-41, --batch or --last")
    return list(dict.fromkeys(chosen))


def _ids(word: str, store: Store) -> list[int]:
    found = re.fullmatch(r"(\d+)(?:-(\d+))?", word)
    if found is None:
        raise UsageError(f"{word!r}: expected an action ID or a range like 2-41")
    if found[2] is None:
        return [int(found[1])]
    low, high = int(found[1]), int(found[2])
    if low > high:
        raise UsageError(f"{word!r}: the range runs backwards")
    return _undoable(store.actions(ids=(low, high)))


def _undoable(rows: list[ActionRow]) -> list[int]:
    return [a.id for a in reversed(rows) if a.kind in UNDOABLE and a.state == "done"]
