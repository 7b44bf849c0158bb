"""``scan --act`` on an inbox files the photos already there, as one batch that ``undo --batch``
reverses; a dry run says ``would file`` and records nothing; a name the template cannot make
safe leaves the photo in the inbox with the reason."""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Callable
from pathlib import Path

import yaml

from imagewatchd.models import Role
from imagewatchd.store import Store
from tests.conftest import Run, photo
from tests.test_keep import CAMERA, CAPTURED, write_photo

Cli = Callable[..., Run]
MTIME = dt.datetime(2021, 3, 15, 12, 0).timestamp()


def _setup(tmp_path: Path, file_to: str = "{year}/{month}/{name}") -> tuple[Path, Path, Path]:
    lib, inbox = tmp_path / "library", tmp_path / "inbox"
    lib.mkdir()
    inbox.mkdir()
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump({"watches": [
        {"path": str(lib), "role": "library", "on_duplicate": "move",
         "move_to": str(tmp_path / "library-dupes")},
        {"path": str(inbox), "role": "incoming", "library": str(lib), "on_new": "file",
         "file_to": file_to, "on_duplicate": "move", "move_to": str(tmp_path / "dupes")},
    ]}))  # fmt: skip
    return lib, inbox, config


def _files(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())


def test_scan_act_files_an_inbox_as_one_batch_and_undo_reverses_it(
    tmp_path: Path, cli: Cli
) -> None:
    lib, inbox, config = _setup(tmp_path)
    write_photo(inbox / "IMG_0001.jpg", quality=92, tags=CAMERA, inner=CAPTURED)
    write_photo(inbox / "copy.jpg", quality=92, tags=CAMERA, inner=CAPTURED)  # the same bytes
    os.utime(inbox / "IMG_0001.jpg", (MTIME, MTIME))  # the older copy: the policy keeps it
    photo(41).save(inbox / "beach.jpg", quality=90)
    os.utime(inbox / "beach.jpg", (MTIME, MTIME))
    dry = cli("--config", str(config), "scan", "--act", "--dry-run", str(inbox), check=0).out
    assert f"{inbox / 'beach.jpg'}: clean -> would file {lib / '2021' / '03' / 'beach.jpg'}" in dry
    assert _files(lib) == [] and len(_files(inbox)) == 3
    out = cli("--config", str(config), "scan", "--act", str(inbox), check=0).out
    assert _files(lib) == ["2019/05/IMG_0001.jpg", "2021/03/beach.jpg"], out
    aside = _files(tmp_path / "dupes") + _files(tmp_path / "library-dupes")
    assert _files(inbox) == [] and [Path(p).name for p in aside] == ["copy.jpg"]
    groups = cli("--config", str(config), "dupes", "--json", check=0).out
    assert '"groups": []' in groups  # the filed photos are library files: indexed, no copies
    cli("--config", str(config), "undo", "--last", check=0)
    assert _files(lib) == [] and _files(inbox) == ["IMG_0001.jpg", "beach.jpg", "copy.jpg"]
    with Store(tmp_path / "state" / "imagewatchd.db") as store:  # no longer library files
        assert store.get_file(str(lib / "2021" / "03" / "beach.jpg")) is None
        back = store.get_file(str(inbox / "beach.jpg"))
        assert back is not None and back.role is Role.INCOMING


def test_an_unusable_name_leaves_the_photo_in_the_inbox_with_the_reason(
    tmp_path: Path, cli: Cli
) -> None:
    lib, inbox, config = _setup(tmp_path, "{camera}/{name}")
    write_photo(inbox / "a.jpg", tags={0x010F: ".."})  # a camera make of ".."
    out = cli("--config", str(config), "scan", "--act", str(inbox), check=0).out
    assert f"{inbox / 'a.jpg'}: clean -> none (not filed: the template" in out, out
    assert _files(inbox) == ["a.jpg"] and _files(lib) == []


def test_a_symlinked_folder_in_the_library_is_never_followed(tmp_path: Path, cli: Cli) -> None:
    lib, inbox, config = _setup(tmp_path)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (lib / "2021").symlink_to(elsewhere)
    photo(41).save(inbox / "beach.jpg", quality=90)
    os.utime(inbox / "beach.jpg", (MTIME, MTIME))
    out = cli("--config", str(config), "scan", "--act", str(inbox), check=0).out
    assert f"{inbox / 'beach.jpg'}: clean -> none (not filed: {lib / '2021'}: is a symbolic " in out
    assert _files(inbox) == ["beach.jpg"] and list(elsewhere.iterdir()) == []


def test_scan_act_on_an_inbox_that_keeps_its_photos_compares_them_with_each_other(
    tmp_path: Path, cli: Cli
) -> None:
    lib, inbox, config = _setup(tmp_path)
    settings = yaml.safe_load(config.read_text())
    settings["watches"][1]["on_new"] = "none"
    config.write_text(yaml.safe_dump(settings))
    write_photo(inbox / "a-thumb.jpg", (170, 128), tags=CAMERA, inner=CAPTURED)  # walked first
    write_photo(inbox / "b-original.jpg", quality=92, tags=CAMERA, inner=CAPTURED)
    photo(41).save(inbox / "beach.jpg", quality=90)
    out = cli("--config", str(config), "scan", "--act", str(inbox), check=0).out
    dupes = [line for line in out.splitlines() if ": duplicate " in line]
    assert len(dupes) == 2, out  # the original kept over the thumbnail, the thumbnail moved
    assert f"{inbox / 'b-original.jpg'}: duplicate inbox={inbox / 'a-thumb.jpg'}" in out, out
    assert f"{inbox / 'a-thumb.jpg'}: duplicate inbox={inbox / 'b-original.jpg'}" in out, out
    assert _files(inbox) == ["b-original.jpg", "beach.jpg"], out
    assert [Path(p).name for p in _files(tmp_path / "dupes")] == ["a-thumb.jpg"]
    assert _files(lib) == []
