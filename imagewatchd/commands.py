"""The one-shot commands (those for lists and entries: listcommands.py). Each takes the parsed
arguments and returns an exit status.

Lines for people show names escaped (``names.shown``); ``--json`` carries them exactly.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Iterator
from contextlib import closing, contextmanager
from pathlib import Path

from imagewatchd import (
    compare_report,
    explain,
    paths,
    report,
)
from imagewatchd import config as config_module
from imagewatchd.config import Config
from imagewatchd.decoding import fingerprint_path, open_decoder, settings_of
from imagewatchd.decoding.inline import InlineDecoder
from imagewatchd.dupes import Among, duplicate_groups
from imagewatchd.errors import (
    EXIT_CONFIG,
    EXIT_ERROR,
    EXIT_MATCH,
    EXIT_OK,
    ConfigError,
    DatabaseDamaged,
    DatabaseUnreachable,
    FingerprintError,
    StoreError,
    UsageError,
)
from imagewatchd.filters import Selection, walk
from imagewatchd.keepconfig import Policies
from imagewatchd.match import Matcher
from imagewatchd.models import Fingerprint, Role
from imagewatchd.names import shown
from imagewatchd.progress import Progress
from imagewatchd.scan import Scanner
from imagewatchd.similar import similar_groups, similar_json, similar_text
from imagewatchd.store import DAMAGE_ERRORS, Checker, Location, Store, damage

log = logging.getLogger(__name__)


def load_config(args: argparse.Namespace) -> Config:
    return config_module.load(paths.config_path(args.config))


@contextmanager
def open_store(args: argparse.Namespace, config: Config) -> Iterator[Store]:
    """The database; an error that means it is damaged becomes one clear message."""
    path = paths.database(args.db, config.database, config.host)
    try:
        with _opened(path) as store:
            yield store
    except DAMAGE_ERRORS as exc:
        detail = damage(exc)
        if detail is None:
            raise
        raise DatabaseDamaged(path, detail) from exc


def _opened(path: Location) -> Store:
    try:
        return Store(path)
    except DatabaseUnreachable as exc:  # an outage: what the daemon does meanwhile
        raise DatabaseUnreachable(
            f"{exc}; a running daemon keeps enforcing the bank it holds and journals locally "
            "until the database returns: run this command again then"
        ) from exc


# What one-shot commands look at in a directory they are given: the image extensions.
IMAGES = Selection(include=config_module.DEFAULT_INCLUDE)


def expand(paths_in: list[str], selection: Selection) -> Iterator[Path | FingerprintError]:
    """Files as given, directories recursed; a missing path becomes an error in the stream."""
    for raw in paths_in:
        path = Path(raw).absolute()
        if path.is_dir() and not path.is_symlink():
            yield from (found for found, _ in walk(path, selection))
        elif path.exists() or path.is_symlink():
            yield path
        else:
            yield FingerprintError(path, "no such file or directory")


# -- scan, check, compare, dupes --------------------------------------------------------------


def scan(args: argparse.Namespace) -> int:
    config = load_config(args)
    roots = [Path(p).absolute() for p in args.paths] or [
        w.path for w in config.watches if w.role is Role.LIBRARY
    ]
    if not roots:
        raise UsageError("nothing to scan: give a PATH, or configure a library watch")
    missing = [root for root in roots if not root.is_dir()]
    if missing:
        raise UsageError(f"{missing[0]}: not a directory")
    with open_store(args, config) as store:
        matcher = Matcher.load(store, config.matching.thresholds)
        bar = Progress(sys.stderr, 0, "scanning")

        def progress(done: int, total: int, detail: str) -> None:
            bar.total = total
            bar.update(done, detail)

        with closing(open_decoder(config)) as decoder:
            scanner = Scanner(store, matcher, IMAGES, decoder, workers=config.workers)
            summary = scanner.scan(roots, progress)
        bar.close()
        summary.duplicate_groups = len(duplicate_groups(matcher, Among.under(store, roots)))
    if args.json:
        print(json.dumps(summary.as_dict()))
    else:
        print(", ".join(f"{k.replace('_', ' ')} {v}" for k, v in summary.as_dict().items()))
    return EXIT_ERROR if summary.errors else EXIT_OK


def compare(args: argparse.Namespace) -> int:
    config = load_config(args)
    thresholds = config.matching.thresholds
    prints: list[Fingerprint] = []
    settings = settings_of(config)
    decoder = InlineDecoder(settings)  # two files the user chose: no pool to start
    for raw in (args.first, args.second):
        _, fp = fingerprint_path(decoder, Path(raw), crops=not prints)  # the first: an entry
        prints.append(fp)
    where = explain.boxes_at(Path(args.second).absolute(), prints[1], settings.limits)
    explained = explain.explain(prints[0], prints[1], thresholds, where)
    if args.json:
        result = compare_report.compare_json(explained, thresholds)
        result.update(a=report.fingerprint_json(prints[0]), b=report.fingerprint_json(prints[1]))
        print(json.dumps(result))
        return EXIT_OK
    for name, fp in zip((args.first, args.second), prints, strict=True):
        pdq = "" if fp.pdq is None else f" PDQ {fp.pdq:064x} (quality {fp.pdq_quality})"
        print(f"{shown(name)}: dHash {fp.dhash:016x} pHash {fp.phash:016x}{pdq} {fp.width}x"
              f"{fp.height} {fp.format}{' (flat)' if fp.flat else ''}")  # fmt: skip
    print("\n".join(compare_report.compare_text(explained, thresholds)))
    return EXIT_OK


def dupes(args: argparse.Namespace) -> int:
    config = load_config(args)
    with open_store(args, config) as store:
        matcher = Matcher.load(store, config.matching.thresholds)
        groups = duplicate_groups(matcher, policies=Policies.of(config.watches))
        alike = similar_groups(matcher, duplicates=groups)
        if args.json:  # the duplicate groups, and the similar ones under "similar"
            data = json.loads(report.dupes_json([] if args.similar else groups))
            print(json.dumps({**data, "similar": similar_json(alike)}))
            return EXIT_OK
        lines = [] if args.similar else report.dupes_text(groups) or ["no duplicates"]
        if alike or args.similar:
            lines += [""] if lines else []
            lines += similar_text(alike) or ["no similar pictures"]
        print("\n".join(lines))
    return EXIT_OK


# -- config and the database ---------------------------------------------------------------


def check_config(args: argparse.Namespace) -> int:
    """Every problem in one run. Errors exit 78. A watch directory that does not exist is a
    warning (exit 0): the daemon starts without it and watches it as soon as it appears (a
    mount, a directory made later); it is reported alongside errors too."""
    located = paths.config_path(args.file or args.config)
    try:
        config = config_module.load(located)
    except ConfigError as exc:
        for problem in exc.problems:
            print(shown(f"imagewatchd: {exc.source}: {problem}"), file=sys.stderr)
        _missing_watches(exc.source, exc.watch_paths)
        return EXIT_CONFIG
    missing = _missing_watches(config.source, tuple(enumerate(w.path for w in config.watches)))
    note = f", {missing} not there yet" if missing else ""
    print(f"{shown(config.source)}: ok, {len(config.watches)} watch(es){note}")
    return EXIT_OK


def _missing_watches(source: str, watches: tuple[tuple[int, Path], ...]) -> int:
    """Warn about each watch directory that is not there; returns how many."""
    missing = [(index, path) for index, path in watches if not path.is_dir()]
    for index, path in missing:
        where = f"{shown(source)}: warning: watches[{index}].path: {shown(path)}"
        print(f"imagewatchd: {where}: no such directory; the daemon waits for it", file=sys.stderr)
    return len(missing)


def db_migrate(args: argparse.Namespace) -> int:
    """``db migrate``: apply the migrations not yet applied (opening the store does)."""
    config = load_config(args)
    with open_store(args, config) as store:
        where = paths.database(args.db, config.database, config.host)
        print(f"{shown(str(where))}: schema version {store.schema_version()}, up to date")
    return EXIT_OK


def db_check(args: argparse.Namespace) -> int:
    """``db check``: exit 0 when sound, 1 with the problems listed, 2 when there is no file."""
    config = load_config(args)
    where = paths.database(args.db, config.database, config.host)
    path = str(where)
    if where.url is None and not where.path.is_file():
        raise UsageError(f"{shown(path)}: no such database file")
    try:
        problems = Checker(where).run(thorough=not args.quick)
    except StoreError as exc:
        problems = [f"cannot be opened: {exc}"]
    for problem in problems:
        print(f"{shown(path)}: {shown(problem)}")
    if problems:
        print(f"{shown(path)}: damaged: {len(problems)} problem(s); restore a backup, or move "
              "it aside to start afresh (lists can be re-imported from their exports)")  # fmt: skip
        return EXIT_MATCH
    print(f"{shown(path)}: ok")
    return EXIT_OK
