"""HTTP/1.1 on the API's Unix socket, in threads of its own (docs/API.md).

The server never slows the pipeline: a few connections at a time (more get 503 at once), a
request must arrive within ``api.timeout_seconds`` and stay under ``api.max_request_mb``, and a
client that stalls is disconnected. Checks run one at a time on a thread of their own, with
their own database connection, so they take at most one of the decoding pool's workers; status
and metrics read on another thread, so a slow check never holds them up.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import socket
import socketserver
import sys
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import unquote_to_bytes, urlsplit

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

from imagewatchd import __version__
from imagewatchd.api import answers, listener
from imagewatchd.api.answers import Live
from imagewatchd.config import Api
from imagewatchd.decoding import Decoder
from imagewatchd.errors import DatabaseUnreachable
from imagewatchd.models import FileStat, Fingerprint
from imagewatchd.store import Location, Store

log = logging.getLogger(__name__)

MAX_CONNECTIONS = 8
MAX_BODIES = 2  # requests whose body is held at once: memory <= 2 x (2 x api.max_request_mb)
SLOW = "api: a client took too long over its request: disconnected"
POLL = 0.25  # how often stalled connections are looked for
T = TypeVar("T")


class Busy(Exception):
    """The daemon cannot answer now (starting, reloading, or too many checks waiting)."""


class Lane:
    """One thread with its own store connection; jobs run one at a time, in order."""

    def __init__(self, name: str, db_path: Location) -> None:
        self.db_path = db_path
        self.pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix=name)
        self.local = threading.local()

    def run(self, job: Callable[[Store], T], timeout: float) -> T:
        future: Future[T] = self.pool.submit(self._call, job)
        try:
            return future.result(timeout)
        except FutureTimeout:
            future.cancel()
            raise Busy(f"no answer within {timeout:g} s") from None

    def _call(self, job: Callable[[Store], T]) -> T:
        store: Store | None = getattr(self.local, "store", None)
        if store is None:
            store = self.local.store = Store(self.db_path)
        try:
            return job(store)
        except DatabaseUnreachable:  # an outage: a new connection for the next job
            self.local.store = None
            store.close()
            raise

    def close(self) -> None:
        def close_store() -> None:
            store: Store | None = getattr(self.local, "store", None)
            if store is not None:
                store.close()

        self.pool.submit(close_store)
        self.pool.shutdown(wait=False, cancel_futures=False)


class _Server(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True
    block_on_close = False

    def __init__(self, sock: socket.socket, path: Path, api: Api, live: Live) -> None:
        super().__init__(str(path), Handler, bind_and_activate=False)
        self.socket.close()
        self.socket = sock
        self.api = api
        self.live = live
        self.slots = threading.BoundedSemaphore(MAX_CONNECTIONS)
        self.bodies = threading.BoundedSemaphore(MAX_BODIES)
        self.deadlines: dict[socket.socket, float] = {}
        self.deadlines_lock = threading.Lock()
        self.checks = Lane("api-check", live.db_path)
        self.reads = Lane("api-read", live.db_path)

    def process_request(self, request: Any, client_address: Any) -> None:
        if not self.slots.acquire(blocking=False):
            _refuse(request)
            self.shutdown_request(request)
            return
        try:
            super().process_request(request, client_address)
        except BaseException:
            self.slots.release()
            raise

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            with self.deadlines_lock:
                self.deadlines.pop(request, None)
            self.slots.release()

    def handle_error(self, request: Any, client_address: Any) -> None:
        exc = sys.exc_info()[1]
        if isinstance(exc, TimeoutError):
            log.info(SLOW)
            return
        if isinstance(exc, OSError):  # the client went away, or was cut off
            log.debug("api: connection lost: %r", exc)
            return
        log.error("api: a request failed: %r", exc, exc_info=log.isEnabledFor(logging.DEBUG))

    def until(self, conn: socket.socket, seconds: float) -> None:
        """``conn`` is cut off if its request or response is not through in ``seconds``."""
        with self.deadlines_lock:
            self.deadlines[conn] = time.monotonic() + seconds

    def service_actions(self) -> None:
        now = time.monotonic()
        with self.deadlines_lock:
            late = [conn for conn, deadline in self.deadlines.items() if deadline < now]
            for conn in late:
                del self.deadlines[conn]
        for conn in late:
            log.info(SLOW)
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)


def _refuse(request: socket.socket) -> None:
    body = b'{"error": "too many connections"}'
    head = f"HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\n" \
           f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"  # fmt: skip
    try:
        request.setblocking(False)
        request.send(head.encode("ascii") + body)
    except OSError:
        pass


class ApiServer:
    """The API of one daemon: started once, serving whichever session is current."""

    def __init__(self, api: Api, path: Path, live: Live) -> None:
        self.path = path
        sock, self.identity = listener.listen(path, api.group)
        self.server = _Server(sock, path, api, live)
        self.thread = threading.Thread(target=self._serve, name="api", daemon=True)

    def start(self) -> None:
        self.thread.start()
        log.info("api: listening on %s", self.path)

    def _serve(self) -> None:
        try:
            self.server.serve_forever(poll_interval=POLL)
        except Exception:  # the API never takes the daemon down
            log.exception("api: stopped serving")

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.server.checks.close()
        self.server.reads.close()
        listener.remove(self.path, self.identity)


def start(api: Api, path: Path, live: Live) -> ApiServer | None:
    """The running API, or None (logged) when its socket cannot be served."""
    try:
        server = ApiServer(api, path, live)
    except (listener.ListenError, OSError) as exc:
        log.error("api: not served: %s", exc)
        return None
    server.start()
    return server


class Handler(BaseHTTPRequestHandler):
    """One connection: requests one after another (HTTP/1.1 keep-alive)."""

    protocol_version = "HTTP/1.1"
    default_request_version = "HTTP/1.1"  # even a garbled request line gets a status line
    server_version = f"imagewatchd/{__version__}"
    sys_version = ""
    server: _Server
    connection: socket.socket

    def setup(self) -> None:
        super().setup()
        self.connection.settimeout(self.server.api.timeout_seconds)

    def handle_one_request(self) -> None:
        # waiting for the next request: an idle connection is closed by its read timeout
        self.idle = True
        self.server.until(self.connection, 2 * self.server.api.timeout_seconds)
        super().handle_one_request()

    def parse_request(self) -> bool:
        """The request line is in: the rest must follow within the timeout."""
        self.idle = False
        self.server.until(self.connection, self.server.api.timeout_seconds)
        return super().parse_request()

    def log_error(self, format: str, *args: Any) -> None:
        if format.startswith("Request timed out") and self.idle:
            log.debug("api: an idle connection closed")
        elif format.startswith("Request timed out"):  # http.server's catch of our timeout
            log.info(SLOW)
        else:
            self.log_message(format, *args)

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("api: %s", format % args)

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        """Errors are JSON too; after one, the connection closes."""
        self.close_connection = True
        self.reply(code, {"error": message or self.responses.get(code, ("error",))[0]})

    def reply(self, code: int, data: object, **headers: str) -> None:
        self.send_body(code, json.dumps(data).encode("utf-8"), "application/json", **headers)

    def send_body(self, code: int, body: bytes, content_type: str, **headers: str) -> None:
        self.send_response(code)
        self.send_header("Content-Type", content_type)
        for key, value in headers.items():
            self.send_header(key.replace("_", "-"), value)
        self.send_header("Content-Length", str(len(body)))
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def do_GET(self) -> None:
        route = urlsplit(self.path).path
        live = self.server.live
        if route == "/":
            self.reply(200, answers.hello(live))
        elif route == "/status":
            self.reply(200, self.status())
        elif route == "/metrics":
            self.send_body(200, self.metrics(), CONTENT_TYPE_LATEST)
        elif route == "/check":
            self.send_error(405, "POST an image or a JSON path to /check")
        else:
            self.send_error(404, f"no such endpoint: {route}")

    def read(self, job: Callable[[Store], T]) -> T:
        return self.server.reads.run(job, self.server.api.timeout_seconds)

    def status(self) -> dict[str, object]:
        """The daemon's status; in a database outage, what the daemon knows without it."""
        live = self.server.live
        try:
            return self.read(lambda store: answers.status(live, store))
        except DatabaseUnreachable:
            return answers.status(live, None)

    def metrics(self) -> bytes:
        live = self.server.live
        snapshot = self.status()
        gauges = CollectorRegistry(auto_describe=False)
        gauges.register(answers.Gauges(snapshot))
        return generate_latest(live.tally.registry) + generate_latest(gauges)

    def do_POST(self) -> None:
        route = urlsplit(self.path).path
        if route != "/check":
            self.send_error(404 if route not in ("/", "/status", "/metrics") else 405)
            return
        timeout = self.server.api.timeout_seconds
        if not self.server.bodies.acquire(timeout=timeout):
            self.send_error(503, "too many checks at once; try again")
            return
        try:
            self.server.until(self.connection, timeout)  # the body must follow within it
            body = self.body()
            if body is not None:
                self.answer_check(body)
        finally:
            self.server.bodies.release()

    def answer_check(self, body: bytes) -> None:
        try:
            data, decoding, whole = self.check(body)
            timing = f"fingerprint;dur={decoding * 1000:.3f}, check;dur={whole * 1000:.3f}"
            self.reply(200, data, Server_Timing=timing)
        except Busy as exc:
            self.send_error(503, str(exc))
        except ValueError as exc:
            self.send_error(400, str(exc))
        except Exception as exc:  # e.g. the decoding pool unavailable, the database busy
            log.error("api: check failed: %r", exc)
            log.debug("traceback", exc_info=True)
            self.send_error(500, f"check failed: {exc}")

    def body(self) -> bytes | None:
        """The request's body, or None when an error has been sent."""
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            self.send_error(411, "send a Content-Length, not chunks")
            return None
        length = self.headers.get("Content-Length")
        if length is None or not length.isdigit():
            self.send_error(411, "a Content-Length is needed")
            return None
        limit = self.server.api.max_request_mb << 20
        if int(length) > limit:
            self.send_error(413, f"larger than api.max_request_mb ({limit >> 20} MiB)")
            return None
        data = self.rfile.read(int(length))
        if len(data) != int(length):
            self.send_error(400, "the body ended early")
            return None
        return data

    def check(self, body: bytes) -> tuple[dict[str, object], float, float]:
        """The verdict, the seconds its fingerprint took (decoding in the pool) and the seconds
        the whole check took (fingerprint, match, the answer's JSON)."""
        session = self.server.live.session
        if session is None:
            raise Busy("the daemon is starting or reloading; try again")
        if self.headers.get_content_type() == "application/json":
            path, name = _json_request(body)
        else:
            path, name = None, _query_name(urlsplit(self.path).query)
        matcher, decoder = session.matcher, session.decoder
        budget = session.config.decoding.timeout_seconds + self.server.api.timeout_seconds
        self.server.until(self.connection, budget + self.server.api.timeout_seconds)

        def job(store: Store) -> tuple[dict[str, object], float, float]:
            start = time.perf_counter()
            bound, timed = matcher.bind(store), _Timed(decoder)
            turned = answers.orientations_of(session.config, name or path or Path("-"))
            if path is not None:
                result = answers.check_path(bound, timed, path, name or path, turned)
            else:
                result = answers.check_bytes(bound, timed, body, name or Path("-"), turned)
            answer = answers.check_answer(result, session)
            return answer, timed.seconds, time.perf_counter() - start

        return self.server.checks.run(job, budget)


class _Timed:
    """A decoder that remembers how long its fingerprint took (the Server-Timing header)."""

    def __init__(self, decoder: Decoder) -> None:
        self.decoder = decoder
        self.seconds = 0.0

    def fingerprint(
        self, fd: int, name: object, *, crops: bool = False
    ) -> tuple[FileStat, Fingerprint]:
        start = time.perf_counter()
        try:
            return self.decoder.fingerprint(fd, name, crops=crops)
        finally:
            self.seconds += time.perf_counter() - start

    def thumbnail(self, fd: int, name: object) -> tuple[str, bytes]:
        return self.decoder.thumbnail(fd, name)

    def close(self) -> None:
        self.decoder.close()


def _json_request(body: bytes) -> tuple[Path, Path | None]:
    try:
        data = json.loads(body)
    except ValueError:
        raise ValueError("the body is not JSON") from None
    if not isinstance(data, dict) or not isinstance(data.get("path"), str):
        raise ValueError('expected {"path": "/absolute/path"}')
    path = data["path"]
    if not os.path.isabs(path):
        raise ValueError("the path must be absolute")
    name = data.get("name")
    return Path(path), Path(name) if isinstance(name, str) and name else None


def _query_name(query: str) -> Path | None:
    """``?name=``, percent-encoded bytes (any file name, exactly)."""
    for part in query.split("&"):
        key, _, value = part.partition("=")
        if key == "name" and value:
            return Path(os.fsdecode(unquote_to_bytes(value.replace("+", " "))))
    return None
