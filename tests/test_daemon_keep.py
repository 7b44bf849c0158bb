"""Better arrivals win, in the real daemon: a newcomer the keep policy prefers stays and the
worse library copy gets on_duplicate (journalled, undoable); a reference folder's file is never
moved; files arriving together end in the same library whatever their order and timing."""

from __future__ import annotations

import random
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tests.conftest import photo
from tests.daemon_harness import Daemon, iw
from tests.test_keep import CAMERA, CAPTURED, write_photo

NAMES = ("IMG_0001.jpg", "received.jpg", "IMG_0001.heic", "thumb.jpg")


def _copies(folder: Path) -> dict[str, Path]:
    """The camera original and three worse copies people accumulate."""
    folder.mkdir(parents=True, exist_ok=True)
    write_photo(folder / NAMES[0], quality=92, tags=CAMERA, inner=CAPTURED)
    grain = np.random.default_rng(8).integers(0, 256, (480, 640, 3), dtype=np.uint8)
    noisy = Image.blend(photo(7).resize((640, 480)), Image.fromarray(grain), 0.2)
    noisy.save(folder / NAMES[1], quality=60)  # a messenger's: larger, no EXIF
    write_photo(folder / NAMES[2], fmt="HEIF")  # converted, EXIF lost
    write_photo(folder / NAMES[3], (170, 128), tags=CAMERA, inner=CAPTURED)  # a thumbnail
    return {name: folder / name for name in NAMES}


def _daemon(tmp_path: Path, library: Path, **keep: object) -> Daemon:
    return Daemon(tmp_path, {
        "rescan_interval": 0, "workers": 2,
        "watches": [{"path": str(library), "role": "library", "on_duplicate": "move",
                     "move_to": str(tmp_path / "dupes"), "settle_seconds": 0.3, **keep}],
    })  # fmt: skip


@pytest.fixture
def library(tmp_path: Path) -> Path:
    lib = tmp_path / "library"
    lib.mkdir()
    return lib


def test_a_better_arrival_stays_and_the_worse_copy_moves(
    tmp_path: Path, library: Path, daemons: list[Daemon]
) -> None:
    copies = _copies(tmp_path / "outside")
    shutil.copy(copies["thumb.jpg"], library / "thumb.jpg")
    daemon = _daemon(tmp_path, library)
    daemons.append(daemon)
    daemon.start()
    daemon.wait_for("first index complete")  # the thumbnail is in the library, not arriving
    shutil.copy(copies["IMG_0001.jpg"], library / "IMG_0001.jpg")
    line = daemon.processed(library / "IMG_0001.jpg")
    assert "-> none (kept: a better copy (pixels: 640x480 over 170x128))" in line, line
    moved = daemon.processed(library / "thumb.jpg")
    assert f"duplicate library={library / 'IMG_0001.jpg'}" in moved and "-> move" in moved
    assert sorted(p.name for p in library.iterdir()) == ["IMG_0001.jpg"]
    assert (tmp_path / "dupes" / "thumb.jpg").exists()
    dupes = iw(daemon.db, "dupes", "--json", config=daemon.config_path).stdout
    assert '"groups": []' in dupes  # the old copy's row is forgotten
    action = re.search(r"\[action (\d+)\]", moved)
    assert action is not None
    undone = iw(daemon.db, "undo", action.group(1), config=daemon.config_path)
    assert undone.returncode == 0, undone
    photo(40).save(library / "marker.jpg")
    daemon.processed(library / "marker.jpg")  # the daemon has caught up with the file put back
    assert (library / "thumb.jpg").exists()  # put back, and not moved again
    assert daemon.stop() == 0


def test_a_reference_folder_file_is_never_moved(
    tmp_path: Path, library: Path, daemons: list[Daemon]
) -> None:
    copies = _copies(tmp_path / "outside")
    shutil.copy(copies["IMG_0001.jpg"], library / "IMG_0001.jpg")
    (library / "archive").mkdir()
    daemon = _daemon(tmp_path, library, reference=[str(library / "archive")])
    daemons.append(daemon)
    daemon.start()
    daemon.wait_for("first index complete")  # IMG_0001 is in the library before thumb comes
    shutil.copy(copies["thumb.jpg"], library / "archive" / "thumb.jpg")
    line = daemon.processed(library / "archive" / "thumb.jpg")
    assert "-> none (kept: a better copy (reference: in a reference folder))" in line, line
    assert "-> move" in daemon.processed(library / "IMG_0001.jpg")  # the reference one wins
    shutil.copy(copies["received.jpg"], library / "archive" / "received.jpg")
    line = daemon.processed(library / "archive" / "received.jpg")
    assert "-> none (kept: in a reference folder)" in line, line  # beaten, but never moved
    assert (library / "archive" / "thumb.jpg").exists()
    assert (library / "archive" / "received.jpg").exists()
    assert daemon.stop() == 0


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_files_arriving_together_end_in_the_same_library_whatever_their_order(
    tmp_path: Path, library: Path, daemons: list[Daemon], seed: int
) -> None:
    copies = _copies(tmp_path / "outside")
    daemon = _daemon(tmp_path, library)
    daemons.append(daemon)
    daemon.start()
    rng = random.Random(seed)
    order = rng.sample(NAMES, len(NAMES))
    for name in order:
        shutil.copy(copies[name], library / name)
        if rng.random() < 0.5:
            daemon.processed(library / name)  # this one alone, before the next arrives
    for name in order:
        daemon.processed(library / name)
    assert sorted(p.name for p in library.iterdir()) == ["IMG_0001.jpg"], (order, daemon.log())
    assert sorted(p.name for p in (tmp_path / "dupes").iterdir()) == sorted(NAMES[1:])
    assert daemon.stop() == 0


def _chain(folder: Path) -> dict[str, Path]:
    """Three frames of one scene, each 10 pixels further to the side: the camera original
    A, B (a duplicate of A) and C (a duplicate of B, not of A: matching is not
    transitive). A beats B, B beats C."""
    folder.mkdir(parents=True, exist_ok=True)
    base = photo(7)
    frames = {name: base.crop((shift, 0, 640, 480)).resize((640, 480))
              for name, shift in (("a.jpg", 0), ("b.jpg", 10), ("c.jpg", 20))}  # fmt: skip
    tags = {"a.jpg": (CAMERA, CAPTURED), "b.jpg": (CAMERA, {}), "c.jpg": ({}, {})}
    for name, img in frames.items():
        exif = Image.Exif()
        exif.update(tags[name][0])
        exif.get_ifd(0x8769).update(tags[name][1])
        img.save(folder / name, quality=92, exif=exif.tobytes())
    return {name: folder / name for name in frames}


@pytest.mark.parametrize("order", [("a.jpg", "b.jpg", "c.jpg"), ("b.jpg", "c.jpg", "a.jpg")])
def test_a_chain_of_copies_ends_with_its_keeper_whatever_the_order(
    tmp_path: Path, library: Path, daemons: list[Daemon], order: tuple[str, ...]
) -> None:
    """C matches only B. In order A, B, C, B is moved as A's copy before C arrives; in order
    B, C, A, C is moved as B's copy, then B as A's. Both end with A alone: C is found
    through the copy moved away in its place (it stood for A, its group's keeper)."""
    frames = _chain(tmp_path / "outside")
    daemon = _daemon(tmp_path, library)
    daemons.append(daemon)
    daemon.start()
    for name in order:
        shutil.copy(frames[name], library / name)
        daemon.processed(library / name)  # this one decided before the next arrives
    assert sorted(p.name for p in library.iterdir()) == ["a.jpg"], daemon.log()
    assert sorted(p.name for p in (tmp_path / "dupes").iterdir()) == ["b.jpg", "c.jpg"]
    assert daemon.stop() == 0
