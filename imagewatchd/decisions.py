"""Durable library decisions taken by people: ``dupes keep FILE...`` (this picture stays, whatever
its copies), ``dupes not-duplicate FILE FILE...`` (these pictures are different, however alike
their hashes), ``dupes decisions`` and ``dupes forget ID...``.

A decision names the pictures by their content (sha256), so it holds wherever the files go and
however often they are fingerprinted again; the daemon, ``dupes`` and ``scan --act`` read it
at each use, so a running daemon honours it at once. An edited picture is a new picture.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import time
from itertools import combinations
from pathlib import Path

from imagewatchd import commands
from imagewatchd.errors import EXIT_OK, FingerprintError, UsageError
from imagewatchd.fingerprint import open_path, read_fd
from imagewatchd.history import when
from imagewatchd.names import shown
from imagewatchd.store.decisions import KEEP, NOT_DUPLICATE, DecisionRow


def content_id(path: Path) -> str:
    """The sha256 of a file named on the command line (a symlink is not followed)."""
    fd = open_path(path)
    try:
        _, data = read_fd(fd)
    except FingerprintError as exc:
        raise FingerprintError(path, exc.reason) from exc
    finally:
        os.close(fd)
    return hashlib.sha256(data).hexdigest()


def keep(args: argparse.Namespace) -> int:
    config = commands.load_config(args)
    pictures = [(Path(p), content_id(Path(p))) for p in args.files]
    with commands.open_store(args, config) as store:
        for path, sha256 in pictures:
            number, new = store.add_decision(KEEP, sha256, None, shown(str(path)), time.time())
            _said(number, new, f"keep {shown(str(path))}")
    return EXIT_OK


def not_duplicate(args: argparse.Namespace) -> int:
    if len(args.files) < 2:
        raise UsageError("not-duplicate needs at least two files")
    config = commands.load_config(args)
    pictures = [(Path(p), content_id(Path(p))) for p in args.files]
    for (a, sha_a), (b, sha_b) in combinations(pictures, 2):
        if sha_a == sha_b:
            raise UsageError(
                f"{shown(str(a))} and {shown(str(b))} hold identical bytes: the same picture"
            )
    with commands.open_store(args, config) as store:
        for (a, sha_a), (b, sha_b) in combinations(pictures, 2):
            names = f"{shown(str(a))} | {shown(str(b))}"
            number, new = store.add_decision(NOT_DUPLICATE, sha_a, sha_b, names, time.time())
            _said(number, new, f"not duplicates: {names}")
    return EXIT_OK


def listing(args: argparse.Namespace) -> int:
    config = commands.load_config(args)
    with commands.open_store(args, config) as store:
        rows = store.decisions()
    if args.json:
        print(json.dumps([_json(r) for r in rows]))
        return EXIT_OK
    for r in rows:
        what = "keep" if r.kind == KEEP else "not duplicates"
        print(f"{r.id}\t{when(r.created)}\t{what}\t{r.paths}")
    if not rows:
        print("no decisions")
    return EXIT_OK


def forget(args: argparse.Namespace) -> int:
    config = commands.load_config(args)
    with commands.open_store(args, config) as store:
        known = {r.id for r in store.decisions(args.ids)}
        store.remove_decisions(sorted(known))
    for number in args.ids:
        print(f"decision {number}: forgotten" if number in known else f"no decision {number}")
    return EXIT_OK if known == set(args.ids) else 1


def _said(number: int, new: bool, what: str) -> None:
    print(f"decision {number}: {what}" + ("" if new else " (taken before)"))


def _json(r: DecisionRow) -> dict[str, object]:
    kind = "keep" if r.kind == KEEP else "not-duplicate"
    pictures = [r.sha256] if r.other is None else [r.sha256, r.other]
    return {"id": r.id, "kind": kind, "pictures": pictures, "paths": r.paths, "when": r.created}
