"""A damaged database: one clear error naming the file, exit 65 (no restart loop), no
traceback, and nothing acted on; ``imagewatchd db check`` finds what is wrong."""

from __future__ import annotations

import os
import random
import shutil
import sqlite3
from collections.abc import Callable
from pathlib import Path

import pytest

from imagewatchd import cli
from imagewatchd.errors import EXIT_DAMAGED, DatabaseDamaged
from imagewatchd.store import Store
from tests.conftest import Run, photo
from tests.daemon_harness import Daemon, iw

DAMAGED = "the database is damaged ("


def tree(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in root.rglob("*") if p.is_file()}


@pytest.fixture
def site(tmp_path: Path) -> dict[str, Path]:
    """A sound database with a block list and an indexed library; an upload that is clean."""
    dirs = {name: tmp_path / name for name in ("uploads", "library", "quarantine")}
    dirs["library"].mkdir()
    for n in range(12):
        photo(n, (160, 120)).save(dirs["library"] / f"p{n}.jpg")
    dirs["uploads"].mkdir()
    photo(500, (160, 120)).save(dirs["uploads"] / "clean.png")
    photo(100, (160, 120)).save(tmp_path / "banned.png")
    db = tmp_path / "good.db"
    assert (
        iw(
            db, "known", "add", "--create", "--list", "banned", str(tmp_path / "banned.png")
        ).returncode
        == 0
    )
    assert iw(db, "scan", str(dirs["library"])).returncode == 0
    with sqlite3.connect(db) as con:
        con.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    dirs["db"] = db
    return dirs


def flipped(good: Path, dest: Path, seed: int) -> Path:
    """A copy of ``good`` with 1 to 8 random bits flipped."""
    rng = random.Random(seed)
    data = bytearray(good.read_bytes())
    for _ in range(rng.randint(1, 8)):
        data[rng.randrange(len(data))] ^= 1 << rng.randrange(8)
    for suffix in ("-wal", "-shm"):
        Path(f"{dest}{suffix}").unlink(missing_ok=True)
    dest.write_bytes(bytes(data))
    return dest


def run_cli(capsys: pytest.CaptureFixture[str], *args: str) -> Run:
    code = cli.main(list(args))
    out, err = capsys.readouterr()
    return Run(code, out, err)


def test_random_bit_flips_give_one_clear_error_for_every_command(
    site: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    monkeypatch.setenv("IMAGEWATCHD_CONFIG", "")
    damaged = 0
    for seed in range(150):
        db = flipped(site["db"], tmp_path / "t.db", seed)
        found = damaged
        for command in (["status"], ["known", "list"], ["dupes"], ["quarantine", "list"]):
            result = run_cli(capsys, "--db", str(db), *command)
            assert "Traceback" not in result.err
            assert "internal error" not in result.err, (seed, result)
            if result.code != 0:
                assert result.code == EXIT_DAMAGED, (seed, command, result)
                lines = result.err.strip().splitlines()
                assert len(lines) == 1, lines
                assert f"{db}: {DAMAGED}" in lines[0] and "imagewatchd db check" in lines[0]
                damaged += 1
        checked = run_cli(capsys, "--db", str(db), "db", "check")
        assert checked.code == 1 if damaged > found else checked.code in (0, 1), (seed, checked)
    assert damaged > 50  # the trials did reach the checks


def test_db_check_on_a_sound_and_a_damaged_file(
    site: dict[str, Path], cli: Callable[..., Run], tmp_path: Path
) -> None:
    db = tmp_path / "state" / "imagewatchd.db"  # the cli fixture's database
    db.parent.mkdir()
    shutil.copy(site["db"], db)
    sound = cli("db", "check", check=0)
    assert sound.out == f"{db}: ok\n"
    with sqlite3.connect(db) as con:
        con.execute("UPDATE files SET sha256 = CAST(x'ff00' AS TEXT) WHERE id = 3")
        con.execute("UPDATE files SET dhash = 'not a number' WHERE id = 5")
        con.execute("UPDATE entries SET label = CAST(x'c3' AS TEXT)")
    report = cli("db", "check", check=1)
    assert f"{db}: files row 3: damaged value in sha256\n" in report.out
    assert f"{db}: files row 5: damaged value in dhash\n" in report.out
    assert f"{db}: entries row 1: damaged value in label\n" in report.out
    assert "damaged: 3 problem(s)" in report.out
    assert cli("db", "check", "--quick", check=1).out.count("damaged value") == 2  # not UTF-8
    listing = cli("known", "list", check=EXIT_DAMAGED)
    assert listing.err.startswith(f"imagewatchd: error: {db}: {DAMAGED}Could not decode")
    db.write_bytes(b"\0" * 4096)
    assert "file is not a database" in cli("db", "check", check=1).out
    assert "no such database file" in cli("--db", str(tmp_path / "none.db"), "db", "check").err


def config(site: dict[str, Path]) -> dict[str, object]:
    return {
        "quarantine_dir": str(site["quarantine"]), "rescan_interval": 0,
        "watches": [
            {"path": str(site["uploads"]), "role": "incoming", "on_known": "quarantine",
             "include": ["*"], "settle_seconds": 0.3},
            {"path": str(site["library"]), "role": "library", "on_duplicate": "log"},
        ],
    }  # fmt: skip


def clear_exit(daemon: Daemon) -> int:
    """Stop the daemon (if it still runs); its exit status, after checking its log."""
    code = daemon.stop(timeout=20)
    log = daemon.log()
    assert "Traceback" not in log
    if code != 0:
        assert code == EXIT_DAMAGED, log
        lines = [line for line in log.splitlines() if DAMAGED in line]
        assert len(lines) == 1, log
        assert str(daemon.db) in lines[0]
    return code


@pytest.mark.parametrize("seed", range(6))
def test_a_daemon_started_on_random_bit_flips_acts_on_nothing(
    site: dict[str, Path], tmp_path: Path, seed: int
) -> None:
    before = tree(site["uploads"]), tree(site["library"])
    daemon = Daemon(tmp_path, config(site))
    daemon.db.parent.mkdir(parents=True)
    flipped(site["db"], daemon.db, 1000 + seed)
    daemon.start(wait=False)
    try:
        assert daemon.proc is not None
        try:
            daemon.proc.wait(timeout=8)  # a damaged database stops it at once
        except Exception:
            daemon.wait_for(r"reconcile: \d+ file", timeout=60)
        clear_exit(daemon)
    finally:
        daemon.kill()
    assert (tree(site["uploads"]), tree(site["library"])) == before
    assert not site["quarantine"].exists()


def test_random_bit_flips_under_a_running_daemon(site: dict[str, Path], tmp_path: Path) -> None:
    daemon = Daemon(tmp_path, config(site))
    daemon.db.parent.mkdir(parents=True)
    shutil.copy(site["db"], daemon.db)
    before = tree(site["library"])
    daemon.start()
    try:
        for seed in range(4):
            data = bytearray(daemon.db.read_bytes())
            rng = random.Random(2000 + seed)
            with daemon.db.open("r+b") as f:
                for _ in range(8):
                    at = rng.randrange(len(data))
                    f.seek(at)
                    f.write(bytes([data[at] ^ 1 << rng.randrange(8)]))
            photo(600 + seed, (160, 120)).save(site["uploads"] / f"clean{seed}.png")
            assert daemon.proc is not None
            if daemon.proc.poll() is not None:
                break
            try:
                daemon.processed(site["uploads"] / f"clean{seed}.png", timeout=10)
            except AssertionError:
                break  # exited
        clear_exit(daemon)
    finally:
        daemon.kill()
    assert tree(site["library"]) == before
    assert not site["quarantine"].exists()


def test_a_row_that_cannot_be_decoded_is_never_acted_on(
    site: dict[str, Path], tmp_path: Path
) -> None:
    daemon = Daemon(tmp_path, config(site))
    daemon.db.parent.mkdir(parents=True)
    shutil.copy(site["db"], daemon.db)
    daemon.start()
    try:
        with sqlite3.connect(daemon.db) as con:  # the banned entry's label is damaged
            con.execute("UPDATE entries SET label = CAST(x'ff' AS TEXT)")
        upload = site["uploads"] / "banned.png"
        shutil.copy(tmp_path / "banned.png", upload)
        assert daemon.proc is not None
        assert daemon.proc.wait(timeout=30) == EXIT_DAMAGED
        assert clear_exit(daemon) == EXIT_DAMAGED
        assert upload.exists()
        assert not site["quarantine"].exists()
    finally:
        daemon.kill()
    started_again = iw(daemon.db, "run", config=daemon.config_path)
    assert started_again.returncode == EXIT_DAMAGED
    assert "entries row 1: damaged value in label" not in started_again.stderr  # quick check
    assert DAMAGED in started_again.stderr


def test_a_refused_database_leaves_no_connection_open(tmp_path: Path) -> None:
    """A leaked connection would share its locks and shared memory with the next one opened
    on the same file in this process (SQLite's inode sharing): a daemon reopening it after a
    repair would read it through the damaged file's shared memory."""
    db = tmp_path / "t.db"
    with Store(db):
        pass
    with sqlite3.connect(db) as con:
        con.execute("PRAGMA writable_schema = ON")
        con.execute("UPDATE sqlite_master SET sql = 'CREATE TABLE files (' WHERE name = 'files'")
    con.close()
    with pytest.raises(DatabaseDamaged):
        Store(db)
    assert not [fd for fd in os.listdir("/proc/self/fd") if _names(fd, db)]


def _names(fd: str, db: Path) -> bool:
    try:
        return os.readlink(f"/proc/self/fd/{fd}").startswith(str(db))
    except OSError:
        return False


def test_a_damaged_counter_name_is_damage_not_an_internal_error(
    tmp_path: Path, cli: Callable[..., Run]
) -> None:
    db = tmp_path / "state" / "imagewatchd.db"  # the cli fixture's database
    with Store(db):
        pass
    with sqlite3.connect(db) as con:
        con.execute("UPDATE counters SET name = 'entries_addee' WHERE name = 'entries_added'")
    con.close()
    refused = cli("dupes", check=EXIT_DAMAGED)
    assert "no 'entries_added' counter" in refused.err
