"""The keep policy wired in: dupes (text and --json) and scan --act rank each group by the
policy of the watch holding it, on real files with real EXIF, and say why the keeper wins."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from tests.conftest import Run, photo
from tests.test_keep import CAMERA, CAPTURED, write_photo

Cli = Callable[..., Run]


def _library(root: Path) -> Path:
    """A camera original, a larger messenger re-encode of it, a HEIC made from it."""
    lib = root / "lib"
    (lib / "chat").mkdir(parents=True)
    write_photo(lib / "IMG_0001.jpg", quality=92, tags=CAMERA, inner=CAPTURED)
    grain = np.random.default_rng(8).integers(0, 256, (480, 640, 3), dtype=np.uint8)
    noisy = Image.blend(photo(7).resize((640, 480)), Image.fromarray(grain), 0.2)
    noisy.save(lib / "chat" / "received.jpg", quality=60)
    write_photo(lib / "IMG_0001.heic", fmt="HEIF")
    return lib


def _config(tmp_path: Path, lib: Path, **keep: object) -> Path:
    watch = {"path": str(lib), "role": "library", "on_duplicate": "move",
             "move_to": str(tmp_path / "dupes"), **keep}  # fmt: skip
    path = tmp_path / "config.yaml"
    path.write_text(json.dumps({"quarantine_dir": str(tmp_path / "q"), "watches": [watch]}))
    return path


def _groups(cli: Cli, config: Path) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = json.loads(
        cli("--config", str(config), "dupes", "--json", check=0).out
    )["groups"]
    return found


def test_dupes_json_keeps_the_camera_original_and_says_why(cli: Cli, tmp_path: Path) -> None:
    lib = _library(tmp_path)
    config = _config(tmp_path, lib)
    cli("--config", str(config), "scan", str(lib), check=0)
    (group,) = _groups(cli, config)
    assert len(group["files"]) == 3
    keeper, *others = group["files"]
    assert keeper["path"] == str(lib / "IMG_0001.jpg")
    assert group["id"] == keeper["id"] and group["reason"] == keeper["reason"]
    assert keeper["reason"].startswith("original: camera Canon EOS 5D Mark IV, captured 2019")
    assert (keeper["keep"], keeper["distance"]) == (True, None)
    assert keeper["captured"] == "2019-05-01T12:34:56" and keeper["jpeg_quality"] == 92
    assert (keeper["width"], keeper["height"], keeper["format"]) == (640, 480, "JPEG")
    assert keeper["size"] == (lib / "IMG_0001.jpg").stat().st_size
    for other in others:
        assert other["keep"] is False and other["reason"].startswith("original: ")
        assert other["distance"]["identical"] is False
        assert isinstance(other["distance"]["dhash"], int)
    text = cli("--config", str(config), "dupes", check=0).out.splitlines()
    assert text[1] == f"  why: {group['reason']}"


def test_a_watch_policy_and_its_reference_folder_decide(cli: Cli, tmp_path: Path) -> None:
    lib = _library(tmp_path)
    (lib / "archive").mkdir()
    shutil.copy(lib / "chat" / "received.jpg", lib / "archive" / "scan.jpg")
    config = _config(tmp_path, lib, keep=["size", "path"])
    cli("--config", str(config), "scan", str(lib), check=0)
    (group,) = _groups(cli, config)
    assert len(group["files"]) == 4
    assert group["files"][0]["reason"].startswith("size: ")  # the watch's policy, not original
    config = _config(tmp_path, lib, keep=["original"], reference=[str(lib / "archive")])
    (group,) = _groups(cli, config)
    keeper = group["files"][0]
    assert keeper["path"] == str(lib / "archive" / "scan.jpg")
    assert keeper["reason"] == "reference: in a reference folder"
    out = cli("--config", str(config), "dupes", "keep", str(lib / "IMG_0001.jpg"), check=0).out
    number = out.split()[1].rstrip(":")
    (group,) = _groups(cli, config)
    assert group["files"][0]["path"] == str(lib / "IMG_0001.jpg")
    assert group["files"][0]["reason"] == f"kept by decision {number}"
    acted = cli("--config", str(config), "scan", "--act", str(lib), check=0).out
    assert f"{lib / 'archive' / 'scan.jpg'}: in a reference folder: left alone" in acted
    assert (lib / "IMG_0001.jpg").exists() and (lib / "archive" / "scan.jpg").exists()
    assert (tmp_path / "dupes" / "IMG_0001.heic").exists()
    assert (tmp_path / "dupes" / "chat" / "received.jpg").exists()
