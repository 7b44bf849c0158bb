#!/usr/bin/env python3
"""The API's ``POST /check``: its overhead beyond the fingerprint itself, with many listed pictures.

A store with ``--entries`` block-list entries (uniform random dHash, pHash and PDQ of quality
100, random sha256; ten of them are the exact sha256 of query images, so some checks are
``known``) and optionally ``--library`` synthetic library files (``bench/synth_store.py``) is
built once at ``--store``; the real daemon is started on it, and ``--queries`` 640x480 photo
JPEGs are sent as bytes, one at a time, over one keep-alive connection (what ``imagewatchd
check`` does). For each, the client's wall time from sending to the parsed answer, and the
daemon's own time for the fingerprint (decoding in the worker pool, the ``Server-Timing``
header); the overhead is the difference, split by the daemon's ``check`` time into matching
against the loaded indexes plus the answer's JSON (``match_and_json``) and the rest: HTTP, the
copy into a memory file, the hop to the check thread (``transport``). Then ``imagewatchd
check`` as a command, through the daemon and (daemon stopped) in-process.

    .venv/bin/python bench/api_check.py --store /tmp/api-1m.db --entries 1000000
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import os
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import yaml
from PIL import Image

from imagewatchd.api.client import Client
from imagewatchd.rows import to_signed
from imagewatchd.store import Store

sys.path.insert(0, str(Path(__file__).resolve().parent))
import synth_store

CHUNK = 100_000
KNOWN = 10  # queries whose sha256 is listed


def photo_jpeg(seed: int) -> bytes:
    rng = np.random.default_rng(seed)
    coarse = (rng.random((12, 16, 3)) * 255).astype(np.uint8)
    img = Image.fromarray(coarse).resize((640, 480), Image.Resampling.BICUBIC)
    noise = rng.normal(0, 4, (480, 640, 3))
    pixels = np.clip(np.asarray(img, dtype=np.float64) + noise, 0, 255).astype(np.uint8)
    out = io.BytesIO()
    Image.fromarray(pixels).save(out, "JPEG", quality=90)
    return out.getvalue()


def build(path: Path, entries: int, library: int, known: list[bytes]) -> None:
    """The store: ``library`` synthetic files, then one block list of ``entries`` entries."""
    if library:
        synth_store.generate(path, library, seed=1)
    Store(path).close()  # every migration
    rng = np.random.default_rng(2)
    shas = [hashlib.sha256(data).hexdigest() for data in known]
    with sqlite3.connect(path) as db:
        db.execute("INSERT INTO lists (name, kind, description, created) VALUES "
                   "('bench', 'block', '', 0)")  # fmt: skip
        for start in range(0, entries, CHUNK):
            count = min(CHUNK, entries - start)
            dhash = rng.integers(0, 2**64, count, dtype=np.uint64)
            phash = rng.integers(0, 2**64, count, dtype=np.uint64)
            rows = [
                (shas.pop() if shas else os.urandom(32).hex(), to_signed(int(d)),
                 to_signed(int(p)), os.urandom(32))
                for d, p in zip(dhash, phash, strict=True)
            ]  # fmt: skip
            db.executemany(
                "INSERT INTO entries (list_id, sha256, dhash, phash, canon_version, added,"
                " pdq, pdq_quality) VALUES (1, ?, ?, ?, 2, 0, ?, 100)", rows,
            )  # fmt: skip
            db.commit()
            print(f"entries: {start + count}", file=sys.stderr)


def start_daemon(base: Path, store: Path) -> tuple[subprocess.Popen[bytes], dict[str, str]]:
    watched = base / "uploads"
    watched.mkdir(exist_ok=True)
    config = base / "config.yaml"
    config.write_text(yaml.safe_dump({"watches": [{"path": str(watched), "role": "incoming"}]}))
    env = {**os.environ, "OPENBLAS_NUM_THREADS": "1", "IMAGEWATCHD_SOCKET": str(base / "s"),
           "IMAGEWATCHD_CONFIG": str(config), "IMAGEWATCHD_DB": str(store)}  # fmt: skip
    log = (base / "daemon.log").open("wb")
    proc = subprocess.Popen([sys.executable, "-m", "imagewatchd", "run"], stdout=log,
                            stderr=subprocess.STDOUT, env=env)  # fmt: skip
    began = time.monotonic()
    while True:
        if proc.poll() is not None:
            raise SystemExit((base / "daemon.log").read_text())
        try:
            client = Client(base / "s", 5.0)
            if client.get("/")["state"] == "running":
                client.close()
                break
            client.close()
        except Exception:  # not listening yet
            pass
        time.sleep(0.2)
    print(f"daemon ready in {time.monotonic() - began:.1f} s", file=sys.stderr)
    return proc, env


def measure(client: Client, queries: list[bytes]) -> dict[str, list[float]]:
    found: dict[str, list[float]] = {
        "total": [], "fingerprint": [], "overhead": [], "match_and_json": [], "transport": [],
    }  # fmt: skip
    verdicts: dict[str, int] = {}
    conn = client.connection
    for number, data in enumerate(queries):
        start = time.perf_counter()
        conn.request("POST", f"/check?name=q{number}.jpg", data,
                     {"Content-Type": "image/jpeg"})  # fmt: skip
        response = conn.getresponse()
        answer = json.loads(response.read())
        total = time.perf_counter() - start
        timing = dict(
            (part.split(";dur=")[0].strip(), float(part.split(";dur=")[1]) / 1000)
            for part in response.getheader("Server-Timing", "").split(",")
        )
        decoding, whole = timing["fingerprint"], timing["check"]
        verdicts[answer["verdict"]] = verdicts.get(answer["verdict"], 0) + 1
        found["total"].append(total)
        found["fingerprint"].append(decoding)
        found["overhead"].append(total - decoding)
        found["match_and_json"].append(whole - decoding)
        found["transport"].append(total - whole)
    print(f"verdicts: {verdicts}", file=sys.stderr)
    return found


def summary_ms(values: list[float]) -> dict[str, float]:
    ordered = sorted(values)
    return {
        "median": round(statistics.median(ordered) * 1000, 3),
        "p95": round(ordered[int(len(ordered) * 0.95)] * 1000, 3),
        "max": round(ordered[-1] * 1000, 3),
    }


def command_seconds(env: dict[str, str], path: Path, runs: int) -> float:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        subprocess.run([sys.executable, "-m", "imagewatchd", "check", str(path)], env=env,
                       capture_output=True, check=False)  # fmt: skip
        times.append(time.perf_counter() - start)
    return round(statistics.median(times), 3)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--store", type=Path, required=True, help="built here if missing")
    parser.add_argument("--entries", type=int, default=1_000_000)
    parser.add_argument("--library", type=int, default=0, help="synthetic library files")
    parser.add_argument("--queries", type=int, default=300)
    args = parser.parse_args()
    queries = [photo_jpeg(1000 + i) for i in range(args.queries)]
    if not args.store.exists():
        build(args.store, args.entries, args.library, queries[:KNOWN])
    with tempfile.TemporaryDirectory(prefix="api-check-") as tmp:
        base = Path(tmp)
        proc, env = start_daemon(base, args.store)
        try:
            client = Client(base / "s", 60.0)
            status = client.get("/status")
            measure(client, queries[:20])  # warm the workers and the store's pages
            found = measure(client, queries)
            client.close()
            sample = base / "sample.jpg"
            sample.write_bytes(queries[-1])
            by_daemon = command_seconds(env, sample, 5)
        finally:
            proc.terminate()
            proc.wait(60)
        in_process = command_seconds(env, sample, 1)
    result = {
        "entries": args.entries, "library": args.library, "queries": args.queries,
        "index": status["index"],
        **{f"{key}_ms": summary_ms(values) for key, values in found.items()},
        "check_command_s": {"through_daemon": by_daemon, "in_process": in_process},
    }  # fmt: skip
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
