"""Offline checks of the files in systemd/: units, the site drop-in, sysusers.d and sysctl.d.

systemd is not running here, so nothing is started: ``systemd-analyze verify`` must print
nothing on stderr (it exits 0 even for misspelled keys, so stderr is the signal), and
``systemd-analyze security --offline=true`` must rate the system unit "SAFE" (<= 1.0).

``verify`` also complains when ExecStart='s program does not exist, and the units point at a
virtual environment that is not installed here. The tests therefore verify a copy whose
ExecStart= executable (only that) is replaced by /bin/true, after checking the real value.
systemd-analyze 252 does not resolve User=/Group= offline, so the missing "imagewatchd" user
needs no such workaround; the sysusers.d file that creates it is checked on its own.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from imagewatchd.errors import EXIT_CONFIG, EXIT_DAMAGED

SYSTEMD = Path(__file__).resolve().parent.parent / "systemd"
SYSTEM_UNIT = SYSTEMD / "imagewatchd.service"
USER_UNIT = SYSTEMD / "user" / "imagewatchd.service"
SITE_EXAMPLE = SYSTEMD / "imagewatchd.service.d" / "50-site.conf.example"
SYSUSERS = SYSTEMD / "sysusers.d" / "imagewatchd.conf"
SYSCTL = SYSTEMD / "sysctl.d" / "90-imagewatchd-inotify.conf"

SYSTEM_EXEC = "/opt/imagewatchd/bin/imagewatchd run"
USER_EXEC = "%h/.local/share/imagewatchd/venv/bin/imagewatchd run"
MAX_EXPOSURE = 1.0
EXPOSURE = re.compile(r"Overall exposure level for (\S+): (\d+\.\d+) (\w+)")

ANALYZE = shutil.which("systemd-analyze")
needs_analyze = pytest.mark.skipif(ANALYZE is None, reason="systemd-analyze is not installed")

Sections = dict[str, dict[str, list[str]]]


def parse_unit(text: str) -> Sections:
    """Section -> key -> values in order (systemd allows repeated keys; no line continuations
    are used in these files)."""
    sections: Sections = {}
    current: dict[str, list[str]] | None = None
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("[") and line.endswith("]"):
            current = sections.setdefault(line[1:-1], {})
            continue
        assert current is not None, f"key outside a section: {raw!r}"
        assert "=" in line and not line.endswith("\\"), f"not a key=value line: {raw!r}"
        key, value = line.split("=", 1)
        current.setdefault(key.strip(), []).append(value.strip())
    return sections


def service(path: Path) -> dict[str, list[str]]:
    return parse_unit(path.read_text())["Service"]


def analyze(*args: str, tmp_path: Path, user: bool = False) -> subprocess.CompletedProcess[str]:
    assert ANALYZE is not None
    runtime = tmp_path / "runtime"
    runtime.mkdir(mode=0o700, exist_ok=True)
    env = {
        **os.environ,
        "SYSTEMD_COLORS": "0",
        "SYSTEMD_PAGER": "",
        "SYSTEMD_LOG_COLOR": "0",
        # the user-mode manager that --user instantiates offline needs a runtime directory
        "XDG_RUNTIME_DIR": str(runtime),
    }
    cmd = [ANALYZE, *(["--user"] if user else []), *args]
    return subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=60, check=False)


def staged(unit: Path, expected_exec: str, directory: Path) -> Path:
    """A copy of ``unit`` in ``directory`` whose ExecStart= program is /bin/true."""
    lines = unit.read_text().splitlines(keepends=True)
    starts = [i for i, line in enumerate(lines) if line.startswith("ExecStart=")]
    assert len(starts) == 1, f"{unit}: expected one ExecStart= line"
    assert lines[starts[0]].strip() == f"ExecStart={expected_exec}"
    args = expected_exec.partition(" ")[2]
    lines[starts[0]] = f"ExecStart=/bin/true {args}\n"
    directory.mkdir(parents=True, exist_ok=True)
    copy = directory / unit.name
    copy.write_text("".join(lines))
    return copy


def exposure(result: subprocess.CompletedProcess[str]) -> tuple[float, str]:
    found = EXPOSURE.findall(result.stdout)
    assert len(found) == 1, f"no exposure line in:\n{result.stdout}\n{result.stderr}"
    _, score, verdict = found[0]
    return float(score), verdict


def not_green(result: subprocess.CompletedProcess[str]) -> list[str]:
    return [" ".join(line.split()) for line in result.stdout.splitlines() if line.startswith("✗")]


# --- what the units must say (verify cannot know this) -------------------------------------

COMMON = {
    "Type": ["notify"],
    "NotifyAccess": ["main"],
    "ExecReload": ["/bin/kill -HUP $MAINPID"],
    "Restart": ["on-failure"],
    "RestartPreventExitStatus": ["78 65"],
    "WatchdogSec": ["30"],
    "Environment": ["OPENBLAS_NUM_THREADS=1"],
    "MemoryMax": ["1G"],  # the daemon and its decoding workers: docs/BENCHMARKS.md
    "NoNewPrivileges": ["yes"],
    "LockPersonality": ["yes"],
    "RestrictRealtime": ["yes"],
    "MemoryDenyWriteExecute": ["yes"],
    "SystemCallArchitectures": ["native"],
    "RestrictAddressFamilies": ["AF_UNIX"],
    "SystemCallFilter": [
        "@system-service",
        "~@privileged @resources",
        "landlock_create_ruleset landlock_add_rule landlock_restrict_self",
    ],
}


@pytest.mark.parametrize(
    ("unit", "exec_start", "wanted_by"),
    [(SYSTEM_UNIT, SYSTEM_EXEC, "multi-user.target"), (USER_UNIT, USER_EXEC, "default.target")],
    ids=["system", "user"],
)
def test_unit_contents(unit: Path, exec_start: str, wanted_by: str) -> None:
    sections = parse_unit(unit.read_text())
    svc = sections["Service"]
    assert svc["ExecStart"] == [exec_start]
    for key, values in COMMON.items():
        assert svc.get(key) == values, key
    assert sections["Install"]["WantedBy"] == [wanted_by]


@pytest.mark.parametrize("unit", [SYSTEM_UNIT, USER_UNIT], ids=["system", "user"])
def test_exit_statuses_that_a_restart_cannot_fix_are_not_restarted(unit: Path) -> None:
    """A bad configuration and a damaged database would restart-loop otherwise."""
    (statuses,) = service(unit)["RestartPreventExitStatus"]
    assert {int(s) for s in statuses.split()} == {EXIT_CONFIG, EXIT_DAMAGED}


def test_system_unit_identity_and_directories() -> None:
    svc = service(SYSTEM_UNIT)
    sysusers = [shlex.split(line) for line in SYSUSERS.read_text().splitlines()]
    users = [fields[1] for fields in sysusers if fields and fields[0] == "u"]
    assert svc["User"] == svc["Group"] == users == ["imagewatchd"]
    assert svc["StateDirectory"] == svc["ConfigurationDirectory"] == ["imagewatchd"]
    assert svc["StateDirectoryMode"] == ["0700"]
    assert svc["ProtectSystem"] == ["strict"]
    assert svc["CapabilityBoundingSet"] == svc["AmbientCapabilities"] == [""]
    assert "ReadWritePaths" not in svc, "site paths belong in the drop-in"
    assert "DynamicUser" not in svc


def test_user_unit_keeps_cli_paths() -> None:
    """In systemd 252 a user unit's StateDirectory= lands in ~/.config, not ~/.local/state:
    the daemon would then use another database than the CLI."""
    svc = service(USER_UNIT)
    for key in ("StateDirectory", "ConfigurationDirectory", "User", "DynamicUser"):
        assert key not in svc, key


def test_site_example_is_inert_where_it_lies() -> None:
    """systemd reads only *.conf from a drop-in directory: the example never applies itself."""
    assert SITE_EXAMPLE.suffix == ".example"
    svc = service(SITE_EXAMPLE)
    assert svc["ReadWritePaths"] == ["/srv/uploads /srv/photos"]


# --- systemd-analyze verify ------------------------------------------------------------------


@needs_analyze
@pytest.mark.parametrize(
    ("unit", "exec_start", "user"),
    [(SYSTEM_UNIT, SYSTEM_EXEC, False), (USER_UNIT, USER_EXEC, True)],
    ids=["system", "user"],
)
def test_verify_is_silent(unit: Path, exec_start: str, user: bool, tmp_path: Path) -> None:
    copy = staged(unit, exec_start, tmp_path / "units")
    result = analyze("verify", str(copy), tmp_path=tmp_path, user=user)
    assert result.stderr == ""
    assert result.returncode == 0


@needs_analyze
def test_verify_unmodified_unit_only_misses_the_venv(tmp_path: Path) -> None:
    """Without the ExecStart= rewrite, the only complaint is the venv not installed here."""
    result = analyze("verify", str(SYSTEM_UNIT), tmp_path=tmp_path)
    missing = re.compile(r"Command /opt/imagewatchd/bin/imagewatchd is not executable")
    assert [line for line in result.stderr.splitlines() if not missing.search(line)] == []


@needs_analyze
def test_verify_with_site_drop_in_is_silent(tmp_path: Path) -> None:
    """The example drop-in, installed as *.conf with every commented setting enabled."""
    copy = staged(SYSTEM_UNIT, SYSTEM_EXEC, tmp_path / "units")
    drop_in = copy.parent / f"{copy.name}.d"
    drop_in.mkdir()
    text = re.sub(r"(?m)^#(\w+=)", r"\1", SITE_EXAMPLE.read_text())
    (drop_in / "50-site.conf").write_text(text)
    result = analyze("verify", str(copy), tmp_path=tmp_path)
    assert result.stderr == ""
    score, _ = exposure(analyze("security", "--offline=true", str(copy), tmp_path=tmp_path))
    assert score <= MAX_EXPOSURE


@needs_analyze
def test_verify_does_report_a_misspelled_key(tmp_path: Path) -> None:
    """The stderr signal the other tests rely on is really there."""
    copy = staged(SYSTEM_UNIT, SYSTEM_EXEC, tmp_path / "units")
    copy.write_text(copy.read_text().replace("ProtectSystem=", "ProtectSytem=", 1))
    result = analyze("verify", str(copy), tmp_path=tmp_path)
    assert "Unknown key" in result.stderr
    assert "ProtectSytem" in result.stderr


# --- systemd-analyze security ----------------------------------------------------------------


@needs_analyze
def test_system_unit_exposure_is_safe(tmp_path: Path) -> None:
    result = analyze("security", "--offline=true", str(SYSTEM_UNIT), tmp_path=tmp_path)
    assert result.returncode == 0, result.stderr
    score, verdict = exposure(result)
    print(f"{SYSTEM_UNIT.name}: exposure {score} {verdict}; not green: {not_green(result)}")
    assert score <= MAX_EXPOSURE, "\n".join(not_green(result))
    assert verdict == "SAFE"
    # the same threshold, as systemd-analyze itself applies it (in tenths)
    threshold = f"--threshold={round(MAX_EXPOSURE * 10)}"
    checked = analyze("security", "--offline=true", threshold, str(SYSTEM_UNIT), tmp_path=tmp_path)
    assert checked.returncode == 0, checked.stdout


@needs_analyze
def test_user_unit_exposure_is_reported(
    tmp_path: Path, record_property: Callable[[str, object], None]
) -> None:
    """Informational: most checks assume a system service (capabilities, namespaces that a
    user manager cannot set up), so only parse the score."""
    result = analyze("security", "--offline=true", str(USER_UNIT), tmp_path=tmp_path, user=True)
    score, verdict = exposure(result)
    print(f"user/{USER_UNIT.name}: exposure {score} {verdict} (user manager, informational)")
    record_property("user_unit_exposure", score)
    assert 0.0 <= score <= 10.0


# --- sysusers.d and sysctl.d -----------------------------------------------------------------


def test_sysusers_format() -> None:
    entries = [
        shlex.split(line)
        for line in SYSUSERS.read_text().splitlines()
        if line.strip() and not line.lstrip().startswith("#")
    ]
    assert entries == [["u", "imagewatchd", "-", "imagewatchd image quarantine daemon", "-", "-"]]


@pytest.mark.skipif(shutil.which("systemd-sysusers") is None, reason="no systemd-sysusers")
def test_sysusers_dry_run(tmp_path: Path) -> None:
    """Parsed by the real tool against an empty root: nothing is written anywhere."""
    root = tmp_path / "root"
    root.mkdir()
    result = subprocess.run(
        ["systemd-sysusers", "--dry-run", f"--root={root}", "-"],
        input=SYSUSERS.read_text(), capture_output=True, text=True, timeout=60, check=False,
        env={**os.environ, "SYSTEMD_COLORS": "0"},
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    # it logs what it would do on stderr; a parse error is "-:LINE: reason" there instead
    log = (result.stdout + result.stderr).splitlines()
    expected = re.compile(r"Creating (group|user) 'imagewatchd' .*|Would write /etc/\w+…?")
    assert [line for line in log if not expected.fullmatch(line)] == []
    assert any(line.startswith("Creating user 'imagewatchd'") for line in log)
    assert list(root.iterdir()) == []


def test_sysctl_snippet() -> None:
    settings: dict[str, int] = {}
    for raw in SYSCTL.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        match = re.fullmatch(r"([a-z0-9_.]+) = (\d+)", line)
        assert match, f"not 'key = value': {raw!r}"
        key, value = match.groups()
        assert Path("/proc/sys", *key.split(".")).is_file(), f"no such sysctl: {key}"
        settings[key] = int(value)
    assert settings == {
        "fs.inotify.max_user_watches": 524288,
        "fs.inotify.max_queued_events": 65536,
        "fs.inotify.max_user_instances": 1024,
    }
