#!/usr/bin/env python3
"""PDQ figures: agreement with the reference, cost, threshold calibration, rules with PDQ.

Run after ``bench/dataset.py`` (and ``bench/fingerprint_speed.py`` once, for its 12-MP JPEGs):

    .venv/bin/python bench/pdq.py [--reference DIR] > bench/results/pdq.md

- **reference**: with ``--reference`` (a ThreatExchange checkout's pdq/data/reg-test-input/dih),
  the distance of our PDQ to Meta's expected hashes of its 8 bridge photos.
- **scale**: PDQ as the specification has it (full-resolution RGB, float luminance) vs the PDQ
  of the fingerprint stage (decoded at the reduced scale the other hashes use), per photo.
- **speed**: ``fingerprint_bytes`` per 12-MP and 2-MP JPEG with PDQ and without it (the PDQ
  step replaced by a no-op: today's cost), interleaved, single-threaded.
- **calibration**: PDQ distances of every original to its variants (positives) and to the other
  originals and their variants (negatives, consecutive video frames left out), the quality
  gate, recall and false matches per threshold, and the rules with PDQ as evidence.
"""

from __future__ import annotations

import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")  # before numpy is imported

import argparse
import io
import json
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from numpy.typing import NDArray
from PIL import Image, ImageOps

from imagewatchd import pdq
from imagewatchd.errors import FingerprintError
from imagewatchd.fingerprint import fingerprint_bytes, fingerprint_file

sys.path.insert(0, str(Path(__file__).resolve().parent))
from fingerprint_speed import make_images

DATA = Path(__file__).resolve().parent / "data"
FRAMES = "video frames"
FLOOR = 50
BRIDGES = {  # Meta's pdq/cpp/reg_test/expected/out
    "bridge-1-original": "d8f8f0cee0f4a84f0637022a078f67f0b36e2ed596621e1d33e6339c4e9c9b22",
    "bridge-2-rotate-90": "30a10efdf1c83f429013d48d0ffffc52e34e0e35ada952a9d29605215aa9e5af",
    "bridge-3-rotate-180": "2dad5a64b1a142e7d362a09857da895ae63b8c7fc23794b766b319361fc93188",
    "bridge-4-rotate-270": "a5f0a457248995e8c9065c275aaa5498b61ba4bdf8fcf80387c32f8b5bfc4f05",
    "bridge-5-flipx": "d8f80f33e0f417b20e37f5cd028f980fb36ed02a9662c1e233e64c634e9c64dd",
    "bridge-6-flipy": "2da9259bb1a1bd1a5362576552da32a5e63b7380c2774b4866b346c91b89ce77",
    "bridge-7-flip-plus-1": "f0a1e10271ccc0bd90530b720fff038de34ef1e8ada9a956d6967ade5ea91a50",
    "bridge-8-flip-minus-1": "2df05aa8a4896a17c14682da5aaaab07b61b5b42f8fc07fc87c3d0741bfcb0fa",
}
I64 = NDArray[np.int64]
FP = tuple[int, int, int, int, bool]  # dhash, phash, pdq, quality, flat


def table(header: Sequence[str], rows: Sequence[Sequence[object]]) -> None:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    print("\n".join(lines) + "\n")


def spec_pdq(data: bytes) -> tuple[int, int]:
    """PDQ as specified: full-resolution RGB, EXIF-oriented, float luminance."""
    with Image.open(io.BytesIO(data)) as img:
        rgb = np.asarray(ImageOps.exif_transpose(img).convert("RGB"))
    return pdq.pdq(pdq.luma_of(rgb))


def reference(where: Path) -> None:
    print("## Agreement with Meta's expected output (8 bridge photos)\n")
    rows = []
    for name, expected in BRIDGES.items():
        data = (where / f"{name}.jpg").read_bytes()
        spec, spec_q = spec_pdq(data)
        fp = fingerprint_bytes(data)
        assert fp.pdq is not None
        want = int(expected, 16)
        rows.append([name, pdq.distance(spec, want), spec_q,
                     pdq.distance(fp.pdq, want), fp.pdq_quality])  # fmt: skip
    table(["photo", "full decode: bits off", "quality", "fingerprint: bits off", "quality"], rows)


def _pair(path: Path) -> tuple[int, int] | str:
    try:
        data = path.read_bytes()
        fp = fingerprint_bytes(data)
        spec, _ = spec_pdq(data)
    except (FingerprintError, OSError) as exc:
        return str(exc)
    assert fp.pdq is not None
    return pdq.distance(fp.pdq, spec), min(fp.width, fp.height)


def scale(paths: Sequence[Path], jobs: int) -> None:
    print("## Reduced-scale decode vs the specification's full-resolution PDQ\n")
    with ProcessPoolExecutor(jobs) as pool:
        results = list(pool.map(_pair, paths, chunksize=4))
    rows = []
    kinds: tuple[tuple[str, Callable[[Path], bool]], ...] = (
        ("JPEG", lambda p: p.suffix.lower() in (".jpg", ".jpeg")),
        ("other formats (full decode)", lambda p: p.suffix.lower() not in (".jpg", ".jpeg")),
    )
    for label, keep in kinds:
        d = np.array([r[0] for p, r in zip(paths, results, strict=True)
                      if keep(p) and not isinstance(r, str)], dtype=np.int64)  # fmt: skip
        if len(d):
            rows.append([label, len(d), int(np.median(d)), float(np.percentile(d, 95)),
                         int(d.max()), f"{np.mean(d == 0):.0%}"])  # fmt: skip
    table(["files", "n", "median bits", "95th pct", "max", "identical"], rows)


def _fp_bytes(data: bytes) -> object:
    return fingerprint_bytes(data)


def speed(count: int, rounds: int) -> None:
    sets = make_images(count, [0, 3], False)
    twelve = [p.read_bytes() for name in sets for p in sets[name]]
    two = []
    for data in twelve:
        with Image.open(io.BytesIO(data)) as img:
            out = io.BytesIO()
            img.resize((1732, 1155), Image.Resampling.LANCZOS).save(out, "JPEG", quality=90)
            two.append(out.getvalue())
    real = pdq.pdq
    print(f"## Fingerprint time per JPEG ({len(twelve)} images per size, {rounds} rounds)\n")
    rows = []
    for label, datas in (("12 MP (4000x3000)", twelve), ("2 MP (1732x1155)", two)):
        times: dict[str, list[float]] = {"without PDQ": [], "with PDQ": [], "full decode": []}
        for r in range(rounds):
            for i, data in enumerate(datas):
                order = list(times) if (i + r) % 2 == 0 else list(times)[::-1]
                for name in order:
                    setattr(pdq, "pdq", real if name == "with PDQ" else _no_pdq)  # noqa: B010
                    run: Callable[[bytes], object] = _fp_bytes
                    if name == "full decode":
                        run = spec_pdq
                    start = time.perf_counter()
                    run(data)
                    times[name].append(time.perf_counter() - start)
        setattr(pdq, "pdq", real)  # noqa: B010
        med = {k: statistics.median(v) * 1000 for k, v in times.items()}
        rows.append([label, f"{med['without PDQ']:.1f}", f"{med['with PDQ']:.1f}",
                     f"{med['with PDQ'] / med['without PDQ']:.2f}x",
                     f"{med['full decode']:.1f}"])  # fmt: skip
    table(["JPEG", "today (no PDQ) ms", "with PDQ ms", "ratio",
           "PDQ alone, full-res RGB decode ms"], rows)  # fmt: skip


def _no_pdq(luma: object) -> tuple[int, int]:
    return 0, 0


def _fp(path: Path) -> FP | None:
    try:
        _, fp = fingerprint_file(path)
    except FingerprintError:
        return None
    assert fp.pdq is not None
    return fp.dhash, fp.phash, fp.pdq, fp.pdq_quality, fp.flat


@dataclass
class Set:
    ids: list[str]
    group: list[str]
    target: list[str]
    kinds: list[str]
    fps: list[list[FP | None]]  # [0] originals, [k] variants of kind k


def load(jobs: int) -> Set:
    originals = json.loads((DATA / "originals" / "manifest.json").read_text())
    variants = json.loads((DATA / "variants" / "manifest.json").read_text())
    kinds = variants["target_kinds"] + variants["extra_kinds"]
    ids = [str(m["photo_id"]) for m in originals]
    paths = [DATA / "originals" / str(m["file"]) for m in originals]
    for kind in kinds:
        paths += [DATA / "variants" / i / variants["files"][i][kind] for i in ids]
    with ProcessPoolExecutor(jobs) as pool:
        flat = list(pool.map(_fp, paths, chunksize=8))
    n = len(ids)
    fps = [flat[k * n : (k + 1) * n] for k in range(len(kinds) + 1)]
    group = [str(m["group"]) for m in originals]
    return Set(ids, group, variants["target_kinds"], kinds, fps)


@dataclass
class Pairs:
    """Distances of pairs, with whether the PDQ gate lets them match and the old rule's flag."""

    dh: I64
    ph: I64
    pq: I64
    gate: NDArray[np.bool_]  # both qualities at the floor, neither flat
    flat: NDArray[np.bool_]  # either flat: only sha256 can match


def _arrays(fps: Sequence[FP | None]) -> tuple[NDArray[np.uint64], ...]:
    ok = [f if f is not None else (0, 0, 0, 0, True) for f in fps]
    dh = np.array([f[0] for f in ok], dtype=np.uint64)
    ph = np.array([f[1] for f in ok], dtype=np.uint64)
    words = np.array([[(f[2] >> s) & ((1 << 64) - 1) for s in (0, 64, 128, 192)] for f in ok],
                     dtype=np.uint64)  # fmt: skip
    q = np.array([f[3] for f in ok], dtype=np.uint64)
    flat = np.array([f is None or f[4] for f in fps], dtype=np.uint64)
    return dh, ph, words, q, flat


def _pairs(a: Sequence[FP | None], b: Sequence[FP | None], mask: NDArray[np.bool_]) -> Pairs:
    """All (i, j) pairs of ``a`` x ``b`` where ``mask[i, j]``."""
    adh, aph, aw, aq, af = _arrays(a)
    bdh, bph, bw, bq, bf = _arrays(b)
    i, j = np.nonzero(mask)
    bits = np.bitwise_count
    dh = bits(adh[i] ^ bdh[j]).astype(np.int64)
    ph = bits(aph[i] ^ bph[j]).astype(np.int64)
    pq = bits(aw[i] ^ bw[j]).astype(np.int64).sum(axis=1)
    flat = (af[i] | bf[j]).astype(bool)
    gate = (np.minimum(aq[i], bq[j]) >= FLOOR) & ~flat
    return Pairs(dh, ph, pq, gate, flat)


def rules(p: Pairs, t: int) -> dict[str, NDArray[np.bool_]]:
    old = (p.dh <= 6) & (p.ph <= 4) & ~p.flat
    by_pdq = (p.pq <= t) & p.gate
    return {
        "dHash+pHash (today)": old,
        "PDQ alone (PDQ-only entries)": by_pdq,
        "today OR PDQ": old | by_pdq,
        "dHash AND PDQ (PDQ replaces pHash)": (p.dh <= 6) & by_pdq,
    }


THRESHOLDS = (16, 20, 24, 28, 31, 36, 40, 48, 56, 64, 72)


def calibrate(s: Set) -> None:
    n = len(s.ids)
    groups = np.array(s.group)
    frames = np.equal.outer(groups, groups) & np.char.startswith(groups, FRAMES)[:, None]
    other = ~np.eye(n, dtype=bool) & ~frames
    upper = np.triu(other, 1)
    negatives = [_pairs(s.fps[0], s.fps[0], upper)]
    negatives += [_pairs(s.fps[0], s.fps[k], other) for k in range(1, len(s.kinds) + 1)]
    neg = Pairs(*(np.concatenate([getattr(x, f) for x in negatives])
                  for f in ("dh", "ph", "pq", "gate", "flat")))  # fmt: skip
    pos = {kind: _pairs(s.fps[0], s.fps[k], np.eye(n, dtype=bool))
           for k, kind in enumerate(s.kinds, 1)}  # fmt: skip
    quality = np.array([0 if f is None else f[3] for f in s.fps[0]])
    print(f"## Threshold calibration: {n} originals x {len(s.kinds)} variant kinds\n")
    print(
        f"{len(neg.pq)} negative pairs (different photos; consecutive video frames left out), "
        f"{int(neg.gate.sum())} of them past the quality gate (floor {FLOOR})."
    )
    print(
        f"Originals below the floor: {int((quality < FLOOR).sum())} (PDQ quality median "
        f"{int(np.median(quality))}, min {int(quality.min())}).\n"
    )
    gated = neg.pq[neg.gate]
    order = np.argsort(gated)[:5]
    closest = ", ".join(str(int(gated[o])) for o in order)
    print(
        f"Closest negatives past the gate (PDQ bits): {closest}; without the gate: "
        f"{int(neg.pq.min())}.\n"
    )
    rows = []
    for t in THRESHOLDS:
        recall = [
            float(np.mean(rules(pos[k], t)["PDQ alone (PDQ-only entries)"])) for k in s.target
        ]
        false = int(rules(neg, t)["PDQ alone (PDQ-only entries)"].sum())
        rows.append([t, f"{100 * min(recall):.1f}", f"{100 * np.mean(recall):.1f}", false])
    table(["PDQ threshold", "worst target-kind recall %", "mean target recall %",
           "false matches"], rows)  # fmt: skip


def compare_rules(s: Set, t: int) -> None:
    n = len(s.ids)
    groups = np.array(s.group)
    frames = np.equal.outer(groups, groups) & np.char.startswith(groups, FRAMES)[:, None]
    other = ~np.eye(n, dtype=bool) & ~frames
    neg = [_pairs(s.fps[0], s.fps[0], np.triu(other, 1))]
    neg += [_pairs(s.fps[0], s.fps[k], other) for k in range(1, len(s.kinds) + 1)]
    pos = {kind: _pairs(s.fps[0], s.fps[k], np.eye(n, dtype=bool))
           for k, kind in enumerate(s.kinds, 1)}  # fmt: skip
    names = list(rules(neg[0], t))
    print(f"## Rules with PDQ as evidence (PDQ threshold {t}, quality floor {FLOOR})\n")
    header = ["kind", *names]
    rows: list[list[object]] = []
    for kind in s.kinds:
        r = rules(pos[kind], t)
        label = kind if kind in s.target else f"{kind} (extra)"
        rows.append([label, *(f"{100 * float(np.mean(r[x])):.1f}" for x in names)])
    false = [sum(int(rules(p, t)[x].sum()) for p in neg) for x in names]
    rows.append(["**false matches**", *false])
    table(header, rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reference", type=Path, help="ThreatExchange pdq/data/reg-test-input/dih")
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--count", type=int, default=8, help="12-MP JPEGs per noise level")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threshold", type=int, default=31, help="for the rule comparison")
    parser.add_argument("--skip", nargs="*", default=[], choices=("scale", "speed", "calibrate"))
    args = parser.parse_args()
    print("# PDQ\n")
    if args.reference:
        reference(args.reference)
    if "speed" not in args.skip:
        speed(args.count, args.rounds)
    s = load(args.jobs)
    if "scale" not in args.skip:
        manifest = json.loads((DATA / "originals" / "manifest.json").read_text())
        scale([DATA / "originals" / str(m["file"]) for m in manifest], args.jobs)
    if "calibrate" not in args.skip:
        calibrate(s)
        compare_rules(s, args.threshold)


if __name__ == "__main__":
    main()
