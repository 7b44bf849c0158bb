"""Mirrored and rotated copies (issue 8): the query's 8 orientations, per-watch setting."""

from __future__ import annotations

import io
import json
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import yaml
from PIL import Image

from imagewatchd.compare_report import compare_result
from imagewatchd.config import parse
from imagewatchd.dihedral import NAMES
from imagewatchd.fingerprint import fingerprint_bytes
from imagewatchd.hashindex import hamming
from imagewatchd.models import Fingerprint, Orientations, Thresholds, Turned
from tests.conftest import Run, photo
from tests.daemon_harness import Daemon, iw

T = Image.Transpose
# How a copy is made from the original with Pillow, by the name the verdict gives it.
COPIES: dict[str, tuple[Image.Transpose, ...]] = {
    "mirrored": (T.FLIP_LEFT_RIGHT,),
    "rot90": (T.ROTATE_90,),
    "rot180": (T.ROTATE_180,),
    "rot270": (T.ROTATE_270,),
    "mirrored-rot90": (T.FLIP_LEFT_RIGHT, T.ROTATE_90),
    "mirrored-rot180": (T.FLIP_LEFT_RIGHT, T.ROTATE_180),
    "mirrored-rot270": (T.FLIP_LEFT_RIGHT, T.ROTATE_270),
}


def turned(image: Image.Image, name: str) -> Image.Image:
    for step in COPIES[name]:
        image = image.transpose(step)
    return image


def fingerprint(image: Image.Image, fmt: str = "PNG") -> Fingerprint:
    out = io.BytesIO()
    image.save(out, fmt)
    return fingerprint_bytes(out.getvalue())


@pytest.mark.parametrize("name", sorted(COPIES))
def test_each_turn_undone_gives_the_original_hashes(name: str) -> None:
    original = fingerprint(photo(5))
    copy = fingerprint(turned(photo(5), name), "JPEG")
    assert [view.turn for view in copy.turned] == list(NAMES[1:])
    view = next(view for view in copy.turned if view.turn == name)
    assert hamming(view.dhash, original.dhash) <= 2
    assert hamming(view.phash, original.phash) <= 2
    assert view.pdq is not None and original.pdq is not None
    assert hamming(view.pdq, original.pdq) <= 16
    assert hamming(copy.dhash, original.dhash) > 6  # as it is, the copy does not match


def test_different_photos_are_far_apart_in_every_orientation() -> None:
    prints = [fingerprint(photo(seed)) for seed in range(20, 28)]
    for a in prints:
        for b in prints:
            if a is b:
                continue
            for view in b.turned:
                assert hamming(a.dhash, view.dhash) > 6 or hamming(a.phash, view.phash) > 4


def test_config_orientations_setting() -> None:
    def watch(value: object) -> Orientations:
        config = parse({"watches": [{"path": "/p", "orientations": value}]}, "t")
        return config.watches[0].orientations

    assert parse({"watches": [{"path": "/p"}]}, "t").watches[0].orientations is Orientations.LISTS
    assert watch("all") is Orientations.ALL and watch(True) is Orientations.ALL
    assert watch("none") is Orientations.NONE and watch(False) is Orientations.NONE
    with pytest.raises(Exception, match=r"watches\[0\]\.orientations: expected one of none"):
        watch("sideways")


@pytest.fixture
def listed(tmp_path: Path, cli: Callable[..., Run]) -> Path:
    banned = tmp_path / "banned.jpg"
    photo(100, (800, 600)).save(banned, quality=90)
    cli("known", "add", "--create", "--list", "banned", str(banned), check=0)
    return banned


def test_check_finds_a_mirrored_copy_and_says_so(
    tmp_path: Path, cli: Callable[..., Run], listed: Path
) -> None:
    copy = tmp_path / "upload.png"
    turned(photo(100, (800, 600)), "mirrored").resize((400, 300)).save(copy)
    text = cli("check", str(copy), check=1).out
    assert "known" in text.splitlines()[0]
    assert text.splitlines()[1].endswith(", orientation mirrored")
    found = json.loads(cli("check", "--json", str(copy), check=1).out)
    assert found["verdict"] == "known"
    assert found["matches"][0]["orientation"] == "mirrored"
    other = tmp_path / "other.png"
    turned(photo(101, (800, 600)), "rot90").save(other)
    assert cli("check", str(other), check=0).out.startswith(f"{other}: clean")


def test_a_watch_with_orientations_none_does_not_match_turned_copies(
    tmp_path: Path, cli: Callable[..., Run], listed: Path
) -> None:
    uploads = tmp_path / "uploads"
    uploads.mkdir()
    copy = uploads / "upload.png"
    turned(photo(100, (800, 600)), "rot270").save(copy)
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump({"watches": [{"path": str(uploads), "orientations": "none"}]}))
    assert cli("--config", str(config), "check", str(copy), check=0).out.endswith(": clean\n")
    config.write_text(yaml.safe_dump({"watches": [{"path": str(uploads)}]}))
    assert "orientation rot270" in cli("--config", str(config), "check", str(copy), check=1).out


def test_compare_explains_orientation_region_and_rules(
    tmp_path: Path, cli: Callable[..., Run], listed: Path
) -> None:
    copy = tmp_path / "copy.png"
    turned(photo(100, (800, 600)), "rot180").save(copy)
    lines = cli("compare", str(listed), str(copy), check=0).out.splitlines()
    assert lines[3] == (
        "as a list entry made from the first (orientations on, the default for lists): match by "
        "dHash and pHash"
    )
    assert lines[4].startswith("  evidence: the second as the first rot180, whole: dHash ")
    assert "(turned threshold 5)" in lines[4], lines
    assert lines[6].startswith("  colours: "), lines  # the same colours, turned
    assert lines[7].startswith(
        "as a library photo: duplicate only where the watch has 'orientations: all'; elsewhere "
    )
    result = json.loads(cli("compare", "--json", str(listed), str(copy), check=0).out)
    assert (result["region"], result["orientation"]) == ("whole", "rot180")
    assert result["dhash_distance"] <= result["thresholds"]["dhash"]
    assert (result["list_entry"], result["library_duplicate"]) == (True, False)
    assert result["library_duplicate_turned"] is True
    assert [o["orientation"] for o in result["orientations"]] == list(NAMES)


def _config(tmp: Path, orientations: str) -> dict[str, object]:
    return {
        "quarantine_dir": str(tmp / "quarantine"),
        "rescan_interval": 0,
        "watches": [
            {"path": str(tmp / "uploads"), "role": "incoming", "on_known": "quarantine",
             "include": ["*"], "settle_seconds": 0.5, "orientations": orientations},
        ],
    }  # fmt: skip


@pytest.fixture
def daemon(tmp_path: Path) -> Iterator[Daemon]:
    (tmp_path / "uploads").mkdir()
    d = Daemon(tmp_path, _config(tmp_path, "lists"))
    banned = tmp_path / "banned.jpg"
    photo(100, (800, 600)).save(banned, quality=90)
    assert iw(d.db, "known", "add", "--create", "--list", "banned", str(banned)).returncode == 0
    d.start()
    yield d
    d.kill()


def test_the_daemon_quarantines_a_rotated_copy_and_logs_the_orientation(
    daemon: Daemon, tmp_path: Path
) -> None:
    upload = tmp_path / "uploads" / "turned.jpg"
    turned(photo(100, (800, 600)), "rot90").save(upload, quality=85)
    line = daemon.processed(upload)
    assert "known list=banned" in line and "orientation=rot90" in line, line
    assert line.endswith("]") and "-> quarantine " in line
    assert not upload.exists()
    clean = tmp_path / "uploads" / "other.jpg"
    turned(photo(101, (800, 600)), "mirrored").save(clean, quality=85)
    assert daemon.processed(clean).endswith("clean -> none")


def _near(value: int, bits: int) -> int:
    return value ^ ((1 << bits) - 1)


def test_another_orientation_needs_one_bit_more_margin() -> None:
    a = fingerprint(photo(7))
    t = Thresholds(6, 4, 31, 50)
    for dbits, pbits, expected in ((6, 4, False), (5, 2, True), (6, 2, False), (5, 4, False)):
        same = Fingerprint("x", _near(a.dhash, dbits), _near(a.phash, pbits), 1, 1, "PNG", False)
        view = Turned("mirrored", same.dhash, same.phash, None)
        far = 2**64 - 1  # every bit different as it is
        turned = Fingerprint("y", a.dhash ^ far, a.phash ^ far, 1, 1, "PNG", False, turned=(view,))
        assert compare_result(a, same, t)["list_entry"] is True  # as it is: the usual thresholds
        result = compare_result(a, turned, t)
        assert result["list_entry"] is expected, (dbits, pbits)
        assert result["orientation"] == "mirrored"
