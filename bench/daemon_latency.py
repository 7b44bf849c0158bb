#!/usr/bin/env python3
"""Daemon latency and throughput, measured on the real daemon with its default settings.

latency:    files arrive one at a time (write, close) in an incoming watch whose rule quarantines
            known pictures; each is a banned picture's variant. Latency is the time from the
            writer's close to the journal's ``finished`` time of its quarantine (both wall clock,
            one machine).
throughput: a burst of 2-megapixel JPEGs written as fast as possible; files per second from
            the first write to the last file recorded in the store.

    OPENBLAS_NUM_THREADS=1 python bench/daemon_latency.py [--files 1000] [--burst 10000]
"""

from __future__ import annotations

import argparse
import io
import os
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import cast

import numpy as np
import yaml
from PIL import Image

ENV = {**os.environ, "OPENBLAS_NUM_THREADS": "1"}


def photo(seed: int, size: tuple[int, int]) -> Image.Image:
    rng = np.random.default_rng(seed)
    coarse = (rng.random((12, 16, 3)) * 255).astype(np.uint8)
    img = Image.fromarray(coarse).resize(size, Image.Resampling.BICUBIC)
    noise = rng.normal(0, 6, (size[1], size[0], 3))
    return Image.fromarray(np.clip(np.asarray(img, np.float64) + noise, 0, 255).astype(np.uint8))


def jpeg(img: Image.Image, quality: int) -> bytes:
    out = io.BytesIO()
    img.save(out, "JPEG", quality=quality)
    return out.getvalue()


def iw(db: Path, *args: str) -> None:
    cmd = [sys.executable, "-m", "imagewatchd", "--db", str(db), *args]
    subprocess.run(cmd, check=True, env=ENV, capture_output=True)


class Daemon:
    def __init__(self, base: Path, watched: Path) -> None:
        self.db = base / "db" / "imagewatchd.db"
        self.config = base / "config.yaml"
        self.log = base / "daemon.log"
        watch = {"path": str(watched), "role": "incoming", "on_known": "quarantine"}
        self.config.write_text(yaml.safe_dump({
            "quarantine_dir": str(base / "quarantine"), "watches": [watch],
        }))  # fmt: skip
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with self.log.open("wb") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "imagewatchd", "--config", str(self.config),
                 "--db", str(self.db), "run"], stderr=log, env=ENV,
            )  # fmt: skip
        deadline = time.monotonic() + 60
        while "reconcile:" not in self.log.read_text():
            if time.monotonic() > deadline:
                raise SystemExit(f"the daemon did not start:\n{self.log.read_text()}")
            time.sleep(0.05)

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.send_signal(signal.SIGTERM)
            self.proc.wait(30)

    def query(self, sql: str) -> list[tuple[object, ...]]:
        conn = sqlite3.connect(self.db, timeout=30)
        try:
            return conn.execute(sql).fetchall()
        finally:
            conn.close()


def latency(base: Path, files: int, gap: float) -> dict[str, float]:
    watched = base / "uploads"
    watched.mkdir()
    banned = base / "banned.jpg"
    banned.write_bytes(jpeg(photo(1, (1024, 768)), 90))
    daemon = Daemon(base, watched)
    iw(daemon.db, "known", "add", "--create", "--list", "banned", str(banned))
    variants = [jpeg(photo(1, (1024, 768)), 60 + i % 35) + os.urandom(8) for i in range(files)]
    daemon.start()
    closed: dict[str, float] = {}
    try:
        for number, data in enumerate(variants):
            path = watched / f"upload-{number:05d}.jpg"
            with path.open("wb") as out:
                out.write(data)
            closed[str(path)] = time.time()  # right after close
            time.sleep(gap)
        deadline = time.monotonic() + 120
        while len(daemon.query("SELECT id FROM actions WHERE state = 'done'")) < files:
            if time.monotonic() > deadline:
                raise SystemExit("not every file was quarantined")
            time.sleep(0.2)
    finally:
        daemon.stop()
    rows = daemon.query("SELECT src_root, src_rel, finished FROM actions WHERE state = 'done'")
    waits = sorted(
        float(str(f)) - closed[str(Path(os.fsdecode(cast(bytes, r)), os.fsdecode(cast(bytes, p))))]
        for r, p, f in rows
    )
    return summary_ms(waits)


def summary_ms(values: list[float]) -> dict[str, float]:
    q = statistics.quantiles(values, n=100)
    return {
        "n": len(values), "median_ms": 1000 * statistics.median(values),
        "p90_ms": 1000 * q[89], "p99_ms": 1000 * q[98], "max_ms": 1000 * max(values),
    }  # fmt: skip


def throughput(base: Path, files: int) -> dict[str, float]:
    watched = base / "burst"
    watched.mkdir()
    daemon = Daemon(base, watched)
    pool = [jpeg(photo(1000 + i, (1600, 1200)), 88) for i in range(50)]  # 1.92 megapixels
    daemon.start()
    try:
        started = time.time()
        for number in range(files):
            sub = watched / f"d{number % 10}"
            sub.mkdir(exist_ok=True)
            (sub / f"img-{number:06d}.jpg").write_bytes(pool[number % len(pool)] + os.urandom(8))
        written = time.time()
        deadline = time.monotonic() + 1800
        while (count := int(str(daemon.query("SELECT COUNT(*) FROM files")[0][0]))) < files:
            if time.monotonic() > deadline:
                raise SystemExit(f"only {count} of {files} files processed")
            time.sleep(0.5)
        last = float(str(daemon.query("SELECT MAX(last_seen) FROM files")[0][0]))
    finally:
        daemon.stop()
    return {
        "files": files, "write_s": written - started, "total_s": last - started,
        "files_per_s": files / (last - started),
    }  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=1000, help="latency: files, one at a time")
    parser.add_argument("--gap", type=float, default=0.05, help="latency: seconds between files")
    parser.add_argument("--burst", type=int, default=10000, help="throughput: burst size")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="iw-latency-") as tmp:
        print("latency, close to quarantine:", latency(Path(tmp), args.files, args.gap), flush=True)
    if args.burst:
        with tempfile.TemporaryDirectory(prefix="iw-burst-") as tmp:
            print("throughput, 2-Mpx JPEG burst:", throughput(Path(tmp), args.burst))


if __name__ == "__main__":
    main()
