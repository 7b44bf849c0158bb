#!/usr/bin/env python3
"""The pipeline's CPU per quarantined file, over an empty store and over a large one.

The daemon's per-file path run inline, exactly as ``daemon.py``'s workers run it: each of
``--files`` uploads (640x480 JPEGs, each on a block list by its sha256) is fingerprinted,
matched against the lists and the whole library index, quarantined with its journal entry,
and then forgotten the way the daemon handles the file leaving the watch
(``files_under`` + ``forget_files``). CPU time is this thread's (``thread_time``), per file;
decoding runs inline too, so the figure is the whole per-file cost, not just the store's.

The store is a copy-free synthetic one (``bench/synth_store.py``): the run adds a list, its
entries and the journal rows to it. ``--db`` absent: a fresh empty store.

    .venv/bin/python bench/per_file.py --db bench/data/store-10m.db
"""

from __future__ import annotations

import argparse
import hashlib
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

from imagewatchd.act import Actor
from imagewatchd.config import parse
from imagewatchd.decoding.inline import InlineDecoder
from imagewatchd.match import Matcher
from imagewatchd.models import FileStat, ListKind, SettledFile
from imagewatchd.pipeline import Pipeline
from imagewatchd.rows import NewEntry
from imagewatchd.store import Store


def picture(seed: int) -> Image.Image:
    rng = np.random.default_rng(seed)
    coarse = (rng.random((12, 16, 3)) * 255).astype(np.uint8)
    return Image.fromarray(coarse).resize((640, 480), Image.Resampling.BICUBIC)


def run(db: Path, work: Path, files: int) -> tuple[list[float], float, int]:
    """(CPU ms per file, the index load's seconds, library files in the index)."""
    incoming = work / "in"
    incoming.mkdir()
    names = []
    for n in range(files):
        picture(10_000 + n).save(incoming / f"up{n}.jpg", quality=90)
        names.append(incoming / f"up{n}.jpg")
    config = parse(
        {"watches": [{"path": str(incoming), "role": "incoming", "on_known": "quarantine"}]},
        "bench",
    )
    with Store(db) as store:
        shas = [hashlib.sha256(p.read_bytes()).hexdigest() for p in names]
        list_id = store.create_list(f"bench-{time.time()}", ListKind.BLOCK, "", time.time())
        store.add_entries(list_id, [NewEntry(s, None, None) for s in shas], time.time())
        start = time.perf_counter()
        matcher = Matcher.load(store, config.matching.thresholds)
        loaded = time.perf_counter() - start
        pipeline = Pipeline(
            store, matcher, Actor(store, config, work / "quarantine"), config, InlineDecoder()
        )
        cpu = []
        for path in names:
            before = time.thread_time()
            outcome = pipeline.process(SettledFile(str(path), 0, FileStat.of(path.stat())))
            assert outcome.action == "quarantine", outcome
            store.forget_files([i for i, _ in store.files_under(str(path))])
            cpu.append((time.thread_time() - before) * 1000)
        return cpu, loaded, len(matcher.library)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--db", type=Path, help="a synthetic store (default: a new empty one)")
    parser.add_argument("--files", type=int, default=300)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(dir=Path(__file__).parent / "data") as tmp:
        work = Path(tmp)
        cpu, loaded, library = run(args.db or work / "empty.db", work, args.files)
    cpu = cpu[20:]  # warm-up: first decodes, first page reads
    median, mean, p90 = statistics.median(cpu), statistics.mean(cpu), np.percentile(cpu, 90)
    print(f"| {library:,} | {len(cpu)} | {median:.2f} | {mean:.2f} | {p90:.2f} | {loaded:.1f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
