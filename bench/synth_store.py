#!/usr/bin/env python3
"""A synthetic store of N library files in the project's own schema, for the scale benchmarks.

The schema comes from ``Store`` itself (every migration); the rows are written by one bulk SQL
insert (the store's per-file ``save_file`` would take hours at 10M rows), with the secondary
indexes dropped during the insert and re-created with the migrations' own statements after it.
Paths are ``/synthetic/lib/dNNNN/pNNNNNNNN.jpg`` (1,000 files a directory), hashes uniform
random, except that 1% of the rows are exact copies of an earlier row (same sha256 and hashes)
and 1% near copies (1-3 bits flipped in each hash, another sha256), so ``dupes`` has work.

    .venv/bin/python bench/synth_store.py --n 1000000 bench/data/store-1m.db
"""

from __future__ import annotations

import argparse
import os
import sqlite3
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from imagewatchd.store import Store

ROOT = "/synthetic/lib"
CHUNK = 100_000
INDEXES = (
    "CREATE INDEX files_sha256 ON files (sha256)",
    "CREATE INDEX files_inode ON files (device, inode)",
)


def path_of(row: int) -> bytes:
    return b"%s/d%04d/p%08d.jpg" % (ROOT.encode(), row // 1000, row)


def flip(rng: np.random.Generator, hashes: NDArray[np.uint64]) -> NDArray[np.uint64]:
    """Each hash with 1-3 random bits flipped (a bit may be drawn twice: 0-3 in effect)."""
    out = hashes.copy()
    for _ in range(3):
        bits = rng.integers(0, 64, len(out)).astype(np.uint64)
        out ^= np.where(rng.random(len(out)) < 0.7, np.uint64(1) << bits, np.uint64(0))
    return out


def columns(rng: np.random.Generator, start: int, count: int) -> Iterator[tuple[object, ...]]:
    """The rows ``start`` .. ``start + count``, as INSERT parameters."""
    dhash = rng.integers(0, 2**64, count, dtype=np.uint64)
    phash = rng.integers(0, 2**64, count, dtype=np.uint64)
    kind = rng.random(count)
    source = rng.integers(0, max(1, count // 2), count)  # a copy copies an earlier row
    copy = (kind < 0.02) & (source < np.arange(count))
    dhash[copy], phash[copy] = dhash[source[copy]], phash[source[copy]]
    near = copy & (kind >= 0.01)
    dhash[near], phash[near] = flip(rng, dhash[near]), flip(rng, phash[near])
    shas = [os.urandom(32).hex() for _ in range(count)]
    for row in np.flatnonzero(copy & ~near).tolist():
        shas[row] = shas[int(source[row])]
    signed_d, signed_p = dhash.view(np.int64).tolist(), phash.view(np.int64).tolist()
    sizes = rng.integers(50_000, 5_000_000, count).tolist()
    for i in range(count):
        row = start + i
        yield (row + 1, path_of(row), 1, row + 1, sizes[i], 1_700_000_000_000_000_000 + row,
               shas[i], signed_d[i], signed_p[i], 1000 + i % 7, 750 + i % 5)  # fmt: skip


def generate(path: Path, n: int, seed: int) -> None:
    Store(path).close()  # the schema: every migration, as the daemon makes it
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("PRAGMA journal_mode = OFF")  # a throw-away file: no WAL during the bulk insert
    db.execute("PRAGMA synchronous = OFF")
    db.execute("PRAGMA cache_size = -1000000")
    db.execute("DROP INDEX files_sha256")
    db.execute("DROP INDEX files_inode")
    rng = np.random.default_rng(seed)
    insert = (
        "INSERT INTO files (id, path, device, inode, size, mtime_ns, role, sha256, dhash,"
        " phash, width, height, format, flat, canon_version, error, first_seen, last_seen)"
        " VALUES (?, ?, ?, ?, ?, ?, 'library', ?, ?, ?, ?, ?, 'JPEG', 0, 1, NULL, 1.0, 1.0)"
    )
    for start in range(0, n, CHUNK):
        db.execute("BEGIN")
        db.executemany(insert, columns(rng, start, min(CHUNK, n - start)))
        db.execute("COMMIT")
    for statement in INDEXES:
        db.execute(statement)
    db.execute("INSERT OR IGNORE INTO watches (path, indexed) VALUES (?, 1.0)", (ROOT.encode(),))
    db.execute("PRAGMA journal_mode = WAL")
    db.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, required=True, help="library rows")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("db", type=Path)
    args = parser.parse_args()
    if args.db.exists():
        sys.exit(f"{args.db} exists; remove it first")
    start = time.perf_counter()
    generate(args.db, args.n, args.seed)
    size = args.db.stat().st_size
    print(f"{args.db}: {args.n:,} rows, {size / 2**20:,.0f} MiB, "
          f"{time.perf_counter() - start:.0f} s")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
