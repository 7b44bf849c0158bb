#!/usr/bin/env python3
"""Evaluation set v2 (issue 8): recall per variant kind and false matches, for one matcher.

Reads bench/data/ as bench/dataset.py leaves it. Positives: each photo's variants against the
original file. Negatives: every pair of different originals (look-alike groups reported group
by group), and every photo against every other photo's variants. The recolour category (the
``recolour`` kind, and recoloured versions of one artwork) is reported on its own. Prints
Markdown. ``--matcher`` picks one of bench/matchers.py's ``MATCHERS``.
"""

from __future__ import annotations

import argparse
import json
import pickle
import time
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from functools import partial
from pathlib import Path

from matchers import MATCHERS, Candidate, Decision
from photos import RECOLOURED_PHOTOS

from imagewatchd.errors import FingerprintError

DATA = Path(__file__).resolve().parent / "data"
GOALS = {"benign": 99.5, "orientation": 98.0, "border": 95.0, "crop": 95.0, "overlay": 90.0}
FRAMES = "video frames"
# photographs that are one scan recoloured (bench/photos.py): their pairs are not negatives
SCAN_OF = {pid: g for g, ids in RECOLOURED_PHOTOS.items() for pid in ids}


def _prepare(matcher: Candidate, path: Path) -> object:
    try:
        return matcher.prepare(path)
    except FingerprintError as exc:
        return f"error: {exc}"


@dataclass
class Set:
    originals: list[dict[str, object]]
    kinds: list[dict[str, str]]
    fp: dict[str, object]  # photo id → fingerprint (or an error string)
    vfp: dict[tuple[str, str], object]  # (photo id, kind) → fingerprint
    natural: list[tuple[dict[str, object], object]]  # natural copies and their fingerprints
    errors: list[str]  # files the matcher could not prepare, with the reason


def load(matcher: Candidate, jobs: int) -> Set:
    originals = json.loads((DATA / "originals" / "manifest.json").read_text())
    variants = json.loads((DATA / "variants" / "manifest.json").read_text())
    keys: list[tuple[str, str]] = [(str(m["photo_id"]), "") for m in originals]
    paths = [DATA / "originals" / str(m["file"]) for m in originals]
    for pid, files in variants["files"].items():
        for kind, name in files.items():
            keys.append((pid, kind))
            paths.append(DATA / "variants" / pid / name)
    natural = json.loads((DATA / "natural" / "manifest.json").read_text())
    with ProcessPoolExecutor(max_workers=jobs) as pool:
        results = list(pool.map(partial(_prepare, matcher), paths, chunksize=16))
        copies = [DATA / "natural" / str(n["file"]) for n in natural]
        found = list(pool.map(partial(_prepare, matcher), copies))
    errors = [
        f"{path.relative_to(DATA)}: {r.rsplit(': ', 1)[-1]}"
        for path, r in zip([*paths, *copies], [*results, *found], strict=True)
        if isinstance(r, str)
    ]
    fp = {pid: r for (pid, kind), r in zip(keys, results, strict=True) if not kind}
    vfp = {key: r for key, r in zip(keys, results, strict=True) if key[1]}
    pairs = list(zip(natural, found, strict=True))
    return Set(originals, variants["kinds"], fp, vfp, pairs, errors)


def compare(matcher: Candidate, a: object, b: object) -> Decision:
    if isinstance(a, str) or isinstance(b, str):
        return Decision(False, 64, (("unreadable", 0, 0),))
    return matcher.compare(a, b)


def table(header: Sequence[str], rows: Iterable[Sequence[object]]) -> None:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    print("\n".join(lines) + "\n")


def pct(n: int, total: int) -> str:
    return f"{100 * n / total:.1f}%" if total else "-"


def recall(s: Set, matcher: Candidate) -> None:
    photos = [str(m["photo_id"]) for m in s.originals if m["category"] == "photo"]
    flat = {p for p in photos if getattr(s.fp[p], "flat", False) or isinstance(s.fp[p], str)}
    print(f"## Recall per kind ({len(photos)} photos; {len(flat)} of them flat or unreadable)\n")
    per_class: dict[str, list[int]] = defaultdict(lambda: [0, 0, 0])
    package = {str(m["photo_id"]): str(m["package"]) for m in s.originals}
    missed: Counter[str] = Counter()
    rows: list[list[object]] = []
    for kind in s.kinds:
        name, klass = kind["name"], kind["class"]
        decisions = [(p, compare(matcher, s.fp[p], s.vfp[p, name])) for p in photos]
        hits = sum(d.match for _, d in decisions)
        # over the non-flat originals, only their variants' matches count (a flat original's
        # identical copy matches by sha256: counting it made this column exceed 100%)
        solid = sum(d.match for p, d in decisions if p not in flat)
        misses = [(d.margin, p) for p, d in decisions if not d.match and p not in flat]
        if klass == "benign":
            missed.update(package[p] for p, d in decisions if not d.match)
        closest = ", ".join(f"{p} (+{m})" for m, p in sorted(misses)[:2])
        rows.append([name, klass, kind["what"], f"{hits}/{len(photos)}", pct(hits, len(photos)),
                     pct(solid, len(photos) - len(flat)), closest])  # fmt: skip
        per_class[klass][0] += hits
        per_class[klass][1] += len(photos)
        per_class[klass][2] += solid
    head = ["kind", "class", "what", "matched", "recall", "recall, non-flat originals"]
    table([*head, "nearest misses (margin)"], rows)
    print("By class, against issue 8's goals:\n")
    n_kinds = {k: sum(x["class"] == k for x in s.kinds) for k in per_class}
    rows = [[k, f"{h}/{n}", pct(h, n), pct(solid, n - n_kinds[k] * len(flat)),
             f">= {GOALS[k]}%" if k in GOALS else "reported"]
            for k, (h, n, solid) in per_class.items()]  # fmt: skip
    table(["class", "matched", "recall", "recall, non-flat originals", "goal"], rows)
    photos_of = Counter(package[p] for p in photos)
    print("Benign misses by package (variants missed / photos):", ", ".join(
        f"{k} {v}/{photos_of[k]}" for k, v in missed.most_common()) + "\n")  # fmt: skip
    if flat:
        print(f"Flat or unreadable originals (never near-matched): {', '.join(sorted(flat))}\n")


def _pairs(s: Set, category: str) -> list[tuple[str, str, str]]:
    """Pairs of different originals of ``category`` with the group they share, if any."""
    ids = [(str(m["photo_id"]), str(m["group"]), str(m["category"])) for m in s.originals]
    keep = [x for x in ids if (x[2] == "recolour-only") == (category == "recolour-only")]
    out = []
    for i, (a, ga, _) in enumerate(keep):
        for b, gb, _ in keep[i + 1 :]:
            out.append((a, b, _scan(a, b) or (ga if ga and ga == gb else "")))
    return out


def _scan(a: str, b: str) -> str:
    """The recoloured-scan group of two photo ids (or of a photo and another's variant,
    ``photo/kind``), if they are one scan recoloured; else ""."""
    scan = SCAN_OF.get(a, "")
    return scan if scan and scan == SCAN_OF.get(b.split("/", maxsplit=1)[0]) else ""


def negatives(s: Set, matcher: Candidate) -> None:
    pairs = _pairs(s, "photo")
    by_group: dict[str, list[tuple[Decision, str, str]]] = defaultdict(list)
    for a, b, g in pairs:
        by_group[g].append((compare(matcher, s.fp[a], s.fp[b]), a, b))
    other = by_group.pop("")
    for scan in RECOLOURED_PHOTOS:
        by_group.pop(scan, None)  # not negatives: reported with the recolour category
    print("## False matches among different photos\n")
    _summary("different originals, not look-alikes", other)
    _summary("look-alike originals, all groups", [x for v in by_group.values() for x in v])
    frames = [x for g, v in by_group.items() if not g.startswith(FRAMES) for x in v]
    _summary("look-alike originals, without consecutive video frames", frames)
    cross, total = _cross(s, matcher)
    _summary("original vs other photos' variants (all kinds)", cross, total)
    group = {str(m["photo_id"]): str(m["group"]) for m in s.originals}

    def same_video(a: str, b: str) -> bool:
        return group[a].startswith(FRAMES) and group[a] == group[b.split("/", maxsplit=1)[0]]

    rest = [x for x in cross if not same_video(x[1], x[2])]
    _summary("original vs other photos' variants, without video frames", rest,
             total - _frame_pairs(s, group))  # fmt: skip
    print("### Look-alike groups\n")
    rows: list[list[object]] = []
    for g, found in sorted(by_group.items()):
        d, a, b = min(found, key=lambda x: x[0].margin)
        hits = sum(x[0].match for x in found)
        rows.append([g, len(found), hits, f"{a} / {b}: {d.shown()}", d.margin])
    table(["group", "pairs", "false matches", "closest pair", "margin"], rows)
    print("### The closest different originals (any group)\n")
    everything = [(x, g) for g, v in by_group.items() for x in v] + [(x, "") for x in other]
    closest = sorted(everything, key=lambda x: x[0][0].margin)[:12]
    table(["photo", "photo", "group", "evidence", "margin"],
          [[a, b, g or "-", d.shown(), d.margin] for (d, a, b), g in closest])  # fmt: skip


_CROSSED: dict[str, tuple[list[tuple[Decision, str, str]], int]] = {}


def _cross(s: Set, matcher: Candidate) -> tuple[list[tuple[Decision, str, str]], int]:
    """Matches, and the closest non-match between different videos' frames and otherwise:
    all 4-5 million decisions would not fit. Computed once per matcher."""
    if matcher.name not in _CROSSED:
        _CROSSED[matcher.name] = _cross_all(s, matcher)
    return _CROSSED[matcher.name]


def _cross_all(s: Set, matcher: Candidate) -> tuple[list[tuple[Decision, str, str]], int]:
    photos = [str(m["photo_id"]) for m in s.originals if m["category"] == "photo"]
    group = {str(m["photo_id"]): str(m["group"]) for m in s.originals}
    kept: list[tuple[Decision, str, str]] = []
    closest: dict[bool, tuple[Decision, str, str]] = {}
    total = 0
    for (pid, kind), vfp in s.vfp.items():
        for other in photos:
            if other == pid or _scan(other, pid):
                continue  # the recoloured scans: recolour()
            d = compare(matcher, s.fp[other], vfp)
            total += 1
            if d.match:
                kept.append((d, other, f"{pid}/{kind}"))
                continue
            video = group[pid].startswith(FRAMES) and group[pid] == group[other]
            if video not in closest or d.margin < closest[video][0].margin:
                closest[video] = (d, other, f"{pid}/{kind}")
    return kept + list(closest.values()), total


def _summary(name: str, found: list[tuple[Decision, str, str]], total: int = 0) -> None:
    hits = [x for x in found if x[0].match]
    d, a, b = min(found, key=lambda x: x[0].margin)
    print(f"- **{name}**: {len(hits)} false matches in {total or len(found):,} pairs; closest "
          f"{a} vs {b}: {d.shown()}, margin {d.margin}")  # fmt: skip
    for d, a, b in sorted(hits, key=lambda x: x[0].margin)[:5]:
        print(f"  - matched: {a} vs {b}: {d.shown()}")
    print()


def recolour(s: Set, matcher: Candidate) -> None:
    print("## The recolour category (reported on its own)\n")
    rows: list[list[object]] = []
    groups: dict[str, list[tuple[Decision, str, str]]] = defaultdict(list)
    for a, b, g in _pairs(s, "recolour-only"):
        groups[g or "(different artworks)"].append((compare(matcher, s.fp[a], s.fp[b]), a, b))
    for g, found in sorted(groups.items()):
        d, a, b = min(found, key=lambda x: x[0].margin)
        rows.append([g, len(found), sum(x[0].match for x in found), f"{a} / {b}: {d.shown()}"])
    table(["recoloured artworks", "pairs", "matched", "closest pair"], rows)
    print("Photographs that are one scan recoloured (bench/photos.py `RECOLOURED_PHOTOS`): "
          "the two originals, and each original against the other's variants:\n")  # fmt: skip
    rows = []
    for g, ids in RECOLOURED_PHOTOS.items():
        pairs = [(a, b) for a in ids for b in ids if a < b]
        pairs += [(a, f"{b}/{k}") for a in ids for b in ids if a != b for _, k in _kinds(s)]
        found = [(compare(matcher, s.fp[a], _fp(s, b)), a, b) for a, b in pairs]
        d, a, b = min(found, key=lambda x: x[0].margin)
        rows.append([g, len(found), sum(x[0].match for x in found), f"{a} / {b}: {d.shown()}"])
    table(["recoloured scan", "pairs", "matched", "closest pair"], rows)


def _kinds(s: Set) -> list[tuple[str, str]]:
    return [(k["class"], k["name"]) for k in s.kinds]


def _fp(s: Set, name: str) -> object:
    """The fingerprint of ``photo`` or ``photo/kind``."""
    pid, _, kind = name.partition("/")
    return s.vfp[pid, kind] if kind else s.fp[pid]


def natural(s: Set, matcher: Candidate) -> None:
    print("## Natural copies (shipped by the packages themselves)\n")
    rows: list[list[object]] = []
    hits = 0
    for copy, fp in s.natural:
        if str(copy["photo_id"]) not in s.fp:
            continue
        d = compare(matcher, s.fp[str(copy["photo_id"])], fp)
        hits += d.match
        rows.append([copy["photo_id"], copy["file"], copy["what"],
                     "yes" if d.match else "no", d.shown()])  # fmt: skip
    print(f"{hits}/{len(rows)} matched ({pct(hits, len(rows))}).\n")
    table(["original", "copy", "what", "matched", "evidence"], rows)


def side_by_side(s: Set, matchers: Sequence[Candidate]) -> None:
    """Recall per orientation kind and per class, and false matches among different photos
    (consecutive video frames left out), for matchers that share ``prepare``."""
    names = " | ".join(m.name for m in matchers)
    print(f"## Side by side: {names}\n")
    photos = [str(m["photo_id"]) for m in s.originals if m["category"] == "photo"]
    flat = {p for p in photos if getattr(s.fp[p], "flat", False) or isinstance(s.fp[p], str)}
    classes: dict[str, list[list[int]]] = defaultdict(lambda: [[0, 0] for _ in matchers])
    rows: list[list[object]] = []
    for kind in s.kinds:
        cells: list[object] = [kind["name"]]
        for i, matcher in enumerate(matchers):
            hits = [p for p in photos if compare(matcher, s.fp[p], s.vfp[p, kind["name"]]).match]
            solid = len([p for p in hits if p not in flat])
            classes[kind["class"]][i][0] += len(hits)
            classes[kind["class"]][i][1] += solid
            cells += [pct(len(hits), len(photos)), pct(solid, len(photos) - len(flat))]
        if kind["class"] == "orientation":
            rows.append(cells)
    head = [x for m in range(len(matchers)) for x in (f"recall ({m + 1})", f"non-flat ({m + 1})")]
    table(["kind", *head], rows)
    n_kinds = Counter(k["class"] for k in s.kinds)
    table(["class", *head], [[k, *(pct(c, n_kinds[k] * len(photos) - (len(flat) * n_kinds[k]
                              if j else 0)) for h in v for j, c in enumerate(h))]
                             for k, v in classes.items()])  # fmt: skip
    group = {str(m["photo_id"]): str(m["group"]) for m in s.originals}
    for i, matcher in enumerate(matchers):
        pairs = [(compare(matcher, s.fp[a], s.fp[b]), a, b) for a, b, g in _pairs(s, "photo")
                 if not g.startswith(FRAMES) and g not in RECOLOURED_PHOTOS]  # fmt: skip
        _summary(f"({i + 1}) different originals, without video frames", pairs)
        cross, total = _cross(s, matcher)
        rest = [x for x in cross if not _same_video(group, x[1], x[2])]
        _summary(f"({i + 1}) original vs other photos' variants, without video frames", rest,
                 total - _frame_pairs(s, group))  # fmt: skip


def _frame_pairs(s: Set, group: dict[str, str]) -> int:
    """How many original-against-variant pairs are between frames of one video (counted in
    ``_cross``'s total, unlike the recoloured scans' pairs)."""
    size = Counter(g for g in group.values() if g.startswith(FRAMES))
    return sum(size[group[pid]] - 1 for pid, _ in s.vfp if group[pid].startswith(FRAMES))


def _same_video(group: dict[str, str], a: str, b: str) -> bool:
    return group[a].startswith(FRAMES) and group[a] == group[b.split("/", maxsplit=1)[0]]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=2, help="fingerprinting processes")
    parser.add_argument("--matcher", choices=sorted(MATCHERS), default="current")
    parser.add_argument("--cache", type=Path, help="read the fingerprints from this pickled Set "
                        "if it exists (made with the same matcher's prepare), else keep them "
                        "there")  # fmt: skip
    parser.add_argument("--versus", choices=sorted(MATCHERS), action="append", default=[],
                        help="also measure this matcher on the same fingerprints, side by side "
                        "(it must prepare files as --matcher does)")  # fmt: skip
    args = parser.parse_args()
    matcher = MATCHERS[args.matcher]()
    start = time.monotonic()
    cached = bool(args.cache and args.cache.exists())
    if args.cache and cached:
        s = pickle.loads(args.cache.read_bytes())
    else:
        s = load(matcher, args.jobs)
        if args.cache:
            args.cache.write_bytes(pickle.dumps(s))
    fingerprinted = time.monotonic() - start
    cats: dict[str, int] = defaultdict(int)
    for m in s.originals:
        cats[str(m["category"])] += 1
    print(f"# Evaluation set v2: {matcher.name}\n")
    print(f"{len(s.originals)} originals ({', '.join(f'{v} {k}' for k, v in cats.items())}), "
          f"{len(s.kinds)} variant kinds, {len(s.vfp):,} variants; "
          + (f"fingerprints read from {args.cache} in {fingerprinted:.0f} s.\n" if cached else
             f"fingerprinted in {fingerprinted:.0f} s with {args.jobs} processes.\n"))  # fmt: skip
    for line in s.errors:
        print(f"- not fingerprinted: {line}")
    print()
    recall(s, matcher)
    negatives(s, matcher)
    recolour(s, matcher)
    natural(s, matcher)
    if args.versus:
        side_by_side(s, [MATCHERS[name]() for name in args.versus] + [matcher])
    print(f"Total time {time.monotonic() - start:.0f} s.")


if __name__ == "__main__":
    main()
