"""Hard links: acting on one name of a file never changes its other names (issue 7, #3).

A quarantine or a restore changes the file's mode (a restore also its times and owner); applied
to a shared inode, that would change every other name of it, outside every watch included. So
a file with other names is copied to its destination instead, and only this name is removed.
"""

from __future__ import annotations

import hashlib
import os
import signal
import stat
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import pytest

from imagewatchd import fileops, journal
from imagewatchd.act import QUARANTINE_MODE, Actor
from imagewatchd.config import default_config
from imagewatchd.decoding.inline import InlineDecoder
from imagewatchd.fileops import Location, move
from imagewatchd.models import FileStat, Role
from imagewatchd.store import Store
from tests.conftest import photo
from tests.daemon_harness import ENV, Daemon, iw

DATA = b"the uploaded picture's bytes"
MTIME_NS = 1_700_000_000_987_654_321


@dataclass(frozen=True)
class Linked:
    """An upload in ``watch`` hard-linked to a file ``outside`` every watch."""

    watch: Path
    upload: Path
    outside: Path
    quarantine: Path

    @property
    def src(self) -> Location:
        return Location(self.watch, PurePosixPath(self.upload.name))

    def dst(self, name: str = "q1") -> Location:
        return Location(self.quarantine, PurePosixPath(name))


@pytest.fixture
def linked(tmp_path: Path) -> Linked:
    watch, elsewhere, quarantine = (tmp_path / n for n in ("uploads", "elsewhere", "quarantine"))
    for directory in (watch, elsewhere, quarantine):
        directory.mkdir()
    outside = elsewhere / "original.jpg"
    outside.write_bytes(DATA)
    outside.chmod(0o644)
    os.utime(outside, ns=(MTIME_NS, MTIME_NS))
    upload = watch / "upload.jpg"
    os.link(outside, upload)
    return Linked(watch, upload, outside, quarantine)


def outside_untouched(linked: Linked, before: os.stat_result, links: int = 1) -> None:
    now = os.lstat(linked.outside)
    assert stat.S_IMODE(now.st_mode) == 0o644, f"outside name's mode is now {now.st_mode:o}"
    assert (now.st_ino, now.st_dev) == (before.st_ino, before.st_dev)
    assert (now.st_uid, now.st_gid, now.st_mtime_ns) == (before.st_uid, before.st_gid, MTIME_NS)
    assert now.st_nlink == links
    assert linked.outside.read_bytes() == DATA


def quarantined_copy(linked: Linked, path: Path, before: os.stat_result) -> None:
    info = os.lstat(path)
    assert stat.S_IMODE(info.st_mode) == QUARANTINE_MODE
    assert (info.st_ino, info.st_dev) != (before.st_ino, before.st_dev), "not a separate inode"
    assert info.st_nlink == 1
    assert info.st_mtime_ns == MTIME_NS
    assert path.read_bytes() == DATA


def test_quarantining_a_hard_link_copies_it_and_leaves_the_other_name_alone(
    linked: Linked,
) -> None:
    before = os.lstat(linked.outside)
    expect = FileStat.of(os.lstat(linked.upload))
    result = move(linked.src, linked.dst(), expect=expect, tmp_name="t.tmp", mode=0o600)
    assert result.other_names == 1
    assert not os.path.lexists(linked.upload)
    quarantined_copy(linked, linked.quarantine / "q1", before)
    outside_untouched(linked, before)
    assert sorted(os.listdir(linked.quarantine)) == ["q1"]
    assert os.listdir(linked.watch) == []
    linked.outside.write_bytes(b"rewritten outside")  # the quarantined content is not shared
    assert (linked.quarantine / "q1").read_bytes() == DATA


def test_a_plain_move_of_a_hard_link_renames_this_name_only(linked: Linked, tmp_path: Path) -> None:
    """No mode applied: a rename moves one name; the other names and the inode stay as they are."""
    before = os.lstat(linked.outside)
    (tmp_path / "dupes").mkdir()
    dst = Location(tmp_path / "dupes", PurePosixPath("upload.jpg"))
    expect = FileStat.of(os.lstat(linked.upload))
    result = move(linked.src, dst, expect=expect, tmp_name="t.tmp")
    assert result.other_names == 0
    assert not os.path.lexists(linked.upload)
    moved = os.lstat(dst.path)
    assert (moved.st_ino, stat.S_IMODE(moved.st_mode)) == (before.st_ino, 0o644)
    outside_untouched(linked, before, links=2)


def test_a_link_gained_during_the_rename_is_not_chmodded(
    linked: Linked, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A single-name file that gains another name just as it is renamed: put back, unchanged."""
    single = linked.watch / "single.jpg"
    single.write_bytes(DATA)
    single.chmod(0o644)
    expect = FileStat.of(os.lstat(single))
    rename = fileops._rename_noreplace
    late = tmp_path / "late-link.jpg"

    def link_then_rename(sfd: int, sname: str, dfd: int, dname: str) -> None:
        if not late.exists():
            os.link(single, late)
        rename(sfd, sname, dfd, dname)

    monkeypatch.setattr(fileops, "_rename_noreplace", link_then_rename)
    src = Location(linked.watch, PurePosixPath("single.jpg"))
    with pytest.raises(fileops.FileChanged, match="another name"):
        move(src, linked.dst(), expect=expect, tmp_name="t.tmp", mode=0o600)
    assert stat.S_IMODE(os.lstat(late).st_mode) == 0o644
    assert single.read_bytes() == DATA
    assert os.listdir(linked.quarantine) == []


def test_attributes_of_a_file_with_other_names_are_never_set(linked: Linked) -> None:
    with pytest.raises(fileops.FileOpsError, match="other name"):
        fileops.set_mode(linked.src, 0o600)
    with pytest.raises(fileops.FileOpsError, match="other name"):
        fileops.restore_times_owner(linked.src, atime_ns=1, mtime_ns=1, uid=0, gid=0)
    assert stat.S_IMODE(os.lstat(linked.outside).st_mode) == 0o644
    assert os.lstat(linked.outside).st_mtime_ns == MTIME_NS


def _actor(db: Path, quarantine: Path) -> Actor:
    return Actor(Store(db), default_config(), quarantine)


def test_the_journal_restores_a_quarantined_hard_link(linked: Linked, tmp_path: Path) -> None:
    before = os.lstat(linked.outside)
    actor = _actor(tmp_path / "state.db", linked.quarantine)
    digest = hashlib.sha256(DATA).hexdigest()
    expect = FileStat.of(os.lstat(linked.upload))
    moved = actor.move(linked.src, linked.dst(), expect, digest, "quarantine", "{}", "test",
                       mode=QUARANTINE_MODE)  # fmt: skip
    assert moved.other_names == 1
    assert moved.destination is not None
    quarantined_copy(linked, moved.destination, before)
    back = journal.reverse(
        actor.store,
        actor,
        moved.action_id,
        force=False,
        role=Role.INCOMING,
        decoder=InlineDecoder(),
    )
    assert back == linked.upload
    assert linked.upload.read_bytes() == DATA
    restored = os.lstat(linked.upload)
    assert stat.S_IMODE(restored.st_mode) == 0o644
    assert restored.st_mtime_ns == MTIME_NS
    assert os.listdir(linked.quarantine) == []
    outside_untouched(linked, before)


def test_undoing_a_move_of_a_hard_link_puts_back_a_copy(linked: Linked, tmp_path: Path) -> None:
    """A move renames one name (no mode applied); its undo restores mode, times and owner, so
    with the other name still there it puts back a copy, and the other name stays as it is."""
    before = os.lstat(linked.outside)
    actor = _actor(tmp_path / "state.db", linked.quarantine)
    (tmp_path / "dupes").mkdir()
    dst = Location(tmp_path / "dupes", PurePosixPath("upload.jpg"))
    expect = FileStat.of(os.lstat(linked.upload))
    moved = actor.move(linked.src, dst, expect, hashlib.sha256(DATA).hexdigest(), "move", "{}", "t")
    assert (moved.other_names, os.lstat(dst.path).st_ino) == (0, before.st_ino)
    journal.reverse(
        actor.store,
        actor,
        moved.action_id,
        force=False,
        role=Role.INCOMING,
        decoder=InlineDecoder(),
    )
    assert not os.path.lexists(dst.path)
    restored = os.lstat(linked.upload)
    assert (restored.st_nlink, stat.S_IMODE(restored.st_mode)) == (1, 0o644)
    assert linked.upload.read_bytes() == DATA
    outside_untouched(linked, before)


# Runs Actor.move in a subprocess that SIGKILLs itself right after one fileops function returns:
# the disk and the journal are exactly what a kill at that point leaves.
KILL_AFTER = """
import hashlib, os, signal, sys
from pathlib import Path, PurePosixPath
from imagewatchd import fileops
from imagewatchd.act import QUARANTINE_MODE, Actor
from imagewatchd.config import default_config
from imagewatchd.fileops import Location
from imagewatchd.models import FileStat
from imagewatchd.store import Store

point, db, watch, name, quarantine = sys.argv[1:]
original = getattr(fileops, point)

def killed_after(*args, **kwargs):
    result = original(*args, **kwargs)
    os.kill(os.getpid(), signal.SIGKILL)
    return result

setattr(fileops, point, killed_after)
src = Location(Path(watch), PurePosixPath(name))
upload = src.path
actor = Actor(Store(Path(db)), default_config(), Path(quarantine))
digest = hashlib.sha256(upload.read_bytes()).hexdigest()
actor.move(src, Location(Path(quarantine), PurePosixPath("q1")), FileStat.of(os.lstat(upload)),
           digest, "quarantine", "{}", "test", mode=QUARANTINE_MODE)
"""


@pytest.mark.parametrize(
    ("point", "upload", "quarantine", "temporary", "private", "state", "note"),
    [  # the rows of fileops' crash table, for the copy of a hard link
        ("_fill_tmp", True, False, True, False, "rolled_back", None),
        ("_copy_to_dst", True, True, False, False, "done", "finished the copy"),
        ("_rename_noreplace", False, True, False, True, "done", "finished the copy"),
        ("move", False, True, False, False, "done", None),
    ],
    ids=["copy-in-tmp", "copied", "source-taken", "moved-not-journalled"],
)
def test_sigkill_during_a_hard_link_copy_then_recovery(
    linked: Linked, tmp_path: Path, point: str, upload: bool, quarantine: bool, temporary: bool,
    private: bool, state: str, note: str | None,
) -> None:  # fmt: skip
    before = os.lstat(linked.outside)
    db = tmp_path / "state.db"
    Store(db).close()
    args = [point, str(db), str(linked.watch), linked.upload.name, str(linked.quarantine)]
    killed = subprocess.run([sys.executable, "-c", KILL_AFTER, *args], env=ENV,
                            capture_output=True, text=True, timeout=60, check=False)  # fmt: skip
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    with Store(db) as store:
        (action,) = store.actions(state="intended")
        assert action.tmp_name is not None
        names = set(os.listdir(linked.watch)) | set(os.listdir(linked.quarantine))
        expected = {"upload.jpg"} if upload else set()
        expected |= {"q1"} if quarantine else set()
        expected |= {action.tmp_name} if temporary else set()
        expected |= {fileops.private_name(action.tmp_name)} if private else set()
        assert names == expected, "not the crash state this kill should leave"
        outside_untouched(linked, before, links=1 + upload + private)

        assert journal.recover(store) == 1
        (row,) = store.actions()
        assert (row.state, row.error) == (state, note)
    outside_untouched(linked, before, links=2 if state == "rolled_back" else 1)
    if state == "done":
        assert os.listdir(linked.watch) == []
        quarantined_copy(linked, linked.quarantine / "q1", before)
    else:
        assert os.listdir(linked.watch) == ["upload.jpg"]
        assert os.listdir(linked.quarantine) == []
        assert os.lstat(linked.upload).st_ino == before.st_ino


def test_the_daemon_quarantines_a_hard_linked_upload_without_touching_its_other_name(
    tmp_path: Path,
) -> None:
    """The issue's failure: the outside name went from 0644 to 0600 and shared the content."""
    uploads, elsewhere, quarantine = (tmp_path / n for n in ("uploads", "elsewhere", "q"))
    uploads.mkdir()
    elsewhere.mkdir()
    outside = elsewhere / "banned.png"
    photo(100, (400, 300)).save(outside)
    outside.chmod(0o644)
    before = os.lstat(outside)
    config = {
        "quarantine_dir": str(quarantine), "rescan_interval": 0,
        "watches": [{"path": str(uploads), "role": "incoming", "on_known": "quarantine",
                     "settle_seconds": 0.3}],
    }  # fmt: skip
    daemon = Daemon(tmp_path, config)
    assert (
        iw(daemon.db, "known", "add", "--create", "--list", "banned", str(outside)).returncode == 0
    )
    daemon.start()
    try:
        os.link(outside, uploads / "upload.png")
        line = daemon.processed(uploads / "upload.png")
        assert line.endswith("(hard link: copied, 1 other name(s) untouched)"), line
        assert daemon.stop() == 0
    finally:
        daemon.kill()
    (quarantined,) = quarantine.iterdir()
    assert f"-> quarantine {quarantined} [action " in line
    after = os.lstat(outside)
    assert (stat.S_IMODE(after.st_mode), after.st_ino, after.st_nlink) == (0o644, before.st_ino, 1)
    assert quarantined.read_bytes() == outside.read_bytes()
    copy = os.lstat(quarantined)
    assert (stat.S_IMODE(copy.st_mode), copy.st_nlink) == (QUARANTINE_MODE, 1)
    assert copy.st_ino != before.st_ino
    assert os.listdir(uploads) == []
