"""Inboxes that keep their photos (``on_new: none``) in the real daemon: an arrival new to the
library is compared with the copies waiting in the library's inboxes, the keep policy (not the
order) says which copy stays, the others get their inbox's on_duplicate; a copy that left its
inbox is no longer matched."""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

import pytest

from tests.conftest import photo
from tests.daemon_harness import Daemon, iw
from tests.test_daemon_inbox import inboxes_config
from tests.test_keep import CAMERA, CAPTURED, write_photo


def _start(tmp_path: Path, daemons: list[Daemon], on_duplicate: str = "move") -> Daemon:
    for name in ("library", "phone", "downloads"):
        (tmp_path / name).mkdir(exist_ok=True)
    daemon = Daemon(tmp_path, inboxes_config(tmp_path, "none", on_duplicate))
    daemons.append(daemon)
    daemon.start()
    return daemon


def _arrive(source: Path, target: Path) -> None:
    """A copy with its times lands whole (renamed in from beside the inboxes)."""
    staging = target.parent.parent / "staging"
    staging.mkdir(exist_ok=True)
    shutil.copy2(source, staging / target.name)
    os.replace(staging / target.name, target)


def _files(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    """A camera original and a thumbnail of it."""
    folder = tmp_path / "outside"
    folder.mkdir()
    write_photo(folder / "IMG_0001.jpg", quality=92, tags=CAMERA, inner=CAPTURED)
    write_photo(folder / "thumb.jpg", (170, 128), tags=CAMERA, inner=CAPTURED)
    return folder


def test_a_second_copy_in_another_inbox_is_a_duplicate_of_the_first(
    tmp_path: Path, daemons: list[Daemon], outside: Path
) -> None:
    daemon = _start(tmp_path, daemons)
    first, second = tmp_path / "phone" / "IMG_0001.jpg", tmp_path / "downloads" / "thumb.jpg"
    _arrive(outside / "IMG_0001.jpg", first)
    assert daemon.processed(first).endswith(": clean -> none"), daemon.log()
    _arrive(outside / "thumb.jpg", second)
    line = daemon.processed(second)
    assert f"{second}: duplicate inbox={first} dhash=" in line, line
    assert f"-> move {tmp_path / 'inbox-dupes'}" in line, line
    assert len([x for x in daemon.log().splitlines() if ": duplicate " in x]) == 1, daemon.log()
    assert _files(tmp_path / "phone") == ["IMG_0001.jpg"]
    assert _files(tmp_path / "downloads") == [] == _files(tmp_path / "library")
    assert [Path(p).name for p in _files(tmp_path / "inbox-dupes")] == ["thumb.jpg"]
    assert daemon.stop() == 0


def test_the_better_copy_arriving_second_stays_and_the_first_goes(
    tmp_path: Path, daemons: list[Daemon], outside: Path
) -> None:
    daemon = _start(tmp_path, daemons)
    first, second = tmp_path / "phone" / "thumb.jpg", tmp_path / "downloads" / "IMG_0001.jpg"
    _arrive(outside / "thumb.jpg", first)
    daemon.processed(first)
    _arrive(outside / "IMG_0001.jpg", second)
    line = daemon.processed(second)
    assert f"{second}: duplicate inbox={first} dhash=" in line, line
    assert "-> none (kept: a better copy (" in line, line
    moved = daemon.processed(first)  # its second line: on_duplicate, as the worse copy
    assert f"{first}: duplicate inbox={second} dhash=" in moved, moved
    assert f"-> move {tmp_path / 'inbox-dupes'}" in moved, moved
    assert _files(tmp_path / "downloads") == ["IMG_0001.jpg"]
    assert _files(tmp_path / "phone") == [] == _files(tmp_path / "library")
    assert [Path(p).name for p in _files(tmp_path / "inbox-dupes")] == ["thumb.jpg"]
    assert daemon.stop() == 0


def test_a_copy_that_left_the_inbox_is_no_longer_matched(
    tmp_path: Path, daemons: list[Daemon]
) -> None:
    daemon = _start(tmp_path, daemons, on_duplicate="log")
    photo(50).save(tmp_path / "beach.jpg", quality=90)
    first = tmp_path / "phone" / "a.jpg"
    _arrive(tmp_path / "beach.jpg", first)
    daemon.processed(first)
    _arrive(tmp_path / "beach.jpg", tmp_path / "phone" / "b.jpg")  # identical: the path decides
    line = daemon.processed(tmp_path / "phone" / "b.jpg")
    assert f"duplicate inbox={first} sha256=identical -> log" in line, line
    # sorted by hand: one copy into the library, the other deleted
    os.replace(first, tmp_path / "library" / "a.jpg")
    assert daemon.processed(tmp_path / "library" / "a.jpg").endswith("clean -> indexed")
    (tmp_path / "phone" / "b.jpg").unlink()
    _arrive(tmp_path / "beach.jpg", tmp_path / "downloads" / "c.jpg")
    line = daemon.processed(tmp_path / "downloads" / "c.jpg")
    assert f"duplicate library={tmp_path / 'library' / 'a.jpg'} sha256=identical" in line, line
    (tmp_path / "library" / "a.jpg").unlink()
    photo(50).save(tmp_path / "beach.jpg", quality=80)  # another copy, new to the library
    _arrive(tmp_path / "beach.jpg", tmp_path / "downloads" / "d.jpg")
    line = daemon.processed(tmp_path / "downloads" / "d.jpg")
    assert f"duplicate inbox={tmp_path / 'downloads' / 'c.jpg'} dhash=" in line, line
    assert "(+" not in line, line  # neither the copy filed by hand nor the deleted one
    assert daemon.stop() == 0


def test_copies_recorded_before_a_restart_are_matched(
    tmp_path: Path, daemons: list[Daemon], outside: Path
) -> None:
    daemon = _start(tmp_path, daemons)
    first = tmp_path / "phone" / "IMG_0001.jpg"
    _arrive(outside / "IMG_0001.jpg", first)
    daemon.processed(first)
    assert daemon.stop() == 0
    daemon = _start(tmp_path, daemons)  # the inbox index is loaded from the store
    _arrive(outside / "thumb.jpg", tmp_path / "phone" / "thumb.jpg")
    line = daemon.processed(tmp_path / "phone" / "thumb.jpg")
    assert f"duplicate inbox={first} dhash=" in line and "-> move " in line, line
    assert daemon.stop() == 0


def test_with_on_new_file_a_better_copy_of_a_photo_left_in_an_inbox_is_filed(
    tmp_path: Path, daemons: list[Daemon], outside: Path
) -> None:
    for name in ("library", "phone", "downloads"):
        (tmp_path / name).mkdir()
    config = inboxes_config(tmp_path, "none")
    for watch in config["watches"][1:]:  # type: ignore[index]
        watch["on_new"] = "file"
    daemon = Daemon(tmp_path, config)
    daemons.append(daemon)
    daemon.start()
    thumb = tmp_path / "phone" / "thumb.jpg"
    _arrive(outside / "thumb.jpg", thumb)
    line = daemon.processed(thumb)
    assert " -> file " in line, line
    action = line.rsplit("[action ", 1)[1].rstrip("]")
    undone = iw(daemon.db, "undo", action, config=daemon.config_path)
    assert undone.returncode == 0 and thumb.exists(), undone.stderr  # kept in the inbox
    photo(60).save(outside / "marker.jpg")
    os.utime(outside / "marker.jpg", (1615809600, 1615809600))  # 2021-03-15, filed by mtime
    _arrive(outside / "marker.jpg", tmp_path / "phone" / "marker.jpg")
    daemon.processed(tmp_path / "phone" / "marker.jpg")  # caught up with the undo
    original = tmp_path / "downloads" / "IMG_0001.jpg"
    _arrive(outside / "IMG_0001.jpg", original)
    line = daemon.processed(original)
    filed = tmp_path / "library" / "2019" / "05" / "IMG_0001.jpg"
    assert f"{original}: clean -> file {filed} [action" in line, line
    (moved,) = daemon.wait_for(rf"{re.escape(str(thumb))}: duplicate inbox=")
    assert f"{thumb}: duplicate inbox={original} dhash=" in moved and "-> move " in moved, moved
    assert _files(tmp_path / "library") == ["2019/05/IMG_0001.jpg", "2021/03/marker.jpg"]
    assert _files(tmp_path / "phone") == []
    assert daemon.stop() == 0
