#!/usr/bin/env python3
"""Peak resident memory of the real daemon and its two decoding workers, fed decompression bombs.

Bombs at the pixel limit (13,000 x 13,000 = 169 Mpx, under the default ``max_pixels``): PNG
RGB, RGBA, grey+alpha, 16-bit grey and 16-bit RGB, GIF, TIFF (deflate), WebP (16,383 is its
limit: 13,000 fits), baseline and progressive JPEG, and HEIC where the encoder manages one. Each
is a few hundred KB to a few MB. They are dropped into an incoming watch two at a time (as many
as there are workers), after the largest real pictures the default budget admits. A last phase
turns on the test hooks and sends two files whose "decoder" allocates without bound: what a
decoder bug that the header estimate misses would do, stopped only by the workers' ceiling.

Memory is sampled every 10 ms: the sum of VmRSS over the daemon and all its children, and, at
the end of each phase, the sum of their VmHWM (each process's own peak; an upper bound, as the
peaks need not coincide). Workers that were replaced are counted while they lived.

    OPENBLAS_NUM_THREADS=1 python bench/decoding_memory.py [--keep]
"""

from __future__ import annotations

import argparse
import os
import re
import struct
import subprocess
import sys
import tempfile
import threading
import time
import zlib
from collections.abc import Callable
from pathlib import Path

import numpy as np
import yaml
from PIL import Image

import imagewatchd.fingerprint  # noqa: F401 (registers the HEIF encoder with Pillow)

ENV = {**os.environ, "OPENBLAS_NUM_THREADS": "1"}
DATA = Path(__file__).resolve().parent / "data" / "bombs"
SIDE = 13_000
HOOK = b"IMAGEWATCHD-TEST-alloc"


def png(path: Path, color_type: int, depth: int) -> None:
    channels = {0: 1, 2: 3, 4: 2, 6: 4}[color_type]
    row = b"\0" * (1 + SIDE * channels * depth // 8)
    packer = zlib.compressobj(9)
    data = b"".join(packer.compress(row) for _ in range(SIDE)) + packer.flush()
    header = struct.pack(">IIBBBBB", SIDE, SIDE, depth, color_type, 0, 0, 0)
    with path.open("wb") as out:
        out.write(b"\x89PNG\r\n\x1a\n")
        for kind, body in ((b"IHDR", header), (b"IDAT", data), (b"IEND", b"")):
            out.write(struct.pack(">I", len(body)) + kind + body)
            out.write(struct.pack(">I", zlib.crc32(kind + body)))


def pillow(mode: str, fmt: str, **save: object) -> Callable[[Path], None]:
    def make(path: Path) -> None:
        Image.new(mode, (SIDE, SIDE)).save(path, fmt, **save)

    return make


def heic(path: Path) -> None:
    """x265 encodes at most 142,606,336 luma samples (HEVC level 7.2): 11,900 x 11,900."""
    Image.new("RGB", (11_900, 11_900)).save(path, "HEIF", quality=10)


BOMBS: dict[str, Callable[[Path], None]] = {
    "png-rgb.png": lambda p: png(p, 2, 8),
    "png-rgba.png": lambda p: png(p, 6, 8),
    "png-la.png": lambda p: png(p, 4, 8),
    "png-grey16.png": lambda p: png(p, 0, 16),
    "png-rgb16.png": lambda p: png(p, 2, 16),
    "gif.gif": pillow("P", "GIF"),
    "tiff-deflate.tif": pillow("RGB", "TIFF", compression="tiff_adobe_deflate"),
    "webp.webp": pillow("RGB", "WEBP", quality=1, method=0),
    "jpeg-baseline.jpg": pillow("RGB", "JPEG", quality=50),
    "jpeg-progressive.jpg": pillow("RGB", "JPEG", quality=50, progressive=True),
    "heic.heic": heic,
}


def make_bombs() -> list[Path]:
    DATA.mkdir(parents=True, exist_ok=True)
    made = []
    for name, make in BOMBS.items():
        path = DATA / name
        if not path.exists():
            started = time.monotonic()
            try:
                make(path.with_suffix(".part" + path.suffix))
            except Exception as exc:  # e.g. an encoder that refuses the size
                print(f"  {name}: not made: {exc!r}", file=sys.stderr)
                continue
            path.with_suffix(".part" + path.suffix).rename(path)
            print(f"  made {name} in {time.monotonic() - started:.0f} s", file=sys.stderr)
        made.append(path)
    return made


def admitted(directory: Path) -> list[Path]:
    """Real pictures just under the default 128 MiB budget (at the peak RGB takes 4 bytes a
    pixel, RGBA 13, plus 8 MiB): smooth gradients, so that the files stay small."""
    out = []
    for mode, side in (("RGB", 5400), ("RGBA", 2950)):
        ramp = np.linspace(0, 255, side, dtype=np.float32)
        grey = np.add.outer(ramp, ramp[::-1] / 3) / 1.4
        pixels = np.stack([grey, grey.T, 255 - grey, grey.T][: len(mode)], axis=-1)
        path = directory / f"admitted-{mode.lower()}-{side}.png"
        Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8), mode).save(path)
        out.append(path)
    return out


class Sampler:
    """Peak of the summed VmRSS of a process tree, sampled on a thread."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.peak = 0
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def tree(self) -> list[int]:
        pids = [self.pid]
        for task in Path(f"/proc/{self.pid}/task").glob("*"):
            try:
                pids += [int(p) for p in (task / "children").read_text().split()]
            except OSError:
                continue
        return pids

    def total(self, field: str) -> int:
        return sum(status(pid, field) for pid in self.tree())

    def _run(self) -> None:
        while not self.stop.wait(0.01):
            self.peak = max(self.peak, self.total("VmRSS"))

    def close(self) -> None:
        self.stop.set()
        self.thread.join()


def status(pid: int, field: str) -> int:
    try:
        text = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return 0
    found = re.search(rf"^{field}:\s+(\d+) kB", text, re.M)
    return int(found.group(1)) * 1024 if found else 0


def run_phase(
    name: str, files: list[Path], uploads: Path, log: Path, proc: subprocess.Popen[bytes]
) -> tuple[int, int]:
    sampler = Sampler(proc.pid)
    for index in range(0, len(files), 2):
        pair = files[index : index + 2]
        for path in pair:
            (uploads / path.name).write_bytes(path.read_bytes())
        for path in pair:
            wait_for(log, re.escape(str(uploads / path.name)) + r": ")
    hwm = sampler.total("VmHWM")
    sampler.close()
    print(f"{name}: peak RSS (sum, sampled) {sampler.peak >> 20} MiB, "
          f"sum of VmHWM {hwm >> 20} MiB", file=sys.stderr)  # fmt: skip
    return sampler.peak, hwm


def wait_for(log: Path, pattern: str, timeout: float = 300.0) -> None:
    deadline = time.monotonic() + timeout
    while not re.search(pattern, log.read_text(errors="replace")):
        if time.monotonic() > deadline:
            raise SystemExit(f"timed out waiting for {pattern!r}:\n{log.read_text()}")
        time.sleep(0.05)


def start(base: Path, uploads: Path, hooks: bool) -> tuple[subprocess.Popen[bytes], Path]:
    config = base / "config.yaml"
    config.write_text(yaml.safe_dump({
        "rescan_interval": 0, "workers": 2, "quarantine_dir": str(base / "quarantine"),
        "watches": [{"path": str(uploads), "role": "incoming", "include": ["*"],
                     "settle_seconds": 0.2}],
    }))  # fmt: skip
    log = base / f"daemon-{int(hooks)}.log"
    env = {**ENV, "IMAGEWATCHD_TEST_DECODER_HOOKS": "1"} if hooks else ENV
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "imagewatchd", "--config", str(config), "--db",
             str(base / "db" / "imagewatchd.db"), "run"],
            stdout=out, stderr=subprocess.STDOUT, env=env,
        )  # fmt: skip
    wait_for(log, r"reconcile: \d+ file")
    return proc, log


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory")
    args = parser.parse_args()
    bombs = make_bombs()
    base = Path(tempfile.mkdtemp(prefix="iw-memory-"))
    uploads = base / "uploads"
    uploads.mkdir()
    proc, log = start(base, uploads, hooks=False)
    try:
        idle = Sampler(proc.pid)
        time.sleep(0.5)
        idle.close()
        print(f"idle: {idle.peak >> 20} MiB", file=sys.stderr)
        results = {"idle (daemon + 2 workers)": (idle.peak, idle.total("VmHWM"))}
        results["largest admitted pictures"] = run_phase(
            "admitted", admitted(base), uploads, log, proc
        )
        results["bombs at the pixel limit"] = run_phase("bombs", bombs, uploads, log, proc)
        proc.terminate()
        proc.wait(30)
        hooked = base / "hooked"
        hooked.mkdir()
        greedy = [hooked / f"greedy{n}.png" for n in range(2)]
        for path in greedy:
            path.write_bytes(HOOK)
        proc, log = start(base, uploads, hooks=True)
        results["unbounded allocation (test hook)"] = run_phase("hook", greedy, uploads, log, proc)
    finally:
        proc.terminate()
        proc.wait(30)
    print("| phase | peak RSS, daemon + workers (sampled) | sum of VmHWM |")
    print("|---|---|---|")
    for name, (peak, hwm) in results.items():
        print(f"| {name} | {peak / 2**20:.0f} MiB | {hwm / 2**20:.0f} MiB |")
    print()
    for line in log.read_text().splitlines() + (base / "daemon-0.log").read_text().splitlines():
        if ": error: " in line:
            print(f"    {line.split(str(uploads) + '/')[-1]}")
    if not args.keep:
        subprocess.run(["rm", "-rf", str(base)], check=False)


if __name__ == "__main__":
    main()
