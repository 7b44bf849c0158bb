"""The daemon as a user runs it: a real subprocess watching real directories."""

from __future__ import annotations

import hashlib
import io
import os
import re
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import photo
from tests.daemon_harness import Daemon, iw, sha256


@pytest.fixture
def site(tmp_path: Path) -> dict[str, Path]:
    dirs = {name: tmp_path / name for name in ("uploads", "library", "dupes", "quarantine")}
    for name in ("uploads", "library"):
        dirs[name].mkdir()
    return dirs


def config_for(site: dict[str, Path], **uploads: Any) -> dict[str, Any]:
    return {
        "quarantine_dir": str(site["quarantine"]),
        "rescan_interval": 0,
        "watches": [
            {"path": str(site["uploads"]), "role": "incoming", "on_known": "quarantine",
             "on_duplicate": "log", "include": ["*"], "settle_seconds": 0.5, **uploads},
            {"path": str(site["library"]), "role": "library", "on_duplicate": "move",
             "move_to": str(site["dupes"]), "settle_seconds": 0.5},
        ],
    }  # fmt: skip


@pytest.fixture
def banned(tmp_path: Path) -> Path:
    path = tmp_path / "banned.jpg"
    photo(100, (800, 600)).save(path, quality=90)
    return path


@pytest.fixture
def daemon(tmp_path: Path, site: dict[str, Path], banned: Path) -> Iterator[Daemon]:
    d = Daemon(tmp_path, config_for(site))
    assert iw(d.db, "known", "add", "--create", "--list", "banned", str(banned)).returncode == 0
    photo(200, (800, 600)).save(site["library"] / "holiday.jpg", quality=90)
    d.start()
    d.processed(site["library"] / "holiday.jpg")  # indexed by the start-up reconcile
    yield d
    d.kill()


WRITTEN: dict[Path, str] = {}  # sha256 of each file as written: the daemon may move it at once


def write(path: Path, seed: int, size: tuple[int, int] = (400, 300), **save: Any) -> Path:
    """Write and close an image, as an uploader would."""
    path.parent.mkdir(parents=True, exist_ok=True)
    out = io.BytesIO()
    fmt = {".jpg": "JPEG", ".png": "PNG", ".webp": "WEBP"}.get(path.suffix, "PNG")
    photo(seed, size).save(out, fmt, **save)
    WRITTEN[path] = hashlib.sha256(out.getvalue()).hexdigest()
    path.write_bytes(out.getvalue())
    return path


def test_banned_variants_quarantined_duplicates_moved_clean_stays(
    daemon: Daemon, site: dict[str, Path]
) -> None:
    variants = [
        write(site["uploads"] / "a.png", 100, (400, 300)),
        write(site["uploads"] / "deep" / "b.jpg", 100, (333, 250), quality=50),
        write(site["uploads"] / "c.webp", 100, (640, 480), quality=80),
    ]
    digests = {WRITTEN[v] for v in variants}
    clean = write(site["uploads"] / "clean.jpg", 7, quality=90)
    dup = write(site["library"] / "2024" / "holiday-copy.jpg", 200, (600, 450), quality=70)
    dup_digest = WRITTEN[dup]
    for path in variants:
        assert "known list=banned" in daemon.processed(path)
    assert "-> none" in daemon.processed(clean)
    assert "duplicate library=" in daemon.processed(dup)
    assert not any(v.exists() for v in variants)
    assert {sha256(p) for p in site["quarantine"].iterdir()} == digests
    assert clean.exists()
    moved = site["dupes"] / "2024" / "holiday-copy.jpg"  # the path below the watch is kept
    assert sha256(moved) == dup_digest
    assert (site["library"] / "holiday.jpg").exists()
    assert oct(site["quarantine"].stat().st_mode & 0o777) == "0o700"
    for quarantined in site["quarantine"].iterdir():
        assert quarantined.stat().st_mode & 0o077 == 0  # private
        assert quarantined.stat().st_mode & 0o111 == 0  # not executable
    listed = iw(daemon.db, "quarantine", "list", "--json").stdout
    assert listed.count('"original"') == 3
    assert daemon.stop() == 0


def test_dry_run_moves_nothing(tmp_path: Path, site: dict[str, Path], banned: Path) -> None:
    d = Daemon(tmp_path, config_for(site), "--dry-run")
    iw(d.db, "known", "add", "--create", "--list", "banned", str(banned))
    d.start()
    try:
        upload = write(site["uploads"] / "x.png", 100)
        assert "-> would quarantine" in d.processed(upload)
        assert upload.exists()
        assert not site["quarantine"].exists()
    finally:
        d.kill()


def test_arrival_patterns(daemon: Daemon, site: dict[str, Path], tmp_path: Path) -> None:
    uploads = site["uploads"]
    outside = tmp_path / "outside"
    outside.mkdir()
    # slow writer: pauses longer than the quiet period, between writes, before closing
    data = write(tmp_path / "slow-src.jpg", 100, quality=90).read_bytes()
    slow = uploads / "slow.jpg"
    with slow.open("wb") as out:
        for start in range(0, len(data), len(data) // 3 + 1):
            out.write(data[start : start + len(data) // 3 + 1])
            out.flush()
            time.sleep(0.8)
    # an upload server: temporary name, then rename
    temp = write(uploads / "upload.jpg.part", 100, quality=80)
    renamed = uploads / "renamed.jpg"
    temp.rename(renamed)
    # mv from outside the tree, and a hard link
    moved_in = uploads / "moved-in.png"
    write(outside / "m.png", 100).rename(moved_in)
    linked = uploads / "linked.png"
    os.link(write(outside / "l.png", 100, (500, 375)), linked)
    rsync = write(uploads / ".rsync.XyZ123", 100, (300, 225))  # rsync's temporary name
    rsync.rename(uploads / "rsynced.png")
    for path in (slow, renamed, moved_in, linked, uploads / "rsynced.png"):
        assert "known list=banned" in daemon.processed(path)
    time.sleep(1.5)  # anything processed twice, or a temporary name, would show by now
    log = daemon.log()
    for path in (slow, renamed, moved_in, linked, uploads / "rsynced.png"):
        assert log.count(f"INFO: {path}: ") == 1, log
    assert ".part" not in log
    assert ".rsync" not in log
    assert "error" not in log.lower()


def test_files_that_arrived_while_down_are_processed_at_start(
    tmp_path: Path, site: dict[str, Path], banned: Path
) -> None:
    d = Daemon(tmp_path, config_for(site))
    iw(d.db, "known", "add", "--create", "--list", "banned", str(banned))
    d.start()
    assert d.stop() == 0
    early = write(site["uploads"] / "while-down.png", 100)
    d.start()
    try:
        assert "known" in d.processed(early)
        assert not early.exists()
    finally:
        d.kill()


def test_new_list_entries_take_effect_without_restart(
    daemon: Daemon, site: dict[str, Path], tmp_path: Path
) -> None:
    newly = write(tmp_path / "newly-banned.jpg", 300, quality=90)
    assert iw(daemon.db, "known", "add", "--create", "--list", "banned", str(newly)).returncode == 0
    daemon.wait_for("lists changed", timeout=3)
    upload = write(site["uploads"] / "new-ban.png", 300, (320, 240))
    assert "known list=banned" in daemon.processed(upload)
    assert not upload.exists()


def test_sighup_reloads_and_a_bad_config_keeps_the_old(
    daemon: Daemon, site: dict[str, Path], tmp_path: Path
) -> None:
    extra = tmp_path / "extra"
    extra.mkdir()
    config = config_for(site)
    config["watches"].append(
        {"path": str(extra), "role": "incoming", "on_known": "log", "settle_seconds": 0.5}
    )
    daemon.write_config(config)
    daemon.signal(signal.SIGHUP)
    daemon.wait_for("reloaded", timeout=10)
    daemon.wait_for(r"reconcile: \d+ file", count=2)
    assert "known" in daemon.processed(write(extra / "x.png", 100))
    daemon.config_path.write_text("watches: [{path: relative}]\n")
    daemon.signal(signal.SIGHUP)
    daemon.wait_for("keeping the previous configuration", timeout=10)
    daemon.wait_for(r"reconcile: \d+ file", count=3)
    assert "known" in daemon.processed(write(extra / "y.png", 100, (300, 200)))
    assert daemon.stop() == 0


def test_restore_and_undo_round_trip_without_overwriting(
    daemon: Daemon, site: dict[str, Path]
) -> None:
    staged = write(site["uploads"].parent / "staging.png", 100)
    original = staged.read_bytes()
    os.chmod(staged, 0o640)
    mtime = staged.stat().st_mtime_ns
    upload = site["uploads"] / "false-positive.png"
    staged.rename(upload)
    daemon.processed(upload)
    assert not upload.exists()
    upload.write_bytes(b"someone else's file")  # the original name is taken meanwhile
    action = iw(daemon.db, "quarantine", "list", "--json").stdout
    action_id = action.split('"id": ')[1].split(",")[0]
    restored = iw(daemon.db, "quarantine", "restore", action_id)
    assert restored.returncode == 0, restored.stderr
    back = site["uploads"] / "false-positive~1.png"
    assert back.read_bytes() == original
    assert upload.read_bytes() == b"someone else's file"
    assert back.stat().st_mode & 0o777 == 0o640
    assert back.stat().st_mtime_ns == mtime
    assert list(site["quarantine"].iterdir()) == []
    time.sleep(1.5)  # the daemon sees the restored file and, exempted, leaves it alone
    assert back.exists()
    banned_check = iw(daemon.db, "check", str(daemon.base / "banned.jpg"))
    assert banned_check.returncode == 1, banned_check.stdout  # the ban itself still holds
    # a moved duplicate comes back with undo
    dup = write(site["library"] / "copy.jpg", 200, (640, 480), quality=80)
    daemon.processed(dup)
    moves = _move_ids(daemon.db)
    assert iw(daemon.db, "undo", moves[-1]).returncode == 0
    assert sha256(dup) == WRITTEN[dup]
    assert iw(daemon.db, "undo", moves[-1]).returncode == 2  # already undone


def _move_ids(db: Path) -> list[str]:
    conn = sqlite3.connect(db)
    try:
        return [str(r[0]) for r in conn.execute("SELECT id FROM actions WHERE kind = 'move'")]
    finally:
        conn.close()


def test_symlinks_fifos_and_vanishing_files(
    daemon: Daemon, site: dict[str, Path], banned: Path
) -> None:
    uploads = site["uploads"]
    (uploads / "link.jpg").symlink_to(banned)
    os.mkfifo(uploads / "fifo.jpg")
    for n in range(20):  # gone at once, before or while being processed
        write(uploads / f"flash{n}.png", 500 + n, (64, 48)).unlink()
    marker = write(uploads / "after.png", 100, (360, 270))
    assert "known" in daemon.processed(marker)
    time.sleep(1.0)
    assert banned.exists()
    assert (uploads / "link.jpg").is_symlink()
    assert (uploads / "fifo.jpg").exists()
    log = daemon.log()
    assert "link.jpg" not in log
    assert "fifo.jpg" not in log
    assert "Traceback" not in log


def test_a_directory_swapped_for_a_symlink_cannot_redirect_a_move(
    daemon: Daemon, site: dict[str, Path], tmp_path: Path
) -> None:
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    (site["dupes"] / "2025").mkdir(parents=True, exist_ok=True)
    shutil.rmtree(site["dupes"] / "2025")
    (site["dupes"] / "2025").symlink_to(outside)  # the move target's directory, swapped
    dup = write(site["library"] / "2025" / "copy.jpg", 200, (500, 375), quality=85)
    daemon.wait_for(
        r"copy\.jpg: duplicate: move failed, the file stays: .*symbolic link", timeout=20
    )
    assert dup.exists()
    assert list(outside.iterdir()) == []


def test_permission_denied_leaves_the_file_and_the_daemon_running(
    daemon: Daemon, site: dict[str, Path]
) -> None:
    site["dupes"].mkdir(exist_ok=True)
    locked = subprocess.run(["chattr", "+i", str(site["dupes"])], capture_output=True, check=False)
    if locked.returncode != 0:
        pytest.skip(f"chattr +i unavailable here: {locked.stderr!r}")
    try:
        dup = write(site["library"] / "copy.jpg", 200, (500, 375), quality=85)
        daemon.wait_for(r"copy\.jpg: duplicate: move failed, the file stays: .*not permitted")
        assert dup.exists()
        upload = write(site["uploads"] / "still-working.png", 100)
        assert "known" in daemon.processed(upload)
    finally:
        subprocess.run(["chattr", "-i", str(site["dupes"])], check=False)


def test_corrupt_files_are_logged_and_left(daemon: Daemon, site: dict[str, Path]) -> None:
    bad = site["uploads"] / "broken.jpg"
    bad.write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    daemon.wait_for(rf"WARNING: {bad}: error: ")
    assert bad.exists()


def test_sigterm_exits_zero_quickly(daemon: Daemon) -> None:
    started = time.monotonic()
    assert daemon.stop(timeout=5) == 0
    assert time.monotonic() - started < 5


def test_polling_watch_for_network_filesystems(
    tmp_path: Path, site: dict[str, Path], banned: Path
) -> None:
    d = Daemon(tmp_path, config_for(site, polling=True))
    iw(d.db, "known", "add", "--create", "--list", "banned", str(banned))
    d.start()
    try:
        upload = write(site["uploads"] / "polled.png", 100)
        assert "known list=banned" in d.processed(upload, timeout=20)
        assert not upload.exists()
        assert d.log().count(f"INFO: {upload}: ") == 1
    finally:
        d.kill()


@pytest.mark.alone  # lowers fs.inotify.max_user_watches for every process of this user
def test_inotify_watch_limit_is_reported_and_polled_instead(
    tmp_path: Path, site: dict[str, Path], banned: Path
) -> None:
    limit = Path("/proc/sys/fs/inotify/max_user_watches")
    if not os.access(limit, os.W_OK):
        pytest.skip("cannot change fs.inotify.max_user_watches here")
    for n in range(40):  # more directories than the lowered limit allows watches
        (site["uploads"] / f"d{n}").mkdir()
    d = Daemon(tmp_path, config_for(site))
    iw(d.db, "known", "add", "--create", "--list", "banned", str(banned))
    old = limit.read_text()
    limit.write_text("16\n")
    try:
        d.start(wait=False)
        d.wait_for(r"inotify watch limit is reached .*sysctl -w fs\.inotify\.max_user_watches=")
    finally:
        limit.write_text(old)
    try:
        d.wait_for(r"reconcile: \d+ file")
        upload = write(site["uploads"] / "d39" / "late.png", 100)
        assert "known list=banned" in d.processed(upload)
    finally:
        d.kill()


def test_a_library_photo_renamed_while_down_is_not_its_own_duplicate(
    daemon: Daemon, site: dict[str, Path]
) -> None:
    assert daemon.stop() == 0
    old = site["library"] / "holiday.jpg"
    new = site["library"] / "2023" / "renamed.jpg"
    new.parent.mkdir()
    old.rename(new)
    daemon.start()
    assert "clean -> indexed" in daemon.processed(new)
    assert new.exists()
    assert not site["dupes"].exists()


def test_renamed_or_edited_library_photos_are_not_newcomers(
    tmp_path: Path, site: dict[str, Path]
) -> None:
    big = write(site["library"] / "album" / "original.jpg", 200, (1600, 1200), quality=92)
    write(site["library"] / "thumb.jpg", 200, (320, 240), quality=80)
    d = Daemon(tmp_path, config_for(site)).start()
    try:
        d.wait_for("first index complete")
        renamed = big.with_name("holiday.jpg")
        big.rename(renamed)  # what we know of it follows it: nothing to process, nothing to do
        deadline = time.monotonic() + 10
        while str(renamed) not in iw(d.db, "dupes").stdout:
            assert time.monotonic() < deadline, d.log()
            time.sleep(0.2)
        thumb = site["library"] / "thumb.jpg"
        thumb.write_bytes(thumb.read_bytes())  # rewritten in place, as a tagger does
        assert "-> indexed" in d.wait_for(rf"INFO: {thumb}: .* -> ", count=2)[-1]
        assert renamed.exists()
        assert thumb.exists()
        assert not site["dupes"].exists()
    finally:
        d.kill()


def test_an_interrupted_first_index_still_moves_nothing(
    tmp_path: Path, site: dict[str, Path]
) -> None:
    for n in range(60):
        write(site["library"] / f"p{n}.jpg", 1000 + n, (480, 360), quality=90)
        write(site["library"] / "copies" / f"p{n}.png", 1000 + n, (240, 180))
    d = Daemon(tmp_path, config_for(site)).start(wait=False)
    try:
        d.wait_for("watching")
        d.signal(signal.SIGHUP)  # the first index is under way: the reload restarts it
        d.wait_for("first index complete", timeout=60)
        time.sleep(1)
        assert " -> move" not in d.log()
        assert not site["dupes"].exists()
    finally:
        d.kill()


def test_one_daemon_per_database(daemon: Daemon, tmp_path: Path) -> None:
    second = subprocess.run(
        [sys.executable, "-m", "imagewatchd", "--config", str(daemon.config_path), "--db",
         str(daemon.db), "run"], capture_output=True, text=True, timeout=30, check=False,
    )  # fmt: skip
    assert second.returncode == 2
    assert daemon.proc is not None
    lock = f"{daemon.db}.lock"
    assert (
        f"another imagewatchd daemon is running on it (PID {daemon.proc.pid}, holding {lock})"
        in (second.stderr)
    )
    assert daemon.stop() == 0


def test_the_daemon_stamps_its_lines_when_the_log_is_a_file(daemon: Daemon) -> None:
    """Docker, supervisord, ``nohup``: nothing else adds the time to a line in a file."""
    lines = daemon.wait_for(r"reconcile: \d+ file")
    assert re.match(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d INFO: reconcile: \d+ file", lines[0])


def test_a_non_recursive_watch_ignores_subdirectories(
    tmp_path: Path, site: dict[str, Path], banned: Path
) -> None:
    d = Daemon(tmp_path, config_for(site, recursive=False))
    iw(d.db, "known", "add", "--create", "--list", "banned", str(banned))
    d.start()
    try:
        staging = tmp_path / "staging" / "sub"
        inner = write(staging / "x.png", 100)
        staging.rename(site["uploads"] / "sub")
        top = write(site["uploads"] / "top.png", 100, (300, 225))
        assert "known" in d.processed(top)
        time.sleep(1.5)
        assert (site["uploads"] / "sub" / inner.name).exists()
        assert "sub/x.png" not in d.log()
    finally:
        d.kill()
