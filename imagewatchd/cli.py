"""The command line: one parser, one ``main`` that maps every error to a message and exit code."""

from __future__ import annotations

import argparse
import logging
import sqlite3
import sys
import traceback
from collections.abc import Callable, Sequence

from imagewatchd import (
    __version__,
    commands,
    decisions,
    history,
    listcommands,
    logsetup,
    quarantine,
    service,
)
from imagewatchd.api import commands as api_commands
from imagewatchd.errors import (
    EXIT_CONFIG,
    EXIT_DAMAGED,
    EXIT_ERROR,
    ConfigError,
    ImagewatchdError,
    UsageError,
)
from imagewatchd.names import shown
from imagewatchd.store import damage

log = logging.getLogger("imagewatchd")

CREATE_HELP = "create the list (as a block list) if there is none by that name"
FORCE_HELP = "also a file whose bytes are exactly a banned picture's (the ban stands for copies)"


def _common(parser: argparse.ArgumentParser, *, top: bool) -> None:
    """Options accepted both before and after the command name."""
    default = None if top else argparse.SUPPRESS
    parser.add_argument("--config", metavar="FILE", default=default, help="configuration file")
    parser.add_argument(
        "--db", metavar="PATH", default=default, help="database file, or a postgresql:// URL"
    )
    parser.add_argument(
        "--debug", action="store_true", default=False if top else argparse.SUPPRESS,
        help="log debug detail and show tracebacks",
    )  # fmt: skip


def _sub(
    subparsers: argparse._SubParsersAction[argparse.ArgumentParser], name: str, text: str
) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(name, help=text, description=text)
    _common(parser, top=False)
    return parser


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="imagewatchd",
        description="Fingerprint images and act on known and duplicate pictures.",
    )
    parser.add_argument("--version", action="version", version=f"imagewatchd {__version__}")
    _common(parser, top=True)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    def command(name: str, help_text: str) -> argparse.ArgumentParser:
        return _sub(sub, name, help_text)

    p = command("run", "the daemon: watch, fingerprint, match and act (what systemd starts)")
    p.add_argument("--dry-run", action="store_true", help="log what would be done; move nothing")
    p.set_defaults(handler=service.run)

    p = command("scan", "fingerprint and index trees as library files")
    p.add_argument("paths", nargs="*", metavar="PATH", help="default: the library watches")
    p.add_argument("--json", action="store_true", help="print the summary as JSON")
    p.add_argument("--act", action="store_true", help="apply the watches' rules to the trees")
    p.add_argument("--dry-run", action="store_true", help="with --act: only say what it would do")
    p.set_defaults(handler=_scan)

    p = command("check", "show what matches each file, and why (exit 0 clean, 1 match, 2 error)")
    p.add_argument("paths", nargs="+", metavar="FILE", help="files or directories")
    p.add_argument("--json", action="store_true", help="one JSON object per file")
    p.add_argument(
        "--verbose", "-v", action="store_true", help="say whether the running daemon answered"
    )
    p.set_defaults(handler=api_commands.check)

    p = command("compare", "whether B matches A as a list entry and as a library photo, and why")
    p.add_argument("first", metavar="A", help="the listed picture or library photo")
    p.add_argument("second", metavar="B", help="the picture checked against it")
    p.add_argument("--json", action="store_true", help="every reading compared, as JSON")
    p.set_defaults(handler=commands.compare)

    _dupes_parser(command("dupes", "groups of near-duplicate library files, best copy first"))

    _lists_parser(command("lists", "manage named block and allow lists"))
    _known_parser(command("known", "add, import, export and manage list entries"))

    _history_parsers(command)

    p = command("review", "a local page to look at duplicate groups and the quarantine")
    p.add_argument("--port", type=int, default=0, help="port on 127.0.0.1 (default: a free one)")
    p.add_argument("--html", metavar="FILE", help="write a static report of the groups instead")
    p.set_defaults(handler=_review)

    p = command("check-config", "validate a configuration file (exit 0, or 78 with errors)")
    p.add_argument("file", nargs="?", metavar="FILE")
    p.set_defaults(handler=commands.check_config)

    p = command("db", "the database itself")
    d = p.add_subparsers(dest="action", metavar="ACTION", required=True)
    p = _sub(d, "check", "verify the database file (exit 0 sound, 1 damaged, 2 no file)")
    p.add_argument("--quick", action="store_true", help="PRAGMA quick_check, not integrity_check")
    p.set_defaults(handler=commands.db_check)
    p = _sub(d, "migrate", "bring the database's schema up to date (exit 0 when it is)")
    p.set_defaults(handler=commands.db_migrate)

    p = command("status", "the running daemon (or, without one, the database) and what it holds")
    p.add_argument("--json", action="store_true")
    p.set_defaults(handler=api_commands.status)
    return parser


def _scan(args: argparse.Namespace) -> int:
    if args.dry_run and not args.act:
        raise UsageError("--dry-run goes with --act (a plain scan only indexes)")
    return service.scan_act(args) if args.act else commands.scan(args)


def _review(args: argparse.Namespace) -> int:
    from imagewatchd.review.serve import review  # noqa: PLC0415 (Flask only when asked for)

    return review(args)


def _dupes_parser(p: argparse.ArgumentParser) -> None:
    """``dupes`` lists the groups; its actions record people's decisions about them."""
    p.add_argument("--json", action="store_true")
    p.add_argument("--similar", action="store_true",
                   help="only the groups of similar pictures: burst shots")  # fmt: skip
    p.set_defaults(handler=commands.dupes)
    d = p.add_subparsers(dest="action", metavar="ACTION")
    p = _sub(d, "keep", "always keep these pictures: never moved as a copy of another")
    p.add_argument("files", nargs="+", metavar="FILE")
    p.set_defaults(handler=decisions.keep)
    p = _sub(d, "not-duplicate", "these pictures are different, however alike their hashes")
    p.add_argument("files", nargs="+", metavar="FILE")
    p.set_defaults(handler=decisions.not_duplicate)
    p = _sub(d, "decisions", "the decisions taken, oldest first")
    p.add_argument("--json", action="store_true")
    p.set_defaults(handler=decisions.listing)
    p = _sub(d, "forget", "remove decisions")
    p.add_argument("ids", nargs="+", type=int, metavar="ID")
    p.set_defaults(handler=decisions.forget)


def _history_parsers(command: Callable[[str, str], argparse.ArgumentParser]) -> None:
    """The quarantine, undo and the action history."""
    p = command("quarantine", "list, show, restore, delete and purge quarantined files")
    q = p.add_subparsers(dest="action", metavar="ACTION", required=True)
    p = _sub(q, "list", "what is in quarantine, and why")
    p.add_argument("--json", action="store_true")
    p.set_defaults(handler=quarantine.quarantine_list)
    _quarantine_parser(q)
    p = _sub(q, "restore", "put files back (never overwriting), kept there as they are")
    p.add_argument("ids", nargs="+", type=int, metavar="ID")
    p.add_argument("--force", action="store_true", help=FORCE_HELP)
    p.set_defaults(handler=service.quarantine_restore)

    p = command("undo", "move moved or quarantined files back (never overwriting)")
    p.add_argument("ids", nargs="*", metavar="ID", help="action IDs or ranges like 2-41")
    p.add_argument("--batch", type=int, metavar="ID", help="every move of this batch")
    p.add_argument("--last", action="store_true", help="every move of the last batch")
    p.add_argument("--force", action="store_true", help=FORCE_HELP)
    p.set_defaults(handler=service.undo)

    p = command("actions", "the action history")
    a = p.add_subparsers(dest="action", metavar="ACTION", required=True)
    p = _sub(a, "list", "past actions, oldest first")
    p.add_argument("--since", metavar="T", help="an ISO date/time, or a duration ago like 2h")
    p.add_argument("--batch", type=int, metavar="ID", help="only this batch's actions")
    p.add_argument("--json", action="store_true")
    p.set_defaults(handler=history.actions_list)


def _quarantine_parser(q: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = _sub(q, "show", "everything the journal knows about one quarantined file")
    p.add_argument("id", type=int, metavar="ID")
    p.add_argument("--json", action="store_true")
    p.set_defaults(handler=quarantine.quarantine_show)
    p = _sub(q, "delete", "delete quarantined files for good (journalled)")
    p.add_argument("ids", nargs="+", type=int, metavar="ID")
    p.add_argument("--dry-run", action="store_true", help="only say what would be deleted")
    p.set_defaults(handler=quarantine.quarantine_delete)
    p = _sub(q, "purge", "delete what has been in quarantine longer than a time (journalled)")
    p.add_argument("--older-than", required=True, metavar="AGE", help="like 12h, 30d or 2w")
    p.add_argument("--dry-run", action="store_true", help="only say what would be deleted")
    p.set_defaults(handler=quarantine.quarantine_purge)


def _lists_parser(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    p = _sub(sub, "create", "create a list")
    p.add_argument("name")
    p.add_argument("--kind", choices=("block", "allow"), default="block")
    p.add_argument("--description", default="")
    _recoloured(p, "count")
    p.set_defaults(handler=listcommands.lists_create)
    p = _sub(sub, "set", "change a list's setting")
    p.add_argument("name")
    _recoloured(p, None)
    p.set_defaults(handler=listcommands.lists_set)
    p = _sub(sub, "list", "show the lists")
    p.add_argument("--json", action="store_true")
    p.set_defaults(handler=listcommands.lists_show)
    p = _sub(sub, "remove", "delete a list and its entries")
    p.add_argument("name")
    p.add_argument("--force", action="store_true", help="also when it holds entries")
    p.set_defaults(handler=listcommands.lists_remove)


def _recoloured(parser: argparse.ArgumentParser, default: str | None) -> None:
    parser.add_argument(
        "--recoloured", choices=("count", "ignore"), default=default, required=default is None,
        help="whether a recoloured copy of an entry (hues turned, palette swapped) matches it: "
        "count (the default) or ignore; an identical file always matches",
    )  # fmt: skip


def _known_parser(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    p = _sub(sub, "add", "fingerprint images into a list (directories recurse)")
    p.add_argument("paths", nargs="+", metavar="FILE")
    p.add_argument("--list", required=True, dest="list_name", metavar="NAME")
    p.add_argument("--create", action="store_true", help=CREATE_HELP)
    p.add_argument("--label", default="", help="a label for the new entries")
    p.set_defaults(handler=listcommands.known_add)
    p = _sub(sub, "import", "import a hash list (hex lines, PDQ lines or CSV)")
    p.add_argument("file", metavar="FILE", help="a file, or - for standard input")
    p.add_argument("--list", required=True, dest="list_name", metavar="NAME")
    p.add_argument("--create", action="store_true", help=CREATE_HELP)
    p.add_argument("--format", choices=("auto", "hex", "pdq", "csv"), default="auto")
    p.add_argument("--source", default=None, help="recorded as each entry's source")
    p.add_argument("--skip-invalid", action="store_true", help="import the valid lines only")
    p.set_defaults(handler=listcommands.known_import)
    p = _sub(sub, "export", "export a list")
    p.add_argument("--list", required=True, dest="list_name", metavar="NAME")
    p.add_argument("--format", choices=("hex", "pdq", "csv"), default="csv")
    p.add_argument("--output", "-o", default="-", metavar="FILE")
    p.set_defaults(handler=listcommands.known_export)
    p = _sub(sub, "list", "show entries")
    p.add_argument("--list", dest="list_name", metavar="NAME")
    p.add_argument("--json", action="store_true")
    p.set_defaults(handler=listcommands.known_list)
    for name, handler, text in (
        ("disable", listcommands.known_disable, "stop entries from matching"),
        ("enable", listcommands.known_enable, "let disabled entries match again"),
        ("remove", listcommands.known_remove, "delete entries"),
    ):
        p = _sub(sub, name, text)
        p.add_argument("ids", nargs="+", type=int, metavar="ID")
        p.set_defaults(handler=handler)


def main(argv: Sequence[str] | None = None) -> int:  # noqa: PLR0911 - one exit per error class
    args = build_parser().parse_args(argv)
    logsetup.setup(args.debug, daemon=args.command == "run")
    try:
        result: int = args.handler(args)
        return result
    except ConfigError as exc:
        for problem in exc.problems:
            print(shown(f"imagewatchd: {exc.source}: {problem}"), file=sys.stderr)
        return EXIT_CONFIG
    except ImagewatchdError as exc:
        _fail(args.debug, str(exc))
        return exc.exit_code
    except sqlite3.Error as exc:
        damaged = damage(exc)  # where open_store did not name the file
        if damaged is not None:
            _fail(args.debug, f"the database is damaged ({damaged}): run imagewatchd db check")
            return EXIT_DAMAGED
        _fail(args.debug, f"database error: {exc}")
        return EXIT_ERROR
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        return EXIT_ERROR
    except Exception as exc:
        _fail(args.debug, f"internal error: {exc!r} (run with --debug for the traceback)")
        return EXIT_ERROR


def _fail(debug: bool, message: str) -> None:
    print(f"imagewatchd: error: {shown(message)}", file=sys.stderr)
    if debug:
        traceback.print_exc()
