#!/usr/bin/env python3
"""Detection quality of dHash / pHash on the real-photo set made by bench/dataset.py.

Positives: every variant against its own original. Negatives: every pair of different
originals, and every original against every other photo's variants. Prints Markdown tables:
distances, recall per variant kind and false matches per rule and threshold, look-alike pairs,
a recommended (dhash, phash) threshold pair, and draft (reduced-scale JPEG decode) vs full decode.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Iterable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import numpy as np
import numpy.typing as npt

from imagewatchd import fingerprint as fpmod
from imagewatchd.errors import FingerprintError
from imagewatchd.fingerprint import fingerprint_file

DATA = Path(__file__).resolve().parent / "data"
U64 = npt.NDArray[np.uint64]
I64 = npt.NDArray[np.int64]
Bools = npt.NDArray[np.bool_]
GRID = range(4, 17)
SEARCH = range(33)
RECALL_TARGET = 0.99
FRAMES = "video frames"  # look-alike groups of consecutive frames: duplicates to any hash
DEFAULT_WORKING_SIZE = fpmod.WORKING_SIZE
Result = tuple[int, int, bool] | str


def _fp(path: Path, full_decode: bool = False) -> Result:
    # full_decode: draft() then keeps the full scale and _shrink() does nothing
    fpmod.WORKING_SIZE = 1 << 30 if full_decode else DEFAULT_WORKING_SIZE
    try:
        _, fp = fingerprint_file(path)
    except FingerprintError as exc:
        return str(exc)
    return fp.dhash, fp.phash, fp.flat


def fingerprint_all(paths: Sequence[Path], jobs: int, full_decode: bool = False) -> list[Result]:
    with ProcessPoolExecutor(max_workers=jobs) as pool:
        return list(pool.map(partial(_fp, full_decode=full_decode), paths, chunksize=8))


def dist(a: U64, b: U64) -> I64:
    return np.bitwise_count(np.bitwise_xor(a, b)).astype(np.int64)


def pct(x: float) -> str:
    return f"{100 * x:.1f}" if x < 1 else "100"


def table(header: Sequence[str], rows: Iterable[Sequence[object]]) -> None:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    print("\n".join(lines) + "\n")


@dataclass
class Study:
    ids: list[str]
    group: list[str]
    target: list[str]
    kinds: list[str]
    pos: dict[str, tuple[I64, I64]]  # kind → (dH, pH) distance of each photo's variant
    pos_ids: dict[str, list[str]]  # the photos of pos (flat-flagged ones left out)
    pair: tuple[I64, I64]  # original pairs (i < j)
    pair_idx: tuple[I64, I64]
    look: Bools  # which original pairs are look-alikes
    cross: tuple[I64, I64]  # original vs every other photo's variant
    frames: tuple[Bools, Bools]  # pair / cross entries of consecutive video frames
    flat_ids: list[str]

    def recall(self, kind: str, td: int, tp: int) -> float:
        d, p = self.pos[kind]
        return float(np.mean((d <= td) & (p <= tp)))

    def worst(self, td: int, tp: int) -> float:
        return min(self.recall(k, td, tp) for k in self.target)

    def label(self, kind: str) -> str:
        return kind if kind in self.target else f"{kind} (extra)"


def false(d: I64, p: I64, td: int, tp: int) -> int:
    return int(np.count_nonzero((d <= td) & (p <= tp)))


def load(jobs: int) -> tuple[Study, list[Path]]:
    manifest = json.loads((DATA / "originals" / "manifest.json").read_text())
    # photos only: the recolour category and the synthetic gradients have no variants
    originals = [m for m in manifest if m.get("category", "photo") == "photo"]
    variants = json.loads((DATA / "variants" / "manifest.json").read_text())
    target, kinds = variants["target_kinds"], variants["target_kinds"] + variants["extra_kinds"]
    ids = [str(m["photo_id"]) for m in originals]
    paths = [DATA / "originals" / str(m["file"]) for m in originals]
    for kind in kinds:
        paths += [DATA / "variants" / i / variants["files"][i][kind] for i in ids]
    results = fingerprint_all(paths, jobs)
    n = len(ids)
    print(f"# Perceptual-hash quality on {n} real photographs\n")
    print(f"{n} originals x {len(kinds)} variant kinds; {len(paths)} files fingerprinted.")
    print(f"Target kinds (recall >= 99%): {', '.join(target)}.")
    print(f"Extra kinds (reported, not in the target): {', '.join(variants['extra_kinds'])}.\n")
    for path, res in zip(paths, results, strict=True):
        if isinstance(res, str):
            print(f"- fingerprint failed: {path.relative_to(DATA)}: {res}")
    ok = [(0, 0, True) if isinstance(r, str) else r for r in results]
    dh = np.array([r[0] for r in ok], dtype=np.uint64).reshape(len(kinds) + 1, n)
    ph = np.array([r[1] for r in ok], dtype=np.uint64).reshape(len(kinds) + 1, n)
    flat = np.array([r[2] for r in ok], dtype=bool).reshape(len(kinds) + 1, n)
    for i in np.flatnonzero(flat.any(axis=0)):
        print(f"- failed or flat (never near-matched): {ids[i]} in {flat[:, i].sum()} files")
    print()
    pos, pos_ids = {}, {}
    for x, k in enumerate(kinds, 1):
        keep = ~flat[x] & ~flat[0]  # a flat image is excluded from matching by design
        pos[k] = (dist(dh[0], dh[x])[keep], dist(ph[0], ph[x])[keep])
        pos_ids[k] = [i for i, kept in zip(ids, keep, strict=True) if kept]
    iu, ju = np.triu_indices(n, 1)
    off = ~np.eye(n, dtype=bool)
    cross_d = [dist(dh[0][:, None], dh[x][None, :])[off] for x in range(1, len(kinds) + 1)]
    cross_p = [dist(ph[0][:, None], ph[x][None, :])[off] for x in range(1, len(kinds) + 1)]
    group = [str(m["group"]) for m in originals]
    look = np.array([group[a] != "" and group[a] == group[b] for a, b in zip(iu, ju, strict=True)])
    is_frame = np.array([g.startswith(FRAMES) for g in group])
    same = np.equal.outer(np.array(group), np.array(group)) & is_frame[:, None]
    frames = (same[iu, ju], np.tile(same[off], len(kinds)))
    flat_ids = [ids[i] for i in np.flatnonzero(flat.any(axis=0))]
    study = Study(
        ids, group, target, kinds, pos, pos_ids,
        (dist(dh[0][iu], dh[0][ju]), dist(ph[0][iu], ph[0][ju])),
        (iu.astype(np.int64), ju.astype(np.int64)), look,
        (np.concatenate(cross_d), np.concatenate(cross_p)), frames, flat_ids,
    )  # fmt: skip
    return study, paths


def distances(s: Study) -> None:
    print("## Distance distributions (bits of 64)\n")
    rows: list[list[object]] = []
    for k in s.kinds:
        d, p = s.pos[k]
        row = [s.label(k), len(d)]
        for v in (d, p):
            row += [int(v.max()), f"{np.percentile(v, 99):.0f}", f"{v.mean():.2f}"]
        rows.append(row)
    head = ["positives: kind", "n", "dH max", "dH p99", "dH mean", "pH max", "pH p99", "pH mean"]
    table(head, rows)
    rows = []
    (pd_, pp), (cd, cp) = s.pair, s.cross
    for name, d, p in (
        ("original pairs", pd_, pp),
        ("look-alike original pairs", pd_[s.look], pp[s.look]),
        ("original vs other photos' variants", cd, cp),
    ):
        row = [name, len(d)]
        for v in (d, p):
            row += [int(v.min()), f"{np.percentile(v, 1):.0f}"]
        rows.append([*row, int(np.maximum(d, p).min())])
    table(["negatives", "pairs", "dH min", "dH p1", "pH min", "pH p1", "min max(dH,pH)"], rows)


def recall_tables(s: Study) -> None:
    (pd_, pp), (cd, cp) = s.pair, s.cross
    rules = {"dHash alone": (1, 0), "pHash alone": (0, 1), "combined, dH <= t and pH <= t": (1, 1)}
    for name, (use_d, use_p) in rules.items():
        print(f"## Recall (%) per kind: {name}\n")
        ts = [(t if use_d else 64, t if use_p else 64) for t in GRID]
        rows: list[list[object]] = [
            [s.label(k), *[pct(s.recall(k, a, b)) for a, b in ts]] for k in s.kinds
        ]
        look_d, look_p = pd_[s.look], pp[s.look]
        rows.append(["**worst target kind**", *[pct(s.worst(a, b)) for a, b in ts]])
        rows.append(["false matches: original pairs", *[false(pd_, pp, a, b) for a, b in ts]])
        rows.append(["... of which look-alikes", *[false(look_d, look_p, a, b) for a, b in ts]])
        rate = [f"{100 * false(pd_, pp, a, b) / len(pd_):.2f}" for a, b in ts]
        rows.append(["false-match rate, original pairs %", *rate])
        rows.append(
            ["false matches: orig vs others' variants", *[false(cd, cp, a, b) for a, b in ts]]
        )
        rate = [f"{100 * false(cd, cp, a, b) / len(cd):.2f}" for a, b in ts]
        rows.append(["false-match rate, vs variants %", *rate])
        table(["kind \\ t", *[str(t) for t in GRID]], rows)


def recommend(s: Study, skip_frames: bool) -> tuple[int, int, bool]:
    """The feasible pair (recall >= 99% on every target kind, no false match among the
    negatives) with the widest margin: min(bits by which the closest negative misses, bits
    by which both thresholds could shrink and still keep the recall target)."""
    keep = [~f if skip_frames else np.ones_like(f) for f in s.frames]
    neg_d = np.concatenate([s.pair[0][keep[0]], s.cross[0][keep[1]]])
    neg_p = np.concatenate([s.pair[1][keep[0]], s.cross[1][keep[1]]])
    worst = np.array([[s.worst(td, tp) for tp in SEARCH] for td in SEARCH])
    fps = np.array([[false(neg_d, neg_p, td, tp) for tp in SEARCH] for td in SEARCH])
    which = f"negatives without the '{FRAMES}' pairs" if skip_frames else "all negatives"
    print(f"## Combined rule: worst target-kind recall % / false matches among {which}\n")
    rows = [[f"dH<={td}", *[f"{pct(worst[td, tp])} / {fps[td, tp]}" for tp in GRID]] for td in GRID]
    table(["", *[f"pH<={tp}" for tp in GRID]], rows)
    print(f"## Recommendation over {which} ({len(neg_d)} pairs)\n")
    ok = (worst >= RECALL_TARGET) & (fps == 0)
    if not ok.any():
        cand = np.argwhere(worst >= RECALL_TARGET).tolist()
        td, tp = min(cand, key=lambda c: (fps[c[0], c[1]], c[0] + c[1]))
        print("No pair reaches 99% recall on every target kind with zero false matches;")
        print(f"fewest false matches at the recall target: ({td}, {tp}) with {fps[td, tp]}.\n")
        return td, tp, False
    scored = []
    for td, tp in np.argwhere(ok).tolist():
        neg_margin = int(np.min(np.maximum(neg_d - td, neg_p - tp)))  # >= 1 when feasible
        k = 0
        while min(td, tp) > k and worst[td - k - 1, tp - k - 1] >= RECALL_TARGET:
            k += 1
        scored.append((min(neg_margin - 1, k), neg_margin, k, td, tp))
    scored.sort(key=lambda c: (-c[0], -worst[c[3], c[4]], c[3] + c[4]))
    _, neg_margin, pos_margin, td, tp = scored[0]
    print(f"{len(scored)} feasible (dH, pH) pairs in 0..32 x 0..32.")
    print(f"**Recommended: dhash_threshold={td}, phash_threshold={tp}.**\n")
    print(f"- the closest negative pair misses by {neg_margin} bit(s): min over the negatives")
    print(f"  of max(dH - {td}, pH - {tp}) = {neg_margin}")
    print(f"- both thresholds could shrink by {pos_margin} bit(s) and keep recall >= 99%")
    print(f"- worst target-kind recall {pct(worst[td, tp])}% (flat-flagged photos excluded);")
    n = len(s.pos[s.target[0]][0])
    end_to_end = min(s.recall(k, td, tp) * n for k in s.target) / (n + len(s.flat_ids))
    print(f"  counting the {len(s.flat_ids)} flat-flagged photo(s) as misses: {pct(end_to_end)}%")
    print(f"- false matches among all negatives incl. video frames: {false(*s.pair, td, tp)} "
          f"original pairs, {false(*s.cross, td, tp)} original-vs-variant pairs")  # fmt: skip
    for kind in s.target:
        d, p = s.pos[kind]
        miss = [
            f"{s.pos_ids[kind][i]} ({d[i]}, {p[i]})" for i in np.flatnonzero((d > td) | (p > tp))
        ]
        if miss:
            print(f"- missed {kind}: {', '.join(miss)}")
    for kind in s.kinds:
        if kind not in s.target:
            print(f"- extra kind {kind}: recall {pct(s.recall(kind, td, tp))}%")
    others = ", ".join(f"({c[3]}, {c[4]}): margin {c[0]}" for c in scored[1:6])
    print(f"- runners-up: {others}\n")
    return td, tp, True


def lookalikes(s: Study, chosen: tuple[int, int, bool]) -> None:
    print("## Look-alike pairs (different photos of one scene or subject), original vs original\n")
    (pd_, pp), (iu, ju) = s.pair, s.pair_idx
    pair_group = np.array([s.group[a] for a in iu])
    rows: list[list[object]] = []
    td, tp, _ = chosen
    for g in sorted({v for v in s.group if v}):
        sel = np.flatnonzero(s.look & (pair_group == g))
        if not len(sel):  # a group with one photo left (the others failed)
            continue
        b = sel[np.argmin(np.maximum(pd_[sel], pp[sel]))]
        hits = false(pd_[sel], pp[sel], td, tp)
        rows.append([g, len(sel), int(pd_[sel].min()), int(pp[sel].min()),
                     f"{s.ids[iu[b]]} / {s.ids[ju[b]]} ({pd_[b]}, {pp[b]})", hits])  # fmt: skip
    table(
        ["group", "pairs", "dH min", "pH min", "closest (dH, pH)", f"matched at ({td}, {tp})"], rows
    )
    print("Closest pairs of different originals (any group):\n")
    order = np.argsort(np.maximum(pd_, pp), kind="stable")[:15]
    rows = [
        [s.ids[iu[x]], s.ids[ju[x]], "yes" if s.look[x] else "no", pd_[x], pp[x]] for x in order
    ]
    table(["photo", "photo", "look-alike", "dH", "pH"], rows)


def draft_vs_full(paths: Sequence[Path], jobs: int) -> None:
    """Our fingerprint (JPEG decoded at reduced scale) vs the same pipeline without draft."""
    jpegs = [p for p in paths if p.suffix.lower() in (".jpg", ".jpeg")]
    draft = fingerprint_all(jpegs, jobs)
    full = fingerprint_all(jpegs, jobs, full_decode=True)
    print("## Draft (reduced-scale JPEG decode) vs full decode, same pipeline otherwise\n")
    rows: list[list[object]] = []
    for name, where in (("original JPEGs", "originals"), ("JPEG variants", "variants")):
        dd, dp = [], []
        for path, a, b in zip(jpegs, draft, full, strict=True):
            if where in path.parts and not isinstance(a, str) and not isinstance(b, str):
                dd.append((a[0] ^ b[0]).bit_count())
                dp.append((a[1] ^ b[1]).bit_count())
        row: list[object] = [name, len(dd)]
        for v in (np.array(dd), np.array(dp)):
            row += [int(v.max()), f"{v.mean():.2f}", f"{np.mean(v == 0):.0%}", int(np.sum(v >= 3))]
        rows.append(row)
    table(["files", "n", "dH max", "dH mean", "dH same", "dH >=3", "pH max", "pH mean",
           "pH same", "pH >=3"], rows)  # fmt: skip
    diffs = [
        ((a[0] ^ b[0]).bit_count(), (a[1] ^ b[1]).bit_count(), p.relative_to(DATA))
        for p, a, b in zip(jpegs, draft, full, strict=True)
        if not isinstance(a, str) and not isinstance(b, str)
    ]
    worst = sorted(diffs, key=lambda x: -max(x[0], x[1]))[:6]
    print("Largest differences: " + "; ".join(f"{p} ({d}, {q})" for d, q, p in worst) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=2, help="fingerprinting processes")
    parser.add_argument("--no-draft-check", action="store_true", help="skip draft vs full")
    args = parser.parse_args()
    study, paths = load(args.jobs)
    distances(study)
    recall_tables(study)
    recommend(study, skip_frames=False)
    chosen = recommend(study, skip_frames=True)
    lookalikes(study, chosen)
    if not args.no_draft_check:
        draft_vs_full(paths, args.jobs)


if __name__ == "__main__":
    main()
