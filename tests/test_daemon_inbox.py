"""Inboxes in the real daemon: arrivals compared with the library and with each other, unique
ones filed at the template's path (never replacing: a free name~N), duplicates handled by
on_duplicate, the keep policy (not the order) deciding between copies; undo puts a filed photo
back, and a daemon killed mid-filing finishes or rolls back at its next start."""

from __future__ import annotations

import datetime as dt
import os
import re
import shutil
import signal
import sys
from pathlib import Path

import pytest

from tests.conftest import photo
from tests.daemon_harness import Daemon, iw, sha256
from tests.test_keep import CAMERA, CAPTURED, write_photo

MTIME = dt.datetime(2021, 3, 15, 12, 0).timestamp()  # a photo without EXIF: filed by its mtime


def inboxes_config(
    tmp_path: Path, on_new: str = "file", on_duplicate: str = "move"
) -> dict[str, object]:
    """A library and two inboxes of it (phone, downloads)."""
    lib = tmp_path / "library"
    inbox = {"role": "incoming", "library": str(lib), "on_new": on_new,
             "on_duplicate": on_duplicate, "move_to": str(tmp_path / "inbox-dupes"),
             "settle_seconds": 0.3}  # fmt: skip
    return {
        "rescan_interval": 0, "workers": 2,
        "watches": [
            {"path": str(lib), "role": "library", "on_duplicate": "move",
             "move_to": str(tmp_path / "library-dupes"), "settle_seconds": 0.3},
            {"path": str(tmp_path / "phone"), **inbox},
            {"path": str(tmp_path / "downloads"), **inbox},
        ],
    }  # fmt: skip


def _start(tmp_path: Path, daemons: list[Daemon], program: list[str] | None = None) -> Daemon:
    for name in ("library", "phone", "downloads"):
        (tmp_path / name).mkdir(exist_ok=True)
    daemon = Daemon(tmp_path, inboxes_config(tmp_path), program=program)
    daemons.append(daemon)
    daemon.start()
    return daemon


def _arrive(source: Path, target: Path) -> None:
    """A copy with its times lands whole (as an import's rename does): copied and its times
    set beside the inboxes first, so the daemon never reads it while its mtime changes."""
    staging = target.parent.parent / "staging"
    staging.mkdir(exist_ok=True)
    shutil.copy2(source, staging / target.name)
    os.replace(staging / target.name, target)


def _files(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())


def _action(line: str) -> str:
    found = re.search(r"\[action (\d+)\]", line)
    assert found is not None, line
    return found.group(1)


def test_two_copies_arriving_together_one_filed_the_other_a_duplicate(
    tmp_path: Path, daemons: list[Daemon]
) -> None:
    original = write_photo(tmp_path / "IMG_0001.jpg", quality=92, tags=CAMERA, inner=CAPTURED)
    os.utime(original, (MTIME, MTIME))
    daemon = _start(tmp_path, daemons)
    for inbox in ("phone", "downloads"):  # the same bytes and times: only the path can tell
        _arrive(original, tmp_path / inbox / "IMG_0001.jpg")
    lines = [
        daemon.processed(tmp_path / inbox / "IMG_0001.jpg") for inbox in ("phone", "downloads")
    ]
    filed = [line for line in lines if " -> file " in line]
    assert len(filed) == 1, lines
    assert f"-> file {tmp_path / 'library' / '2019' / '05' / 'IMG_0001.jpg'} [action" in filed[0]
    (dupe,) = [line for line in lines if line not in filed]
    assert "duplicate library=" in dupe and "-> move " in dupe, dupe
    assert _files(tmp_path / "library") == ["2019/05/IMG_0001.jpg"]
    assert sha256(tmp_path / "library" / "2019" / "05" / "IMG_0001.jpg") == sha256(original)
    assert len(_files(tmp_path / "inbox-dupes")) == 1
    assert _files(tmp_path / "phone") == _files(tmp_path / "downloads") == []
    # a copy of a photo the library already holds: on_duplicate, whichever inbox it lands in
    _arrive(original, tmp_path / "phone" / "again.jpg")
    assert "-> move " in daemon.processed(tmp_path / "phone" / "again.jpg")
    assert _files(tmp_path / "library") == ["2019/05/IMG_0001.jpg"]
    assert daemon.stop() == 0


@pytest.mark.parametrize("first", ["thumb.jpg", "IMG_0001.jpg"])
def test_the_keep_policy_not_the_order_decides_which_copy_is_filed(
    tmp_path: Path, daemons: list[Daemon], first: str
) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    write_photo(outside / "IMG_0001.jpg", quality=92, tags=CAMERA, inner=CAPTURED)
    write_photo(outside / "thumb.jpg", (170, 128), tags=CAMERA, inner=CAPTURED)
    daemon = _start(tmp_path, daemons)
    second = "thumb.jpg" if first == "IMG_0001.jpg" else "IMG_0001.jpg"
    _arrive(outside / first, tmp_path / "phone" / first)
    daemon.processed(tmp_path / "phone" / first)
    _arrive(outside / second, tmp_path / "downloads" / second)
    daemon.processed(tmp_path / "downloads" / second)
    if first == "thumb.jpg":  # the better copy came second: it is filed, the thumbnail goes
        daemon.processed(tmp_path / "library" / "2019" / "05" / "thumb.jpg")
    assert _files(tmp_path / "library") == ["2019/05/IMG_0001.jpg"], daemon.log()
    assert _files(tmp_path / "phone") == _files(tmp_path / "downloads") == []
    moved = _files(tmp_path / "inbox-dupes") + _files(tmp_path / "library-dupes")
    assert [Path(p).name for p in moved] == ["thumb.jpg"]
    assert daemon.stop() == 0


def test_a_taken_name_gets_a_number_and_undo_puts_the_photo_back(
    tmp_path: Path, daemons: list[Daemon]
) -> None:
    taken = tmp_path / "library" / "2021" / "03"
    taken.mkdir(parents=True)
    photo(40).save(taken / "beach.jpg", quality=90)  # another picture by the same name
    daemon = _start(tmp_path, daemons)
    daemon.wait_for("first index complete")
    arrival = tmp_path / "phone" / "beach.jpg"
    photo(41).save(tmp_path / "beach.jpg", quality=90)  # no EXIF: filed by its mtime
    os.utime(tmp_path / "beach.jpg", (MTIME, MTIME))
    os.replace(tmp_path / "beach.jpg", arrival)
    line = daemon.processed(arrival)
    assert f"clean -> file {taken / 'beach~1.jpg'} [action" in line, line
    assert _files(tmp_path / "library") == ["2021/03/beach.jpg", "2021/03/beach~1.jpg"]
    undone = iw(daemon.db, "undo", _action(line), config=daemon.config_path)
    assert undone.returncode == 0, undone.stderr
    assert arrival.exists() and os.stat(arrival).st_mtime == MTIME
    assert _files(tmp_path / "library") == ["2021/03/beach.jpg"]
    photo(42).save(tmp_path / "phone" / "marker.jpg")
    daemon.processed(tmp_path / "phone" / "marker.jpg")  # caught up with the undo
    assert arrival.exists()  # put back, and not filed again
    shutil.copy(taken / "beach.jpg", tmp_path / "downloads" / "beach.jpg")  # in the library
    line = daemon.processed(tmp_path / "downloads" / "beach.jpg")
    assert f"duplicate library={taken / 'beach.jpg'} sha256=identical -> move" in line, line
    actions = iw(daemon.db, "actions", "list", config=daemon.config_path).stdout
    assert "\tfile\tundone\t" in actions and "\tundo\tdone\t" in actions, actions
    assert daemon.stop() == 0


# The real daemon with one function wrapped so that the process SIGKILLs itself right after that
# function returns (as tests/test_daemon_stress.py does for quarantine moves).
KILL_AFTER = """
import os, signal, sys
from imagewatchd import cli, fileops
from imagewatchd.store import Store

owner, name = {"intend": (Store, "intend"), "move": (fileops, "move")}[sys.argv[1]]
original = getattr(owner, name)

def killed_after(*args, **kwargs):
    result = original(*args, **kwargs)
    os.kill(os.getpid(), signal.SIGKILL)
    return result

setattr(owner, name, killed_after)
sys.exit(cli.main(sys.argv[2:]))
"""


@pytest.mark.parametrize(("point", "recovery"), [("intend", "rolled_back"), ("move", "done")])
def test_a_daemon_killed_mid_filing_finishes_or_rolls_back_at_start(
    tmp_path: Path, daemons: list[Daemon], point: str, recovery: str
) -> None:
    original = write_photo(tmp_path / "IMG_0001.jpg", quality=92, tags=CAMERA, inner=CAPTURED)
    killed = _start(tmp_path, daemons, [sys.executable, "-c", KILL_AFTER, point])
    _arrive(original, tmp_path / "phone" / "IMG_0001.jpg")
    assert killed.proc is not None and killed.proc.wait(30) == -signal.SIGKILL
    daemon = _start(tmp_path, daemons)
    (line,) = daemon.wait_for("recovered action")
    assert line.endswith(f"(file {tmp_path / 'phone' / 'IMG_0001.jpg'}): {recovery}"), line
    filed = tmp_path / "library" / "2019" / "05" / "IMG_0001.jpg"
    daemon.processed(filed if recovery == "done" else tmp_path / "phone" / "IMG_0001.jpg")
    assert _files(tmp_path / "library") == ["2019/05/IMG_0001.jpg"]
    assert _files(tmp_path / "phone") == []
    assert sha256(filed) == sha256(original)
    _arrive(original, tmp_path / "downloads" / "copy.jpg")  # the filed photo is indexed
    assert "duplicate library=" in daemon.processed(tmp_path / "downloads" / "copy.jpg")
    assert daemon.stop() == 0
