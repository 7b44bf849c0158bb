"""``check`` and ``status``: asked of the running daemon when one answers, else done here.

Either way the output is the same: a check's lines and JSON are made by the same ``report``
functions, in the daemon or in this process; ``status`` without a daemon says so and shows what
the database holds.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Iterator
from contextlib import ExitStack, closing, contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from imagewatchd import commands, paths, report
from imagewatchd.api import answers
from imagewatchd.api.client import ApiError, Client, connect
from imagewatchd.api.statustext import status_lines
from imagewatchd.config import Config
from imagewatchd.decoding import Decoder, open_decoder
from imagewatchd.errors import EXIT_ERROR, EXIT_OK, FingerprintError
from imagewatchd.fingerprint import open_path
from imagewatchd.match import Matcher
from imagewatchd.models import Verdict, VerdictKind
from imagewatchd.names import shown
from imagewatchd.rows import RetryRow


@dataclass(frozen=True, slots=True)
class Answer:
    """One file's check, as printed: the JSON line, the lines for people, the exit status."""

    json_line: str
    text: list[str]
    code: int


def _from_result(result: report.CheckResult, config: Config) -> Answer:
    thresholds = config.matching.thresholds
    code = EXIT_ERROR if result.error else report.VERDICT_EXIT[result.verdict.kind]
    return Answer(
        report.check_json(result, thresholds), report.check_text(result, thresholds), code
    )


def _from_daemon(data: dict[str, object]) -> Answer:
    text = data.pop("text")
    assert isinstance(text, list)
    verdict = VerdictKind(str(data["verdict"]))
    code = EXIT_ERROR if data["error"] is not None else report.VERDICT_EXIT[verdict]
    return Answer(json.dumps(data), [str(line) for line in text], code)


def _say(args: argparse.Namespace, message: str) -> None:
    if args.verbose:
        print(shown(f"imagewatchd: {message}"), file=sys.stderr)


def check(args: argparse.Namespace) -> int:
    config = commands.load_config(args)
    client, how = connect(config, paths.database(args.db, config.database, config.host))
    _say(args, f"checking with {how}" if client else f"checking in this process: {how}")
    worst = EXIT_OK
    with ExitStack() as stack:
        local: _Local | None = None
        for item in commands.expand(args.paths, commands.IMAGES):
            answer = None
            if client is not None and isinstance(item, Path):
                try:
                    answer = _ask(client, item, config)
                except ApiError as exc:
                    print(shown(f"imagewatchd: {exc}; checking in this process"), file=sys.stderr)
                    client.close()
                    client = None
            if answer is None:
                if local is None and isinstance(item, Path):
                    local = stack.enter_context(_local(args, config))
                answer = _from_result(_check_here(item, local), config)
            print(answer.json_line if args.json else "\n".join(answer.text), flush=True)
            worst = max(worst, answer.code)
        if client is not None:
            client.close()
    return worst


def _ask(client: Client, path: Path, config: Config) -> Answer:
    """The daemon's verdict; the bytes are sent, so the daemon needs no access to the file
    (a file larger than ``api.max_request_mb`` is named instead)."""
    try:
        fd = open_path(path)
    except FingerprintError as exc:
        return _from_result(_failed(path, exc.reason), config)
    try:
        size = os.fstat(fd).st_size
        if size > config.api.max_request_mb << 20:
            return _from_daemon(client.check_path(str(path), str(path)))
        data = _read(fd, size)
    except OSError as exc:
        return _from_result(_failed(path, exc.strerror or str(exc)), config)
    finally:
        os.close(fd)
    return _from_daemon(client.check_bytes(data, str(path)))


def _read(fd: int, size: int) -> bytes:
    chunks = []
    while chunk := os.read(fd, max(size, 1 << 16)):
        chunks.append(chunk)
    return b"".join(chunks)


def _failed(path: Path, reason: str) -> report.CheckResult:
    return report.CheckResult(path, None, Verdict(VerdictKind.ERROR), reason)


@dataclass
class _Local:
    matcher: Matcher
    decoder: Decoder
    config: Config


@contextmanager
def _local(args: argparse.Namespace, config: Config) -> Iterator[_Local]:
    """The in-process check: the whole index loaded here (slow with a large store)."""
    with commands.open_store(args, config) as store, closing(open_decoder(config)) as decoder:
        yield _Local(Matcher.load(store, config.matching.thresholds), decoder, config)


def _check_here(item: Path | FingerprintError, local: _Local | None) -> report.CheckResult:
    if isinstance(item, FingerprintError):
        return _failed(Path(str(item.path)), item.reason)
    assert local is not None
    turned = answers.orientations_of(local.config, item)
    return answers.check_path(local.matcher, local.decoder, item, item, turned)


def status(args: argparse.Namespace) -> int:
    config = commands.load_config(args)
    data: dict[str, object] | None = None
    client, how = connect(
        config, paths.database(args.db, config.database, config.host), timeout=10.0
    )
    if client is not None:
        try:
            data = client.get("/status")
        except ApiError as exc:
            how = str(exc)
        finally:
            client.close()
    if data is None:
        data = {"daemon": {"running": False, "why": how}, **_from_database(args, config)}
    if args.json:
        print(json.dumps(data))
    else:
        print("\n".join(status_lines(data)))
    return EXIT_OK


def _from_database(args: argparse.Namespace, config: Config) -> dict[str, object]:
    with commands.open_store(args, config) as store:
        return {
            "config": config.source,
            "database": str(store),
            "schema_version": store.schema_version(),
            "files": store.count_files(),
            "lists": {r.name: {"kind": r.kind.value, "entries": r.entries} for r in store.lists()},
            "retries": _retries(store.retries()),
        }


def _retries(rows: list[RetryRow]) -> dict[str, object]:
    """The daemon's pending retries, as it last wrote them (soonest first)."""
    if not rows:
        return {"pending": 0}
    first = rows[0]
    when = datetime.fromtimestamp(first.due).astimezone().isoformat(timespec="seconds")
    return {"pending": len(rows), "next": when, "path": first.path, "reason": first.reason}
