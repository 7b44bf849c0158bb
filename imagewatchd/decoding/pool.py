"""Decoding in a small pool of worker processes, each a fresh interpreter (never a fork of the
threaded caller) with memory and time limits and nothing to write.

A caller takes an idle worker, passes it the open file over a socketpair and waits for its
reply; the worker count bounds how many files are decoded at once. A worker that dies (a decoder
crash, a memory kill) or overruns the time limit costs only itself: it is reaped, and the next
caller that needs one starts a fresh one. A file is tried on a fresh worker until it has crashed
``POISON_AFTER`` workers; it is then reported as poison and the caller records the error, so it
is not tried again until it changes. A timeout is not retried: a hang would hold a worker again.
"""

from __future__ import annotations

import base64
import json
import logging
import os
import queue
import re
import signal
import socket
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import imagewatchd
from imagewatchd import colours
from imagewatchd.blockgrid import SIZE
from imagewatchd.decoding import Settings
from imagewatchd.dihedral import NAMES
from imagewatchd.errors import FingerprintError, ImagewatchdError
from imagewatchd.models import FileStat, Fingerprint, Turned
from imagewatchd.provenance import TEXT_LIMIT, Provenance
from imagewatchd.regions import CROPS, MORE_REGIONS

log = logging.getLogger(__name__)

POISON_AFTER = 3  # workers a file may crash before it is recorded as an error
STARTUP_TIMEOUT = 60.0  # a fresh worker imports Pillow, numpy and scipy: slow on a busy host
SLACK_BYTES = 48 << 20  # address space beyond the decode budget: decoder threads' stacks…
MESSAGE = 1 << 16
_SHA256 = re.compile("[0-9a-f]{64}")
_SOURCE = str(Path(imagewatchd.__file__).resolve().parent.parent)


class DecoderUnavailable(ImagewatchdError):
    """No worker could be started, or the pool is closed: not the file's fault."""


class _Died(Exception):
    """The worker is gone; ``crash`` when the file may be to blame and is worth a retry."""

    def __init__(self, reason: str, crash: bool) -> None:
        super().__init__(reason)
        self.reason = reason
        self.crash = crash


class _Stale(Exception):
    """The worker had died while idle, before it was given the file."""


class _Worker:
    """One worker process and the parent's end of its socket."""

    def __init__(self, settings: Settings) -> None:
        parent, child = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        limits = settings.limits
        command = [
            sys.executable, "-m", "imagewatchd.decoding.worker",
            "--socket", str(child.fileno()), "--max-pixels", str(limits.max_pixels),
            "--memory-bytes", str(limits.memory_bytes), "--max-bytes", str(limits.max_bytes),
            "--slack-bytes", str(SLACK_BYTES),
        ]  # fmt: skip
        try:
            self.proc = subprocess.Popen(
                command, pass_fds=(child.fileno(),), close_fds=True, env=_environment(),
                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
            )  # fmt: skip
        except OSError as exc:
            parent.close()
            raise DecoderUnavailable(f"cannot start a decoding worker: {exc}") from exc
        finally:
            child.close()
        self.sock = parent
        self.killed = False

    def wait_ready(self) -> None:
        """Its hello: the decoders are loaded and the limits set."""
        try:
            hello = self._receive(STARTUP_TIMEOUT)
        except _Died as died:
            self.close()
            raise DecoderUnavailable(f"a decoding worker failed to start: {died.reason}") from None
        self.sandbox = str(hello.get("sandbox"))
        log.debug("decoding worker %d started (address space %s; %s)", self.proc.pid,
                  hello.get("address_space"), self.sandbox)  # fmt: skip

    def ask(self, fd: int, timeout: float, request: bytes) -> dict[str, Any]:
        if self.proc.poll() is not None:
            raise _Stale(self._death())
        try:
            socket.send_fds(self.sock, [request], [fd])
        except OSError:
            raise _Stale(self._death()) from None
        return self._receive(timeout)

    def _receive(self, timeout: float) -> dict[str, Any]:
        self.sock.settimeout(timeout)
        try:
            data = self.sock.recv(MESSAGE)
        except TimeoutError:
            self.kill()
            raise _Died(f"decode timed out (after {timeout:g} s)", crash=False) from None
        except OSError:
            data = b""
        if not data:
            raise _Died(self._death(), crash=True)
        try:
            reply = json.loads(data)
        except ValueError:
            reply = None
        if not isinstance(reply, dict):
            self.kill()
            raise _Died("the decoder sent a malformed reply", crash=True)
        return reply

    def _death(self) -> str:
        try:
            code = self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.kill()
            return "the decoder stopped answering"
        if code >= 0:
            return f"decoder crashed (exit status {code})"
        name = _signal_name(-code)
        if -code == signal.SIGKILL and not self.killed:  # the kernel's OOM killer, or a cgroup's
            return f"over the memory limit (decoder killed by {name})"
        return f"decoder crashed (signal {name})"

    def kill(self) -> None:
        self.killed = True
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()

    def close(self) -> None:
        """End of file on its socket makes an idle worker exit; a busy one is killed."""
        self.sock.close()
        try:
            self.proc.wait(timeout=2)
        except subprocess.TimeoutExpired:
            self.kill()


class WorkerPool:
    """Up to ``settings.workers`` worker processes, started when first needed."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._idle: queue.LifoQueue[_Worker | None] = queue.LifoQueue()
        for _ in range(settings.workers):
            self._idle.put(None)  # a slot: a worker is started by the first caller to need it
        self._lock = threading.Lock()
        self._busy: set[_Worker] = set()
        self._closed = False

    def fingerprint(
        self, fd: int, name: object, *, crops: bool = False
    ) -> tuple[FileStat, Fingerprint]:
        request = b"c" if crops else b"h"  # an entry's (crops and colours), or a file's (colours)
        for attempt in range(1, POISON_AFTER + 1):
            try:
                return _answer(self._attempt(fd, request), fd)
            except _Died as died:
                if not died.crash:
                    raise FingerprintError(name, died.reason) from None
                if attempt == POISON_AFTER:
                    reason = f"{died.reason}, {attempt} times: not retried until the file changes"
                    raise FingerprintError(name, reason) from None
                log.warning("%s: %s; trying a new worker (%d of %d)", name, died.reason,
                            attempt + 1, POISON_AFTER)  # fmt: skip
        raise AssertionError("unreachable")

    def thumbnail(self, fd: int, name: object) -> tuple[str, bytes]:
        """A small JPEG of the open file ``fd``, made by a worker; tried once (a picture that
        crashes a decoder gets no thumbnail, not a second worker)."""
        try:
            return _thumbnail(self._attempt(fd, b"t"), fd)
        except _Died as died:
            raise FingerprintError(name, died.reason) from None

    def _attempt(self, fd: int, request: bytes) -> dict[str, Any]:
        for _ in range(POISON_AFTER):
            worker = self._take()
            alive = False
            try:
                reply = worker.ask(fd, self.settings.timeout, request)
                alive = not reply.get("retire")  # it exits after answering: a MemoryError
            except _Stale as stale:  # not this file's doing: another worker takes it
                log.warning("decoding worker %d had stopped: %s", worker.proc.pid, stale)
                continue
            except _Died:
                if self._closed:
                    raise DecoderUnavailable("decoding stopped (shutting down)") from None
                raise
            finally:
                self._give_back(worker, alive=alive)
            return reply
        raise DecoderUnavailable("decoding workers keep stopping before they are given a file")

    def _take(self) -> _Worker:
        slot = self._idle.get()
        with self._lock:
            if self._closed:
                self._idle.put(slot)
                raise DecoderUnavailable("decoding stopped (shutting down)")
        try:
            worker = slot or _Worker(self.settings)
            if slot is None:
                worker.wait_ready()
        except BaseException:
            self._idle.put(None)
            raise
        with self._lock:
            self._busy.add(worker)
        return worker

    def _give_back(self, worker: _Worker, *, alive: bool) -> None:
        with self._lock:
            self._busy.discard(worker)
            closed = self._closed
        if not alive or closed:
            worker.kill()
            worker.sock.close()
        self._idle.put(worker if alive and not closed else None)

    def pids(self) -> list[int]:
        """The process ids of the running workers (for tests and benchmarks)."""
        with self._lock, self._idle.mutex:
            workers = [w for w in self._idle.queue if w is not None] + list(self._busy)
        return [w.proc.pid for w in workers]

    def start(self) -> None:
        """Start every worker now, side by side, rather than as files arrive."""
        slots = []
        while True:
            try:
                slots.append(self._idle.get_nowait())
            except queue.Empty:
                break
        ready = [slot for slot in slots if slot is not None]
        fresh: list[_Worker] = []
        try:
            fresh.extend(_Worker(self.settings) for slot in slots if slot is None)
            for worker in fresh:
                worker.wait_ready()  # a failed one closes itself
                ready.append(worker)
        finally:
            for worker in fresh:
                if worker not in ready:
                    worker.close()
            for slot in ready + [None] * (len(slots) - len(ready)):
                self._idle.put(slot)

    def close(self) -> None:
        """Stop every worker: idle ones exit at end of file, busy ones are killed."""
        with self._lock:
            self._closed = True
            busy = list(self._busy)
        for worker in busy:
            worker.kill()
        while True:
            try:
                slot = self._idle.get_nowait()
            except queue.Empty:
                return
            if slot is not None:
                slot.close()


def _answer(reply: dict[str, Any], fd: int) -> tuple[FileStat, Fingerprint]:
    """The worker's reply, checked: it is a decoder's output, not to be trusted blindly."""
    if "error" in reply:
        raise FingerprintError("<fd>", str(reply["error"])[:500])
    try:
        stat = FileStat(*(int(v) for v in reply["stat"]))
        fields = reply["fingerprint"]
        (sha256, dhash, phash, width, height, fmt, flat, pdq, quality, canon, regions, turned,
         found, crops, grid, more, hues, region_pdqs) = fields  # fmt: skip
        fp = Fingerprint(str(sha256), int(dhash), int(phash), int(width), int(height),
                         str(fmt), bool(flat), _pdq(pdq), int(quality), int(canon),
                         _regions(regions), _turned(turned), _provenance(found),
                         _crops(crops), _grid(grid), _regions(more, MORE_REGIONS),
                         _colours(hues), _region_pdqs(region_pdqs))  # fmt: skip
        if not 0 <= fp.pdq_quality <= 100:
            raise ValueError(fp.pdq_quality)
    except (KeyError, TypeError, ValueError):
        raise FingerprintError("<fd>", "the decoder sent a malformed reply") from None
    if stat != FileStat.of(os.fstat(fd)):  # what the worker read is what the file is now
        raise FingerprintError("<fd>", "file changed while being read")
    return stat, fp


def _thumbnail(reply: dict[str, Any], fd: int) -> tuple[str, bytes]:
    """A thumbnail reply, checked: the sha256 of the bytes read and a JPEG (its start-of-image
    marker), of the file as it is now."""
    if "error" in reply:
        raise FingerprintError("<fd>", str(reply["error"])[:500])
    try:
        stat = FileStat(*(int(v) for v in reply["stat"]))
        jpeg = base64.b64decode(str(reply["thumbnail"]), validate=True)
        sha256 = str(reply["sha256"])
    except (KeyError, TypeError, ValueError):
        raise FingerprintError("<fd>", "the decoder sent a malformed reply") from None
    if not jpeg.startswith(b"\xff\xd8\xff") or not _SHA256.fullmatch(sha256):
        raise FingerprintError("<fd>", "the decoder sent a malformed reply")
    if stat != FileStat.of(os.fstat(fd)):
        raise FingerprintError("<fd>", "file changed while being read")
    return sha256, jpeg


def _regions(value: object, most: int = 4) -> tuple[tuple[int, int], ...]:
    """The regions' (dHash, pHash): at most ``most`` pairs of 64-bit hashes."""
    if not isinstance(value, list) or len(value) > most:
        raise ValueError(value)
    pairs = tuple((int(d), int(p)) for d, p in value)
    if not all(0 <= h < 1 << 64 for pair in pairs for h in pair):
        raise ValueError(value)
    return pairs


def _crops(value: object) -> tuple[tuple[str, int, int], ...]:
    """The centre crops' (name, dHash, pHash): each a known crop (regions.CROPS) at most once."""
    names = [name for name, _ in CROPS]
    if not isinstance(value, list) or len(value) > len(names):
        raise ValueError(value)
    crops = tuple((str(n), int(d), int(p)) for n, d, p in value)
    if len({c[0] for c in crops}) != len(crops) or any(c[0] not in names for c in crops):
        raise ValueError(value)
    if not all(0 <= h < 1 << 64 for c in crops for h in c[1:]):
        raise ValueError(value)
    return crops


def _region_pdqs(value: object) -> tuple[tuple[int, int], ...]:
    """The regions' (PDQ, quality): one per box at most (regions.boxes and more_boxes)."""
    if not isinstance(value, list) or len(value) > 2 + MORE_REGIONS:
        raise ValueError(value)
    pairs = tuple((int(h), int(q)) for h, q in value)
    if not all(0 <= h < 1 << 256 and 0 <= q <= 100 for h, q in pairs):
        raise ValueError(value)
    return pairs


def _grid(value: object) -> bytes:
    """The block grid (imagewatchd/blockgrid.py): 256 bytes as hex, or none (flat)."""
    if not isinstance(value, str) or len(value) not in (0, 2 * SIZE):
        raise ValueError(value)
    return bytes.fromhex(value)


def _colours(value: object) -> bytes | None:
    """The colour signature (imagewatchd/colours.py): 17 bytes as hex, none (""), or not
    computed (null)."""
    if value is None:
        return None
    if not isinstance(value, str) or len(value) not in (0, 2 * colours.SIZE):
        raise ValueError(value)
    return bytes.fromhex(value)


def _turned(value: object) -> tuple[Turned, ...]:
    """The other orientations' hashes: at most 7, each named by a known turn."""
    if not isinstance(value, list) or len(value) > len(NAMES) - 1:
        raise ValueError(value)
    out = []
    for turn, dhash, phash, pdq in value:
        if turn not in NAMES or not (0 <= dhash < 1 << 64 and 0 <= phash < 1 << 64):
            raise ValueError(turn)
        out.append(Turned(str(turn), int(dhash), int(phash), _pdq(pdq)))
    return tuple(out)


def _provenance(value: object) -> Provenance:
    """Camera, capture date and software: short text or none; the JPEG quality 1..100."""
    if not isinstance(value, list) or len(value) != 4:
        raise ValueError(value)
    camera, captured, software, quality = value
    if not all(t is None or _short_text(t) for t in (camera, captured, software)):
        raise ValueError(value)
    if quality is not None and (not isinstance(quality, int) or not 1 <= quality <= 100):
        raise ValueError(value)
    return Provenance(camera, captured, software, quality)


def _short_text(value: object) -> bool:
    return isinstance(value, str) and 0 < len(value) <= TEXT_LIMIT and value.isprintable()


def _pdq(value: object) -> int | None:
    if value is None:
        return None
    if not isinstance(value, int) or not 0 <= value < 1 << 256:
        raise ValueError(value)
    return value


def _environment() -> dict[str, str]:
    env = dict(os.environ)
    env["OPENBLAS_NUM_THREADS"] = "1"
    env["MALLOC_ARENA_MAX"] = "1"  # a thread's own arena would reserve 64 MiB of address space
    path = env.get("PYTHONPATH")
    env["PYTHONPATH"] = f"{_SOURCE}{os.pathsep}{path}" if path else _SOURCE
    return env


def _signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return str(number)
