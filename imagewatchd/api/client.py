"""The CLI's side of the API: find the running daemon of this database and ask it.

``connect`` answers None (and why) when no daemon answers on the socket, or when the daemon
that answers serves another database: the commands then work as they always did, in-process.
"""

from __future__ import annotations

import http.client
import json
import os
import socket
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote_from_bytes

from imagewatchd import paths
from imagewatchd.config import Config
from imagewatchd.store import Location

HELLO_TIMEOUT = 2.0  # a daemon that does not say who it is within this is not asked


class ApiError(Exception):
    """The daemon refused or failed a request, or stopped answering."""


class _UnixConnection(http.client.HTTPConnection):
    def __init__(self, socket_path: Path, timeout: float) -> None:
        super().__init__("localhost", timeout=timeout)
        self.socket_path = socket_path

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
        sock.settimeout(self.timeout)
        try:
            sock.connect(os.fsencode(self.socket_path))
        except OSError:
            sock.close()
            raise
        self.sock = sock


@dataclass
class Client:
    """One keep-alive connection to the daemon's API."""

    socket_path: Path
    timeout: float
    pid: int = 0

    def __post_init__(self) -> None:
        self.connection = _UnixConnection(self.socket_path, self.timeout)

    def get(self, target: str) -> dict[str, object]:
        return self.request("GET", target, None, {})

    def request(
        self, method: str, target: str, body: bytes | None, headers: dict[str, str]
    ) -> dict[str, object]:
        try:
            try:
                response, data = self._exchange(method, target, body, headers)
            except (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError):
                # the daemon closed the idle keep-alive connection: every request is
                # idempotent (a check records nothing), so ask once more on a new one
                self.connection.close()
                response, data = self._exchange(method, target, body, headers)
        except (OSError, http.client.HTTPException) as exc:
            self.connection.close()
            raise ApiError(f"the daemon stopped answering ({exc})") from exc
        try:
            answer = json.loads(data)
        except ValueError:
            answer = None
        if not isinstance(answer, dict):
            raise ApiError(f"the daemon answered {response.status} with no JSON object")
        if response.status != 200:
            raise ApiError(f"the daemon answered {response.status}: {answer.get('error')}")
        return answer

    def _exchange(
        self, method: str, target: str, body: bytes | None, headers: dict[str, str]
    ) -> tuple[http.client.HTTPResponse, bytes]:
        self.connection.request(method, target, body, headers)
        response = self.connection.getresponse()
        return response, response.read()

    def check_bytes(self, data: bytes, name: str) -> dict[str, object]:
        target = f"/check?name={quote_from_bytes(os.fsencode(name), safe='')}"
        headers = {"Content-Type": "application/octet-stream"}
        return self.request("POST", target, data, headers)

    def check_path(self, path: str, name: str) -> dict[str, object]:
        body = json.dumps({"path": path, "name": name}).encode("utf-8")
        return self.request("POST", "/check", body, {"Content-Type": "application/json"})

    def close(self) -> None:
        self.connection.close()


def connect(
    config: Config, db_path: Location, timeout: float | None = None
) -> tuple[Client | None, str]:
    """A client of the daemon running on ``db_path``, or None; and a sentence saying which."""
    where = paths.socket_path(config.api.socket)
    if not config.api.enabled:
        return None, "the API is turned off (api.enabled: false)"
    if not os.path.exists(where):
        return None, f"no daemon answers on {where}"
    wait = timeout if timeout is not None else config.decoding.timeout_seconds + 30.0
    client = Client(where, wait)
    client.connection.timeout = HELLO_TIMEOUT
    try:
        hello = client.get("/")
    except ApiError as exc:
        client.close()
        cause = exc.__cause__ if isinstance(exc.__cause__, OSError) else exc
        why = cause.strerror if isinstance(cause, OSError) and cause.strerror else str(cause)
        return None, f"no daemon answers on {where} ({why})"
    client.connection.timeout = wait
    if client.connection.sock is not None:
        client.connection.sock.settimeout(wait)
    served = str(hello.get("database"))
    if served != os.path.realpath(db_path.path):
        client.close()
        return None, f"the daemon on {where} serves another database ({served})"
    pid = hello.get("pid")
    client.pid = pid if isinstance(pid, int) else 0
    return client, f"the running daemon (PID {client.pid}, {where})"
