#!/usr/bin/env python3
"""Where the whole list lookup's time goes: ``Matcher.list_matches`` at N listed pictures (the
indexes, store and queries of bench/list_lookup.py), each of its parts timed inside the real
call (CPU time of the thread), medians over the queries; "the rest" is the call less its parts
(Python between them, building the answer).

    OPENBLAS_NUM_THREADS=1 .venv/bin/python bench/list_parts.py -n 1000000
"""

from __future__ import annotations

import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import argparse
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from list_lookup import CROPS, VIEWS, _crowd, _fingerprint, _random, _store
from pdq_lookup import balanced

from imagewatchd import blockgrid, verify
from imagewatchd.config import Matching
from imagewatchd.entrygrids import EntryGrids
from imagewatchd.hashindex import HammingIndex
from imagewatchd.match import Indexes, Matcher
from imagewatchd.pdqindex import PdqIndex
from imagewatchd.store import Store

Times = dict[str, list[float]]


def _timed(times: Times, name: str, function: Callable[..., Any]) -> Callable[..., Any]:
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        started = time.thread_time()
        try:
            return function(*args, **kwargs)
        finally:
            times.setdefault(name, []).append(time.thread_time() - started)

    return wrapper


def _instrument(times: Times, matcher: Matcher) -> None:
    """Time each part where list_matches calls it (instance attributes: nothing else sees)."""
    entries, regions = matcher.entries, matcher.indexes.regions
    store = matcher.store
    entries.search_many = _timed(times, "pairs: 8 views in one pass", entries.search_many)  # type: ignore[method-assign]
    entries.search = _timed(times, "wider search: the 8 closest (a scan)", entries.search)  # type: ignore[method-assign]
    regions.search_many = _timed(times, "entry crops", regions.search_many)  # type: ignore[method-assign]
    pdq = matcher.indexes.pdq
    pdq.search_many = _timed(times, "PDQ: 8 views in one pass", pdq.search_many)  # type: ignore[method-assign]
    store.entries_by_sha256 = _timed(times, "sha256 (the store)", store.entries_by_sha256)  # type: ignore[method-assign]
    grids = matcher.indexes.grids
    grids.get = _timed(times, "8 grids (memory)", grids.get)  # type: ignore[method-assign]
    verify.blockgrid = _Grid(times)  # type: ignore[assignment,attr-defined]


class _Grid:
    """blockgrid as verify.py sees it, its comparison timed."""

    def __init__(self, times: Times) -> None:
        self.agreement_many = _timed(times, "8 grids compared", blockgrid.agreement_many)
        self.LEVELS, self.EDGES = blockgrid.LEVELS, blockgrid.EDGES


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=1_000_000)
    parser.add_argument("--queries", type=int, default=300)
    parser.add_argument("--crowd", type=int, default=4000)
    args = parser.parse_args()
    rng = np.random.default_rng(8)
    dhashes, phashes = _random(rng, args.n), _random(rng, args.n)
    base, crowd_d, crowd_p = _crowd(rng, args.crowd)
    dhashes[: args.crowd], phashes[: args.crowd] = crowd_d, crowd_p
    pairs, crops, pdqs = HammingIndex(), HammingIndex(), PdqIndex()
    pairs.add_many(np.arange(1, args.n + 1, dtype=np.int64), dhashes, phashes)
    keys = (np.arange(1, args.n + 1, dtype=np.int64)[:, None] * 4 + np.arange(1, 4)).ravel()
    crops.add_many(keys, _random(rng, CROPS * args.n), _random(rng, CROPS * args.n))
    pdqs.add_many(range(1, args.n + 1), balanced(rng, args.n))
    with tempfile.TemporaryDirectory() as tmp:
        store = _store(Path(tmp) / "grids.db", dhashes, phashes)
        grids = EntryGrids()
        grids.add_many(*store.enabled_grids_after(0))
        indexes = Indexes(entries=pairs, regions=crops, pdq=pdqs, grids=grids)
        print(f"# Where the list lookup's time goes, N = {args.n:,}, CPU time\n")
        for title, planted in (("random queries", None), ("crowded", base)):
            _report(title, store, indexes, args.queries, planted)
        store.close()


def _report(
    title: str, store: Store, indexes: Indexes, queries: int, base: tuple[int, int] | None
) -> None:
    times: Times = {}
    matcher = Matcher(store, Matching().thresholds, indexes)
    _instrument(times, matcher)
    rng = np.random.default_rng(9)
    for _ in range(queries):
        views = [(int(d), int(p)) for d, p in
                 zip(_random(rng, VIEWS), _random(rng, VIEWS), strict=True)]  # fmt: skip
        views[0] = base or views[0]
        grid = rng.integers(0, 256, blockgrid.SIZE, dtype=np.uint8).tobytes()
        fp = _fingerprint(rng, views, balanced(rng, VIEWS), grid)
        started = time.thread_time()
        matcher.list_matches(fp)
        times.setdefault("whole", []).append(time.thread_time() - started)
    print(f"## {title}\n\n| part | median ms | p90 ms |\n|---|---|---|")
    for name, took in times.items():
        ms = np.array(took) * 1000
        print(f"| {name} | {statistics.median(ms):.3f} | {np.percentile(ms, 90):.3f} |")
    parts = [np.array(v) for k, v in times.items() if k != "whole" and len(v) == queries]
    rest = np.array(times["whole"]) - np.sum(parts, axis=0)
    print(f"| the rest | {statistics.median(rest) * 1000:.3f} | |\n")
    verify.blockgrid = blockgrid  # type: ignore[attr-defined]


if __name__ == "__main__":
    main()
