"""``on_duplicate: hardlink``: a duplicate's name becomes a hard link to the kept copy, only for
identical bytes on one filesystem; journalled, recovered after a SIGKILL at every step, undone
into an independent copy with the journalled mode, owner and times (issue 10, item 6)."""

from __future__ import annotations

import os
import re
import shutil
import signal
import stat
import subprocess
import sys
from pathlib import Path, PurePosixPath

import pytest
import yaml
from PIL import Image

from imagewatchd import fileops, journal
from imagewatchd.fileops import Location
from imagewatchd.store import Store
from tests.conftest import photo
from tests.daemon_harness import ENV, Daemon, sha256
from tests.test_daemon_journal import tmpfs

MTIME_NS = 1_600_000_000_123_456_789


def library(tmp_path: Path) -> tuple[Path, Path, Path]:
    """A library holding a photo and, in another folder, a byte-identical copy (mode 0640)."""
    lib = tmp_path / "library"
    (lib / "2019").mkdir(parents=True)
    (lib / "inbox").mkdir()
    keeper, copy = lib / "2019" / "keeper.jpg", lib / "inbox" / "copy.jpg"
    photo(41, (800, 600)).save(keeper, quality=92)
    shutil.copyfile(keeper, copy)
    copy.chmod(0o640)
    os.utime(copy, ns=(MTIME_NS, MTIME_NS))
    return lib, keeper, copy


def run(tmp_path: Path, lib: Path, *args: str) -> subprocess.CompletedProcess[str]:
    config = tmp_path / "config.yaml"
    watch = {"path": str(lib), "role": "library", "on_duplicate": "hardlink"}
    config.write_text(yaml.safe_dump({"watches": [watch]}))
    return subprocess.run(
        [sys.executable, "-m", "imagewatchd", "--config", str(config), "--db",
         str(tmp_path / "state" / "db"), *args],
        capture_output=True, text=True, env={**ENV, "IMAGEWATCHD_CONFIG": ""}, timeout=120,
        check=False,
    )  # fmt: skip


def same_inode(a: Path, b: Path) -> bool:
    x, y = os.lstat(a), os.lstat(b)
    return (x.st_dev, x.st_ino) == (y.st_dev, y.st_ino)


def test_scan_act_links_an_identical_copy_and_undo_makes_it_independent_again(
    tmp_path: Path,
) -> None:
    lib, keeper, copy = library(tmp_path)
    digest = sha256(keeper)
    done = run(tmp_path, lib, "scan", "--act", str(lib))
    assert done.returncode == 0, done.stderr
    assert same_inode(keeper, copy), done.stdout
    assert os.lstat(keeper).st_nlink == 2
    assert sha256(copy) == digest
    assert "-> hardlink" in done.stdout
    with Store(tmp_path / "state" / "db") as store:
        (action,) = store.actions(kind="hardlink")
        assert action.state == "done"
    assert run(tmp_path, lib, "scan", str(lib)).returncode == 0  # both names indexed again
    listed = run(tmp_path, lib, "dupes")
    assert listed.stdout.strip() == "no duplicates", "two names of one file are no copies"

    undone = run(tmp_path, lib, "undo", str(action.id))
    assert undone.returncode == 0, undone.stderr
    # whichever name the policy kept, the other is independent again, with its own attributes
    assert not same_inode(keeper, copy)
    assert os.lstat(keeper).st_nlink == os.lstat(copy).st_nlink == 1
    assert sha256(copy) == sha256(keeper) == digest
    name = Path(action.src_root) / action.src_rel
    info = os.lstat(name)
    assert (stat.S_IMODE(info.st_mode), info.st_mtime_ns) == (
        stat.S_IMODE(action.mode), action.stat.mtime_ns,
    )  # fmt: skip
    assert [f for d in lib.rglob("*") for f in [d.name] if f.startswith(".imagewatchd")] == []
    with Store(tmp_path / "state" / "db") as store:
        assert store.action(action.id).state == "undone"  # type: ignore[union-attr]


def test_a_near_copy_is_not_linked_and_the_line_says_why(tmp_path: Path) -> None:
    lib, keeper, copy = library(tmp_path)
    copy.unlink()
    photo(41, (400, 300)).save(copy, quality=92)  # the same picture, other bytes
    done = run(tmp_path, lib, "scan", "--act", str(lib))
    assert done.returncode == 0, done.stderr
    assert "not linked: not byte-identical to the kept copy" in done.stdout
    assert not same_inode(keeper, copy)
    assert os.lstat(keeper).st_nlink == os.lstat(copy).st_nlink == 1


def test_a_copy_on_another_filesystem_stays_and_the_line_says_why(tmp_path: Path) -> None:
    lib, keeper, copy = library(tmp_path)
    data = copy.read_bytes()
    copy.unlink()
    with tmpfs(lib / "inbox", "16m"):
        copy.write_bytes(data)
        done = run(tmp_path, lib, "scan", "--act", str(lib))
        assert done.returncode == 0, done.stderr
        assert "not linked:" in done.stdout and "on another filesystem" in done.stdout
        assert copy.read_bytes() == data == keeper.read_bytes()
        assert os.lstat(keeper).st_nlink == os.lstat(copy).st_nlink == 1


# Runs Actor.act in a subprocess that SIGKILLs itself right after the n-th call of one function
# (of fileops, or os.link): the disk and the journal are exactly what a kill there leaves.
KILL_AFTER = """
import os, signal, sys
from pathlib import Path, PurePosixPath
from imagewatchd import fileops
from imagewatchd.act import Actor, Decision
from imagewatchd.config import Action, parse
from imagewatchd.fileops import Location
from imagewatchd.fingerprint import fingerprint_file
from imagewatchd.models import Match, SettledFile, Verdict, VerdictKind
from imagewatchd.store import Store

point, nth, db, root, dup, keeper = sys.argv[1:]
module = os if point == "link" else fileops
original, calls = getattr(module, point), []

def killed_after(*args, **kwargs):
    result = original(*args, **kwargs)
    calls.append(1)
    if len(calls) == int(nth):
        os.kill(os.getpid(), signal.SIGKILL)
    return result

setattr(module, point, killed_after)
stat_, fp = fingerprint_file(Path(dup))
config = parse({"watches": [{"path": root, "on_duplicate": "hardlink"}]}, "test")
actor = Actor(Store(Path(db)), config, Path(root) / "q")
match = Match(source="library", exact=True, dhash_distance=0, phash_distance=0, file_id=1,
              path=keeper)
verdict = Verdict(VerdictKind.DUPLICATE, matches=(match,))
actor.act(SettledFile(dup, 0, stat_), fp, verdict, Decision(Action.HARDLINK, "test"))
"""


@pytest.mark.parametrize(
    ("point", "nth", "linked", "tmp", "private", "state", "note"),
    [  # the rows of fileops' crash table for link_to_keeper
        ("_checked_keeper", 1, False, False, False, "rolled_back", None),
        ("link", 1, False, True, False, "rolled_back", None),
        ("_rename_noreplace", 1, False, True, True, "rolled_back", None),
        ("_rename_noreplace", 2, True, False, True, "done", "finished the hard link"),
        ("link_to_keeper", 1, True, False, False, "done", None),
    ],
    ids=["checked", "linked", "taken", "named", "not-journalled"],
)
def test_sigkill_at_each_step_of_a_hardlink_then_recovery(
    tmp_path: Path, point: str, nth: int, linked: bool, tmp: bool, private: bool, state: str,
    note: str | None,
) -> None:  # fmt: skip
    lib, keeper, copy = library(tmp_path)
    before = os.lstat(copy)
    digest = sha256(copy)
    db = tmp_path / "state.db"
    Store(db).close()
    args = [point, str(nth), str(db), str(lib), str(copy), str(keeper)]
    killed = subprocess.run([sys.executable, "-c", KILL_AFTER, *args], env=ENV,
                            capture_output=True, text=True, timeout=60, check=False)  # fmt: skip
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    with Store(db) as store:
        (action,) = store.actions(state="intended")
        assert action.kind == "hardlink" and action.tmp_name is not None
        names = set(os.listdir(copy.parent))
        expected = {"copy.jpg"} if linked or not private else set()
        expected |= {action.tmp_name} if tmp else set()
        expected |= {fileops.private_name(action.tmp_name)} if private else set()
        assert names == expected, "not the crash state this kill should leave"
        assert journal.recover(store) == 1
        (row,) = store.actions()
        assert (row.state, row.error) == (state, note)
    assert os.listdir(copy.parent) == ["copy.jpg"]
    assert sha256(copy) == sha256(keeper) == digest
    if state == "done":
        assert same_inode(copy, keeper)
    else:
        now = os.lstat(copy)
        assert (now.st_ino, now.st_nlink, now.st_mtime_ns) == (before.st_ino, 1, MTIME_NS)
        assert os.lstat(keeper).st_nlink == 1


def test_sigkill_during_the_undo_then_recovery(tmp_path: Path) -> None:
    """Killed after the copy is written (before the exchange), and after the exchange."""
    for n, point in enumerate(("_write_copy", "_renameat2")):
        base = tmp_path / str(n)
        lib, keeper, copy = library(base)
        db = base / "state.db"
        Store(db).close()
        src = Location(lib, PurePosixPath("inbox/copy.jpg"))
        dst = Location(lib, PurePosixPath("2019/keeper.jpg"))
        info = os.lstat(copy)
        fileops.link_to_keeper(src, dst, expect=fileops.file_stat(info), sha256=sha256(copy),
                               tmp_name="t.tmp")  # fmt: skip
        program = UNDO_KILL.format(point=point)
        killed = subprocess.run([sys.executable, "-c", program, str(db), str(copy), str(n)],
                                env=ENV, capture_output=True, text=True, timeout=60,
                                check=False)  # fmt: skip
        assert killed.returncode == -signal.SIGKILL, killed.stderr
        with Store(db) as store:
            (undo,) = store.actions(state="intended")
            assert journal.recover(store) == 1
            row = store.action(undo.id)
            assert row is not None
            assert row.state == ("rolled_back" if point == "_write_copy" else "done")
        assert os.listdir(copy.parent) == ["copy.jpg"]
        assert sha256(copy) == sha256(keeper)
        assert same_inode(copy, keeper) is (point == "_write_copy")


# A journalled hardlink of ``copy`` is undone by a process killed after ``point`` returns.
UNDO_KILL = """
import os, signal, sys, time
from pathlib import Path
from imagewatchd import fileops, hardlinks
from imagewatchd.models import FileStat
from imagewatchd.rows import NewAction
from imagewatchd.store import Store

db, copy = Path(sys.argv[1]), Path(sys.argv[2])
original = getattr(fileops, "{point}")

def killed_after(*args, **kwargs):
    result = original(*args, **kwargs)
    os.kill(os.getpid(), signal.SIGKILL)
    return result

store = Store(db)
info = os.lstat(copy)
action_id = store.intend(NewAction(
    kind="hardlink", src_root=str(copy.parent), src_rel=copy.name, dst_root="/",
    dst_rel="x", tmp_name="t.tmp", sha256=fileops.sha256_of(fileops.Location(copy.parent,
    __import__("pathlib").PurePosixPath(copy.name))), stat=FileStat(1, 1, 1, 1),
    atime_ns=0, uid=os.getuid(), gid=os.getgid(), mode=0o100640, verdict="duplicate",
    evidence="{{}}", rule="test"), time.time())
store.finish(action_id, "done", time.time())
setattr(fileops, "{point}", killed_after)
hardlinks.undo(store, store.action(action_id), time.time)
"""


def test_the_daemon_links_a_newcomer_copy_and_logs_a_merely_similar_one(
    tmp_path: Path,
) -> None:
    lib, keeper, copy = library(tmp_path)
    copy.unlink()
    first, burst = burst_pair()
    first.save(lib / "2019" / "frame1.jpg", quality=92)
    daemon = Daemon(tmp_path, {"rescan_interval": 0, "watches": [
        {"path": str(lib), "role": "library", "on_duplicate": "hardlink",
         "settle_seconds": 0.3}]})  # fmt: skip
    try:
        daemon.start()
        daemon.wait_for("first index complete")
        again = lib / "inbox" / "again.jpg"
        shutil.copyfile(keeper, again)
        line = f"{again}: duplicate library={keeper} sha256=identical -> hardlink {keeper} [action"
        daemon.wait_for(re.escape(line))
        assert same_inode(again, keeper)
        burst.save(lib / "inbox" / "frame2.jpg", quality=92)
        (line,) = daemon.wait_for(re.escape(f"{lib / 'inbox' / 'frame2.jpg'}: similar "))
        assert f"similar library={lib / '2019' / 'frame1.jpg'} dhash=" in line
        assert line.endswith("-> log"), line
        assert (lib / "inbox" / "frame2.jpg").exists() and same_inode(again, keeper)
        assert daemon.stop() == 0
    finally:
        daemon.kill()


def burst_pair() -> tuple[Image.Image, Image.Image]:
    """Two frames of one scene, the camera moved by 16 pixels: similar, not duplicates."""
    scene = photo(33, (720, 540))
    return scene.crop((0, 0, 640, 480)), scene.crop((16, 8, 656, 488))
