#!/usr/bin/env python3
"""Fingerprinting speed on 12-megapixel JPEGs: ``fingerprint_file`` vs the tutorial.

The tutorial computes ``imagehash.dhash(Image.open(path))`` (full decode, dHash only);
``fingerprint_file`` reads the file, hashes it with sha256, decodes the JPEG at reduced scale
and computes dHash and pHash. Both run interleaved (their order alternating per image),
single-threaded, in one process, on the same files; then ``fingerprint_file`` also runs on a
thread pool.

The 12-MP test images are made from the largest real photos of bench/dataset.py, resized
(LANCZOS) to cover 4000x3000 and centre-cropped, saved as JPEG quality 90 (4:2:0). Upscaled
photos are smoother than camera output and compress unusually well, so further sets add
sensor-like Gaussian noise (luminance sigma S plus chroma sigma S/2, on 0..255) before encoding.
"""

from __future__ import annotations

import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")  # before numpy/scipy are imported

import argparse
import atexit
import hashlib
import importlib
import io
import json
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from unittest import mock

import imagehash
import numpy as np
import PIL
from PIL import Image, ImageOps

from imagewatchd import dihedral, pdq
from imagewatchd.fingerprint import WORKING_SIZE, fingerprint_fd, fingerprint_file, open_path

DATA = Path(__file__).resolve().parent / "data"
SIZE = (4000, 3000)


def tutorial(path: Path) -> object:
    return imagehash.dhash(Image.open(path))


def ours(path: Path) -> object:
    return fingerprint_file(path)


def ours_without_colours(path: Path) -> object:
    """The fingerprint without the colour signature (imagewatchd/colours.py): a JPEG drafted
    as grey, its chroma not decoded (what every file's stored colours cost)."""
    fd = open_path(path)
    try:
        return fingerprint_fd(fd, colours=False)
    finally:
        os.close(fd)


def make_images(
    count: int,
    noises: Sequence[float],
    force: bool,
    where: Path = DATA / "speed",
    size: tuple[int, int] = SIZE,
) -> dict[str, list[Path]]:
    """Write ``count`` JPEGs of ``size`` (12 MP) per noise level (0 = plain) under ``where``;
    returns set name → paths."""
    manifest = json.loads((DATA / "originals" / "manifest.json").read_text())
    big = sorted(manifest, key=lambda m: -int(m["width"]) * int(m["height"]))[:count]
    names = {sigma: "plain" if sigma == 0 else f"noise{sigma:g}" for sigma in noises}
    out: dict[str, list[Path]] = {name: [] for name in names.values()}
    for n, m in enumerate(big):
        paths = {s: where / names[s] / f"{n:02d}-{m['photo_id']}.jpg" for s in noises}
        for sigma, path in paths.items():
            out[names[sigma]].append(path)
        todo = [s for s, p in paths.items() if force or not p.exists()]
        if not todo:
            continue
        with Image.open(DATA / "originals" / str(m["file"])) as src:
            shown = ImageOps.exif_transpose(src).convert("RGB")
        img = ImageOps.fit(shown, size, Image.Resampling.LANCZOS)
        pixels = np.asarray(img, dtype=np.float32)
        for sigma in todo:
            rng = np.random.default_rng(n)
            luma = rng.normal(0, sigma, pixels.shape[:2])[..., None]
            noisy = pixels + luma + rng.normal(0, sigma / 2, pixels.shape) if sigma else pixels
            paths[sigma].parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(np.clip(noisy, 0, 255).round().astype(np.uint8)).save(
                paths[sigma], quality=90
            )
    return out


def busy_jiffies() -> int:
    """CPU time used by the whole machine so far (all processes), in clock ticks."""
    fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    return sum(fields) - fields[3] - fields[4]  # minus idle and iowait


def wait_quiet(limit: float, max_wait: float) -> float:
    """Wait (up to ``max_wait`` s) until other processes use < ``limit`` cores over 2 s."""
    deadline, tick = time.monotonic() + max_wait, os.sysconf("SC_CLK_TCK")
    while True:
        before = busy_jiffies()
        time.sleep(2.0)
        load = (busy_jiffies() - before) / tick / 2.0
        if load < limit or time.monotonic() > deadline:
            return load
        print(f"(waiting: other processes use {load:.2f} cores)", file=sys.stderr)


def interleaved(
    paths: Sequence[Path],
    rounds: int,
    funcs: dict[str, Callable[[Path], object]],
    clock: Callable[[], float] = time.perf_counter,
) -> dict[str, list[list[float]]]:
    """Seconds per function, round and image; per image the functions' order alternates."""
    names = list(funcs)
    times: dict[str, list[list[float]]] = {name: [] for name in names}
    for r in range(rounds):
        for name in names:
            times[name].append([])
        for i, path in enumerate(paths):
            for name in names if (i + r) % 2 == 0 else names[::-1]:
                start = clock()
                funcs[name](path)
                times[name][r].append(clock() - start)
    return times


def threaded(paths: Sequence[Path], rounds: int, workers: int) -> list[float]:
    """Seconds per round for the whole set on a pool of ``workers`` threads."""
    with ThreadPoolExecutor(max_workers=workers) as pool:
        list(pool.map(ours, paths[:workers]))  # start and warm the threads
        out = []
        for _ in range(rounds):
            start = time.perf_counter()
            list(pool.map(ours, paths))
            out.append(time.perf_counter() - start)
        return out


def unturned(path: Path) -> object:
    """``fingerprint_file`` without the other orientations' hashes (as before issue 8)."""
    with mock.patch.object(dihedral, "turned", return_value=()):
        return ours(path)


def orientation_cost(sets: dict[str, list[Path]], rounds: int) -> None:
    """The fingerprint with and without the 8 orientations' hashes, interleaved."""
    print("| set | without orientations ms | with ms | ratio |\n|---|---|---|---|")
    for name, paths in sets.items():
        funcs: dict[str, Callable[[Path], object]] = {"without": unturned, "with": ours}
        interleaved(paths[:2], 1, funcs)
        times = interleaved(paths, rounds, funcs)
        best = {f: statistics.mean(map(min, zip(*times[f], strict=True))) for f in funcs}
        print(
            f"| {name} ({len(paths)}) | {best['without'] * 1000:.1f} | "
            f"{best['with'] * 1000:.1f} | {best['with'] / best['without']:.2f}x |",
            flush=True,
        )


def reduced_decode(path: Path) -> object:
    """The floor: the JPEG decoded at the scale the fingerprint decodes it, and nothing else."""
    with Image.open(path) as img:
        img.draft("L", (WORKING_SIZE, WORKING_SIZE))
        img.load()
        return img.size


def pdq_floor(path: Path) -> object:
    """What any fingerprint with the 8 orientations' PDQs costs at least: the file read, its
    sha256, the reduced-scale decode, PDQ's filter (shared by the 8 turns) and the 8 hashes."""
    data = path.read_bytes()
    hashlib.sha256(data).digest()
    with Image.open(io.BytesIO(data)) as img:
        img.draft("L", (WORKING_SIZE, WORKING_SIZE))
        pixels = np.asarray(img if img.mode == "L" else img.convert("L"))
    smalls = pdq.flipped(pixels)  # as the fingerprint does: one PDQ with its quality, 7 more
    turned = [*list(smalls.values())[1:], *(small.T for small in smalls.values())]
    return pdq.from_small(smalls[False, False]), pdq.hashes(np.stack(turned))


def before(rev: str) -> Callable[[Path], object]:
    """``fingerprint_file`` of the git revision ``rev``: its ``imagewatchd`` package, copied to
    a temporary directory as ``imagewatchd_before``, so both run in this process."""
    where = Path(tempfile.mkdtemp(prefix="fingerprint-before-"))
    atexit.register(shutil.rmtree, where, ignore_errors=True)
    root = Path(__file__).resolve().parent.parent
    tar = subprocess.run(
        ["git", "-C", str(root), "archive", rev, "imagewatchd"], check=True, capture_output=True
    ).stdout
    subprocess.run(["tar", "-x", "-C", str(where)], input=tar, check=True)
    package = where / "imagewatchd_before"
    (where / "imagewatchd").rename(package)
    for source in package.rglob("*.py"):
        text = re.sub(r"\bimagewatchd\b(?=[. ])", "imagewatchd_before", source.read_text())
        source.write_text(text)
    sys.path.insert(0, str(where))
    module = importlib.import_module("imagewatchd_before.fingerprint")
    func: Callable[[Path], object] = module.fingerprint_file
    return func


def floor(args: argparse.Namespace) -> None:
    """The fingerprint (before ``args.before`` and now) against the reduced-scale decode, in
    CPU time per image (this process is single-threaded; the machine may be loaded)."""
    funcs: dict[str, Callable[[Path], object]] = {"decode": reduced_decode}
    funcs |= {"decode + sha256 + 8 PDQs": pdq_floor, "now": ours}
    if args.colour_cost:
        funcs["now without colours"] = ours_without_colours
    if args.before:
        funcs["before"] = before(args.before)
    print(
        "| set | decode ms | "
        + " | ".join(f"{f} ms | {f} / decode" for f in funcs if f != "decode")
        + " |"
    )
    print("|---|---|" + "---|---|" * (len(funcs) - 1))
    sets: dict[str, list[Path]] = {}
    if args.originals:  # the evaluation set's JPEG originals, as they are (various sizes)
        jpegs = sorted((DATA / "originals").glob("*.jpg"))[: args.originals]
        sets[f"evaluation set's JPEG originals ({len(jpegs)})"] = jpegs
    for megapixels in args.floor:
        width = round((megapixels * 1e6 * 4 / 3) ** 0.5)
        size = (width, width * 3 // 4)
        made = make_images(
            args.count, args.noise, args.remake, args.images / f"{megapixels:g}mp", size
        )
        sets |= {
            f"{size[0]}x{size[1]} {name} ({len(paths)})": paths for name, paths in made.items()
        }
    for name, paths in sets.items():
        interleaved(paths[:2], 1, funcs)
        times = interleaved(paths, args.rounds, funcs, time.process_time)  # CPU: loaded
        best = {f: statistics.mean(map(min, zip(*times[f], strict=True))) for f in funcs}
        cells = [f"{best['decode'] * 1000:.2f}"]
        cells += [f"{best[f] * 1000:.2f} | {best['decode'] / best[f]:.0%}" for f in funcs][1:]
        print(f"| {name} | " + " | ".join(cells) + " |", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=30, help="12-MP images per set")
    parser.add_argument("--rounds", type=int, default=3, help="passes over each set")
    parser.add_argument("--threads", type=int, default=2, help="pool size for the threaded run")
    parser.add_argument("--noise", type=float, nargs="+", default=[0, 3, 6], help="sigmas")
    parser.add_argument("--remake", action="store_true", help="re-create the test images")
    parser.add_argument(
        "--wait-quiet", type=float, default=0, metavar="S",
        help="before each set, wait up to S seconds for other processes to use < 0.2 cores",
    )  # fmt: skip
    parser.add_argument(
        "--images", type=Path, default=DATA / "speed",
        help="where the 12-MP test images are made (default bench/data/speed)",
    )  # fmt: skip
    parser.add_argument(
        "--orientations",
        action="store_true",
        help="only time the fingerprint with and without the 8 orientations",
    )
    parser.add_argument(
        "--floor", type=float, nargs="+", metavar="MP",
        help="only time the fingerprint against the reduced-scale decode alone, on JPEGs of "
        "these megapixels (4:3)",
    )  # fmt: skip
    parser.add_argument(
        "--originals", type=int, default=0, metavar="N",
        help="with --floor: also time the first N JPEG originals of the evaluation set",
    )  # fmt: skip
    parser.add_argument(
        "--colour-cost", action="store_true",
        help="with --floor: also time the fingerprint without its colour signature",
    )  # fmt: skip
    parser.add_argument(
        "--before",
        metavar="REV",
        help="with --floor: also time the fingerprint of this git revision",
    )
    args = parser.parse_args()
    if args.floor:
        floor(args)
        return
    sets = make_images(args.count, args.noise, args.remake, args.images)
    if args.orientations:
        orientation_cost(sets, args.rounds)
        return
    funcs: dict[str, Callable[[Path], object]] = {"tutorial": tutorial, "ours": ours}
    print(f"# Fingerprint speed, {SIZE[0]}x{SIZE[1]} JPEG q90, {args.rounds} rounds\n")
    print(f"OPENBLAS_NUM_THREADS={os.environ.get('OPENBLAS_NUM_THREADS')}, cpus={os.cpu_count()},")
    print(f"Pillow {PIL.__version__}, ImageHash {imagehash.__version__}. Images/s from the best")
    print("round per image (mean over rounds in brackets); 'other load' = CPU used by other")
    print("processes during the set, in cores (0 = quiet machine).\n")
    head = ["set", "mean MB", "tutorial img/s", "ours 1 thread img/s", "ours / tutorial",
            f"ours {args.threads} threads img/s", "vs tutorial", "vs 1 thread",
            "other load"]  # fmt: skip
    print("| " + " | ".join(head) + " |\n|" + "---|" * len(head))
    tick = os.sysconf("SC_CLK_TCK")
    for name, paths in sets.items():
        for p in paths:  # into the page cache, and a warm-up call each
            p.read_bytes()
        interleaved(paths[:2], 1, funcs)
        if args.wait_quiet:
            wait_quiet(0.2, args.wait_quiet)
        cpu0, busy0, wall0 = sum(os.times()[:2]), busy_jiffies(), time.perf_counter()
        times = interleaved(paths, args.rounds, funcs)
        pool = threaded(paths, args.rounds, args.threads)
        wall = time.perf_counter() - wall0
        other = ((busy_jiffies() - busy0) / tick - (sum(os.times()[:2]) - cpu0)) / wall
        n = len(paths)
        best = {f: n / sum(map(min, zip(*times[f], strict=True))) for f in funcs}
        mean = {f: n * args.rounds / sum(map(sum, times[f])) for f in funcs}
        tut, our, par = best["tutorial"], best["ours"], n / min(pool)
        size = statistics.mean(p.stat().st_size for p in paths) / 1e6
        ratio = mean["ours"] / mean["tutorial"]
        row = [f"{name} ({n})", f"{size:.2f}", f"{tut:.2f} ({mean['tutorial']:.2f})",
               f"{our:.1f} ({mean['ours']:.1f})", f"{our / tut:.1f}x ({ratio:.1f}x)",
               f"{par:.1f} ({n * args.rounds / sum(pool):.1f})", f"{par / tut:.1f}x",
               f"{par / our:.2f}x", f"{max(other, 0.0):.2f}"]  # fmt: skip
        print("| " + " | ".join(row) + " |", flush=True)


if __name__ == "__main__":
    main()
