"""fileops on real directories: no-replace moves, identity checks, symlink and error handling."""

from __future__ import annotations

import errno
import hashlib
import os
import resource
import shutil
import signal
import stat
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path, PurePosixPath

import pytest

from imagewatchd import fileops
from imagewatchd.fileops import (
    FileChanged,
    FileOpsError,
    Location,
    NotRegular,
    TargetExists,
    UnsafePath,
    check_same,
    exists,
    file_stat,
    lstat,
    move,
    remove,
    restore_times_owner,
    set_mode,
    sha256_of,
    unique_name,
)
from imagewatchd.models import FileStat

ATIME_NS = 1_600_000_000_123_456_789
MTIME_NS = 1_700_000_000_987_654_321
TMP = ".imagewatchd-move.tmp"
NOBODY = 65534


def loc(root: Path, relative: str) -> Location:
    return Location(root, PurePosixPath(relative))


def put(root: Path, relative: str, data: bytes = b"jpeg bytes", mode: int = 0o644) -> Location:
    """A regular file with known bytes, mode and times; returns its Location."""
    path = root / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    path.chmod(mode)
    os.utime(path, ns=(ATIME_NS, MTIME_NS))
    return loc(root, relative)


def ident(location: Location) -> FileStat:
    return file_stat(lstat(location))


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    root = tmp_path / "tree"
    root.mkdir()
    return root


@pytest.fixture
def shm(tmp_path: Path) -> Iterator[Path]:
    """A directory on another filesystem (tmpfs /dev/shm), or skip."""
    if not os.path.isdir("/dev/shm"):
        pytest.skip("/dev/shm is not available")
    with tempfile.TemporaryDirectory(dir="/dev/shm", prefix="imagewatchd-test-") as name:
        if os.stat(name).st_dev == os.stat(tmp_path).st_dev:
            pytest.skip("/dev/shm is on the same filesystem as the test directory")
        os.chmod(name, 0o755)
        yield Path(name)


@pytest.fixture
def target(request: pytest.FixtureRequest, tmp_path: Path) -> Path:
    """A destination root on the same filesystem, or on another one (for the copy path)."""
    if request.param == "cross-fs":
        shm_root: Path = request.getfixturevalue("shm")
        return shm_root
    root = tmp_path / "target"
    root.mkdir()
    return root


both_filesystems = pytest.mark.parametrize("target", ["same-fs", "cross-fs"], indirect=True)


@contextmanager
def as_nobody() -> Iterator[None]:
    """Run the block without root's override of permissions (a no-op when not root)."""
    if os.geteuid() != 0:
        yield
        return
    os.seteuid(NOBODY)
    try:
        yield
    finally:
        os.seteuid(0)


@pytest.fixture
def open_dir() -> Iterator[Callable[[str], Path]]:
    """World-traversable directories (tmp_path's parents are private to root)."""
    made: list[str] = []

    def make(under: str) -> Path:
        made.append(tempfile.mkdtemp(dir=under, prefix="imagewatchd-test-"))
        os.chmod(made[-1], 0o755)
        return Path(made[-1])

    yield make
    for name in made:
        for top, _, _ in os.walk(name):
            os.chmod(top, 0o755)  # a test may have left one read-only (its owner may be anyone)
        shutil.rmtree(name)


# --- moves that succeed -----------------------------------------------------------------------


def test_same_fs_move_keeps_bytes_inode_and_times(tree: Path) -> None:
    src = put(tree, "in/photo.jpg", b"\xff\xd8 some jpeg", mode=0o640)
    before = ident(src)
    dst = loc(tree, "quarantine/2024/photo.jpg")
    assert move(src, dst, expect=before, tmp_name=TMP).cross_device is False
    st = lstat(dst)
    assert dst.path.read_bytes() == b"\xff\xd8 some jpeg"
    assert file_stat(st) == before
    assert (st.st_atime_ns, st.st_mtime_ns) == (ATIME_NS, MTIME_NS)
    assert stat.S_IMODE(st.st_mode) == 0o640
    assert not exists(src)
    assert sorted(os.listdir(dst.path.parent)) == ["photo.jpg"]


def test_same_fs_move_applies_mode(tree: Path) -> None:
    src = put(tree, "photo.jpg", mode=0o755)
    dst = loc(tree, "q/photo.jpg")
    move(src, dst, expect=ident(src), tmp_name=TMP, mode=0o600)
    assert stat.S_IMODE(lstat(dst).st_mode) == 0o600


def test_cross_fs_move_copies_bytes_times_mode_owner(tree: Path, shm: Path) -> None:
    data = os.urandom(3 << 20)
    src = put(tree, "in/photo.jpg", data, mode=0o755)
    if os.geteuid() == 0:
        os.chown(src.path, 1234, 4321)
    dst = loc(shm, "quarantine/photo.jpg")
    assert move(src, dst, expect=ident(src), tmp_name=TMP, mode=0o600).cross_device is True
    st = lstat(dst)
    assert dst.path.read_bytes() == data
    assert (st.st_atime_ns, st.st_mtime_ns) == (ATIME_NS, MTIME_NS)
    assert stat.S_IMODE(st.st_mode) == 0o600
    if os.geteuid() == 0:
        assert (st.st_uid, st.st_gid) == (1234, 4321)
    assert not src.path.exists()
    assert os.listdir(dst.path.parent) == ["photo.jpg"]


def test_cross_fs_move_keeps_the_mode_when_none_is_given(tree: Path, shm: Path) -> None:
    src = put(tree, "photo.jpg", mode=0o640)
    dst = loc(shm, "photo.jpg")
    move(src, dst, expect=ident(src), tmp_name=TMP)
    assert stat.S_IMODE(lstat(dst).st_mode) == 0o640


def test_link_fallback_where_renameat2_is_unsupported(
    tree: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Fake only the kernel's answer: a filesystem without RENAME_NOREPLACE."""

    def unsupported(*_args: object) -> None:
        raise OSError(errno.EINVAL, os.strerror(errno.EINVAL))

    monkeypatch.setattr(fileops, "_renameat2", unsupported)
    src = put(tree, "photo.jpg")
    taken = put(tree, "q/taken.jpg", b"other")
    before = ident(src)
    with pytest.raises(TargetExists):
        move(src, taken, expect=before, tmp_name=TMP)
    assert taken.path.read_bytes() == b"other"
    dst = loc(tree, "q/photo.jpg")
    move(src, dst, expect=before, tmp_name=TMP, mode=0o600)
    assert file_stat(lstat(dst)) == before
    assert lstat(dst).st_nlink == 1
    assert stat.S_IMODE(lstat(dst).st_mode) == 0o600
    assert not exists(src)


# --- never overwrite ----------------------------------------------------------------------------


@both_filesystems
def test_never_overwrites_an_existing_destination(tree: Path, target: Path) -> None:
    src = put(tree, "photo.jpg", b"new")
    dst = put(target, "q/photo.jpg", b"old")
    old = ident(dst)
    with pytest.raises(TargetExists, match="nothing was overwritten"):
        move(src, dst, expect=ident(src), tmp_name=TMP)
    assert src.path.read_bytes() == b"new"
    assert dst.path.read_bytes() == b"old"
    assert ident(dst) == old
    assert os.listdir(dst.path.parent) == ["photo.jpg"]


@both_filesystems
def test_a_symlink_at_the_destination_is_not_followed_or_replaced(
    tree: Path, target: Path, tmp_path: Path
) -> None:
    src = put(tree, "photo.jpg")
    (target / "q").mkdir()
    (target / "q" / "photo.jpg").symlink_to(tmp_path / "outside.jpg")
    with pytest.raises(TargetExists):
        move(src, loc(target, "q/photo.jpg"), expect=ident(src), tmp_name=TMP)
    assert not (tmp_path / "outside.jpg").exists()
    assert src.path.exists()


def test_a_leftover_temporary_file_is_not_replaced(tree: Path, shm: Path) -> None:
    src = put(tree, "photo.jpg")
    leftover = put(shm, TMP, b"leftover")
    with pytest.raises(TargetExists):
        move(src, loc(shm, "photo.jpg"), expect=ident(src), tmp_name=TMP)
    assert leftover.path.read_bytes() == b"leftover"
    assert sorted(os.listdir(shm)) == [TMP]
    assert src.path.exists()


# --- the file must still be the one that was fingerprinted -------------------------------------


def _grow(path: Path) -> None:
    with path.open("ab") as f:
        f.write(b"more")
    os.utime(path, ns=(ATIME_NS, MTIME_NS))


def _touch(path: Path) -> None:
    os.utime(path, ns=(ATIME_NS, MTIME_NS + 1))


def _replace(path: Path) -> None:
    other = path.with_name("other")
    shutil.copy2(path, other)
    os.utime(other, ns=(ATIME_NS, MTIME_NS))
    other.rename(path)


CHANGES: dict[str, Callable[[Path], object]] = {
    "size": _grow,
    "mtime": _touch,
    "inode": _replace,
    "vanished": Path.unlink,
}


@both_filesystems
@pytest.mark.parametrize("change", CHANGES)
def test_a_changed_file_is_not_moved(tree: Path, target: Path, change: str) -> None:
    src = put(tree, "photo.jpg")
    expect = ident(src)
    CHANGES[change](src.path)
    dst = loc(target, "q/photo.jpg")
    with pytest.raises(FileChanged, match=change if change != "size" else "size 10 -> 14"):
        move(src, dst, expect=expect, tmp_name=TMP)
    with pytest.raises(FileChanged):
        check_same(src, expect)
    assert not exists(dst)
    assert (change == "vanished") != src.path.exists()


def test_a_file_swapped_just_before_the_rename_is_put_back(
    tree: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The race itself is injected: another file takes src's name right before the rename."""
    real = fileops._renameat2
    swaps = [1]

    def swap_then_rename(sfd: int, sname: str, dfd: int, dname: str) -> None:
        if swaps and swaps.pop():
            put(tree, "intruder.jpg", b"intruder")
            os.rename(tree / "intruder.jpg", tree / "photo.jpg")
        real(sfd, sname, dfd, dname)

    src = put(tree, "photo.jpg")
    expect = ident(src)
    monkeypatch.setattr(fileops, "_renameat2", swap_then_rename)
    with pytest.raises(FileChanged, match="replaced during the move"):
        move(src, loc(tree, "q/photo.jpg"), expect=expect, tmp_name=TMP)
    assert src.path.read_bytes() == b"intruder"
    assert os.listdir(tree / "q") == []


def test_a_file_written_during_the_copy_is_not_moved(
    tree: Path, shm: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The writer is injected: the source grows while its bytes are being copied."""
    real = fileops._copy_bytes

    def copy_while_writing(in_fd: int, out_fd: int) -> int:
        with (tree / "photo.jpg").open("ab") as f:
            f.write(b"late bytes")
        return real(in_fd, out_fd)

    src = put(tree, "photo.jpg")
    monkeypatch.setattr(fileops, "_copy_bytes", copy_while_writing)
    with pytest.raises(FileChanged):
        move(src, loc(shm, "photo.jpg"), expect=ident(src), tmp_name=TMP)
    assert src.path.read_bytes() == b"jpeg byteslate bytes"
    assert os.listdir(shm) == []


# --- only regular files, never through symlinks ------------------------------------------------


def _symlink(path: Path) -> None:
    path.with_name("real.jpg").write_bytes(b"real")
    path.symlink_to("real.jpg")


KINDS: dict[str, Callable[[Path], object]] = {
    "symbolic link": _symlink,
    "FIFO": os.mkfifo,
    "directory": Path.mkdir,
}


@both_filesystems
@pytest.mark.parametrize("kind", KINDS)
def test_only_regular_files_are_acted_on(tree: Path, target: Path, kind: str) -> None:
    src = loc(tree, "thing")
    KINDS[kind](src.path)
    expect = ident(src)
    with pytest.raises(NotRegular, match=f"is a {kind}"):
        move(src, loc(target, "q/thing"), expect=expect, tmp_name=TMP)
    for action in (lambda: check_same(src, expect), lambda: sha256_of(src), lambda: remove(src)):
        with pytest.raises(NotRegular):
            action()
    assert exists(src)
    assert not exists(loc(target, "q/thing"))


@both_filesystems
@pytest.mark.parametrize("side", ["src", "dst"])
def test_a_directory_symlinked_outside_the_tree_is_refused(
    tree: Path, target: Path, tmp_path: Path, side: str
) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "photo.jpg").write_bytes(b"outside")
    src = put(tree, "in/photo.jpg")
    expect = ident(src)
    if side == "src":
        shutil.rmtree(tree / "in")
        (tree / "in").symlink_to(outside)
        dst = loc(target, "q/photo.jpg")
    else:
        (target / "q").symlink_to(outside)
        dst = loc(target, "q/new.jpg")
    with pytest.raises(UnsafePath, match="symbolic link"):
        move(src, dst, expect=expect, tmp_name=TMP)
    assert os.listdir(outside) == ["photo.jpg"]
    assert (outside / "photo.jpg").read_bytes() == b"outside"
    assert (side == "src") or src.path.read_bytes() == b"jpeg bytes"


# --- errors name the path and the reason, and leave the source whole ---------------------------


@both_filesystems
def test_a_destination_below_a_regular_file_is_a_clear_error(tree: Path, target: Path) -> None:
    src = put(tree, "photo.jpg")
    put(target, "file.txt", b"not a directory")
    with pytest.raises(FileOpsError, match=r"file\.txt: is not a directory"):
        move(src, loc(target, "file.txt/photo.jpg"), expect=ident(src), tmp_name=TMP)
    assert src.path.read_bytes() == b"jpeg bytes"


@both_filesystems
def test_an_unwritable_destination_is_permission_denied(
    target: Path, open_dir: Callable[[str], Path]
) -> None:
    base = open_dir("/tmp")
    src = put(base, "in/photo.jpg")
    (base / "in").chmod(0o777)
    dst_root = open_dir(str(target) if target.is_relative_to("/dev/shm") else "/tmp")
    (dst_root / "q").mkdir(mode=0o555)
    with as_nobody(), pytest.raises(FileOpsError, match="permission denied") as raised:
        move(src, loc(dst_root, "q/photo.jpg"), expect=ident(src), tmp_name=TMP)
    assert f"{dst_root}/q/" in str(raised.value)
    assert src.path.read_bytes() == b"jpeg bytes"
    assert os.listdir(dst_root / "q") == []


def test_a_source_that_cannot_be_removed_leaves_no_copy(
    shm: Path, open_dir: Callable[[str], Path]
) -> None:
    base = open_dir("/tmp")
    src = put(base, "in/photo.jpg")
    (base / "in").chmod(0o555)
    dst_root = open_dir(str(shm))
    dst_root.chmod(0o777)
    with as_nobody(), pytest.raises(FileOpsError, match=r"in/photo\.jpg: permission denied"):
        move(src, loc(dst_root, "photo.jpg"), expect=ident(src), tmp_name=TMP)
    assert src.path.read_bytes() == b"jpeg bytes"
    assert os.listdir(dst_root) == []


def test_a_write_error_during_the_copy_leaves_no_partial_file(tree: Path, shm: Path) -> None:
    """A real write failure: the file-size limit (EFBIG) stands in for a full disk."""
    src = put(tree, "photo.jpg", os.urandom(1 << 20))
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    old_handler = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (64 << 10, hard))
    try:
        with pytest.raises(FileOpsError, match="file too large") as raised:
            move(src, loc(shm, "photo.jpg"), expect=ident(src), tmp_name=TMP)
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
        signal.signal(signal.SIGXFSZ, old_handler)
    assert str(shm / "photo.jpg") in str(raised.value)
    assert len(src.path.read_bytes()) == 1 << 20
    assert os.listdir(shm) == []


# --- the smaller operations ---------------------------------------------------------------------


def test_unique_name_counts_up(tree: Path) -> None:
    root = loc(tree, ".")
    assert unique_name(root, "photo.jpg") == "photo.jpg"
    put(tree, "photo.jpg")
    put(tree, "photo~1.jpg")
    assert unique_name(root, "photo.jpg") == "photo~2.jpg"
    put(tree, "sub/README")
    assert unique_name(loc(tree, "sub"), "README") == "README~1"
    assert unique_name(loc(tree, "missing/dir"), ".hidden") == ".hidden"
    with pytest.raises(ValueError, match="not a plain file name"):
        unique_name(root, "a/b")


def test_remove_only_the_expected_file(tree: Path) -> None:
    target = put(tree, "dup.jpg")
    expect = ident(target)
    _touch(target.path)
    with pytest.raises(FileChanged, match="mtime_ns"):
        remove(target, expect=expect)
    assert target.path.exists()
    remove(target, expect=ident(target))
    assert not exists(target)
    with pytest.raises(FileChanged, match="vanished"):
        remove(target)
    with pytest.raises(FileChanged, match="vanished"):
        remove(loc(tree, "gone/dup.jpg"))


def test_sha256_of_a_file(tree: Path) -> None:
    data = os.urandom(100_000)
    assert sha256_of(put(tree, "a.jpg", data)) == hashlib.sha256(data).hexdigest()


def test_set_mode_and_restore_times_and_owner(tree: Path) -> None:
    target = put(tree, "photo.jpg", mode=0o600)
    set_mode(target, 0o4755)
    uid, gid = (1234, 4321) if os.geteuid() == 0 else (os.geteuid(), os.getegid())
    restore_times_owner(target, atime_ns=ATIME_NS + 5, mtime_ns=MTIME_NS + 7, uid=uid, gid=gid)
    st = lstat(target)
    assert (st.st_atime_ns, st.st_mtime_ns) == (ATIME_NS + 5, MTIME_NS + 7)
    assert (st.st_uid, st.st_gid) == (uid, gid)
    assert stat.S_IMODE(st.st_mode) == 0o4755


def test_exists_and_lstat_never_follow(tree: Path) -> None:
    (tree / "dangling").symlink_to(tree / "nowhere")
    assert exists(loc(tree, "dangling"))
    assert stat.S_ISLNK(lstat(loc(tree, "dangling")).st_mode)
    assert not exists(loc(tree, "nowhere"))
    assert not exists(loc(tree, "no/such/dir/file"))


@pytest.mark.parametrize(
    ("root", "relative"),
    [("relative/root", "a.jpg"), ("/abs", "/etc/passwd"), ("/abs", "a/../../b.jpg")],
)
def test_locations_stay_inside_their_tree(root: str, relative: str) -> None:
    with pytest.raises(ValueError, match="must be"):
        Location(Path(root), PurePosixPath(relative))


def test_a_file_renamed_onto_the_source_during_a_copy_is_never_removed(
    tree: Path, shm: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An upload renamed onto the source's name between the copy and the source's removal
    (fake: the rename is injected at that instant) stays; the original, which that rename
    unlinked, survives whole at the destination."""
    src = put(tree, "up/photo.jpg", b"the original")
    newcomer = put(tree, "up/.incoming", b"a new upload under the same name")
    real = fileops._rename_noreplace

    def racing(sfd: int, sname: str, dfd: int, dname: str) -> None:
        if dname.endswith(".src") and newcomer.path.exists():
            os.replace(newcomer.path, src.path)  # the upload server's rename
        real(sfd, sname, dfd, dname)

    monkeypatch.setattr(fileops, "_rename_noreplace", racing)
    expect = ident(src)
    os.utime(newcomer.path, ns=(ATIME_NS, MTIME_NS + 1))
    move(src, loc(shm, "q/photo.jpg"), expect=expect, tmp_name=TMP)
    assert src.path.read_bytes() == b"a new upload under the same name"
    assert (shm / "q" / "photo.jpg").read_bytes() == b"the original"
    assert sorted(p.name for p in (tree / "up").iterdir()) == ["photo.jpg"]


def test_a_source_written_in_place_during_a_copy_withdraws_the_copy(
    tree: Path, shm: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    src = put(tree, "up/photo.jpg", b"the original")
    real = fileops._rename_noreplace

    def writing(sfd: int, sname: str, dfd: int, dname: str) -> None:
        if dname.endswith(".src"):
            with src.path.open("ab") as out:  # the writer was not done after all
                out.write(b", and more")
        real(sfd, sname, dfd, dname)

    monkeypatch.setattr(fileops, "_rename_noreplace", writing)
    with pytest.raises(FileChanged):
        move(src, loc(shm, "q/photo.jpg"), expect=ident(src), tmp_name=TMP)
    assert src.path.read_bytes() == b"the original, and more"
    assert not (shm / "q" / "photo.jpg").exists()
