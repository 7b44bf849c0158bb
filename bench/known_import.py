#!/usr/bin/env python3
"""Bulk import: the whole `imagewatchd known import` command of a million-line list, timed.

For each format the command reads (hex dHash+pHash lines, ``--format pdq`` lines, CSV) it makes
the file, then runs the real command in a fresh process on a fresh SQLite file and on a fresh
database of a throwaway PostgreSQL cluster (``tests/pgcluster.py``), and prints the wall time
of each run with what the command printed. ``--incoming N`` first stores N incoming files
(random hashes; the list's first lines are the hashes of the first few files), so that the
retroactive match ("stored incoming files matched") has files to search. ``--code DIR`` adds
a column for the command of another checkout (e.g. ``git archive 445a9a5 | tar -x -C DIR``),
run the same way: before and after side by side in one run.

    OPENBLAS_NUM_THREADS=1 .venv/bin/python bench/known_import.py [--n 1000000] \
        [--formats hex,pdq,csv] [--engines sqlite,postgresql] [--incoming 10000] [--code DIR]
"""

from __future__ import annotations

import argparse
import os
import resource
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from imagewatchd.models import FileStat, Fingerprint, Role
from imagewatchd.store import Location, Store

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # the throwaway cluster is in tests/
from tests.pgcluster import Cluster  # noqa: E402

MATCHED = 25  # the list's first lines: the hashes of the first stored incoming files


def hashes(n: int, seed: int) -> NDArray[np.uint64]:
    return np.random.default_rng(seed).integers(0, 2**64, n, dtype=np.uint64)


def write_list(path: Path, fmt: str, n: int, files: int) -> None:
    """``n`` lines of ``fmt``; the first ones (up to MATCHED) name stored files' hashes."""
    d, p = hashes(n, 1), hashes(n, 2)
    shown = min(MATCHED, files)
    d[:shown], p[:shown] = hashes(files, 11)[:shown], hashes(files, 12)[:shown]
    pdq = [hashes(n, 3 + k) for k in range(4)]
    for k in range(4):
        pdq[k][:shown] = hashes(files, 13 + k)[:shown]
    with path.open("w") as out:
        if fmt == "csv":
            out.write("dhash,phash,label\n")
            out.writelines(f"{a:016x},{b:016x},item {i}\n" for i, (a, b) in
                           enumerate(zip(d.tolist(), p.tolist(), strict=True)))  # fmt: skip
        elif fmt == "hex":
            out.writelines(f"{a:016x}{b:016x}\n" for a, b in zip(d.tolist(), p.tolist(),
                                                                  strict=True))  # fmt: skip
        else:
            words = zip(*(w.tolist() for w in pdq), strict=True)
            out.writelines(f"{a:016x}{b:016x}{c:016x}{e:016x},{i % 101},item {i}\n"
                           for i, (a, b, c, e) in enumerate(words))  # fmt: skip


def store_incoming(where: Path | Location, files: int) -> None:
    """``files`` incoming files' rows (random hashes) in one transaction."""
    d, p = hashes(files, 11).tolist(), hashes(files, 12).tolist()
    words = [hashes(files, 13 + k).tolist() for k in range(4)]
    with Store(where) as store, store.transaction():
        for n in range(files):
            pdq = int("".join(f"{w[n]:016x}" for w in words), 16)
            fp = Fingerprint(f"{n:064x}", d[n], p[n], 640, 480, "JPEG", False, pdq, 100)
            stat = FileStat(1, n + 1, 1000, 1)
            store.save_file(f"/synthetic/in/{n}.jpg", stat, Role.INCOMING, fp, 1.0)


def run(code: Path, where: str, listing: Path, fmt: str, base: Path) -> tuple[float, float, str]:
    """The command in a fresh process: (seconds, CPU seconds, what it printed)."""
    env = {**os.environ, "OPENBLAS_NUM_THREADS": "1", "PYTHONPATH": str(code),
           "IMAGEWATCHD_CONFIG": "", "XDG_STATE_HOME": str(base / "state"),
           "XDG_CONFIG_HOME": str(base / "config")}  # fmt: skip
    command = [sys.executable, "-m", "imagewatchd", "--db", where, "known", "import",
               str(listing), "--list", "big", "--create", "--format", fmt]  # fmt: skip
    started, cpu = time.monotonic(), _children_cpu()
    done = subprocess.run(command, env=env, capture_output=True, text=True, check=False,
                          cwd=base)  # fmt: skip
    took, cpu = time.monotonic() - started, _children_cpu() - cpu
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed: {done.stderr[-2000:]}")
    lines = done.stdout.splitlines()
    return took, cpu, "; ".join(line for line in lines if not line.startswith("entry IDs"))


def _children_cpu() -> float:
    """CPU seconds (user + system) of the finished child processes: unlike the wall time,
    not stretched by whatever else the machine runs."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


@contextmanager
def databases(engines: list[str], base: Path) -> Iterator[dict[str, object]]:
    """Makers of a fresh database per engine: a SQLite file, or a cluster's new database."""
    cluster = Cluster() if "postgresql" in engines else None
    counter = iter(range(1_000_000))
    try:
        yield {"sqlite": lambda: str(base / f"db{next(counter)}.db"),
               "postgresql": cluster.database if cluster else None}  # fmt: skip
    finally:
        if cluster is not None:
            cluster.stop()


def measure(args: argparse.Namespace, base: Path) -> list[str]:
    codes = [("after", ROOT)] + ([("before", Path(args.code))] if args.code else [])
    rows = []
    with databases(args.engines, base) as fresh:
        for fmt in args.formats:
            listing = base / f"list.{fmt}"
            write_list(listing, fmt, args.n, args.incoming)
            for engine in args.engines:
                cells = []
                for name, code in codes:
                    where = fresh[engine]()  # type: ignore[operator]
                    pg = engine == "postgresql"
                    location = (
                        Location(base / "pg", where, socket.gethostname()) if pg else Path(where)
                    )
                    if args.incoming:
                        store_incoming(location, args.incoming)
                    took, cpu, said = run(code, where, listing, fmt, base)
                    print(f"{fmt} {engine} {name}: {took:.1f} s ({cpu:.1f} s CPU): {said}",
                          file=sys.stderr, flush=True)  # fmt: skip
                    cells.append(f"{took:.1f} s ({cpu:.1f} s CPU)")
                rows.append(f"| {fmt} | {engine} | {' | '.join(reversed(cells))} |")
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--n", type=int, default=1_000_000, help="lines per list")
    parser.add_argument("--formats", default="hex,pdq,csv", type=lambda s: s.split(","))
    parser.add_argument("--engines", default="sqlite,postgresql", type=lambda s: s.split(","))
    parser.add_argument("--incoming", type=int, default=0, help="stored incoming files")
    parser.add_argument("--code", help="another checkout, timed the same way (before)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="known-import-") as tmp:
        os.chmod(tmp, 0o755)
        rows = measure(args, Path(tmp))
    heads = (["before (--code)"] if args.code else []) + ["after"]  # wall (CPU of the command)
    print(f"{args.n:,} lines, {args.incoming:,} stored incoming files\n")
    print(f"| format | engine | {' | '.join(heads)} |")
    print("|---|---|" + "---|" * len(heads))
    print("\n".join(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
