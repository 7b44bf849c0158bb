#!/usr/bin/env python3
"""How long the daemon takes from its start to ready, over a given store.

Starts ``imagewatchd run`` (one empty incoming watch in a temporary directory, the given
database) and times it from the spawn to its "watching ..." log line, which it writes once the
journal is recovered, the indexes loaded and the watches started (just before it tells systemd
READY=1); then stops it with SIGTERM. ``--cold`` removes the library index snapshot first;
``--check`` also waits for the background database check's "database check: ok" line.
``--memory`` prints the peak resident memory (``VmHWM``) of the daemon and of its decoding
workers, read from /proc just before the SIGTERM: what a cgroup's ``MemoryMax`` must hold.

    .venv/bin/python bench/daemon_start.py bench/data/store-10m.db [--cold] [--check]
"""

from __future__ import annotations

import argparse
import json
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import IO


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("db", type=Path)
    parser.add_argument("--cold", action="store_true", help="without the index snapshot")
    parser.add_argument("--check", action="store_true", help="wait for the background check")
    parser.add_argument("--memory", action="store_true", help="print the peak RSS too")
    args = parser.parse_args()
    if args.cold:
        args.db.with_name(args.db.name + ".library-index").unlink(missing_ok=True)
    with tempfile.TemporaryDirectory(dir=args.db.parent.resolve()) as tmp:
        (Path(tmp) / "in").mkdir()
        config = Path(tmp) / "config.yaml"
        watches = [{"path": f"{tmp}/in", "role": "incoming"}]
        config.write_text(json.dumps({"watches": watches, "quarantine_dir": f"{tmp}/q"}))
        command = [sys.executable, "-m", "imagewatchd", "--config", str(config), "--db",
                   str(args.db), "run"]  # fmt: skip
        start = time.perf_counter()
        daemon = subprocess.Popen(command, stderr=subprocess.PIPE, text=True)
        assert daemon.stderr is not None
        ready = wait_for(daemon.stderr, "watching ", start)
        checked = ""
        if args.check:
            checked = f", checked in {wait_for(daemon.stderr, 'database check: ', start):.2f} s"
        memory = peaks(daemon.pid) if args.memory else ""
        daemon.send_signal(signal.SIGTERM)
        daemon.communicate(timeout=60)
    print(f"{args.db}: ready in {ready:.2f} s{checked}{' (no snapshot)' if args.cold else ''}"
          f"{memory}")  # fmt: skip
    return 0


def peaks(pid: int) -> str:
    """The peak RSS of the daemon, and the sum of its children's (an upper bound of theirs
    at one moment), in MiB."""
    children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    own, theirs = hwm(pid), sum(hwm(int(child)) for child in children)
    return (f"; peak RSS: daemon {own:.0f} MiB, {len(children)} workers {theirs:.0f} MiB, "
            f"together at most {own + theirs:.0f} MiB")  # fmt: skip


def hwm(pid: int) -> float:
    """A process's peak resident memory (VmHWM), in MiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


def wait_for(stderr: IO[str], text: str, start: float) -> float:
    """Seconds from ``start`` to the daemon's first log line holding ``text``."""
    line = ""
    for line in stderr:
        if text in line:
            return time.perf_counter() - start
    sys.exit(f"the daemon exited before {text!r}: {line}")


if __name__ == "__main__":
    sys.exit(main())
