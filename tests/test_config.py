"""Config: the example file is valid and means what it says; every error names its key path."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
import yaml

from imagewatchd import config, paths
from imagewatchd.config import Action
from imagewatchd.errors import ConfigError
from imagewatchd.keep import Criterion, KeepPolicy
from imagewatchd.models import Role
from tests.conftest import Run

EXAMPLE = Path(__file__).parent.parent / "config.example.yaml"


def problems(data: object) -> list[str]:
    with pytest.raises(ConfigError) as info:
        config.parse(data, "test.yaml")
    return info.value.problems


def test_example_config_is_valid_and_means_what_it_says() -> None:
    parsed = config.load(paths.Located(EXAMPLE, "--config"))
    assert parsed.database == Path("/var/lib/imagewatchd/imagewatchd.db")
    assert parsed.quarantine_dir == Path("/var/lib/imagewatchd/quarantine")
    uploads, library, phone = parsed.watches
    assert phone.inbox is not None and phone.inbox.library == library.path
    assert (phone.inbox.on_new.value, phone.inbox.template.text) == (
        "file",
        "{year}/{month}/{name}",
    )
    assert uploads.path == Path("/srv/uploads")
    assert uploads.role is Role.INCOMING
    assert uploads.on_known is Action.QUARANTINE
    assert uploads.on_duplicate is Action.LOG
    assert uploads.include == ("*",)
    assert library.role is Role.LIBRARY
    assert library.on_duplicate is Action.MOVE
    assert library.move_to == Path("/srv/photos/duplicates")
    assert library.on_known is Action.LOG  # the safe default
    assert parsed.matching.dhash_threshold == config.DEFAULT_DHASH_THRESHOLD


def test_example_documents_every_key() -> None:
    text = EXAMPLE.read_text()
    for key in (*config.TOP_KEYS, *config.MATCHING_KEYS, *config.DECODING_KEYS,
                *config.WATCH_KEYS, *config.API_KEYS):  # fmt: skip
        assert f"{key}:" in text, key


def test_issue_snippet_is_valid() -> None:
    snippet = """
    database: /var/lib/imagewatchd/imagewatchd.db
    quarantine_dir: /var/lib/imagewatchd/quarantine
    watches:
      - path: /srv/uploads
        role: incoming
        on_known: quarantine
        on_duplicate: log
      - path: /srv/photos/library
        role: library
        on_duplicate: move
        move_to: /srv/photos/duplicates
    """
    parsed = config.parse(yaml.safe_load(snippet), "snippet")
    assert [w.role for w in parsed.watches] == [Role.INCOMING, Role.LIBRARY]


def test_unknown_keys_suggest_the_closest() -> None:
    found = problems({"watches": [{"path": "/a", "on_dupliate": "log"}], "quarantine": "/q"})
    assert "watches[0].on_dupliate: unknown key; did you mean 'on_duplicate'?" in found
    assert "quarantine: unknown key; did you mean 'quarantine_dir'?" in found


def test_type_errors_name_the_key_path() -> None:
    found = problems(
        {"watches": [{"path": "/a"}, {"path": "/b", "settle_seconds": "ten"}],
         "matching": {"dhash_threshold": 99, "phash_threshold": True}}
    )  # fmt: skip
    assert "watches[1].settle_seconds: expected a non-negative number, got 'ten'" in found
    assert any(p.startswith("matching.dhash_threshold: expected a whole number") for p in found)
    assert any(p.startswith("matching.phash_threshold: expected a whole number") for p in found)


def test_value_errors() -> None:
    found = problems(
        {"watches": [
            {"path": "relative/dir"},
            {"path": "/b", "role": "archive", "on_known": "shred"},
            {"path": "/c", "on_duplicate": "move"},
            {"path": "/d", "on_duplicate": "move", "move_to": "/d/dupes"},
            {"role": "library"},
            {"path": "/b"},
        ]}
    )  # fmt: skip
    assert "watches[0].path: must be an absolute path, got 'relative/dir'" in found
    assert "watches[1].role: expected one of library | incoming, got 'archive'" in found
    assert (
        "watches[1].on_known: expected one of log | move | quarantine | trash | delete | "
        "hardlink, got 'shred'" in found
    )
    assert "watches[2].move_to: required when an action is 'move'" in found
    assert "watches[3].move_to: must be outside the watched tree" in found
    assert "watches[4].path: required" in found
    assert "watches[5].path: /b is already watches[1]" in found


def test_decoding_limits() -> None:
    assert config.parse({}, "t").decoding == config.Decoding(memory_mb=128, timeout_seconds=30.0)
    parsed = config.parse({"decoding": {"memory_mb": 256, "timeout_seconds": 5}}, "t")
    assert parsed.decoding == config.Decoding(memory_mb=256, timeout_seconds=5.0)
    found = problems({"decoding": {"memory_mb": 8, "timeout_seconds": 0, "memory": 1}})
    assert "decoding.memory_mb: expected a whole number from 16 to 65536, got int 8" in found
    assert "decoding.timeout_seconds: must be at least 1, got 0" in found
    assert "decoding.memory: unknown key; did you mean 'memory_mb'?" in found


def test_not_a_mapping() -> None:
    assert problems(["a"]) == ["<top>: expected a mapping, got list ['a']"]
    assert problems({"watches": "/srv"}) == ["watches: expected a list of watches, got '/srv'"]


def test_missing_default_file_gives_the_built_in_default(tmp_path: Path) -> None:
    parsed = config.load(paths.Located(tmp_path / "nothing.yaml", "default"))
    assert parsed.source == "<built-in default>"
    (watch,) = parsed.watches
    assert watch.role is Role.LIBRARY
    assert (watch.on_known, watch.on_duplicate) == (Action.LOG, Action.LOG)
    with pytest.raises(ConfigError, match="no such file"):
        config.load(paths.Located(tmp_path / "nothing.yaml", "--config"))


def test_invalid_yaml_names_the_line(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("watches:\n  - path: /a\n   role: [library\n")
    with pytest.raises(ConfigError) as info:
        config.load(paths.Located(bad, "--config"))
    assert info.value.problems[0].startswith("line ")


def test_path_precedence(tmp_path: Path) -> None:
    env = {"IMAGEWATCHD_DB": "/env/db", "STATE_DIRECTORY": "/var/lib/iw:/other"}
    assert paths.database_path("/flag/db", Path("/cfg/db"), env) == Path("/flag/db")
    assert paths.database_path(None, Path("/cfg/db"), env) == Path("/env/db")
    env.pop("IMAGEWATCHD_DB")
    assert paths.database_path(None, Path("/cfg/db"), env) == Path("/cfg/db")
    assert paths.database_path(None, None, env) == Path("/var/lib/iw/imagewatchd.db")
    assert paths.database_path(None, None, {}).name == "imagewatchd.db"
    located = paths.config_path(None, {"CONFIGURATION_DIRECTORY": "/etc/imagewatchd"})
    assert located == paths.Located(Path("/etc/imagewatchd/config.yaml"), "systemd")
    assert paths.config_path(None, {"IMAGEWATCHD_CONFIG": "/x.yaml"}).explicit


def test_check_config_command(cli: Callable[..., Run], tmp_path: Path) -> None:
    ok = cli("check-config", str(EXAMPLE), check=0)
    assert "ok, 3 watch(es)" in ok.out
    bad = tmp_path / "bad.yaml"
    bad.write_text("watches:\n  - path: /srv/uploads\n    on_knwon: quarantine\n")
    result = cli("check-config", str(bad), check=78)
    assert "watches[0].on_knwon: unknown key; did you mean 'on_known'?" in result.err
    assert "Traceback" not in result.err
    missing = cli("--config", str(tmp_path / "missing.yaml"), "status", check=78)
    assert "no such file" in missing.err


def test_check_config_reports_every_problem_in_one_run(
    cli: Callable[..., Run], tmp_path: Path
) -> None:
    """An invalid path does not hide its watch's other errors, nor a missing directory."""
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "watches:\n"
        "  - path: relative/uploads\n    role: incomming\n    on_known: explode\n"
        f"  - path: {tmp_path / 'not-yet'}\n    settle_seconds: ten\n"
    )
    result = cli("check-config", str(bad), check=78)
    assert result.err.splitlines() == [
        f"imagewatchd: {bad}: watches[0].path: must be an absolute path, got 'relative/uploads'",
        f"imagewatchd: {bad}: watches[0].role: expected one of library | incoming, got 'incomming'",
        f"imagewatchd: {bad}: watches[0].on_known: expected one of log | move | quarantine | "
        "trash | delete | hardlink, got 'explode'",
        f"imagewatchd: {bad}: watches[1].settle_seconds: expected a non-negative number, got 'ten'",
        f"imagewatchd: {bad}: warning: watches[1].path: {tmp_path / 'not-yet'}: no such "
        "directory; the daemon waits for it",
    ]
    assert result.out == ""


def test_move_targets_and_the_quarantine_stay_outside_every_watch() -> None:
    found = problems(
        {"quarantine_dir": "/srv/uploads/q",
         "watches": [
             {"path": "/srv/uploads", "role": "incoming"},
             {"path": "/srv/photos", "on_duplicate": "move", "move_to": "/srv/uploads/dupes"},
         ]}
    )  # fmt: skip
    assert "watches[1].move_to: inside watches[0] (/srv/uploads)" in found
    assert "quarantine_dir: inside watches[0] (/srv/uploads)" in found


def _library(**keys: object) -> dict[str, object]:
    return {"watches": [{"path": "/srv/lib", **keys}]}


def test_a_library_watch_has_its_keep_policy() -> None:
    parsed = config.parse(
        _library(
            keep=["pixels", "size"], reference=["/srv/lib/archive"], prefer="*/best/*",
            avoid=["*/WhatsApp/*"], formats=["heic", "JPG"],
        ),
        "test.yaml",
    )  # fmt: skip
    policy = parsed.watches[0].keep
    assert policy.order == (Criterion.REFERENCE, Criterion.PIXELS, Criterion.SIZE)
    assert policy.reference == ("/srv/lib/archive",)
    assert (policy.prefer, policy.avoid) == (("*/best/*",), ("*/WhatsApp/*",))
    assert policy.formats == ("HEIF", "JPEG")
    assert config.parse(_library(), "test.yaml").watches[0].keep == KeepPolicy()


def test_keep_policy_errors_name_their_key_path() -> None:
    found = problems(
        _library(
            keep=["pixels", "sharpness", "pixels"], reference=["archive", "/elsewhere"],
            formats=["jpeg", "psd"], prefer=[3],
        )
    )  # fmt: skip
    assert any(p.startswith("watches[0].keep[1]: expected one of") for p in found), found
    assert "watches[0].keep[2]: 'pixels' is listed twice" in found
    assert "watches[0].reference[0]: must be an absolute path, got 'archive'" in found
    assert "watches[0].reference[1]: must be inside the watched tree (/srv/lib)" in found
    assert any(p.startswith("watches[0].formats[1]: expected one of") for p in found), found
    assert any(p.startswith("watches[0].prefer: expected a list") for p in found), found
    incoming = problems({"watches": [{"path": "/up", "role": "incoming", "keep": ["size"]}]})
    assert any("for library watches" in p for p in incoming), incoming


def test_the_watermark_stage_is_on_unless_turned_off() -> None:
    assert config.parse({}, "test.yaml").matching.thresholds.watermarks is True
    off = config.parse({"matching": {"watermarks": False}}, "test.yaml")
    assert off.matching.thresholds.watermarks is False
    assert off.matching.thresholds.turned().watermarks is False
    (problem,) = problems({"matching": {"watermarks": "sometimes"}})
    assert "matching.watermarks" in problem, problem
