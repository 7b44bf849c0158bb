"""Walks by directory fds: no directory inside a tree is ever followed if it is a symlink (#4).

A directory swapped for a symlink to an outside directory, before or during a walk, must never
make the walk list outside files under in-tree paths.
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path, PurePosixPath

import pytest

from imagewatchd.filters import Selection, walk
from tests.conftest import photo
from tests.daemon_harness import Daemon, iw, sha256

ALL = Selection(include=("*",))


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    """A directory outside the tree, holding files (and a subdirectory) a walk must not list."""
    where = tmp_path / "outside"
    (where / "deeper").mkdir(parents=True)
    for name in ("secret.jpg", "b.jpg", "deeper/more.jpg"):
        (where / name).write_bytes(b"outside")
    return where


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    root = tmp_path / "tree"
    for name in ("0.jpg", "a/1.jpg", "b/2.jpg", "b/sub/3.jpg", "c/4.jpg"):
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(b"inside")
    return root


def swap_for_link(directory: Path, target: Path, aside: Path) -> None:
    """Move ``directory`` out of the tree and put a symlink to ``target`` in its place."""
    directory.rename(aside)
    directory.symlink_to(target, target_is_directory=True)


def names(found: Iterator[tuple[Path, os.stat_result]], root: Path) -> list[str]:
    return [path.relative_to(root).as_posix() for path, _ in found]


def is_inside(info: os.stat_result, outside: Path) -> bool:
    return all(
        (info.st_dev, info.st_ino) != (o.st_dev, o.st_ino)
        for o in (p.lstat() for p in outside.rglob("*"))
    )


def test_walk_lists_regular_files_in_order(tree: Path, outside: Path) -> None:
    (tree / "a" / "link").symlink_to(outside)
    (tree / "a" / "file-link.jpg").symlink_to(outside / "secret.jpg")
    assert names(walk(tree, ALL), tree) == ["0.jpg", "a/1.jpg", "b/2.jpg", "b/sub/3.jpg", "c/4.jpg"]
    assert names(walk(tree, ALL, recursive=False), tree) == ["0.jpg"]


@pytest.mark.parametrize(
    ("after", "victim", "expected"),
    [
        ("0.jpg", "b", ["0.jpg", "a/1.jpg", "c/4.jpg"]),
        ("a/1.jpg", "b", ["0.jpg", "a/1.jpg", "c/4.jpg"]),
        ("b/2.jpg", "b/sub", ["0.jpg", "a/1.jpg", "b/2.jpg", "c/4.jpg"]),
        ("b/sub/3.jpg", "c", ["0.jpg", "a/1.jpg", "b/2.jpg", "b/sub/3.jpg"]),
    ],
)
def test_a_directory_swapped_for_a_symlink_during_a_walk_is_not_followed(
    tree: Path, outside: Path, tmp_path: Path, after: str, victim: str, expected: list[str]
) -> None:
    """Swapped once the walk has listed its parent, before the walk opens it."""
    found = []
    for path, info in walk(tree, ALL):
        found.append((path, info))
        if path == tree / after:
            swap_for_link(tree / victim, outside, tmp_path / "aside")
    assert all(is_inside(info, outside) for _, info in found), "an outside file was listed"
    assert names(iter(found), tree) == expected


def test_a_walk_below_a_directory_reaches_it_without_following_a_symlink(
    tree: Path, outside: Path, tmp_path: Path
) -> None:
    """The daemon's walk of a new directory: it starts at the watch root, never at the path."""
    assert names(walk(tree, ALL, top=PurePosixPath("b")), tree) == ["b/2.jpg", "b/sub/3.jpg"]
    swap_for_link(tree / "b", outside, tmp_path / "aside")
    errors: list[tuple[Path, OSError]] = []
    below_b = walk(tree, ALL, on_error=lambda p, e: errors.append((p, e)), top=PurePosixPath("b"))
    assert list(below_b) == []
    assert [(p, e.strerror) for p, e in errors] == [
        (tree / "b", "is a symbolic link; not followed")
    ]
    (tree / "d").mkdir()
    (tree / "d" / "e").symlink_to(outside)
    assert list(walk(tree, ALL, top=PurePosixPath("d/e/deeper"))) == []


def test_selection_sees_paths_relative_to_the_root(tree: Path) -> None:
    photos = Selection(include=("b/sub/*.jpg",))
    assert names(walk(tree, photos, top=PurePosixPath("b/sub")), tree) == ["b/sub/3.jpg"]
    (tree / ".hidden" / "x").mkdir(parents=True)
    (tree / ".hidden" / "x" / "5.jpg").write_bytes(b"inside")
    assert list(walk(tree, ALL, top=PurePosixPath(".hidden/x"))) == []


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def test_fds_held_are_the_current_chain_and_closed_on_close(tmp_path: Path) -> None:
    root = tmp_path / "wide"
    for n in range(60):  # 60 sibling directories, each two deep
        (root / f"d{n:02}" / "inner").mkdir(parents=True)
        (root / f"d{n:02}" / "inner" / "x.jpg").write_bytes(b"inside")
    baseline = open_fds()
    most = 0
    walking = walk(root, ALL)
    for count, _ in enumerate(walking):
        most = max(most, open_fds() - baseline)
        if count == 30:
            break
    assert most <= 3, f"{most} fds held at once for a chain of 3 directories"
    walking.close()
    assert open_fds() == baseline
    assert len(list(walk(root, ALL))) == 60
    assert open_fds() == baseline


def test_unreadable_directories_are_reported(tree: Path) -> None:
    if os.geteuid() == 0:
        pytest.skip("root reads any directory")
    (tree / "b").chmod(0)
    errors: list[Path] = []
    try:
        found = names(walk(tree, ALL, on_error=lambda p, e: errors.append(p)), tree)
    finally:
        (tree / "b").chmod(0o755)
    assert found == ["0.jpg", "a/1.jpg", "c/4.jpg"]
    assert errors == [tree / "b"]


def test_a_missing_root_is_reported(tmp_path: Path) -> None:
    errors: list[tuple[Path, int | None]] = []
    found = walk(tmp_path / "nope", ALL, on_error=lambda p, e: errors.append((p, e.errno)))
    assert list(found) == []
    assert errors == [(tmp_path / "nope", 2)]


def test_the_daemon_never_records_files_behind_swapped_new_directories(tmp_path: Path) -> None:
    """The issue's failure: 20 new subdirectories swapped for symlinks to an outside directory
    between their creation event and their walk; the daemon recorded outside files under
    in-tree paths. Nothing outside may be recorded, logged as processed or acted on."""
    uploads, outside, aside = tmp_path / "uploads", tmp_path / "outside", tmp_path / "aside"
    for directory in (uploads, outside, aside):
        directory.mkdir()
    for seed in range(3):
        photo(300 + seed, (320, 240)).save(outside / f"outside-{seed}.png")
    photo(400, (320, 240)).save(outside / "outside-banned.png")
    config = {
        "quarantine_dir": str(tmp_path / "q"), "rescan_interval": 0,
        "watches": [{"path": str(uploads), "role": "incoming", "on_known": "quarantine",
                     "settle_seconds": 0.3}],
    }  # fmt: skip
    daemon = Daemon(tmp_path, config)
    assert iw(
        daemon.db,
        "known",
        "add",
        "--create",
        "--list",
        "banned",
        str(outside / "outside-banned.png"),
    )
    daemon.start()
    try:
        for n in range(20):
            new = uploads / f"new{n:02}"
            new.mkdir()
            swap_for_link(new, outside, aside / new.name)
        last = uploads / "last.png"  # written after every swap: processed after their walks
        photo(500, (320, 240)).save(last)
        daemon.processed(last)
        assert daemon.stop() == 0
    finally:
        daemon.kill()
    outside_digests = {sha256(p) for p in outside.iterdir()}
    with closing(sqlite3.connect(daemon.db)) as db:
        recorded = {digest for (digest,) in db.execute("SELECT sha256 FROM files")}
        acted = db.execute("SELECT count(*) FROM actions").fetchone()[0]
    lines = daemon.log().splitlines()
    # the swap comes microseconds after the mkdir, the walk milliseconds: most walks see it
    refused = [
        line for line in lines if line.endswith(": not walked: is a symbolic link; not followed")
    ]
    assert refused, "no walk of a new directory met the symlink"
    processed = [line for line in lines if "/new" in line and " -> " in line]
    assert processed == [], "files outside the watch were processed"
    assert recorded == {sha256(last)}, "files outside the watch were recorded"
    assert acted == 0
    assert sorted(p.name for p in outside.iterdir()) == [
        "outside-0.png",
        "outside-1.png",
        "outside-2.png",
        "outside-banned.png",
    ]
    assert not outside_digests & recorded
