"""The commands for hash lists and their entries: ``lists …`` and ``known …``.

Each takes the parsed arguments and returns an exit status; lines for people show names
escaped (``names.shown``), ``--json`` carries them exactly.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from contextlib import closing
from pathlib import Path

from imagewatchd import colours, hashlists, paths, retroactive
from imagewatchd.commands import IMAGES, expand, load_config, open_store
from imagewatchd.config import Config
from imagewatchd.daemon import running_daemon
from imagewatchd.decoding import fingerprint_path, open_decoder
from imagewatchd.errors import EXIT_ERROR, EXIT_OK, FingerprintError, UsageError
from imagewatchd.models import ListKind
from imagewatchd.names import shown
from imagewatchd.rows import ListRow, NewEntry
from imagewatchd.store import Store

log = logging.getLogger(__name__)


def lists_create(args: argparse.Namespace) -> int:
    config = load_config(args)
    with open_store(args, config) as store:
        if store.get_list(args.name) is not None:
            raise UsageError(f"a list named {args.name!r} exists already")
        list_id = store.create_list(args.name, ListKind(args.kind), args.description, time.time())
        if args.recoloured != colours.Recoloured.COUNT:
            store.set_list_recoloured(list_id, args.recoloured)
    print(f"created {args.kind} list {args.name!r} (recoloured copies: {args.recoloured})")
    return EXIT_OK


def lists_set(args: argparse.Namespace) -> int:
    """Change a list's setting; the running daemon reads it at its next match."""
    config = load_config(args)
    with open_store(args, config) as store:
        row = _require_list(store, args.name)
        store.set_list_recoloured(row.id, args.recoloured)
    log.info("list %r: recoloured copies %s", args.name, args.recoloured)
    print(f"{shown(args.name)}: recoloured copies: {args.recoloured}")
    return EXIT_OK


def lists_show(args: argparse.Namespace) -> int:
    config = load_config(args)
    with open_store(args, config) as store:
        rows = store.lists()
    if args.json:
        print(json.dumps([
            {"name": r.name, "kind": r.kind.value, "description": r.description,
             "entries": r.entries, "enabled": r.enabled, "recoloured": r.recoloured}
            for r in rows
        ]))  # fmt: skip
        return EXIT_OK
    for r in rows:
        print(
            f"{shown(r.name)}\t{r.kind.value}\t{r.entries} entries ({r.enabled} enabled)\t"
            f"recoloured copies: {r.recoloured}\t{shown(r.description)}"
        )
    if not rows:
        print("no lists; create one with: imagewatchd lists create NAME --kind block")
    return EXIT_OK


def lists_remove(args: argparse.Namespace) -> int:
    config = load_config(args)
    with open_store(args, config) as store:
        row = _require_list(store, args.name)
        if row.entries and not args.force:
            raise UsageError(f"list {args.name!r} holds {row.entries} entries; add --force")
        store.delete_list(row.id)
    print(f"removed list {args.name!r} and its {row.entries} entries")
    return EXIT_OK


def _require_list(store: Store, name: str) -> ListRow:
    row = store.get_list(name)
    if row is None:
        raise UsageError(f"no list named {name!r} (see: imagewatchd lists list)")
    return row


def _list_for_adding(store: Store, name: str, create: bool) -> int:
    """The list to add to; a new one only with ``--create``: a typo must not start a list."""
    row = store.get_list(name)
    if row is not None:
        return row.id
    if not create:
        names = ", ".join(repr(r.name) for r in store.lists()) or "none"
        raise UsageError(
            f"no list named {name!r} (existing lists: {names}); add --create to create it"
        )
    log.info("created block list %r", name)
    return store.create_list(name, ListKind.BLOCK, "", time.time())


def known_add(args: argparse.Namespace) -> int:
    config = load_config(args)
    errors = 0
    entries: list[NewEntry] = []
    with closing(open_decoder(config)) as decoder:
        for item in expand(args.paths, IMAGES):
            if isinstance(item, FingerprintError):
                log.error("%s: %s", item.path, item.reason)
                errors += 1
                continue
            try:
                _, fp = fingerprint_path(decoder, item, crops=True)  # an entry keeps its crops
            except FingerprintError as exc:
                log.error("%s: %s", item, exc.reason)
                errors += 1
                continue
            if fp.flat:
                log.warning("%s: flat image: it will match identical files only", item)
            # label and source are display text: a name is kept as it is shown (names.shown)
            entries.append(NewEntry(fp.sha256, fp.dhash, fp.phash,
                                    shown(args.label or item.name), shown(item),
                                    flat=fp.flat, pdq=fp.pdq, pdq_quality=fp.pdq_quality,
                                    regions=fp.crops, grid=fp.grid,
                                    colours=fp.colours or b""))  # fmt: skip
    with open_store(args, config) as store:
        list_id = _list_for_adding(store, args.list_name, args.create)
        added, skipped = store.add_entries(list_id, entries, time.time())
        print(f"{shown(args.list_name)}: added {len(added)}, already listed {skipped}, "
              f"errors {errors}")  # fmt: skip
        _reached(args, store, config, added)
    return EXIT_ERROR if errors else EXIT_OK


def known_import(args: argparse.Namespace) -> int:
    config = load_config(args)
    source = shown(args.source or ("stdin" if args.file == "-" else args.file))
    try:
        text = sys.stdin.read() if args.file == "-" else Path(args.file).read_text("utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"{args.file}: cannot read: {exc}") from exc
    fmt = hashlists.detect_format(text) if args.format == "auto" else args.format
    parsed = hashlists.PARSERS[fmt](text, source)
    for problem in parsed.problems:
        log.error("%s: %s", args.file, problem)
    if parsed.problems and not args.skip_invalid:
        raise UsageError(
            f"{args.file}: {len(parsed.problems)} invalid line(s), nothing imported "
            "(--skip-invalid imports the valid ones)"
        )
    with open_store(args, config) as store:
        list_id = _list_for_adding(store, args.list_name, args.create)
        added, skipped = store.add_entries(list_id, parsed.entries, time.time())
        print(f"{shown(args.list_name)}: imported {len(added)}, already listed {skipped}, "
              f"invalid {len(parsed.problems)}")  # fmt: skip
        _reached(args, store, config, added)
    return EXIT_OK


def known_export(args: argparse.Namespace) -> int:
    config = load_config(args)
    with open_store(args, config) as store:
        _require_list(store, args.list_name)
        rows = store.entries(args.list_name)
    text = hashlists.FORMATTERS[args.format](rows)
    if args.output == "-":
        sys.stdout.write(text)
    else:
        Path(args.output).write_text(text, "utf-8")
    return EXIT_OK


def known_list(args: argparse.Namespace) -> int:
    config = load_config(args)
    with open_store(args, config) as store:
        if args.list_name is not None:
            _require_list(store, args.list_name)
        rows = store.entries(args.list_name)
    if args.json:
        print(json.dumps([
            {"id": e.id, "list": e.list_name, "kind": e.list_kind.value, "sha256": e.sha256,
             "dhash": None if e.dhash is None else f"{e.dhash:016x}",
             "phash": None if e.phash is None else f"{e.phash:016x}", "label": e.label,
             "source": e.source, "added": e.added, "enabled": e.enabled, "hits": e.hits,
             "pdq": None if e.pdq is None else f"{e.pdq:064x}", "pdq_quality": e.pdq_quality}
            for e in rows
        ]))  # fmt: skip
        return EXIT_OK
    for e in rows:
        hashes = (
            f"{e.dhash:016x}{e.phash:016x}"
            if e.dhash is not None and e.phash is not None
            else (e.sha256 or ("" if e.pdq is None else f"pdq:{e.pdq:064x}"))
        )
        state = "enabled" if e.enabled else "disabled"
        print(f"{e.id}\t{shown(e.list_name)}\t{hashes}\t{state}\thits {e.hits}\t{shown(e.label)}")
    return EXIT_OK


def _set_entries(args: argparse.Namespace, change: str) -> int:
    """Disable, enable or remove entries; says how many changed and how many already were."""
    config = load_config(args)
    with open_store(args, config) as store:
        rows = {e.id: e for e in store.entries(ids=args.ids)}
        missing = [i for i in args.ids if i not in rows]
        wanted = change == "enable"
        ids = [i for i in dict.fromkeys(args.ids) if i in rows]
        if change == "remove":
            store.remove_entries(ids)
            already = []
        else:
            already = [i for i in ids if rows[i].enabled == wanted]
            ids = [i for i in ids if rows[i].enabled != wanted]
            store.set_entries_enabled(ids, wanted)
        for i in missing:
            log.error("no entry with id %d", i)
        note = f", {len(already)} already {change}d" if already else ""
        print(f"{change}d {_entries(len(ids))}{note}")
        if change == "enable":
            _reached(args, store, config, ids)
    return EXIT_ERROR if missing else EXIT_OK


def _reached(args: argparse.Namespace, store: Store, config: Config, ids: list[int]) -> None:
    """New or re-enabled entries: their IDs, and the files already there that they match."""
    if not ids:
        return
    more = f", ... ({len(ids)} in all)" if len(ids) > 20 else ""
    print(f"entry IDs: {', '.join(map(str, ids[:20]))}{more}")
    daemon = running_daemon(paths.database(args.db, config.database, config.host).path)
    print(retroactive.summary(store, config, ids, daemon))


def _entries(count: int) -> str:
    return f"{count} {'entry' if count == 1 else 'entries'}"


def known_disable(args: argparse.Namespace) -> int:
    return _set_entries(args, "disable")


def known_enable(args: argparse.Namespace) -> int:
    return _set_entries(args, "enable")


def known_remove(args: argparse.Namespace) -> int:
    return _set_entries(args, "remove")
