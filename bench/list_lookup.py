#!/usr/bin/env python3
"""The whole list lookup at a million listed pictures, crops and the watermark stage included.

What ``Matcher.list_matches`` asks of the indexes and the store for a picture that matches
nothing (the common case, and the most expensive: every stage runs): the (dHash, pHash) index in
8 orientations (6/4 as it is, 5/2 turned), the PDQ index in one pass over the 8 views (31 bits),
the index of the entries' centre crops (3 per entry, the picture as it is, 6/4), and then the
second stage (imagewatchd/verify.py): the entries within dH <= 20 and pH <= 22, their grids read
from the store by id and compared (blockgrid.agreement). The indexes hold N random entries, each
query is 8 unrelated random views; the store holds N entries with a grid each. Times are this
thread's CPU time (``time.thread_time``; ``--wall`` for wall clock): on the shared machine a
wall-clock sum of sub-millisecond steps mostly measures waiting for a core.

``whole`` is one call of the real ``Matcher.list_matches`` over the same indexes and store (a
fingerprint of 8 views, its PDQ at quality 100, a grid): what the steps above add up to, plus
the store's sha256 lookup and the Python between them. With ``--main DIR`` (a tree holding
main's ``imagewatchd`` package, e.g. from ``git archive``), the same queries run in two worker
processes, one importing main's package and one this tree's, batch by batch in turn, so that
the machine's load falls on both alike; the tables put them side by side.
"""

from __future__ import annotations

import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
from numpy.typing import NDArray
from pdq_lookup import balanced

from imagewatchd import blockgrid, verify
from imagewatchd.config import Matching
from imagewatchd.dihedral import NAMES
from imagewatchd.hashindex import HammingIndex
from imagewatchd.match import Indexes, Matcher
from imagewatchd.models import Fingerprint, ListKind, Turned
from imagewatchd.pdqindex import PdqIndex
from imagewatchd.rows import NewEntry
from imagewatchd.store import Store

VIEWS = 8
CROPS = 3
STEPS = ("pairs, 8 views", "PDQ, one pass", "crops", "main: all three", "wider search",
         "grids read", "grids compared", "with the second stage",
         "whole: Matcher.list_matches", "whole, matching.watermarks: false")  # fmt: skip
BATCH = 25  # queries a worker runs before the other's turn


def _random(rng: np.random.Generator, n: int) -> NDArray[np.uint64]:
    return rng.integers(0, 2**64 - 1, n, dtype=np.uint64, endpoint=True)


def _store(
    path: Path, dhashes: NDArray[np.uint64], phashes: NDArray[np.uint64], gridded: int = -1
) -> Store:
    """N entries with random hashes and a random grid each, as ``known add`` leaves them; with
    ``gridded``, only the first so many have a grid (the rest as imported hashes)."""
    store = Store(path)
    list_id = store.create_list("banned", ListKind.BLOCK, "", 1.0)
    rng = np.random.default_rng(9)
    step = 50_000
    for start in range(0, len(dhashes), step):
        chunk = slice(start, start + step)
        pairs = zip(dhashes[chunk].tolist(), phashes[chunk].tolist(), strict=True)
        entries = [NewEntry(None, d, p) for d, p in pairs]
        added, _ = store.add_entries(list_id, entries, 1.0)
        added = added[: max(0, gridded - start)] if gridded >= 0 else added
        grids = rng.integers(0, 256, (len(added), blockgrid.SIZE), dtype=np.uint8)
        store.add_entry_grids(zip(added, (g.tobytes() for g in grids), strict=True))
    return store


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=1_000_000)
    parser.add_argument("--queries", type=int, default=300)
    parser.add_argument("--wall", action="store_true", help="wall-clock time instead of CPU")
    parser.add_argument("--crowd", type=int, default=4000,
                        help="entries planted within the wider radius of one picture, "
                        "searched for as a second set of queries (0: none)")  # fmt: skip
    parser.add_argument("--gridded", type=int, default=-1,
                        help="only the first so many entries have a grid")  # fmt: skip
    parser.add_argument("--main", type=Path, help="a tree with main's imagewatchd: compare")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        return _serve(args)
    names = ["main", "this tree"] if args.main else ["this tree"]
    workers = [_worker(args, args.main if name == "main" else None) for name in names]
    crowded = f"a picture with {args.crowd:,} entries within the wider radius"
    sets = [("random queries", False)] + ([(crowded, True)] if args.crowd else [])
    print(f"# The whole list lookup, N = {args.n:,}, {'wall' if args.wall else 'CPU'} time\n")
    for worker in workers:
        print(f"{worker.stdout.readline().strip()}\n")  # type: ignore[union-attr]
    for number, (title, crowd) in enumerate(sets):
        times: list[dict[str, list[float]]] = [{step: [] for step in STEPS} for _ in workers]
        found: list[int] = []
        for batch in range(-(-args.queries // BATCH)):
            for worker, mine in zip(workers, times, strict=True):
                answer = _ask(worker, f"{number} {batch} {int(crowd)}")
                for step in STEPS:
                    mine[step] += answer[step]
                found = [int(n) for n in answer["found"]]  # the same queries for both
        _table(title, names, times, found)
    for worker in workers:
        worker.communicate("")


def _worker(args: argparse.Namespace, tree: Path | None) -> subprocess.Popen[str]:
    env = dict(os.environ)
    if tree is not None:
        env["PYTHONPATH"] = str(tree)
    command = [sys.executable, __file__, "--worker", "-n", str(args.n), "--crowd",
               str(args.crowd), "--gridded", str(args.gridded),
               *(["--wall"] if args.wall else [])]  # fmt: skip
    return subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                            env=env)  # fmt: skip


def _ask(worker: subprocess.Popen[str], line: str) -> dict[str, list[float]]:
    assert worker.stdin is not None and worker.stdout is not None
    worker.stdin.write(line + "\n")
    worker.stdin.flush()
    answer: dict[str, list[float]] = json.loads(worker.stdout.readline())
    return answer


def _serve(args: argparse.Namespace) -> None:
    """A worker: build, say so, then run the batches of queries asked for on stdin."""
    clock: Callable[[], float] = time.perf_counter if args.wall else time.thread_time
    rng = np.random.default_rng(8)
    t0 = time.perf_counter()
    dhashes, phashes = _random(rng, args.n), _random(rng, args.n)
    base, crowd_d, crowd_p = _crowd(rng, args.crowd)
    dhashes[: args.crowd], phashes[: args.crowd] = crowd_d, crowd_p  # planted: the same N
    pairs = HammingIndex()
    pairs.add_many(np.arange(1, args.n + 1, dtype=np.int64), dhashes, phashes)
    crops = HammingIndex()
    keys = (np.arange(1, args.n + 1, dtype=np.int64)[:, None] * 4 + np.arange(1, 4)).ravel()
    crops.add_many(keys, _random(rng, CROPS * args.n), _random(rng, CROPS * args.n))
    pdqs = PdqIndex()
    pdqs.add_many(range(1, args.n + 1), balanced(rng, args.n))
    with tempfile.TemporaryDirectory() as tmp:
        store = _store(Path(tmp) / "grids.db", dhashes, phashes, args.gridded)
        indexes = Indexes(entries=pairs, regions=crops, pdq=pdqs)
        if hasattr(indexes, "grids"):  # this tree: the grids held in memory (entrygrids.py)
            indexes.grids.add_many(*store.enabled_grids_after(0))
        matcher = Matcher(store, Matching().thresholds, indexes)
        # the second stage turned off (this tree): the same indexes, a Matcher without it
        off = Matcher(store, Matching(watermarks=False).thresholds, indexes) if hasattr(
            Matching(), "watermarks") else None  # fmt: skip
        package = Path(blockgrid.__file__).parent.parent
        print(f"{package}: built in {time.perf_counter() - t0:.0f} s", flush=True)
        for line in sys.stdin:
            number, batch, crowd = (int(word) for word in line.split())
            queries = np.random.default_rng([8, number, batch])
            times, found = _run(BATCH, queries, clock, matcher, base if crowd else None, off)
            print(json.dumps({**times, "found": found}), flush=True)
        store.close()


def _table(
    title: str, names: list[str], times: list[dict[str, list[float]]], found: list[int]
) -> None:
    print(f"## {title}\n")
    print("| step | " + " | ".join(f"{name}: median ms | p90" for name in names) + " |")
    print("|---|" + "---|---|" * len(names))
    for step in STEPS:
        cells = []
        for mine in times:
            ms = np.array(mine[step]) * 1000
            if np.isnan(ms).all():  # main: no such setting
                cells.append("- | -")
                continue
            cells.append(f"{statistics.median(ms):.3f} | {np.percentile(ms, 90):.3f}")
        print(f"| {step} | " + " | ".join(cells) + " |")
    print(f"\nCandidates of the wider search per query (last batch): median "
          f"{statistics.median(found):.0f}, max {max(found)}.\n")  # fmt: skip


def _crowd(
    rng: np.random.Generator, n: int
) -> tuple[tuple[int, int], NDArray[np.uint64], NDArray[np.uint64]]:
    """A base (dHash, pHash), and n pairs 8-16 and 8-18 bits from it (within 20 and 22)."""
    base = [int(v) for v in _random(rng, 2)]
    planted = np.zeros((2, n), np.uint64)
    for column, (low, high) in enumerate(((8, 16), (8, 18))):
        for i in range(n):
            bits = rng.choice(64, int(rng.integers(low, high + 1)), replace=False)
            planted[column, i] = base[column] ^ sum(1 << int(b) for b in bits)
    return (base[0], base[1]), planted[0], planted[1]


def _run(
    queries: int, rng: np.random.Generator, clock: Callable[[], float], matcher: Matcher,
    base: tuple[int, int] | None = None, off: Matcher | None = None,
) -> tuple[dict[str, list[float]], list[int]]:  # fmt: skip
    """Each query: 8 random views, the first replaced by ``base`` if given."""
    pairs, crops, pdqs = matcher.entries, matcher.indexes.regions, matcher.indexes.pdq
    store = matcher.store
    times: dict[str, list[float]] = {step: [] for step in STEPS}
    found: list[int] = []
    for _ in range(queries):
        views = [(int(d), int(p)) for d, p in
                 zip(_random(rng, VIEWS), _random(rng, VIEWS), strict=True)]  # fmt: skip
        views[0] = base or views[0]
        grid = rng.integers(0, 256, blockgrid.SIZE, dtype=np.uint8).tobytes()
        turned_pdqs = balanced(rng, VIEWS)
        fp = _fingerprint(rng, views, turned_pdqs, grid)
        marks = [clock()]
        for i, (dhash, phash) in enumerate(views):
            pairs.search(dhash, phash, *((5, 2) if i else (6, 4)))
        marks.append(clock())
        pdqs.search_many(turned_pdqs, 31)
        marks.append(clock())
        crops.search(*views[0], 6, 4)
        marks.append(clock())
        hits = pairs.search(*views[0], verify.WIDER_DHASH, verify.WIDER_PHASH)
        marks.append(clock())
        closest = sorted(hits, key=lambda hit: (hit[1] + hit[2], hit[0]))[: verify.CANDIDATES]
        grids = store.entry_grids([key for key, _, _ in closest])
        marks.append(clock())
        blockgrid.agreement_many(list(grids.values()), grid)
        marks.append(clock())
        matched = matcher.list_matches(fp)
        marks.append(clock())
        assert not matched, matched
        if off is not None:
            assert not off.list_matches(fp)
        marks.append(clock())
        found.append(len(hits))
        steps = np.diff(marks)
        for step, took in zip(STEPS[:3], steps[:3], strict=True):
            times[step].append(float(took))
        times["main: all three"].append(float(steps[:3].sum()))
        for step, took in zip(STEPS[4:7], steps[3:6], strict=True):
            times[step].append(float(took))
        times["with the second stage"].append(float(steps[:6].sum()))
        times[STEPS[-2]].append(float(steps[6]))
        times[STEPS[-1]].append(float(steps[7]) if off is not None else float("nan"))
    return times, found


def _fingerprint(
    rng: np.random.Generator, views: list[tuple[int, int]], pdqs: list[int], grid: bytes
) -> Fingerprint:
    """A picture that matches nothing, as the fingerprint stage gives it."""
    turned = tuple(Turned(name, d, p, q) for name, (d, p), q in
                   zip(NAMES[1:], views[1:], pdqs[1:], strict=True))  # fmt: skip
    sha256 = rng.bytes(32).hex()
    return Fingerprint(sha256, *views[0], 1000, 750, "JPEG", False, pdq=pdqs[0], pdq_quality=100,
                       turned=turned, grid=grid)  # fmt: skip


if __name__ == "__main__":
    main()
