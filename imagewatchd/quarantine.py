"""The quarantine's whole life: ``quarantine list``, ``show``, ``delete`` and ``purge``.

A delete is journalled (an action of kind ``delete`` that reverses the quarantine, which then
shows as ``deleted``). It unlinks only a regular file in the configured quarantine directory,
reached through ``fileops`` without following a symlink, and only while the file still holds
the journalled sha256; anything else is left alone, with one line saying why.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from imagewatchd import commands, fileops, paths
from imagewatchd.errors import EXIT_ERROR, EXIT_OK, UsageError
from imagewatchd.fileops import FileOpsError
from imagewatchd.history import action_json, seconds, when, where
from imagewatchd.journal import destination, source
from imagewatchd.names import shown
from imagewatchd.rows import ActionRow, NewAction
from imagewatchd.store import Store


def _first_match(a: ActionRow) -> dict[str, object]:
    matches = json.loads(a.evidence).get("matches", [])
    return matches[0] if matches else {}


def entry_summary(a: ActionRow) -> str:
    """The list entry (and its label) or the library file that a quarantine matched."""
    m = _first_match(a)
    if "list" in m:
        label = f" {m['label']!r}" if m.get("label") else ""
        return f"list {m['list']} entry {m.get('entry_id')}{label}"
    return f"library {m['path']}" if "path" in m else ""


def quarantine_list(args: argparse.Namespace) -> int:
    config = commands.load_config(args)
    with commands.open_store(args, config) as store:
        rows = store.actions(kind="quarantine", state="done")
    if args.json:
        print(json.dumps([
            {**action_json(a), "original": str(source(a).path), "quarantined": where(a),
             "stored": where(a),
             "evidence": json.loads(a.evidence), "match": _first_match(a)}
            for a in rows
        ]))  # fmt: skip
        return EXIT_OK
    for a in rows:
        fields = (
            str(a.id), when(a.created), str(source(a).path), a.verdict, entry_summary(a), where(a)
        )  # fmt: skip
        print("\t".join(shown(field) for field in fields))
    if not rows:
        print("the quarantine is empty")
    return EXIT_OK


def quarantine_show(args: argparse.Namespace) -> int:
    config = commands.load_config(args)
    with commands.open_store(args, config) as store:
        a = store.action(args.id)
    if a is None or a.kind != "quarantine":
        raise UsageError(f"no quarantine action with id {args.id}")
    if args.json:
        print(json.dumps({**action_json(a), "evidence": json.loads(a.evidence), "mode": a.mode,
                          "uid": a.uid, "gid": a.gid, "size": a.stat.size,
                          "mtime_ns": a.stat.mtime_ns, "atime_ns": a.atime_ns}))  # fmt: skip
        return EXIT_OK
    lines = [
        f"action {a.id}: {a.state}" + (f" ({a.error})" if a.error else ""),
        f"original: {source(a).path}", f"stored:   {where(a)}", f"when:     {when(a.created)}",
        f"verdict:  {a.verdict} by rule {a.rule}", f"sha256:   {a.sha256}",
        f"file:     mode {a.mode & 0o7777:04o}, owner {a.uid}:{a.gid}, {a.stat.size} bytes,"
        f" modified {when(a.stat.mtime_ns / 1e9)}, accessed {when(a.atime_ns / 1e9)}",
    ]  # fmt: skip
    evidence = json.loads(a.evidence)
    for m in evidence.get("matches", []):
        lines.append(f"match:    {_entry_of(m)}: dHash {m['dhash_distance']}"
                     f" pHash {m['phash_distance']} PDQ {m.get('pdq_distance')}")  # fmt: skip
    if "thresholds" in evidence:
        t = evidence["thresholds"]
        lines.append(f"thresholds: dHash {t['dhash']} pHash {t['phash']}")
    for line in lines:
        print(shown(line))
    return EXIT_OK


def _entry_of(m: dict[str, object]) -> str:
    if "list" in m:
        return f"list {m['list']} entry {m.get('entry_id')} {m.get('label') or ''}".rstrip()
    return f"library {m.get('path')}"


def delete(store: Store, quarantine: Path, action_id: int) -> ActionRow:
    """Delete one quarantined file, journalled; raises UsageError or FileOpsError (left alone)."""
    a = store.action(action_id)
    if a is None or a.kind != "quarantine":
        raise UsageError(f"no quarantine action with id {action_id}")
    if a.state != "done":
        raise UsageError(f"action {action_id} is {a.state}: nothing of it is in the quarantine")
    here = destination(a)
    if here.root != quarantine or len(here.relative.parts) != 1:
        raise UsageError(f"{here.path}: not in the quarantine {quarantine}; left alone")
    info = fileops.lstat(here)
    intended = NewAction(
        kind="delete", src_root=str(here.root), src_rel=str(here.relative), dst_root=None,
        dst_rel=None, tmp_name=None, sha256=a.sha256, stat=fileops.file_stat(info),
        atime_ns=info.st_atime_ns, uid=info.st_uid, gid=info.st_gid, mode=info.st_mode,
        verdict=a.verdict, evidence=json.dumps({"reverses": a.id}), rule="command",
        reverses=a.id,
    )  # fmt: skip
    delete_id = store.intend(intended, time.time())
    try:
        fileops.remove_if_content(here, a.sha256)
    except FileOpsError as exc:
        store.finish(delete_id, "failed", time.time(), exc.reason)
        raise
    with store.transaction():
        store.finish(delete_id, "done", time.time())
        store.finish(a.id, "deleted", time.time())
    return a


def _delete_all(args: argparse.Namespace, store: Store, quarantine: Path, ids: list[int]) -> int:
    failed = 0
    for action_id in ids:
        try:
            if args.dry_run:
                stored = where(_quarantined(store, action_id))
                print(shown(f"action {action_id}: would delete {stored}"))
                continue
            a = delete(store, quarantine, action_id)
        except (UsageError, FileOpsError) as exc:
            print(shown(f"action {action_id}: not deleted: {exc}"))
            failed += 1
            continue
        print(shown(f"action {action_id}: deleted {where(a)}"))
    return EXIT_ERROR if failed else EXIT_OK


def _quarantined(store: Store, action_id: int) -> ActionRow:
    a = store.action(action_id)
    if a is None or a.kind != "quarantine" or a.state != "done":
        raise UsageError(f"no file in the quarantine from action {action_id}")
    return a


def quarantine_delete(args: argparse.Namespace) -> int:
    config = commands.load_config(args)
    with commands.open_store(args, config) as store:
        quarantine = paths.quarantine_dir(config.quarantine_dir)
        return _delete_all(args, store, quarantine, list(dict.fromkeys(args.ids)))


def quarantine_purge(args: argparse.Namespace) -> int:
    config = commands.load_config(args)
    cutoff = time.time() - seconds(args.older_than)
    with commands.open_store(args, config) as store:
        rows = store.actions(kind="quarantine", state="done")
        old = [a.id for a in rows if a.created < cutoff]
        if not old:
            print(f"nothing in the quarantine is older than {args.older_than}")
            return EXIT_OK
        return _delete_all(args, store, paths.quarantine_dir(config.quarantine_dir), old)
