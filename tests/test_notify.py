"""The notify protocol and journal logging, against the real daemon."""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from imagewatchd import logsetup
from imagewatchd.notify import Notifier
from tests.daemon_harness import Daemon


class Listener:
    """The service manager's side: a datagram socket that collects notify messages."""

    def __init__(self, address: str | bytes) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(address)
        self.sock.settimeout(0.1)
        self.messages: list[str] = []

    def drain(self) -> list[str]:
        while True:
            try:
                self.messages.append(self.sock.recv(4096).decode())
            except TimeoutError:
                return self.messages

    def wait_for(self, prefix: str, timeout: float = 20.0, after: int = 0) -> int:
        """Index of the first message from ``after`` on that has a line starting ``prefix``."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for index, message in enumerate(self.drain()[after:], start=after):
                if any(line.startswith(prefix) for line in message.splitlines()):
                    return index
        raise AssertionError(f"no {prefix!r} in {self.messages}")


@pytest.fixture
def listener(tmp_path: Path) -> Iterator[Listener]:
    sock = Listener(str(tmp_path / "notify.sock"))
    yield sock
    sock.sock.close()


def test_notifier_speaks_to_path_and_abstract_sockets(tmp_path: Path) -> None:
    name = f"@imagewatchd-test-{os.getpid()}"
    abstract = Listener(b"\0" + name[1:].encode())
    path = Listener(str(tmp_path / "n.sock"))
    try:
        for address, listener in ((name, abstract), (str(tmp_path / "n.sock"), path)):
            notifier = Notifier({"NOTIFY_SOCKET": address, "WATCHDOG_USEC": "4000000"})
            assert notifier.watchdog_interval == 2.0
            notifier.ready("ok")
            notifier.close()
            assert listener.drain() == ["READY=1\nSTATUS=ok"]
    finally:
        abstract.sock.close()
        path.sock.close()
    silent = Notifier({})
    assert not silent.enabled
    assert not silent.send("READY=1")
    other = Notifier({"WATCHDOG_USEC": "100", "WATCHDOG_PID": str(os.getpid() + 1)})
    assert other.watchdog_interval is None


def config(tmp_path: Path) -> dict[str, object]:
    watched = tmp_path / "watched"
    watched.mkdir(exist_ok=True)
    return {"watches": [{"path": str(watched), "role": "incoming"}], "rescan_interval": 0}


def notify_env(tmp_path: Path) -> dict[str, str]:
    return {"NOTIFY_SOCKET": str(tmp_path / "notify.sock"), "WATCHDOG_USEC": "600000"}


def test_ready_status_watchdog_reload_stop_in_order(tmp_path: Path, listener: Listener) -> None:
    daemon = Daemon(tmp_path, config(tmp_path), env=notify_env(tmp_path)).start(wait=False)
    try:
        ready = listener.wait_for("READY=1")
        assert any(line.startswith("STATUS=") for line in listener.messages[ready].splitlines())
        first = listener.wait_for("WATCHDOG=1", after=ready)
        listener.wait_for("WATCHDOG=1", after=first + 1)  # periodic
        listener.wait_for("STATUS=", after=ready + 1)
        daemon.signal(signal.SIGHUP)
        reloading = listener.wait_for("RELOADING=1", after=first + 1)
        assert "MONOTONIC_USEC=" in listener.messages[reloading]
        usec = int(listener.messages[reloading].split("MONOTONIC_USEC=")[1].split()[0])
        assert abs(usec / 1e6 - time.monotonic()) < 30
        again = listener.wait_for("READY=1", after=reloading + 1)
        listener.wait_for("WATCHDOG=1", after=again + 1)
        assert daemon.stop() == 0
        listener.wait_for("STOPPING=1", after=again + 1)
    finally:
        daemon.kill()


def test_a_dead_watcher_stops_the_pings_and_exits_non_zero(
    tmp_path: Path, listener: Listener
) -> None:
    daemon = Daemon(tmp_path, config(tmp_path), env=notify_env(tmp_path)).start(wait=False)
    try:
        ready = listener.wait_for("READY=1")
        listener.wait_for("WATCHDOG=1", after=ready)
        shutil.rmtree(tmp_path / "watched")  # inotify's watcher thread ends with its directory
        assert daemon.proc is not None
        assert daemon.proc.wait(timeout=20) != 0
        died = len(listener.drain())
        time.sleep(0.7)
        assert len(listener.drain()) == died  # nothing more, no pings
        assert "is not running" in daemon.log()
        pings_after_death = [m for m in listener.messages if "WATCHDOG=1" in m]
        assert pings_after_death  # there were pings before
        assert "STOPPING=1" in listener.messages[-1]
    finally:
        daemon.kill()


def test_journal_stream_gets_priorities_and_no_timestamps(tmp_path: Path) -> None:
    daemon = Daemon(tmp_path, config(tmp_path)).start(wait=False, journal=True)
    try:
        bad = tmp_path / "watched" / "bad.jpg"
        daemon.wait_for(r"^<6>reconcile: \d+ file")
        bad.write_bytes(b"not an image")
        daemon.wait_for(rf"^<4>{bad}: error: not an image")
        assert daemon.stop() == 0
    finally:
        daemon.kill()
    lines = daemon.log().splitlines()
    assert lines
    assert all(re.match(r"<[2-7]>", line) for line in lines), lines
    assert not any(re.search(r"\d\d:\d\d:\d\d", line) for line in lines)
    with (tmp_path / "other").open("w") as stream:
        assert not logsetup.to_journal(stream, {"JOURNAL_STREAM": "1:2"})
        assert not logsetup.to_journal(stream, {})
