"""Inbox configuration and path templates: a bad template is one clear error naming its key;
no rendered value can make a path that leaves the library root."""

from __future__ import annotations

import datetime as dt
from pathlib import Path, PurePosixPath

import pytest

from imagewatchd import config
from imagewatchd.errors import ConfigError
from imagewatchd.filing import OnNew, Template, UnsafeName, captured_at, template_problem
from imagewatchd.provenance import Provenance

TAKEN = dt.datetime(2019, 5, 1, 12, 34, 56)


def _watches(tmp_path: Path, **inbox: object) -> dict[str, object]:
    return {"watches": [
        {"path": str(tmp_path / "lib"), "role": "library"},
        {"path": str(tmp_path / "phone"), "role": "incoming", "library": str(tmp_path / "lib"),
         **inbox},
    ]}  # fmt: skip


def _problems(data: object) -> list[str]:
    with pytest.raises(ConfigError) as info:
        config.parse(data, "test.yaml")
    return info.value.problems


def test_an_inbox_is_parsed_with_its_library_and_template(tmp_path: Path) -> None:
    parsed = config.parse(_watches(tmp_path, on_new="file", file_to="{year}/{stem}.{ext}"), "t")
    library, phone = parsed.watches
    assert library.inbox is None and phone.inbox is not None
    assert phone.inbox.library == tmp_path / "lib" and phone.inbox.on_new is OnNew.FILE
    assert phone.inbox.template == Template("{year}/{stem}.{ext}")
    default = config.parse(_watches(tmp_path), "t").watches[1].inbox
    assert default is not None and default.on_new is OnNew.NONE
    assert default.template.text == "{year}/{month}/{name}"


@pytest.mark.parametrize(
    ("template", "says"),
    [
        ("../{name}", "an empty, '.' or '..' part"),
        ("{year}/../../{name}", "an empty, '.' or '..' part"),
        ("/srv/{name}", "must be relative to the library"),
        ("~/{name}", "must be relative to the library"),
        ("{year}//{name}", "an empty, '.' or '..' part"),
        ("{year}/{bogus}/{name}", "unknown field {bogus}"),
        ("{name.__class__}", "unknown field {name.__class__}"),
        ("{name!r}", "unknown field {name}"),
        ("{year:>10}/{name}", "unknown field {year}"),
        ("{year}/{month", "a literal brace is not allowed"),
        ("{year}/{month}", "the last part must name the file"),
        ("", "expected a path template"),
        (7, "expected a path template"),
    ],
)
def test_a_bad_template_is_one_clear_error(tmp_path: Path, template: object, says: str) -> None:
    found = _problems(_watches(tmp_path, on_new="file", file_to=template))
    assert len(found) == 1 and found[0].startswith("watches[1].file_to: "), found
    assert says in found[0], found


def test_inbox_keys_are_checked(tmp_path: Path) -> None:
    lib = str(tmp_path / "lib")
    bad = _problems({"watches": [
        {"path": lib, "role": "library", "library": lib},
        {"path": str(tmp_path / "a"), "role": "incoming", "on_new": "file"},
        {"path": str(tmp_path / "b"), "role": "incoming", "library": str(tmp_path / "nope")},
        {"path": str(tmp_path / "c"), "role": "incoming", "library": lib, "on_new": "move"},
    ]})  # fmt: skip
    assert bad == [
        "watches[0].library: an inbox is an incoming watch (role: incoming)",
        "watches[1].on_new: only for an inbox: a watch with 'library: PATH'",
        "watches[3].on_new: expected one of none | file, got 'move'",
        f"watches[2].library: {tmp_path / 'nope'} is not the path of a library watch",
    ]


def test_a_template_renders_the_capture_date_and_the_name() -> None:
    t = Template("{year}/{month}/{day}/{camera}/{stem}-x.{ext}")
    path = t.render("IMG_0001.JPG", TAKEN, "Canon EOS 5D")
    assert path == PurePosixPath("2019/05/01/Canon EOS 5D/IMG_0001-x.JPG")
    assert Template().render("a.jpg", TAKEN, None) == PurePosixPath("2019/05/a.jpg")
    assert Template("{camera}/{name}").render("a.jpg", TAKEN, None).parts[0] == "unknown camera"


def test_hostile_values_never_leave_the_library() -> None:
    t = Template("{camera}/{name}")
    path = t.render("a.jpg", TAKEN, "../../etc/x\n")
    assert path == PurePosixPath(".._.._etc_x_/a.jpg") and ".." not in path.parts
    assert t.render("a.jpg", TAKEN, "/").parts == ("_", "a.jpg")
    with pytest.raises(UnsafeName):
        t.render("a.jpg", TAKEN, "..")
    with pytest.raises(UnsafeName):
        Template("{year}/{name}").render("x" * 300 + ".jpg", TAKEN, None)
    bad_utf8 = "b\udcff.jpg"  # a name that is not UTF-8 stays exactly itself
    assert Template().render(bad_utf8, TAKEN, None).name == bad_utf8


def test_the_capture_date_falls_back_to_the_mtime() -> None:
    assert captured_at(Provenance(captured="2019-05-01T12:34:56"), 0) == TAKEN
    mtime = dt.datetime(2021, 3, 15, 12, 0).timestamp()
    assert captured_at(Provenance(), int(mtime * 1e9)) == dt.datetime(2021, 3, 15, 12, 0)
    assert template_problem("{year}/{month}/{name}") is None
