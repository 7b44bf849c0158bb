"""What the one-shot commands say: once per file, truthful counts, clear refusals."""

from __future__ import annotations

import json
import struct
import warnings
from collections.abc import Callable
from pathlib import Path

from PIL import Image, ImageOps

from tests.conftest import MakeImage, Run, photo

Cli = Callable[..., Run]


def test_scan_act_says_each_file_once(cli: Cli, tmp_path: Path, make_image: MakeImage) -> None:
    """On a terminal standard output and the log are one screen: one line per file in all."""
    clean = make_image("uploads/clean.jpg", seed=12, quality=90)
    banned = make_image("uploads/banned.jpg", seed=13, quality=90)
    cli("known", "add", "--create", "--list", "banned", str(banned), check=0)
    config = tmp_path / "config.yaml"
    config.write_text(
        f"quarantine_dir: {tmp_path / 'q'}\n"
        f"watches:\n  - path: {tmp_path / 'uploads'}\n    role: incoming\n"
        f"    on_known: quarantine\n"
    )
    run = cli("--config", str(config), "scan", "--act", check=0)
    screen = run.out + run.err
    assert screen.count(f"{clean}:") == 1, screen
    assert screen.count(f"{banned}:") == 1, screen
    assert f"{clean}: clean -> none" in run.out
    assert f"{banned}: known list=banned" in run.out
    assert f"-> quarantine {tmp_path / 'q'}" in run.out  # where it went, and the action id
    assert "[action 1]" in run.out


def test_known_add_and_import_create_a_list_only_when_asked(
    cli: Cli, tmp_path: Path, make_image: MakeImage
) -> None:
    banned = make_image("banned.jpg", seed=3, quality=90)
    cli("known", "add", "--create", "--list", "banned", str(banned), check=0)
    typo = cli("known", "add", "--list", "baned", str(banned), check=2)
    assert typo.err.strip() == (
        "imagewatchd: error: no list named 'baned' (existing lists: 'banned'); "
        "add --create to create it"
    )
    exported = cli("known", "export", "--list", "banned", "--format", "hex", check=0).out
    (tmp_path / "list.txt").write_text(exported)
    typo = cli("known", "import", "--list", "baned", str(tmp_path / "list.txt"), check=2)
    assert "no list named 'baned'" in typo.err
    names = [row["name"] for row in json.loads(cli("lists", "list", "--json", check=0).out)]
    assert names == ["banned"]
    again = cli("known", "add", "--create", "--list", "banned", str(banned), check=0)
    assert "added 0, already listed 1" in again.out  # --create on an existing list: that list
    cli("known", "import", "--create", "--list", "more", str(tmp_path / "list.txt"), check=0)
    names = [row["name"] for row in json.loads(cli("lists", "list", "--json", check=0).out)]
    assert names == ["banned", "more"]


def test_disable_and_enable_count_what_changed(
    cli: Cli, tmp_path: Path, make_image: MakeImage
) -> None:
    for seed in (3, 4):
        make_image(f"banned/{seed}.jpg", seed=seed, quality=90)
    cli("known", "add", "--create", "--list", "banned", str(tmp_path / "banned"), check=0)
    assert cli("known", "disable", "1", check=0).out == "disabled 1 entry\n"
    assert cli("known", "disable", "1", check=0).out == "disabled 0 entries, 1 already disabled\n"
    assert cli("known", "disable", "1", "2", check=0).out == (
        "disabled 1 entry, 1 already disabled\n"
    )
    assert cli("known", "enable", "1", "2", check=0).out == (
        "enabled 2 entries\nentry IDs: 1, 2\nstored incoming files matched: 0\n"
    )  # re-enabled entries count as new ones: what they reach among the files already there
    assert cli("known", "remove", "2", check=0).out == "removed 1 entry\n"


def corrupt_exif_jpeg(path: Path) -> Path:
    """A JPEG whose EXIF block claims 40 tags and holds one: Pillow warns as it reads it."""
    entry = struct.pack("<HHII", 0x010E, 2, 100, 0x1000)  # ImageDescription, far past the end
    tiff = b"II*\x00" + struct.pack("<I", 8) + struct.pack("<H", 40) + entry + b"\0\0\0\0"
    photo(21, (300, 200)).save(path, "JPEG", exif=b"Exif\x00\x00" + tiff)
    return path


def test_library_warnings_never_reach_stderr(cli: Cli, tmp_path: Path) -> None:
    bad = corrupt_exif_jpeg(tmp_path / "bad-exif.jpg")
    with warnings.catch_warnings(record=True) as caught:  # the file does provoke it
        warnings.simplefilter("always")
        with Image.open(bad) as image:
            ImageOps.exif_transpose(image)
    assert any("Corrupt EXIF data" in str(w.message) for w in caught)
    checked = cli("check", str(bad), check=0)
    assert (checked.out, checked.err) == (f"{bad}: clean\n", "")
    compared = cli("compare", str(bad), str(bad), check=0)
    assert compared.err == ""
    assert compared.out.count(f"{bad}: dHash ") == 2
