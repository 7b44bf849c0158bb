"""The keep policy as the system applies it (issue 10): the library of ``bench/library.py``
(the same real photographs, the same copies, the same seed), then

- ``--mode scan``: the real ``imagewatchd scan`` and ``dupes --json`` on it, so the figure is
  the system's (grouping, the provenance the workers stored, the ranking), with time and peak
  memory of each command;
- ``--mode orders``: a real daemon fed the files of ``--order-groups`` groups in ``--orders``
  random orders and timings (renamed into place from a staging folder, as sync tools do): does
  every order end with the same library?

    .venv/bin/python bench/library_system.py --mode scan [--groups 325] [--seed 1]
    .venv/bin/python bench/library_system.py --mode orders [--orders 10] [--order-groups 20]

Prints Markdown. Needs bench/data (``bench/dataset.py``). Output under ``--out`` (/tmp).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import shutil
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
from library import Member, build, built, half

ENV = {**os.environ, "OPENBLAS_NUM_THREADS": "1"}


def iw(db: Path, config: Path, *args: str) -> tuple[str, float, int]:
    """A one-shot command: its output, wall time and the peak RSS (KiB) of the children. Exit
    status 2 is a file that could not be read (counted in ``scan``'s errors)."""
    start = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "imagewatchd", "--db", str(db), "--config", str(config), *args],
        capture_output=True, text=True, env=ENV, check=False,
    )  # fmt: skip
    if done.returncode not in (0, 2):
        raise SystemExit(f"imagewatchd {' '.join(args)}: exit {done.returncode}: {done.stderr}")
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return done.stdout, time.perf_counter() - start, peak


def write_config(path: Path, library: Path, **watch: Any) -> Path:
    config = {"watches": [{"path": str(library), "role": "library", **watch}]}
    path.write_text(yaml.safe_dump(config))
    return path


def system_keepers(out: Path, groups: int, seed: int, reuse: bool) -> int:
    if reuse:
        library = built(out / "library")
        (out / "state.db").unlink(missing_ok=True)
    else:
        library = build(out / "library", groups, seed)
    db, config = out / "state.db", write_config(out / "config.yaml", out / "library")
    text, scan_s, scan_kib = iw(db, config, "scan", "--json", str(out / "library"))
    print(f"scan: {text.strip()}", file=sys.stderr)
    text, dupes_s, dupes_kib = iw(db, config, "dupes", "--json")
    found = json.loads(text)["groups"]
    group_of = {f["path"]: g for g in found for f in g["files"]}
    right, wrong, alone, apart = [0, 0], Counter[str](), [0, 0], Counter[str]()
    misses = []
    owner = {str(m.path): (n, m.kind) for n, members in enumerate(library) for m in members}
    for n, members in enumerate(library):
        original = str(members[0].path)
        group = group_of.get(original)
        if group is None:
            alone[half(members)] += 1
            continue
        keeper = group["files"][0]
        theirs, kind = owner.get(keeper["path"], (-1, "?"))
        if theirs != n:  # two photographs alike enough to be grouped: another's original won
            kind = f"another photo's {kind}"
        if kind in ("original", "copy"):
            right[half(members)] += 1
        else:
            wrong[kind] += 1
            misses.append((keeper["path"], kind, keeper["reason"]))
        inside = {f["path"] for f in group["files"]}
        apart.update(m.kind for m in members if str(m.path) not in inside)
    _report_system(library, right, wrong, alone, apart, misses, out)
    print(f"\nscan: {scan_s:.1f} s; dupes --json: {dupes_s:.1f} s; peak RSS of a command "
          f"(either): {max(scan_kib, dupes_kib) / 1024:.0f} MiB")  # fmt: skip
    return 0


def _report_system(
    library: list[list[Member]], right: list[int], wrong: Counter[str], alone: list[int],
    apart: Counter[str], misses: list[tuple[str, str, str]], out: Path,
) -> None:  # fmt: skip
    """The keepers per half of the groups (bench/library.py's split: the keep rules were worked
    out on the first half, the second is held out) and in all."""
    total = len(library)
    found = [sum(half(m) == h for m in library) - alone[h] for h in (0, 1)]
    print(f"# scan + dupes --json on {total} groups ({sum(map(len, library))} files)\n")
    instead = ", ".join(f"{k} {v}" for k, v in wrong.most_common()) or "-"
    cells = [f"{r}/{n} ({100 * r / max(n, 1):.1f}%)" for r, n in zip(right, found, strict=True)]
    both, grouped = sum(right), sum(found)
    print("| original kept (of the groups found): tuning half | held-out half | all "
          "| kept instead | original in no group |")  # fmt: skip
    print("|---|---|---|---|---|")
    print(f"| {cells[0]} | {cells[1]} | {both}/{grouped} ({100 * both / max(grouped, 1):.1f}%) "
          f"| {instead} | {sum(alone)} |")  # fmt: skip
    left = ", ".join(f"{k} {v}" for k, v in apart.most_common()) or "none"
    print(f"\nCopies not in their original's group (matching, not keeping): {left}\n")
    for path, kind, reason in misses:
        print(f"- `{Path(path).relative_to(out / 'library')}` ({kind}): {reason}")


def daemon_orders(out: Path, groups: int, seed: int, orders: int) -> int:
    source = out / "source"
    library = build(source, groups, seed)
    files = [m.path.relative_to(source) for members in library for m in members]
    results = []
    for order in range(orders):
        results.append(_one_order(out / f"order-{order}", source, files, random.Random(order)))
        print(f"order {order}: {len(results[-1])} files stay", file=sys.stderr)
    same = all(r == results[0] for r in results)
    originals = sum(
        any(m.kind in ("original", "copy") and str(m.path.relative_to(source)) in results[0]
            for m in members)
        for members in library
    )  # fmt: skip
    print(f"# The daemon, {orders} random orders of {len(files)} files ({groups} groups)\n")
    print(f"- the same library every time: {'yes' if same else 'NO'}")
    print(f"- files that stay: {sorted(len(r) for r in results)}; the original (or its byte copy) "
          f"among them in {originals}/{groups} groups (order 0)")  # fmt: skip
    kinds = {str(m.path.relative_to(source)): m.kind for members in library for m in members}
    differ = set[str]().union(*results) - results[0].intersection(*results[1:])
    stayed = Counter(kinds[p] for r in results for p in r if p in differ)
    print(
        f"- files that stay in some orders only: {len(differ)} "
        f"({', '.join(f'{k}: stays in {v} runs' for k, v in stayed.most_common()) or '-'})"
    )
    for path in sorted(differ):
        print(f"  - `{path}` ({kinds[path]}): stays in {sum(path in r for r in results)} runs")
    return 0 if same else 1


def _one_order(base: Path, source: Path, files: list[Path], rng: random.Random) -> set[str]:
    lib, staging = base / "library", base / "staging"
    for rel in files:
        (lib / rel.parent).mkdir(parents=True, exist_ok=True)
        (staging / rel.parent).mkdir(parents=True, exist_ok=True)
    config = write_config(base / "config.yaml", lib, on_duplicate="move",
                          move_to=str(base / "dupes"), settle_seconds=0.3)  # fmt: skip
    log_path = base / "daemon.log"
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "imagewatchd", "--db", str(base / "state.db"), "--config",
             str(config), "run"], stdout=log, stderr=subprocess.STDOUT, env=ENV,
        )  # fmt: skip
    try:
        _wait(log_path, lambda text: "reconcile:" in text)
        for rel in rng.sample(files, len(files)):
            shutil.copy2(source / rel, staging / rel)  # the file's own time, then renamed in
            os.rename(staging / rel, lib / rel)
            time.sleep(rng.choice([0.0, 0.0, 0.01, 0.05]))
        paths = [str(lib / rel) for rel in files]
        _wait(log_path, lambda text: all(f"INFO: {p}: " in text for p in paths), 600)
    finally:
        proc.terminate()
        proc.wait(60)
    return {str(p.relative_to(lib)) for p in lib.rglob("*") if p.is_file()}


def _wait(log: Path, done: Any, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while not done(log.read_text(errors="replace")):
        if time.monotonic() > deadline:
            raise SystemExit(f"timed out: see {log}")
        time.sleep(0.2)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--mode", choices=("scan", "orders"), default="scan")
    parser.add_argument("--groups", type=int, default=325)
    parser.add_argument("--order-groups", type=int, default=20)
    parser.add_argument("--orders", type=int, default=10)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--out", type=Path, default=Path("/tmp/iw-library-system"))
    parser.add_argument("--reuse", action="store_true", help="the library --out holds already")
    args = parser.parse_args(argv)
    if not args.reuse:
        shutil.rmtree(args.out, ignore_errors=True)
        args.out.mkdir(parents=True)
    if args.mode == "scan":
        return system_keepers(args.out, args.groups, args.seed, args.reuse)
    return daemon_orders(args.out, args.order_groups, args.seed, args.orders)


if __name__ == "__main__":
    sys.exit(main())
