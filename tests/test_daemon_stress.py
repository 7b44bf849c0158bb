"""The daemon under stress, run as a service manager runs it: ``imagewatchd run`` subprocesses on
real directories, fed bursts of files and killed with SIGKILL at random moments.

The promises checked are DESIGN.md's: never miss a file (each processed exactly once, also when
the kernel's event queue overflowed), and never lose one (a SIGKILL at any instant leaves every
file where it was or where the journal says it went, whole, and the restart settles it).
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import random
import re
import shutil
import signal
import sqlite3
import stat
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import closing, contextmanager
from dataclasses import dataclass, field
from fnmatch import fnmatchcase
from pathlib import Path
from typing import Any

import pytest
import yaml
from PIL import Image
from PIL.PngImagePlugin import PngInfo

from tests.conftest import photo

START_TIMEOUT = 60.0  # imports, recovery and the first reconcile, on a loaded machine
POLL = 0.02
QUIET_AFTER = 2.0  # no new log line for this long: the daemon has nothing left to do
BURST_FILES = 20_000
BURST_WRITERS = 4
BURST_TIMEOUT = 180.0
INOTIFY_QUEUE = Path("/proc/sys/fs/inotify/max_queued_events")
FORCED_QUEUE = 64  # a kernel event queue this short overflows within a few hundred files
TMP_GLOB = ".imagewatchd-*.tmp"
DROPPED_MODE = 0o640  # neither the default 0644 nor quarantine's 0600
DROPPED_MTIME_NS = 1_650_000_000_123_456_789
BANNED_SEEDS = (501, 502, 503, 504)
STAMP = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d ")
PROCESSED = re.compile(
    r"^INFO: (?P<path>/\S+): (?P<verdict>clean|known|duplicate)\b.* -> (?P<action>\S+)"
    r"(?: (?P<destination>\S+) \[action (?P<action_id>\d+)\])?$"
)


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


# -- the daemon as a subprocess ------------------------------------------------------------------


@dataclass(frozen=True)
class Processed:
    """One ``INFO: <path>: <verdict> ... -> <action>`` line."""

    path: str
    verdict: str
    action: str
    destination: str | None


class Daemon:
    """``imagewatchd run`` as a subprocess, restartable; each run logs to its own file."""

    def __init__(self, config: Path, db: Path, workdir: Path) -> None:
        self.config = config
        self.db = db
        self.workdir = workdir
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("IMAGEWATCHD_")}
        self.env |= {
            "OPENBLAS_NUM_THREADS": "1",
            "XDG_CONFIG_HOME": str(workdir / "xdg-config"),
            "XDG_STATE_HOME": str(workdir / "xdg-state"),
            # the API's socket, not under xdg-state/imagewatchd/: that path outgrows a Unix
            # socket's limit in a pytest-xdist worker's temporary directory (one level deeper)
            "IMAGEWATCHD_SOCKET": str(workdir / "api.sock"),
        }
        self.proc: subprocess.Popen[bytes] | None = None
        self.runs = 0
        self.log = workdir / "run-0.log"
        self.lines: list[str] = []  # this run's log
        self.processed: list[Processed] = []  # every run's processed-file lines
        self.run_processed = 0  # how many of them this run logged
        self._offset = 0
        self._partial = b""

    def command(self, *args: str) -> list[str]:
        return [sys.executable, "-m", "imagewatchd", "--config", str(self.config),
                "--db", str(self.db), *args]  # fmt: skip

    def cli(self, *args: str, check: int = 0) -> str:
        """A one-shot command on the same config and database; its standard output."""
        proc = subprocess.run(
            self.command(*args), capture_output=True, text=True, env=self.env, timeout=120,
            cwd=self.workdir, check=False,
        )  # fmt: skip
        assert proc.returncode == check, (args, proc.returncode, proc.stdout, proc.stderr)
        return proc.stdout

    def start(self, argv: list[str] | None = None) -> None:
        """Start a run (``argv`` replaces the ``python -m imagewatchd`` command line)."""
        assert self.proc is None, "already running"
        self.runs += 1
        self.log = self.workdir / f"run-{self.runs}.log"
        self.lines, self._offset, self._partial = [], 0, b""
        self.run_processed = 0
        with self.log.open("wb") as err:
            self.proc = subprocess.Popen(
                argv or self.command("run"), stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL, stderr=err, env=self.env, cwd=self.workdir,
            )  # fmt: skip

    def read(self, *, exited: bool = False) -> list[str]:
        """The lines this run logged since the last call (once it ``exited``, a last line cut
        short by a SIGKILL too)."""
        with self.log.open("rb") as log:
            log.seek(self._offset)
            data = log.read()
        self._offset += len(data)
        *complete, self._partial = (self._partial + data).split(b"\n")
        if exited and self._partial:
            complete.append(self._partial)
            self._partial = b""
        # off the journal the daemon stamps each line with the time: read what follows it
        fresh = [STAMP.sub("", line.decode(errors="replace"), count=1) for line in complete]
        self.lines.extend(fresh)
        for line in fresh:
            if m := PROCESSED.match(line):
                self.run_processed += 1
                self.processed.append(
                    Processed(m["path"], m["verdict"], m["action"], m["destination"])
                )
        return fresh

    def tail(self, count: int = 30) -> str:
        return "\n".join(self.lines[-count:])

    def wait_until(
        self, condition: Callable[[], bool], what: str, timeout: float, *,
        interval: float = POLL, fail: bool = True,
    ) -> bool:  # fmt: skip
        """Poll the log (and ``condition``) until it holds; fail if the daemon exits first.

        With ``fail=False`` a timeout returns False, for the caller to say what is missing.
        """
        deadline = time.monotonic() + timeout
        while True:
            self.read()
            if condition():
                return True
            assert self.proc is not None
            if self.proc.poll() is not None:
                self.read(exited=True)
                pytest.fail(f"daemon exited ({self.proc.returncode}) before {what}:\n{self.tail()}")
            if time.monotonic() > deadline:
                if fail:
                    pytest.fail(f"no {what} within {timeout:.0f}s:\n{self.tail()}")
                return False
            time.sleep(interval)

    def logged(self, prefix: str) -> bool:
        return any(line.startswith(prefix) for line in self.lines)

    def wait_logged(self, prefix: str, timeout: float = START_TIMEOUT) -> None:
        self.wait_until(lambda: self.logged(prefix), repr(prefix), timeout)

    def wait_ready(self) -> None:
        self.wait_logged("INFO: watching ")
        self.wait_logged("INFO: reconcile: ")

    def wait_quiet(self, condition: Callable[[], bool], what: str, timeout: float) -> None:
        """``condition`` holds (or ``timeout``) and the log has been still for QUIET_AFTER s."""
        self.wait_until(condition, what, timeout, interval=0.1, fail=False)
        still_since = time.monotonic()
        while time.monotonic() - still_since < QUIET_AFTER:
            time.sleep(0.1)
            if self.read():
                still_since = time.monotonic()

    def kill(self) -> None:
        """SIGKILL, as the OOM killer would; the daemon must still be running."""
        proc, self.proc = self.proc, None
        assert proc is not None
        code = proc.poll()
        proc.kill()
        proc.wait(timeout=30)
        self.read(exited=True)
        assert code is None, f"the daemon had exited on its own ({code}):\n{self.tail()}"

    def terminate(self) -> int:
        """SIGTERM, as systemd stops the service; the exit status."""
        proc, self.proc = self.proc, None
        assert proc is not None
        proc.terminate()
        code = proc.wait(timeout=60)
        self.read(exited=True)
        return code

    def wait_exit(self, timeout: float = START_TIMEOUT) -> int:
        proc, self.proc = self.proc, None
        assert proc is not None
        code = proc.wait(timeout=timeout)
        self.read(exited=True)
        return code

    def close(self) -> None:
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait(timeout=30)
            self.proc = None


MakeDaemon = Callable[..., Daemon]


@pytest.fixture
def make_daemon(tmp_path: Path) -> Iterator[MakeDaemon]:
    """Daemons on configs in ``tmp_path``; whatever still runs is killed at teardown."""
    made: list[Daemon] = []

    def make(quarantine: Path, watches: list[dict[str, Any]], rescan: float = 3600.0) -> Daemon:
        config = tmp_path / "config.yaml"
        config.write_text(yaml.safe_dump({
            "quarantine_dir": str(quarantine), "rescan_interval": rescan, "workers": 2,
            "watches": watches,
        }))  # fmt: skip
        daemon = Daemon(config, tmp_path / "state" / "imagewatchd.db", tmp_path)
        made.append(daemon)
        return daemon

    yield make
    for daemon in made:
        daemon.close()


def incoming(path: Path, on_known: str = "log", settle: float = 0.3) -> dict[str, Any]:
    return {"path": str(path), "role": "incoming", "include": ["*"], "on_known": on_known,
            "on_duplicate": "log", "settle_seconds": settle}  # fmt: skip


def query(db: Path, sql: str, *params: object) -> list[tuple[Any, ...]]:
    """Rows as values; paths (stored as the name's bytes) come back as ``os`` gives them."""
    with closing(sqlite3.connect(db, timeout=30)) as conn:
        rows = conn.execute(sql, params).fetchall()
    return [tuple(os.fsdecode(v) if isinstance(v, bytes) else v for v in row) for row in rows]


@contextmanager
def short_inotify_queue(limit: int) -> Iterator[Callable[[], None]]:
    """Lower the kernel's inotify queue for instances created now; yields ``restore``.

    The limit is read when an inotify instance is created, so it is restored as soon as the
    daemon watches: other inotify users on this machine are not affected for long.
    """
    try:
        original = INOTIFY_QUEUE.read_text()
        INOTIFY_QUEUE.write_text(f"{limit}\n")
    except OSError as exc:
        pytest.skip(f"{INOTIFY_QUEUE} is not writable: {exc}")

    def restore() -> None:
        if INOTIFY_QUEUE.read_text() != original:
            INOTIFY_QUEUE.write_text(original)

    try:
        yield restore
    finally:
        restore()


@contextmanager
def no_change() -> Iterator[Callable[[], None]]:
    yield lambda: None


# -- pictures ------------------------------------------------------------------------------------


def jpeg(image: Image.Image, quality: int = 85) -> bytes:
    out = io.BytesIO()
    image.save(out, "JPEG", quality=quality)
    return out.getvalue()


def with_comment(jpeg_bytes: bytes, text: str) -> bytes:
    """The same picture with a JPEG comment segment after SOI: distinct bytes, same pixels."""
    payload = text.encode()
    segment = b"\xff\xfe" + (len(payload) + 2).to_bytes(2, "big") + payload
    return jpeg_bytes[:2] + segment + jpeg_bytes[2:]


@dataclass(frozen=True)
class Item:
    """A file the test drops into the watch: where, what, and whether it is a banned picture."""

    name: str
    data: bytes = field(repr=False)
    banned: bool

    @property
    def sha256(self) -> str:
        return sha256(self.data)


def banned_original(seed: int) -> Image.Image:
    return photo(seed, (128, 96))


def banned_variant(rng: random.Random, number: int) -> Item:
    """A resized and re-encoded copy of a banned picture, with bytes of its own."""
    size = rng.choice([(64, 48), (80, 60), (96, 72), (128, 96)])
    image = banned_original(rng.choice(BANNED_SEEDS)).resize(size, Image.Resampling.LANCZOS)
    if number % 3 == 0:
        out = io.BytesIO()
        image.save(out, "PNG", pnginfo=_png_text(f"variant {number}"))
        return Item(f"upload-{number:04d}.png", out.getvalue(), banned=True)
    data = with_comment(jpeg(image, rng.randint(70, 95)), f"variant {number}")
    name = f"upload-{number:04d}" + ("" if number % 5 == 0 else ".jpg")  # uploads: any name
    return Item(name, data, banned=True)


def _png_text(text: str) -> PngInfo:
    info = PngInfo()
    info.add_text("Comment", text)
    return info


def clean_photo(number: int) -> Item:
    data = with_comment(jpeg(photo(10_000 + number, (64, 48))), f"clean {number}")
    return Item(f"upload-{number:04d}.jpg", data, banned=False)


def batch(rng: random.Random, first: int, count: int, folder: str) -> list[Item]:
    """``count`` uploads, about half of them banned variants, shuffled."""
    items = [
        banned_variant(rng, n) if rng.random() < 0.5 else clean_photo(n)
        for n in range(first, first + count)
    ]
    rng.shuffle(items)
    return [Item(f"{folder}/{item.name}", item.data, item.banned) for item in items]


# -- the crash scene: a watched upload directory, a quarantine, a journal -----------------------


@dataclass
class Intended:
    """An action the journal holds as intended (under way when the daemon died)."""

    id: int
    sha256: str
    src: Path
    dst: Path
    tmp: Path | None

    def names(self) -> list[set[Path]]:
        """The pairs of names this action may leave one file at: source and destination, or
        (across filesystems) the destination and the private name the source is taken under
        just before it is removed."""
        pairs = [{self.src, self.dst}]
        if self.tmp is not None:
            pairs.append({self.src.parent / f"{self.tmp.name}.src", self.dst})
        return pairs


@dataclass
class Scene:
    """Uploads dropped into ``watch``; what must hold whatever instant the daemon dies."""

    watch: Path
    quarantine: Path
    stage: Path
    daemon: Daemon
    dropped: dict[str, Item] = field(default_factory=dict, repr=False)  # by sha256: all unique
    doubles_seen: int = 0  # crash states with a file at both names, as the crash table allows
    temps_seen: int = 0
    intended_seen: int = 0

    def drop(self, items: list[Item]) -> None:
        """Write each file beside the watch, then rename it in (as upload servers do)."""
        for item in items:
            assert item.sha256 not in self.dropped, "test data must be unique"
            staged = self.stage / item.name
            staged.parent.mkdir(parents=True, exist_ok=True)
            staged.write_bytes(item.data)
            staged.chmod(DROPPED_MODE)
            os.utime(staged, ns=(DROPPED_MTIME_NS, DROPPED_MTIME_NS))
            (self.watch / item.name).parent.mkdir(parents=True, exist_ok=True)
            staged.rename(self.watch / item.name)
            self.dropped[item.sha256] = item

    def files(self) -> tuple[dict[Path, str], list[Path]]:
        """The sha256 of every file in the watch and the quarantine; temporary files apart."""
        found: dict[Path, str] = {}
        temps: list[Path] = []
        for root in (self.watch, self.quarantine):
            for directory, _, names in os.walk(root):
                for name in names:
                    path = Path(directory, name)
                    if fnmatchcase(name, TMP_GLOB):
                        temps.append(path)
                    else:
                        found[path] = sha256(path.read_bytes())
        return found, temps

    def intended(self) -> list[Intended]:
        rows = query(self.daemon.db, "SELECT id, sha256, src_root, src_rel, dst_root, dst_rel, "
                     "tmp_name FROM actions WHERE state = 'intended'")  # fmt: skip
        found = []
        for action_id, digest, src_root, src_rel, dst_root, dst_rel, tmp_name in rows:
            dst = Path(dst_root, dst_rel)
            tmp = dst.parent / tmp_name if tmp_name else None
            found.append(Intended(action_id, digest, Path(src_root, src_rel), dst, tmp))
        return found

    def check_crash_state(self) -> set[int]:
        """Nothing lost, altered or foreign; a file at two names, or a temporary copy, only as
        an action under way in the journal allows. Returns the intended action ids."""
        found, temps = self.files()
        intended = self.intended()
        names: dict[str, set[Path]] = {}
        for path, digest in found.items():
            names.setdefault(digest, set()).add(path)
        lost = [self.dropped[s].name for s in self.dropped.keys() - names.keys()]
        foreign = [sorted(names[s]) for s in names.keys() - self.dropped.keys()]
        assert not lost, f"files lost: {lost}"
        assert not foreign, f"files altered or unknown: {foreign}"
        for digest, paths in names.items():
            if len(paths) > 1:
                assert any(a.sha256 == digest and paths in a.names() for a in intended), (
                    f"{self.dropped[digest].name} is at {sorted(paths)}, no action under way "
                    f"explains it: {intended}"
                )
                self.doubles_seen += 1
        for temp in temps:
            assert any(a.tmp == temp for a in intended), f"stray temporary file {temp}"
        self.temps_seen += len(temps)
        self.intended_seen += len(intended)
        return {a.id for a in intended}

    def done(self) -> bool:
        """Every banned variant quarantined, every clean photo in place and indexed."""
        try:
            found, temps = self.files()
        except FileNotFoundError:  # the daemon is running: a file moved while being listed
            return False
        where = {digest: path for path, digest in found.items()}
        for digest, item in self.dropped.items():
            expected = self.quarantine if item.banned else self.watch
            if digest not in where or not where[digest].is_relative_to(expected):
                return False
        indexed = {path for (path,) in query(self.daemon.db, "SELECT path FROM files")}
        clean = {str(self.watch / i.name) for i in self.dropped.values() if not i.banned}
        return not temps and clean <= indexed and not self.intended()

    def check_final(self) -> None:
        """The end state: every file once, where the rules put it; the journal closed."""
        found, temps = self.files()
        assert not temps, f"temporary files left: {temps}"
        counts = Counter(found.values())
        assert counts == Counter(self.dropped.keys()), "a file is missing or is there twice"
        for path, digest in found.items():
            item = self.dropped[digest]
            if item.banned:
                assert path.parent == self.quarantine, f"{item.name} not quarantined: {path}"
            else:
                assert path == self.watch / item.name, f"{item.name} moved to {path}"
        states = dict(query(self.daemon.db, "SELECT state, COUNT(*) FROM actions GROUP BY state"))
        assert "intended" not in states, states
        assert "failed" not in states, states
        done = query(self.daemon.db, "SELECT sha256 FROM actions WHERE kind = 'quarantine' "
                     "AND state = 'done'")  # fmt: skip
        banned = {s for s, item in self.dropped.items() if item.banned}
        assert Counter(s for (s,) in done) == Counter(banned), "journal and quarantine disagree"
        indexed = {path for (path,) in query(self.daemon.db, "SELECT path FROM files")}
        assert indexed == {str(self.watch / i.name) for i in self.dropped.values() if not i.banned}


def make_scene(make_daemon: MakeDaemon, tmp_path: Path, quarantine: Path) -> Scene:
    """An upload watch that quarantines banned pictures, with its block list in place."""
    watch, stage, banned = tmp_path / "uploads", tmp_path / "stage", tmp_path / "banned"
    for directory in (watch, stage, banned):
        directory.mkdir()
    daemon = make_daemon(quarantine, [incoming(watch, on_known="quarantine")])
    for seed in BANNED_SEEDS:
        banned_original(seed).save(banned / f"banned-{seed}.png")
    daemon.cli("known", "add", "--create", "--list", "banned", str(banned))
    return Scene(watch, quarantine, stage, daemon)


def check_test_data(scene: Scene, batches: list[list[Item]]) -> None:
    """The test's own premise, by ``imagewatchd check``: variants match, clean photos do not."""
    probe = scene.stage / "probe"
    items = {str(probe / i.name): i for b in batches for i in b}
    for path, item in items.items():
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        Path(path).write_bytes(item.data)
    out = scene.daemon.cli("check", "--json", *items, check=1)  # by name: any name is checked
    verdicts = {r["path"]: r["verdict"] for r in map(json.loads, out.splitlines())}
    wrong = [p for p, i in items.items() if verdicts.get(p) != ("known" if i.banned else "clean")]
    assert not wrong, f"test data the block list does not classify as designed: {wrong[:5]}"
    shutil.rmtree(probe)


@dataclass
class Loop:
    cycles: int = 0
    killed_before_ready: int = 0
    recovered: int = 0  # "recovered action" lines: kills that left a move under way


def kill_moment(daemon: Daemon, rng: random.Random, early: bool) -> None:
    """Wait for a random moment: in start-up or recovery (``early``), else amid processing."""
    if early:
        time.sleep(rng.uniform(0.2, 1.5))
        return
    target = daemon.run_processed + rng.randint(1, 15)
    daemon.wait_until(lambda: daemon.run_processed >= target, "processing", 5, fail=False)
    time.sleep(rng.uniform(0.0, 0.1))


def kill_and_check(scene: Scene, loop: Loop, unresolved: set[int]) -> set[int]:
    """SIGKILL, then the crash-state invariants; returns the actions left under way."""
    daemon = scene.daemon
    daemon.kill()
    loop.cycles += 1
    loop.recovered += sum(line.startswith("WARNING: recovered action") for line in daemon.lines)
    if daemon.logged("INFO: watching "):  # its start-up recovery ran: nothing left from before
        intended = query(daemon.db, "SELECT id FROM actions WHERE state = 'intended'")
        still = {i for (i,) in intended} & unresolved
        assert not still, f"the restart left actions {still} intended:\n{daemon.tail()}"
    return scene.check_crash_state()


def crash_loop(scene: Scene, batches: list[list[Item]], rng: random.Random, budget: float) -> Loop:
    """Drop ``batches[0]`` into a running daemon, then SIGKILL and restart it at random moments,
    dropping one more batch per cycle, until the batches or the time ``budget`` run out."""
    daemon, loop = scene.daemon, Loop()
    deadline = time.monotonic() + budget
    daemon.start()
    daemon.wait_ready()
    scene.drop(batches[0])
    unresolved: set[int] = set()
    early = False
    for number, extra in enumerate(batches[1:]):
        kill_moment(daemon, rng, early)
        unresolved = kill_and_check(scene, loop, unresolved)
        if time.monotonic() > deadline:
            break
        early = rng.random() < 0.2
        if early or number % 2:
            scene.drop(extra)  # while the daemon is down: the start-up reconcile finds them
        daemon.start()
        if early:
            loop.killed_before_ready += 1
            continue
        daemon.wait_logged("INFO: watching ")
        if not number % 2:
            scene.drop(extra)  # while it runs: events
    if daemon.proc is None:
        daemon.start()
    daemon.wait_ready()
    daemon.wait_until(scene.done, "every file where the rules put it", 120, interval=0.25)
    assert daemon.terminate() == 0, daemon.tail()
    loop.recovered += sum(line.startswith("WARNING: recovered action") for line in daemon.lines)
    scene.check_final()
    return loop


# -- 1. burst ------------------------------------------------------------------------------------


def write_burst(watch: Path, bases: list[bytes]) -> dict[str, str]:
    """BURST_FILES files, written and closed as fast as a few threads can, into new folders."""
    per = BURST_FILES // BURST_WRITERS

    def writer(number: int) -> dict[str, str]:
        folder = watch / f"d{number}"
        folder.mkdir()
        written = {}
        for i in range(per):
            data = with_comment(bases[i % len(bases)], f"{number}-{i}")
            path = folder / f"f{i:05d}.jpg"
            path.write_bytes(data)
            written[str(path)] = sha256(data)
        return written

    expected: dict[str, str] = {}
    with ThreadPoolExecutor(BURST_WRITERS) as pool:
        for written in pool.map(writer, range(BURST_WRITERS)):
            expected |= written
    return expected


@pytest.mark.slow
@pytest.mark.alone  # lowers fs.inotify.max_queued_events (overflow); 20,000 files
@pytest.mark.parametrize("overflow", [False, True], ids=["events", "overflow"])
def test_burst_every_file_processed_exactly_once(
    make_daemon: MakeDaemon, tmp_path: Path, overflow: bool
) -> None:
    watch = tmp_path / "incoming"
    watch.mkdir()
    daemon = make_daemon(tmp_path / "quarantine", [incoming(watch)], rescan=3600.0)
    bases = [jpeg(photo(seed, (64, 48))) for seed in range(32)]
    with short_inotify_queue(FORCED_QUEUE) if overflow else no_change() as restore:
        daemon.start()
        daemon.wait_logged("INFO: watching ")
        restore()
    daemon.wait_ready()
    began = time.monotonic()
    expected = write_burst(watch, bases)
    written = time.monotonic() - began
    daemon.wait_quiet(
        lambda: len(daemon.processed) >= len(expected), f"{len(expected)} files processed",
        BURST_TIMEOUT,
    )  # fmt: skip
    took = time.monotonic() - began
    assert daemon.terminate() == 0, daemon.tail()

    counts = Counter(p.path for p in daemon.processed)
    twice = {path: n for path, n in counts.items() if n > 1}
    missing = expected.keys() - counts.keys()
    assert not twice, f"{len(twice)} files processed more than once, e.g. {list(twice)[:5]}"
    assert not missing, f"{len(missing)} files never processed, e.g. {sorted(missing)[:5]}"
    assert counts.keys() == expected.keys()
    assert {(p.verdict, p.action) for p in daemon.processed} == {("clean", "none")}
    rows = query(daemon.db, "SELECT path, sha256, error FROM files")
    assert len(rows) == len(expected)
    assert {path: digest for path, digest, _ in rows} == expected
    assert [row for row in rows if row[2] is not None] == []
    problems = [line for line in daemon.lines if line.startswith(("ERROR", "CRITICAL"))]
    assert problems == []
    lost = [line for line in daemon.lines if "events were lost" in line]
    if overflow:
        assert lost, "the forced overflow was not reported"
        assert sum(line.startswith("INFO: reconcile: ") for line in daemon.lines) >= 2
    print(f"\nburst {'overflow' if overflow else 'events'}: {len(expected)} files written in "
          f"{written:.1f}s, all processed {took:.1f}s after the first write "
          f"({len(expected) / took:.0f}/s); {len(lost)} overflow rescans")  # fmt: skip


@pytest.mark.slow
@pytest.mark.alone  # lowers fs.inotify.max_queued_events for every new instance
def test_a_close_event_lost_in_an_overflow_does_not_hold_the_file(
    make_daemon: MakeDaemon, tmp_path: Path
) -> None:
    """A file whose writes were seen but whose close was dropped by a queue overflow is found
    by the overflow's rescan, complete and still: it is processed then, not a minute later."""
    watch = tmp_path / "incoming"
    watch.mkdir()
    daemon = make_daemon(tmp_path / "quarantine", [incoming(watch) | {"exclude": ["*.txt"]}])
    with short_inotify_queue(32) as restore:
        daemon.start()
        daemon.wait_logged("INFO: watching ")
        restore()
    daemon.wait_ready()
    assert daemon.proc is not None
    data, marker, upload = jpeg(photo(1, (64, 48))), watch / "marker.jpg", watch / "upload.jpg"
    with upload.open("wb") as writer:
        writer.write(data[:100])
        writer.flush()  # the daemon sees the writes, and waits for the close
        marker.write_bytes(jpeg(photo(2, (64, 48))))  # events come in order: once this is...
        daemon.wait_until(
            lambda: any(p.path == str(marker) for p in daemon.processed), "the marker", 30
        )  # ...processed, the upload's writes were seen
        daemon.proc.send_signal(signal.SIGSTOP)  # reads no events: the kernel queue fills
        try:
            for number in range(40):
                (watch / f"note-{number}.txt").write_text("excluded, but queued by the kernel")
            writer.write(data[100:])
        except BaseException:
            daemon.proc.send_signal(signal.SIGCONT)
            raise
    closed = time.monotonic()  # the close event is dropped: the queue is full
    daemon.proc.send_signal(signal.SIGCONT)
    daemon.wait_logged("WARNING: events were lost", 30)
    processed = daemon.wait_until(
        lambda: any(p.path == str(upload) for p in daemon.processed),
        "processing of the upload", 10, interval=0.1, fail=False,
    )  # fmt: skip
    waited = time.monotonic() - closed
    assert daemon.terminate() == 0
    assert upload.read_bytes() == data
    assert processed, (
        f"not processed {waited:.0f}s after its close and the overflow rescan: the settler "
        "still awaits the close event that was lost"
    )


# -- 2. SIGKILL loop -----------------------------------------------------------------------------


@pytest.mark.slow
def test_sigkill_loop_loses_nothing(make_daemon: MakeDaemon, tmp_path: Path) -> None:
    rng = random.Random(20240601)
    scene = make_scene(make_daemon, tmp_path, tmp_path / "quarantine")
    batches = [batch(rng, 0, 300, "burst")]
    batches += [batch(rng, 1000 + 100 * k, 30, f"b{k:02d}") for k in range(20)]
    check_test_data(scene, batches)
    loop = crash_loop(scene, batches, rng, budget=75.0)
    assert loop.cycles >= 10
    print(f"\nsigkill loop: {loop}; {len(scene.dropped)} files; crash states seen: "
          f"{scene.intended_seen} actions under way, {scene.doubles_seen} files at two names, "
          f"{scene.temps_seen} temporary copies")  # fmt: skip


# -- 3. cross-filesystem quarantine --------------------------------------------------------------


@pytest.fixture
def shm_quarantine(tmp_path: Path) -> Iterator[Path]:
    """A quarantine on tmpfs, another filesystem than the watch (moves become copies)."""
    shm = Path("/dev/shm")
    if not shm.is_dir() or shm.stat().st_dev == tmp_path.stat().st_dev:
        pytest.skip("no /dev/shm on another filesystem than the test directory")
    base = Path(tempfile.mkdtemp(prefix="imagewatchd-test-", dir=shm))
    try:
        yield base / "quarantine"
    finally:
        shutil.rmtree(base)


def check_private(scene: Scene) -> None:
    assert stat.S_IMODE(scene.quarantine.stat().st_mode) == 0o700
    for path in scene.quarantine.iterdir():
        mode = stat.S_IMODE(path.stat().st_mode)
        assert mode == 0o600, f"{path} has mode {mode:o}, not 600"


def check_restore(scene: Scene) -> None:
    """``quarantine restore`` puts one back, byte-identical, with its mode and mtime."""
    daemon = scene.daemon
    rows = json.loads(daemon.cli("quarantine", "list", "--json"))
    assert len(rows) == sum(i.banned for i in scene.dropped.values())
    row = rows[0]
    item = scene.dropped[row["sha256"]]
    original = scene.watch / item.name
    assert row["original"] == str(original)
    assert not original.exists()
    out = daemon.cli("quarantine", "restore", str(row["id"]))
    assert out.strip() == f"action {row['id']}: back at {original}"
    assert not Path(row["quarantined"]).exists()
    info = original.stat()
    assert original.read_bytes() == item.data
    assert stat.S_IMODE(info.st_mode) == DROPPED_MODE
    assert info.st_mtime_ns == DROPPED_MTIME_NS
    daemon.start()  # the restored file is exempted where it is: the daemon leaves it alone
    daemon.wait_ready()
    daemon.wait_quiet(lambda: True, "a quiet daemon", 30)
    assert daemon.terminate() == 0
    assert original.read_bytes() == item.data
    assert not [line for line in daemon.lines if line.startswith(f"INFO: {original}: ")]


@pytest.mark.slow
def test_sigkill_loop_with_quarantine_on_another_filesystem(
    make_daemon: MakeDaemon, tmp_path: Path, shm_quarantine: Path
) -> None:
    rng = random.Random(20240602)
    scene = make_scene(make_daemon, tmp_path, shm_quarantine)
    batches = [batch(rng, 0, 200, "burst")]
    batches += [batch(rng, 1000 + 100 * k, 30, f"b{k:02d}") for k in range(15)]
    check_test_data(scene, batches)
    loop = crash_loop(scene, batches, rng, budget=40.0)
    assert loop.cycles >= 5
    for path in scene.quarantine.iterdir():
        assert path.stat().st_dev != scene.watch.stat().st_dev
        assert path.read_bytes() == scene.dropped[sha256(path.read_bytes())].data
    print(f"\ncross-filesystem sigkill loop: {loop}; {len(scene.dropped)} files; crash states "
          f"seen: {scene.intended_seen} actions under way, {scene.doubles_seen} files at two "
          f"names, {scene.temps_seen} temporary copies")  # fmt: skip
    check_restore(scene)
    check_private(scene)  # after the restore: a failure here must not hide the restore's


# -- 3b. SIGKILL at chosen instants of a quarantine move -----------------------------------------

# Runs the real daemon with one function wrapped so that the process SIGKILLs itself right after
# that function returns: the on-disk and journal state is exactly what a kill there leaves.
KILL_AFTER = """
import os, signal, sys
from imagewatchd import act, cli, fileops
from imagewatchd.store import Store

owner, name = {
    "intend": (Store, "intend"),
    "fill-tmp": (fileops, "_fill_tmp"),
    "copy-to-dst": (fileops, "_copy_to_dst"),
    "move": (fileops, "move"),
    "rename": (fileops, "_rename_noreplace"),
}[sys.argv[1]]
original = getattr(owner, name)

def killed_after(*args, **kwargs):
    result = original(*args, **kwargs)
    os.kill(os.getpid(), signal.SIGKILL)
    return result

setattr(owner, name, killed_after)
sys.exit(cli.main(sys.argv[2:]))
"""


@pytest.mark.slow
@pytest.mark.parametrize(
    ("point", "cross_device", "crash_state", "recovery"),
    [  # crash_state: (files at two names, temporary copies), as fileops' crash table says
        pytest.param("intend", True, (0, 0), "rolled_back", id="journalled-only"),
        pytest.param("fill-tmp", True, (0, 1), "rolled_back", id="copy-in-tmp"),
        pytest.param("copy-to-dst", True, (1, 0), "done (finished the copy)", id="copied"),
        pytest.param("move", True, (0, 0), "done", id="copied-source-removed"),
        pytest.param("move", False, (0, 0), "done", id="renamed-same-filesystem"),
    ],
)
def test_sigkill_at_each_step_of_a_quarantine_move(
    make_daemon: MakeDaemon, tmp_path: Path, point: str, cross_device: bool,
    crash_state: tuple[int, int], recovery: str, request: pytest.FixtureRequest,
) -> None:  # fmt: skip
    quarantine = request.getfixturevalue("shm_quarantine") if cross_device else tmp_path / "q"
    scene = make_scene(make_daemon, tmp_path, quarantine)
    item = banned_variant(random.Random(7), 1)
    daemon = scene.daemon
    daemon.start([sys.executable, "-c", KILL_AFTER, point, *daemon.command("run")[3:]])
    daemon.wait_logged("INFO: watching ")
    scene.drop([item])
    assert daemon.wait_exit() == -signal.SIGKILL, daemon.tail()
    assert len(scene.check_crash_state()) == 1, "the kill did not leave the move under way"
    assert (scene.doubles_seen, scene.temps_seen) == crash_state

    daemon.start()
    daemon.wait_ready()
    daemon.wait_until(scene.done, "the banned picture quarantined", 60, interval=0.1)
    assert daemon.terminate() == 0
    recovered = [line for line in daemon.lines if line.startswith("WARNING: recovered action")]
    assert len(recovered) == 1
    assert recovered[0].endswith(f": {recovery}"), recovered
    scene.check_final()
    (quarantined,) = scene.quarantine.iterdir()
    assert quarantined.read_bytes() == item.data
    check_private(scene)


@pytest.mark.slow
def test_sigkill_during_a_restore_then_recovery(make_daemon: MakeDaemon, tmp_path: Path) -> None:
    """``quarantine restore`` killed right after its rename: the next start finishes it, and
    the file is back as it was, with its own mode and mtime, and stays."""
    scene = make_scene(make_daemon, tmp_path, tmp_path / "quarantine")
    item = banned_variant(random.Random(7), 1)
    daemon = scene.daemon
    daemon.start()
    daemon.wait_ready()
    scene.drop([item])
    daemon.wait_until(scene.done, "the banned picture quarantined", 60, interval=0.1)
    assert daemon.terminate() == 0
    (row,) = json.loads(daemon.cli("quarantine", "list", "--json"))
    restore = [sys.executable, "-c", KILL_AFTER, "rename", *daemon.command()[3:]]
    killed = subprocess.run(
        [*restore, "quarantine", "restore", str(row["id"])], capture_output=True, text=True,
        env=daemon.env, timeout=120, check=False,
    )  # fmt: skip
    assert killed.returncode == -signal.SIGKILL, killed
    original = scene.watch / item.name
    assert original.read_bytes() == item.data

    daemon.start()  # recovery finishes the restore
    daemon.wait_ready()
    daemon.wait_quiet(lambda: True, "a quiet daemon", 30)
    assert daemon.terminate() == 0
    recovered = [line for line in daemon.lines if line.startswith("WARNING: recovered action")]
    assert len(recovered) == 1
    assert f"(restore {row['quarantined']}): done" in recovered[0]
    states = query(daemon.db, "SELECT kind, state FROM actions ORDER BY id")
    assert states == [("quarantine", "undone"), ("restore", "done")]
    assert original.read_bytes() == item.data
    assert list(scene.quarantine.iterdir()) == []
    info = original.stat()
    assert info.st_mtime_ns == DROPPED_MTIME_NS
    assert stat.S_IMODE(info.st_mode) == DROPPED_MODE, f"restored with mode {info.st_mode:o}"
