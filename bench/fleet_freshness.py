#!/usr/bin/env python3
"""Fleet freshness: how long a ban added through one host takes to reach another's index.

A throwaway PostgreSQL cluster (``tests/pgcluster.py``), a daemon running as host ``b``; host
``a`` adds one entry at a time to a shared block list, and the time is taken from its commit to
the daemon's "lists changed" log line (the log file read every millisecond).

    OPENBLAS_NUM_THREADS=1 python bench/fleet_freshness.py [--bans 100]
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

from imagewatchd.models import ListKind
from imagewatchd.rows import NewEntry
from imagewatchd.store import Location, Store
from tests.pgcluster import Cluster

ENV = {**os.environ, "OPENBLAS_NUM_THREADS": "1"}
CHANGED = "lists changed"


def start_daemon(base: Path, url: str) -> tuple[subprocess.Popen[bytes], Path]:
    (base / "uploads").mkdir()
    config = {"host": "b", "rescan_interval": 0,
              "watches": [{"path": str(base / "uploads"), "role": "incoming"}]}  # fmt: skip
    (base / "config.yaml").write_text(yaml.safe_dump(config))
    log = base / "daemon.log"
    env = {**ENV, "XDG_STATE_HOME": str(base / "state"), "IMAGEWATCHD_SOCKET": str(base / "s")}
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "imagewatchd", "--config", str(base / "config.yaml"),
             "--db", url, "run"], stdout=out, stderr=subprocess.STDOUT, env=env,
        )  # fmt: skip
    while "reconcile:" not in log.read_text():
        time.sleep(0.05)
    return proc, log


def measure(url: str, base: Path, bans: int) -> list[float]:
    proc, log = start_daemon(base, url)
    rng = random.Random(1)
    took = []
    try:
        with Store(Location(base / "a" / "postgresql", url, "a")) as store:
            list_id = store.create_list("banned", ListKind.BLOCK, "", now=time.time())
            for n in range(bans):
                entry = NewEntry(None, rng.getrandbits(64), rng.getrandbits(64))
                started = time.monotonic()
                store.add_entries(list_id, [entry], now=time.time())
                while log.read_text().count(CHANGED) < n + 1:
                    time.sleep(0.001)
                took.append(time.monotonic() - started)
                time.sleep(rng.uniform(0.0, 0.3))  # out of step with the daemon's tick
    finally:
        proc.terminate()
        proc.wait()
    return took


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--bans", type=int, default=100)
    args = parser.parse_args()
    cluster = Cluster()
    try:
        with tempfile.TemporaryDirectory() as base:
            took = sorted(measure(cluster.database(), Path(base), args.bans))
    finally:
        cluster.stop()
    p99 = took[min(len(took) - 1, int(len(took) * 0.99))]
    print(f"bans: {len(took)}; from commit to the other host's index: median "
          f"{statistics.median(took) * 1000:.0f} ms, p99 {p99 * 1000:.0f} ms, "
          f"max {took[-1] * 1000:.0f} ms")  # fmt: skip


if __name__ == "__main__":
    main()
