"""Isolated decoding: real worker processes crashed, starved and hung through the test hooks
(``IMAGEWATCHD_TEST_DECODER_HOOKS=1``), through the pool, the daemon, ``check`` and ``scan``."""

from __future__ import annotations

import io
import os
import re
import shutil
import signal
import struct
import subprocess
import sys
import time
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from imagewatchd import decodecost
from imagewatchd.act import Actor
from imagewatchd.config import parse
from imagewatchd.decoding import Settings, fingerprint_path, sandbox
from imagewatchd.decoding.inline import InlineDecoder
from imagewatchd.decoding.pool import POISON_AFTER, WorkerPool
from imagewatchd.decoding.worker import TEST_HOOKS, TEST_PREFIX
from imagewatchd.errors import FingerprintError
from imagewatchd.fingerprint import DEFAULT_MAX_PIXELS, Limits
from imagewatchd.match import Matcher
from imagewatchd.models import FileStat, SettledFile
from imagewatchd.pipeline import Pipeline
from imagewatchd.store import Store
from tests.conftest import photo
from tests.daemon_harness import ENV, Daemon, iw

HOOKED = {**ENV, TEST_HOOKS: "1"}
SIDE = 13_000  # 169 Mpx: just under the default pixel limit
assert SIDE * SIDE <= DEFAULT_MAX_PIXELS


@pytest.fixture
def hooks(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(TEST_HOOKS, "1")  # workers inherit the environment


@pytest.fixture
def pool(hooks: None) -> Iterator[WorkerPool]:
    decoder = WorkerPool(Settings(timeout=3.0, workers=1))
    yield decoder
    decoder.close()


def hook(path: Path, command: str) -> Path:
    path.write_bytes(TEST_PREFIX + command.encode())
    return path


def good(tmp_path: Path, name: str = "good.png") -> Path:
    path = tmp_path / name
    photo(3, (320, 240)).save(path)
    return path


def png_bomb(path: Path, side: int, color_type: int, bit_depth: int = 8) -> Path:
    """A real PNG of side x side zero pixels, written row by row: a few hundred KB."""
    channels = {0: 1, 2: 3, 4: 2, 6: 4}[color_type]
    row = b"\0" * (1 + side * channels * bit_depth // 8)
    packer = zlib.compressobj(9)
    data = b"".join(packer.compress(row) for _ in range(side)) + packer.flush()
    header = struct.pack(">IIBBBBB", side, side, bit_depth, color_type, 0, 0, 0)
    with path.open("wb") as out:
        out.write(b"\x89PNG\r\n\x1a\n")
        for kind, body in ((b"IHDR", header), (b"IDAT", data), (b"IEND", b"")):
            out.write(struct.pack(">I", len(body)) + kind + body)
            out.write(struct.pack(">I", zlib.crc32(kind + body)))
    return path


# --- the pool on its own ---------------------------------------------------------------------


@pytest.mark.parametrize(("command", "signal_name"), [("segv", "SIGSEGV"), ("abort", "SIGABRT")])
def test_a_crashing_file_is_poison_after_three_workers(
    pool: WorkerPool, tmp_path: Path, command: str, signal_name: str, caplog: Any
) -> None:
    with pytest.raises(FingerprintError) as info:
        fingerprint_path(pool, hook(tmp_path / "crash.png", command))
    assert info.value.reason == (
        f"decoder crashed (signal {signal_name}), {POISON_AFTER} times: "
        "not retried until the file changes"
    )
    retries = [r.getMessage() for r in caplog.records if "trying a new worker" in r.getMessage()]
    assert len(retries) == POISON_AFTER - 1
    _, fp = fingerprint_path(pool, good(tmp_path))  # the next file: a fresh worker
    assert fp.format == "PNG"


def test_a_hanging_decoder_is_killed_at_the_time_limit(pool: WorkerPool, tmp_path: Path) -> None:
    hung = hook(tmp_path / "hang.png", "hang")
    pid = pool.pids() or None
    started = time.monotonic()
    with pytest.raises(FingerprintError, match=r"^.*decode timed out \(after 3 s\)$"):
        fingerprint_path(pool, hung)
    assert 3.0 <= time.monotonic() - started < 10.0
    assert pid is None or not Path(f"/proc/{pid[0]}").exists()
    assert fingerprint_path(pool, good(tmp_path))[1].format == "PNG"


def test_a_worker_killed_while_idle_is_replaced_without_blaming_the_next_file(
    pool: WorkerPool, tmp_path: Path
) -> None:
    pool.start()
    (pid,) = pool.pids()
    os.kill(pid, signal.SIGKILL)  # e.g. the kernel's OOM killer, between two files
    while Path(f"/proc/{pid}/status").exists() and "zombie" not in _read(pid, "status"):
        time.sleep(0.01)
    assert fingerprint_path(pool, good(tmp_path))[1].format == "PNG"
    assert pool.pids() != [pid]


def test_unbounded_allocation_hits_the_workers_memory_ceiling(
    pool: WorkerPool, tmp_path: Path
) -> None:
    with pytest.raises(FingerprintError, match=r"over the memory limit$"):
        fingerprint_path(pool, hook(tmp_path / "greedy.png", "alloc"))
    assert fingerprint_path(pool, good(tmp_path))[1].format == "PNG"


def test_workers_cannot_grow_any_file(pool: WorkerPool, tmp_path: Path) -> None:
    target = tmp_path / "target.txt"
    target.write_bytes(b"")
    # refused by Landlock where the kernel has it (EACCES), else by RLIMIT_FSIZE (EFBIG)
    with pytest.raises(FingerprintError, match=r"cannot write: (Permission denied|File too large)"):
        fingerprint_path(pool, hook(tmp_path / "writer.png", f"write {target}"))
    assert target.read_bytes() == b""


def test_workers_cannot_create_anything(pool: WorkerPool, tmp_path: Path) -> None:
    if not sandbox.abi():
        pytest.skip("this kernel has no Landlock: workers keep their resource limits only")
    created = tmp_path / "created.txt"
    with pytest.raises(FingerprintError, match="cannot write: Permission denied"):
        fingerprint_path(pool, hook(tmp_path / "creator.png", f"write {created}"))
    assert not created.exists()


def test_the_sandbox_refuses_every_change_and_every_execution(tmp_path: Path) -> None:
    if not sandbox.abi():
        pytest.skip("this kernel has no Landlock")
    existing = tmp_path / "existing.txt"
    existing.write_text("kept")
    script = f"""
import os, subprocess, sys
from imagewatchd.decoding import sandbox
print(sandbox.restrict())
print(open({str(existing)!r}).read())
for attempt in (
    lambda: open({str(tmp_path / "new.txt")!r}, "w"),
    lambda: open({str(existing)!r}, "a"),
    lambda: os.unlink({str(existing)!r}),
    lambda: os.rename({str(existing)!r}, {str(tmp_path / "moved.txt")!r}),
    lambda: os.mkdir({str(tmp_path / "dir")!r}),
    lambda: subprocess.run(["/bin/true"], check=True),
):
    try:
        attempt()
    except PermissionError:
        print("refused")
    else:
        print("allowed")
"""
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True, timeout=60
    ).stdout.splitlines()
    assert out[0].startswith("landlock ABI")
    assert out[1:] == ["kept"] + ["refused"] * 6
    assert sorted(p.name for p in tmp_path.iterdir()) == ["existing.txt"]


def test_worker_limits_are_set_for_good(pool: WorkerPool, tmp_path: Path) -> None:
    fingerprint_path(pool, good(tmp_path))
    (pid,) = pool.pids()
    limits = {
        m.group(1).strip(): (m.group(2), m.group(3))
        for m in re.finditer(r"^(Max [a-z ]+?)\s{2,}(\S+)\s+(\S+)", _read(pid, "limits"), re.M)
    }
    assert limits["Max core file size"] == ("0", "0")
    assert limits["Max file size"] == ("0", "0")
    assert limits["Max open files"] == ("16", "16")
    soft, hard = limits["Max address space"]
    assert soft == hard != "unlimited"
    assert int(soft) < _vm(pid, "VmSize") + (128 << 20) + (128 << 20)
    assert "imagewatchd.decoding.worker" in _read(pid, "cmdline").replace("\0", " ")


def test_a_worker_is_a_fresh_interpreter_holding_only_its_socket(
    pool: WorkerPool, tmp_path: Path
) -> None:
    path = good(tmp_path)
    fd = os.open(path, os.O_RDONLY)  # an fd of ours that must not leak into the worker
    try:
        fingerprint_path(pool, path)
        (pid,) = pool.pids()
        targets = [os.readlink(f"/proc/{pid}/fd/{n}") for n in os.listdir(f"/proc/{pid}/fd")]
    finally:
        os.close(fd)
    assert str(path) not in targets
    assert [t for t in targets if t.startswith("socket:")] != []
    assert all(t.startswith(("socket:", "/dev/null", "pipe:")) or "pytest" not in t
               for t in targets)  # fmt: skip


# --- memory: refused before decoding, or decoded within the estimate ------------------------


def test_a_bomb_at_the_pixel_limit_is_refused_without_decoding(
    pool: WorkerPool, tmp_path: Path
) -> None:
    bomb = png_bomb(tmp_path / "bomb.png", SIDE, color_type=6)
    assert bomb.stat().st_size < 1 << 20
    pool.start()
    (pid,) = pool.pids()
    before = _vm(pid, "VmHWM")
    with pytest.raises(FingerprintError, match=r"over the memory limit \(decoding needs about"):
        fingerprint_path(pool, bomb)
    assert _vm(pid, "VmHWM") - before < 16 << 20  # refused from the header, not decoded
    with pytest.raises(FingerprintError, match="over the memory limit"):
        fingerprint_path(InlineDecoder(), bomb)  # the same rule in-process


def _encoded(img: Image.Image, fmt: str, **save: Any) -> bytes:
    out = io.BytesIO()
    img.save(out, fmt, **save)
    return out.getvalue()


def _sample(mode: str) -> tuple[Image.Image, str, dict[str, Any]]:
    rgb = photo(11, (1800, 1500))
    if mode == "P+transparency":
        return rgb.convert("P"), "PNG", {"transparency": 0}
    if mode == "I;16":
        return rgb.convert("L").point(lambda v: v * 200, "I").convert("I;16"), "PNG", {}
    if mode in ("WEBP", "TIFF"):
        return rgb.convert("RGBA"), mode, {}
    if mode == "HEIF":
        return rgb, "HEIF", {"quality": 90}
    if mode == "progressive":
        return rgb, "JPEG", {"progressive": True, "quality": 95}
    return rgb.convert(mode), "PNG", {}


@pytest.mark.parametrize(
    "mode",
    ["RGB", "RGBA", "LA", "L", "I;16", "P+transparency", "WEBP", "TIFF", "HEIF", "progressive"],
)
def test_decoding_stays_within_the_estimate(hooks: None, tmp_path: Path, mode: str) -> None:
    img, fmt, save = _sample(mode)
    path = tmp_path / f"sample.{fmt.lower()}"
    path.write_bytes(_encoded(img, fmt, **save))
    with Image.open(path) as opened:
        coefficients = decodecost.jpeg_coefficient_bytes(opened)
        if fmt == "JPEG":
            opened.draft("L", (256, 256))
        estimate = coefficients + decodecost.decode_bytes(opened, path.stat().st_size)
    decoder = WorkerPool(Settings(workers=1))
    try:
        decoder.start()
        (pid,) = decoder.pids()
        before = _vm(pid, "VmHWM")
        fingerprint_path(decoder, path)
        grown = _vm(pid, "VmHWM") - before
    finally:
        decoder.close()
    assert grown <= estimate, f"{mode}: grew {grown >> 20} MiB, estimated {estimate >> 20} MiB"


def _read(pid: int, name: str) -> str:
    return Path(f"/proc/{pid}/{name}").read_text()


def _vm(pid: int, field: str) -> int:
    found = re.search(rf"^{field}:\s+(\d+) kB", _read(pid, "status"), re.M)
    assert found is not None
    return int(found.group(1)) * 1024


# --- through the daemon and the commands -----------------------------------------------------


def _config(base: Path) -> dict[str, Any]:
    return {
        "quarantine_dir": str(base / "quarantine"),
        "rescan_interval": 0,
        "decoding": {"timeout_seconds": 2},
        "watches": [{"path": str(base / "uploads"), "role": "incoming",
                     "on_known": "quarantine", "include": ["*"], "settle_seconds": 0.5}],
    }  # fmt: skip


def test_the_daemon_survives_crashes_hangs_and_starvation(tmp_path: Path) -> None:
    uploads = tmp_path / "uploads"
    uploads.mkdir()
    banned = tmp_path / "banned.jpg"
    photo(100, (800, 600)).save(banned, quality=90)
    daemon = Daemon(tmp_path, _config(tmp_path), env={TEST_HOOKS: "1"})
    assert (
        iw(daemon.db, "known", "add", "--create", "--list", "banned", str(banned)).returncode == 0
    )
    daemon.start()
    try:
        bad = {name: hook(uploads / f"{name}.png", name) for name in ("segv", "hang", "alloc")}
        expected = {
            "segv": rf"decoder crashed \(signal SIGSEGV\), {POISON_AFTER} times: not retried",
            "hang": r"decode timed out \(after 2 s\)",
            "alloc": r"over the memory limit$",
        }
        for name, path in bad.items():
            daemon.wait_for(rf"WARNING: {re.escape(str(path))}: error: {expected[name]}", 30)
        upload = uploads / "upload.jpg"
        photo(100, (800, 600)).save(upload, quality=80)
        assert "known" in daemon.processed(upload)  # the daemon is alive and still acting
        assert not upload.exists()
        assert all(path.exists() for path in bad.values())  # left in place
        assert daemon.stop() == 0
        # restarted: the poison file is not tried again while it is unchanged
        daemon.start()
        marker = uploads / "after-restart.jpg"
        photo(7, (400, 300)).save(marker)
        daemon.processed(marker)
        assert "decoder crashed" not in daemon.log()
        assert "segv.png" not in daemon.log()
    finally:
        daemon.kill()


def _run(*args: str, db: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "imagewatchd", "--db", str(db), *args],
        capture_output=True, text=True, env={**HOOKED, "IMAGEWATCHD_CONFIG": ""}, timeout=120,
        check=False,
    )  # fmt: skip


def test_check_reports_a_crash_and_carries_on(tmp_path: Path) -> None:
    crash = hook(tmp_path / "crash.png", "segv")
    ok = good(tmp_path)
    result = _run("check", str(crash), str(ok), db=tmp_path / "db" / "x.db")
    assert result.returncode == 2, result
    assert "decoder crashed (signal SIGSEGV)" in result.stdout
    assert "good.png" in result.stdout
    assert "Traceback" not in result.stderr


def test_scan_decodes_in_the_pool(tmp_path: Path) -> None:
    tree = tmp_path / "tree"
    tree.mkdir()
    hook(tree / "crash.png", "abort")
    good(tree, "a.png")
    result = _run("scan", "--json", str(tree), db=tmp_path / "db" / "x.db")
    assert result.returncode == 2, result
    assert '"new": 1' in result.stdout
    assert '"errors": 1' in result.stdout
    assert "decoder crashed (signal SIGABRT)" in result.stderr


def test_limits_come_from_the_config(tmp_path: Path) -> None:
    config = tmp_path / "config.yaml"
    config.write_text("decoding:\n  memory_mb: 16\n")
    big = tmp_path / "big.png"
    photo(5, (2000, 2000)).convert("RGBA").save(big)
    result = _run("--config", str(config), "check", str(big), db=tmp_path / "db" / "x.db")
    assert result.returncode == 2
    assert "over the memory limit" in result.stdout
    assert "the limit is 16 MiB" in result.stdout
    assert Limits().memory_bytes == 128 << 20


# --- the read side of a swapped directory --------------------------------------------------


def test_the_pipeline_never_reads_through_a_directory_swapped_for_a_symlink(
    tmp_path: Path,
) -> None:
    """Found under ``incoming/new`` by an event, read after ``new`` became a symlink to a
    directory outside: refused, and nothing outside is read or recorded."""
    incoming, outside = tmp_path / "incoming", tmp_path / "outside"
    (incoming / "new").mkdir(parents=True)
    outside.mkdir()
    secret = outside / "secret.jpg"
    photo(9, (320, 240)).save(secret)
    shutil.rmtree(incoming / "new")
    (incoming / "new").symlink_to(outside)
    config = parse({"watches": [{"path": str(incoming), "role": "incoming"}]}, "test")
    info = secret.stat()
    settled = SettledFile(str(incoming / "new" / "secret.jpg"), 0, FileStat.of(info))
    with Store(tmp_path / "t.db") as store:
        matcher = Matcher.load(store, config.matching.thresholds)
        actor = Actor(store, config, tmp_path / "quarantine")
        pipeline = Pipeline(store, matcher, actor, config, InlineDecoder())
        outcome = pipeline.process(settled)
        row = store.get_file(settled.path)
    assert outcome.action == "skipped"
    assert outcome.detail == f"not read: {incoming / 'new'}: is a symbolic link; not followed"
    assert row is None  # nothing of the outside file is recorded under the inside name
