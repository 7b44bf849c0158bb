"""The daemon's API on its Unix socket: a real daemon subprocess, asked over a real socket."""

from __future__ import annotations

import grp
import json
import os
import signal
import socket
import sqlite3
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import closing, suppress
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from imagewatchd import paths
from imagewatchd.api.client import Client
from imagewatchd.api.server import MAX_CONNECTIONS
from tests.conftest import photo
from tests.daemon_harness import ENV, Daemon, iw


@pytest.fixture
def site(tmp_path: Path) -> dict[str, Path]:
    dirs = {name: tmp_path / name for name in ("uploads", "library", "quarantine", "elsewhere")}
    for name in ("uploads", "library", "elsewhere"):
        dirs[name].mkdir()
    return dirs


def config_for(site: dict[str, Path], **api: Any) -> dict[str, Any]:
    return {
        "quarantine_dir": str(site["quarantine"]),
        "rescan_interval": 0,
        "api": {"timeout_seconds": 2, **api},
        "watches": [
            {"path": str(site["uploads"]), "role": "incoming", "on_known": "quarantine",
             "include": ["*"], "settle_seconds": 0.5},
            {"path": str(site["library"]), "role": "library", "settle_seconds": 0.5},
        ],
    }  # fmt: skip


@pytest.fixture
def banned(tmp_path: Path) -> Path:
    path = tmp_path / "banned.jpg"
    photo(100, (800, 600)).save(path, quality=90)
    return path


def started(tmp_path: Path, site: dict[str, Path], banned: Path, **api: Any) -> Daemon:
    d = Daemon(tmp_path, config_for(site, **api))
    assert iw(d.db, "known", "add", "--create", "--list", "banned", str(banned)).returncode == 0
    photo(200, (800, 600)).save(site["library"] / "holiday.jpg", quality=90)
    d.start()
    d.processed(site["library"] / "holiday.jpg")
    return d


@pytest.fixture
def daemon(tmp_path: Path, site: dict[str, Path], banned: Path) -> Iterator[Daemon]:
    own_group = grp.getgrgid(os.getegid()).gr_name
    d = started(tmp_path, site, banned, group=own_group)
    yield d
    d.kill()


def ask(d: Daemon) -> Client:
    return Client(d.socket, 60.0)


def cli(d: Daemon, *args: str, daemon_env: bool = True) -> subprocess.CompletedProcess[str]:
    """A command as a user runs it: it finds the daemon's socket the way the daemon did."""
    env = d.env if daemon_env else ENV
    return subprocess.run(
        [sys.executable, "-m", "imagewatchd", "--db", str(d.db), "--config", str(d.config_path),
         *args], capture_output=True, text=True, env=env, timeout=120, check=False,
    )  # fmt: skip


def recorded(d: Daemon) -> tuple[int, int]:
    with closing(sqlite3.connect(d.db)) as db:
        actions = db.execute("SELECT COUNT(*) FROM actions").fetchone()[0]
        files = db.execute("SELECT COUNT(*) FROM files").fetchone()[0]
    return int(actions), int(files)


def test_status_check_and_metrics_over_the_socket(
    daemon: Daemon, site: dict[str, Path], banned: Path
) -> None:
    info = os.stat(daemon.socket)
    assert stat.S_ISSOCK(info.st_mode)
    assert stat.S_IMODE(info.st_mode) == 0o660
    assert info.st_gid == os.getegid()
    upload = site["uploads"] / "upload.jpg"
    upload.write_bytes(banned.read_bytes())
    assert "-> quarantine" in daemon.processed(upload)

    client = ask(daemon)
    status = client.get("/status")
    assert daemon.proc is not None
    assert status["daemon"] == {**status["daemon"], "running": True, "pid": daemon.proc.pid}  # type: ignore[dict-item]
    assert status["files_since_start"] == {
        "verdicts": {"clean": 1, "known": 1},
        "actions": {"indexed": 1, "quarantine": 1},
        "errors": 0,
    }
    assert status["lists"] == {"banned": {"kind": "block", "entries": 1, "enabled": 1}}
    assert status["index"] == {"list_entries": 1, "pdq_entries": 1, "library_files": 1}
    assert [w["healthy"] for w in status["watches"]] == [True, True]  # type: ignore[attr-defined]
    assert status["queue"] == {"waiting": 0, "in_flight": 0}
    assert status["retries"] == {"pending": 0, "summary": "no retries"}

    before = recorded(daemon)
    candidate = site["elsewhere"] / "candidate.jpg"
    photo(100, (400, 300)).save(candidate, quality=80)  # the banned picture, resized
    by_bytes = client.check_bytes(candidate.read_bytes(), "upload-17.jpg")
    assert (by_bytes["path"], by_bytes["verdict"]) == ("upload-17.jpg", "known")
    assert by_bytes["text"][0] == "upload-17.jpg: known"  # type: ignore[index]
    by_path = client.check_path(str(candidate), str(candidate))
    assert by_path["verdict"] == "known"
    clean = site["elsewhere"] / "clean.png"
    photo(300).save(clean)
    assert client.check_path(str(clean), str(clean))["verdict"] == "clean"
    duplicate = client.check_bytes((site["library"] / "holiday.jpg").read_bytes(), "x.jpg")
    assert duplicate["verdict"] == "duplicate"
    assert client.check_bytes(b"not an image", "junk")["verdict"] == "error"
    assert recorded(daemon) == before  # a check records nothing, acts on nothing
    assert candidate.exists()

    metrics = metric_samples(client)
    processed = "imagewatchd_files_processed_total"
    assert metrics[processed, (("action", "quarantine"), ("verdict", "known"))] == 1
    assert metrics["imagewatchd_errors_total", ()] == 0
    assert metrics["imagewatchd_decision_latency_seconds_count", ()] == 1  # the upload's event
    assert metrics["imagewatchd_queue_depth", ()] == 0
    assert metrics["imagewatchd_retries_pending", ()] == 0
    entries = (("kind", "block"), ("list", "banned"), ("state", "enabled"))
    assert metrics["imagewatchd_list_entries", entries] == 1
    assert metrics["imagewatchd_last_reconcile_timestamp_seconds", ()] > 0

    reload_keeps_counting(daemon, client, banned, status)
    client.close()


def reload_keeps_counting(
    daemon: Daemon, client: Client, banned: Path, status: dict[str, Any]
) -> None:
    """A reload: a new session behind the same API, with the same counts."""
    daemon.signal(signal.SIGHUP)
    daemon.wait_for("reloaded")
    daemon.wait_for(r"reconcile: \d+ file", count=2)
    deadline = time.monotonic() + 10
    while client.get("/")["state"] != "running":  # the new session is handed to the API
        assert time.monotonic() < deadline
        time.sleep(0.05)
    assert client.check_bytes(banned.read_bytes(), "again.jpg")["verdict"] == "known"
    assert client.get("/status")["files_since_start"] == status["files_since_start"]


def metric_samples(client: Client) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    client.connection.request("GET", "/metrics")
    response = client.connection.getresponse()
    assert response.status == 200
    assert response.getheader("Content-Type", "").startswith("text/plain; version=")
    text = response.read().decode("utf-8")
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def test_status_and_check_commands_use_the_daemon_and_fall_back(
    daemon: Daemon, site: dict[str, Path], banned: Path
) -> None:
    clean = site["elsewhere"] / "clean.png"
    photo(300).save(clean)
    files = [str(banned), str(clean), str(site["elsewhere"] / "missing.jpg")]
    asked = [cli(daemon, "check", "-v", *files), cli(daemon, "check", "--json", *files)]
    assert daemon.proc is not None
    assert f"checking with the running daemon (PID {daemon.proc.pid}" in asked[0].stderr
    status = cli(daemon, "status")
    assert status.stdout.startswith(f"daemon: running, PID {daemon.proc.pid}, up ")
    assert "list banned (block): 1 entries, 1 enabled" in status.stdout
    running = json.loads(cli(daemon, "status", "--json").stdout)
    assert running["daemon"]["running"] is True

    assert daemon.stop() == 0
    assert not daemon.socket.exists()  # removed at exit
    here = [cli(daemon, "check", "-v", *files), cli(daemon, "check", "--json", *files)]
    assert "checking in this process: no daemon answers on" in here[0].stderr
    for by_daemon, in_process in zip(asked, here, strict=True):
        assert (by_daemon.returncode, by_daemon.stdout) == (
            in_process.returncode,
            in_process.stdout,
        )
    assert asked[0].returncode == 2  # an error (the missing file) is the worst
    assert f"{banned}: known" in asked[0].stdout
    stopped = cli(daemon, "status")
    assert stopped.stdout.startswith("daemon: not running (no daemon answers on ")
    assert "files: {'library': 1}" in stopped.stdout
    offline = json.loads(cli(daemon, "status", "--json").stdout)
    assert offline["daemon"]["running"] is False
    assert offline["files"] == {"library": 1}


def test_a_daemon_of_another_database_is_not_asked(
    daemon: Daemon, tmp_path: Path, banned: Path
) -> None:
    other = tmp_path / "other.db"
    done = subprocess.run(
        [sys.executable, "-m", "imagewatchd", "--db", str(other), "check", "-v", str(banned)],
        capture_output=True, text=True, env=daemon.env, timeout=120, check=False,
    )  # fmt: skip
    assert "serves another database" in done.stderr
    assert done.stdout == f"{banned}: clean\n"  # nothing is listed in the other database


def raw(d: Daemon, request: bytes) -> bytes:
    with socket.socket(socket.AF_UNIX) as sock:
        sock.settimeout(20)
        sock.connect(str(d.socket))
        sock.sendall(request)
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


def status_code(answer: bytes) -> int:
    return int(answer.split(b" ", 2)[1])


def stall(d: Daemon) -> socket.socket:
    """A client that starts a request and never finishes it (refused: it may see EPIPE)."""
    sock = socket.socket(socket.AF_UNIX)
    sock.settimeout(20)
    sock.connect(str(d.socket))
    with suppress(BrokenPipeError, ConnectionResetError):
        sock.sendall(b"POST /check HTTP/1.1\r\nContent-Length: 1000\r\n\r\npartial")
    return sock


def answer(sock: socket.socket) -> int | None:
    """The status the server sent before closing, or None when it just hung up."""
    try:
        data = sock.recv(65536)
    except ConnectionResetError:
        return None
    return status_code(data) if data else None


def trickled_until_cut_off(d: Daemon) -> float:
    """Seconds a client sending a byte every 0.2 s (never idle long enough to time out a
    read) kept its connection."""
    start = time.monotonic()
    with socket.socket(socket.AF_UNIX) as sock:
        sock.connect(str(d.socket))
        sock.sendall(b"GET /status HTTP/1.1\r\n")
        for byte in b"X-Slow: " + b"a" * 100:
            try:
                sock.send(bytes([byte]))
            except (BrokenPipeError, ConnectionResetError):
                break
            time.sleep(0.2)  # the slowness under test, not a synchronisation
    return time.monotonic() - start


def test_hostile_clients_get_4xx_and_never_stop_the_daemon(
    daemon: Daemon, site: dict[str, Path], banned: Path
) -> None:
    huge = b"POST /check HTTP/1.1\r\nHost: x\r\nContent-Length: 99999999999\r\n\r\n"
    assert status_code(raw(daemon, huge)) == 413
    assert status_code(raw(daemon, b"GET /status HTTP/1.x\r\n\r\n")) == 400
    assert status_code(raw(daemon, b"GARBAGE\r\n\r\n")) == 400
    long_header = b"GET /status HTTP/1.1\r\nX: " + b"a" * 70_000 + b"\r\n\r\n"
    assert status_code(raw(daemon, long_header)) == 431
    not_json = (
        b"POST /check HTTP/1.1\r\nContent-Type: application/json\r\nContent-Length: 3\r\n\r\n{{{"
    )
    assert status_code(raw(daemon, not_json)) == 400
    relative = json.dumps({"path": "relative.jpg"}).encode()
    request = b"POST /check HTTP/1.1\r\nContent-Type: application/json\r\n"
    assert (
        status_code(raw(daemon, request + b"Content-Length: %d\r\n\r\n" % len(relative) + relative))
        == 400
    )
    no_length = b"POST /check HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n"
    assert status_code(raw(daemon, no_length)) == 411
    assert status_code(raw(daemon, b"GET /nothing HTTP/1.1\r\n\r\n")) == 404
    assert json.loads(raw(daemon, b"GET /nothing HTTP/1.1\r\n\r\n").split(b"\r\n\r\n", 1)[1])

    stalled = [stall(daemon) for _ in range(MAX_CONNECTIONS + 2)]  # more than the slots
    try:
        upload = site["uploads"] / "while-stalled.jpg"
        upload.write_bytes(banned.read_bytes())
        assert "-> quarantine" in daemon.processed(upload)  # the pipeline is not held up
        answers = [answer(sock) for sock in stalled]  # each refused at once, or cut off
        assert sum(a == 503 for a in answers) >= 2
        assert set(answers) <= {503, None}
        daemon.wait_for("api: a client took too long over its request: disconnected")
    finally:
        for sock in stalled:
            sock.close()
    assert trickled_until_cut_off(daemon) < 2 * 2  # api.timeout_seconds is 2
    client = ask(daemon)
    assert client.get("/status")["files_since_start"]["verdicts"] == {"clean": 1, "known": 1}  # type: ignore[index]
    client.close()


def test_a_stale_socket_is_replaced_and_a_live_one_never(
    tmp_path: Path, site: dict[str, Path], banned: Path
) -> None:
    path = tmp_path / "api.sock"
    stale = socket.socket(socket.AF_UNIX)
    stale.bind(str(path))
    stale.close()  # the file stays: a daemon that was killed
    d = started(tmp_path, site, banned)
    try:
        d.wait_for("replacing the socket left by a daemon that is gone")
        client = ask(d)
        assert client.get("/")["pid"] == (d.proc.pid if d.proc else None)
        client.close()
    finally:
        d.kill()
    path.unlink()  # left by the killed daemon

    with socket.socket(socket.AF_UNIX) as live:
        live.bind(str(path))
        live.listen(1)
        before = os.stat(path)
        d = started(tmp_path, site, banned)
        try:
            d.wait_for("api: not served: .*another daemon serves this socket")
            upload = site["uploads"] / "upload.jpg"
            upload.write_bytes(banned.read_bytes())
            assert "-> quarantine" in d.processed(upload)  # the daemon runs on without its API
            assert d.stop() == 0
            assert os.stat(path).st_ino == before.st_ino  # never replaced, never removed
        finally:
            d.kill()
    with suppress(FileNotFoundError):
        path.unlink()


def test_socket_path_defaults() -> None:
    env = {"RUNTIME_DIRECTORY": "/run/imagewatchd", "XDG_RUNTIME_DIR": "/run/user/1000"}
    assert paths.socket_path(None, env) == Path("/run/imagewatchd/api.sock")
    assert paths.socket_path(Path("/srv/api.sock"), env) == Path("/srv/api.sock")
    assert paths.socket_path(None, {"XDG_RUNTIME_DIR": "/run/user/1000"}) == Path(
        "/run/user/1000/imagewatchd/api.sock"
    )
    env = {**env, "IMAGEWATCHD_SOCKET": "/tmp/x.sock"}
    assert paths.socket_path(Path("/srv/api.sock"), env) == Path("/tmp/x.sock")
    state = paths.socket_path(None, {"STATE_DIRECTORY": "/var/lib/imagewatchd"})
    assert state == Path("/var/lib/imagewatchd/api.sock")
