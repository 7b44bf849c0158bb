"""A decoding worker: ``python -m imagewatchd.decoding.worker --socket FD …``.

A fresh interpreter started by :mod:`imagewatchd.decoding.pool`. It loads the decoders, then
gives itself limits it can never raise again (no core dumps, no file may grow, few open files,
a memory ceiling; with Landlock, no filesystem change and no execution at all: ``sandbox.py``),
says hello, and serves: each request is one file descriptor passed over the
socket (``SCM_RIGHTS``) with one byte saying what is wanted (``f``: the fingerprint, ``t``: a
small JPEG thumbnail, base64); each reply is one small JSON message, the answer or the reason it
failed. It knows no path, holds no store, and exits at end of file on its socket.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import io
import json
import os
import resource
import signal
import socket
import sys
import time
import warnings
from typing import Any

from PIL import Image

from imagewatchd.decoding import sandbox
from imagewatchd.errors import FingerprintError
from imagewatchd.fingerprint import Limits, fingerprint_bytes, read_fd
from imagewatchd.thumbnail import thumbnail_bytes

OPEN_FILES = 16  # the socket, the file being read, stdio, and a few for the decoders
TEST_HOOKS = "IMAGEWATCHD_TEST_DECODER_HOOKS"  # "1": the magic prefixes below are obeyed
TEST_PREFIX = b"IMAGEWATCHD-TEST-"
HOOK_CAP = 4 << 30  # the allocation hook stops here if no limit stopped it first
MESSAGE = 1 << 16


def main(argv: list[str] | None = None) -> int:
    args = _parse(argv)
    sock = socket.socket(fileno=args.socket)
    limits = Limits(args.max_pixels, args.memory_bytes, args.max_bytes)
    _warm_up()
    ceiling = _limit_self(args.memory_bytes + args.slack_bytes)
    sandboxed = sandbox.restrict()
    warnings.simplefilter("ignore")  # a decoder's complaint about one file is not news
    hooks = os.environ.get(TEST_HOOKS) == "1"
    hello = {"hello": os.getpid(), "address_space": ceiling, "sandbox": sandboxed}
    sock.send(json.dumps(hello).encode())
    while True:
        message, fds, _, _ = socket.recv_fds(sock, MESSAGE, 1)
        if not message:
            return 0
        if not fds:
            continue
        try:
            if message == b"t":
                reply = _serve_thumbnail(fds[0], limits)
            else:
                reply = _serve(fds[0], limits, hooks, crops=message == b"c",
                               colours=message == b"h")  # fmt: skip
        finally:
            os.close(fds[0])
        sock.send(json.dumps(reply).encode())
        if reply.get("retire"):
            return 0


def _parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="imagewatchd.decoding.worker")
    for name in ("socket", "max-pixels", "memory-bytes", "max-bytes", "slack-bytes"):
        parser.add_argument(f"--{name}", type=int, required=True)
    return parser.parse_args(argv)


def _warm_up() -> None:
    """Import every decoder and the hashes' FFT now: after the limits, nothing is loaded."""
    Image.init()
    sample = io.BytesIO()
    Image.new("RGB", (64, 48), (200, 100, 50)).save(sample, "PNG")
    fingerprint_bytes(sample.getvalue())
    thumbnail_bytes(sample.getvalue(), 64 * 48, 64 << 20)


def _limit_self(memory: int) -> int:
    """Lower this process's limits, soft and hard, for good; returns the address-space ceiling.

    ``prlimit`` (allowed by systemd's @system-service filter, unlike ``setrlimit``)."""
    ceiling = _address_space() + memory
    for kind, value in (
        (resource.RLIMIT_CORE, 0),
        (resource.RLIMIT_FSIZE, 0),  # writing past a file's end fails with EFBIG
        (resource.RLIMIT_NOFILE, OPEN_FILES),
        (resource.RLIMIT_AS, ceiling),
    ):
        resource.prlimit(0, kind, (value, value))
    return ceiling


def _address_space() -> int:
    with open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmSize:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError("no VmSize in /proc/self/status")


def _serve(
    fd: int, limits: Limits, hooks: bool, *, crops: bool = False, colours: bool = False
) -> dict[str, Any]:
    try:
        file_stat, data = read_fd(fd, limits.max_bytes)
        if hooks and data.startswith(TEST_PREFIX):
            _test_hook(data[len(TEST_PREFIX) :])
        fp = fingerprint_bytes(
            data, limits.max_pixels, limits.memory_bytes, crops=crops, colours=colours
        )
    except FingerprintError as exc:
        # after a MemoryError the heap may be fragmented or half-freed: a fresh worker is cheap
        return {"error": exc.reason, "retire": isinstance(exc.__cause__, MemoryError)}
    except MemoryError:
        return {"error": "over the memory limit", "retire": True}
    return {"stat": list(_fields(file_stat)), "fingerprint": list(_fields(fp))}


def _serve_thumbnail(fd: int, limits: Limits) -> dict[str, Any]:
    try:
        file_stat, data = read_fd(fd, limits.max_bytes)
        jpeg = thumbnail_bytes(data, limits.max_pixels, limits.memory_bytes)
    except FingerprintError as exc:
        return {"error": exc.reason, "retire": isinstance(exc.__cause__, MemoryError)}
    except MemoryError:
        return {"error": "over the memory limit", "retire": True}
    return {"stat": list(_fields(file_stat)), "sha256": hashlib.sha256(data).hexdigest(),
            "thumbnail": base64.b64encode(jpeg).decode()}  # fmt: skip


def _fields(value: Any) -> tuple[Any, ...]:
    """A frozen dataclass as plain values for JSON (nested ones too: ``Fingerprint.turned``)."""
    return tuple(_plain(getattr(value, name)) for name in value.__slots__)


def _plain(value: Any) -> Any:
    if isinstance(value, bytes):
        return value.hex()  # Fingerprint.grid, Fingerprint.colours
    if isinstance(value, tuple):
        return [_plain(item) for item in value]
    return list(_fields(value)) if hasattr(value, "__slots__") else value


def _test_hook(command: bytes) -> None:
    """Tests only (``IMAGEWATCHD_TEST_DECODER_HOOKS=1``): behave like a broken decoder."""
    if command.startswith(b"abort"):
        os.abort()
    if command.startswith(b"segv"):
        os.kill(os.getpid(), signal.SIGSEGV)
    if command.startswith(b"hang"):
        while True:
            time.sleep(1)
    if command.startswith(b"alloc"):
        hoard: list[bytearray] = []
        while len(hoard) * (64 << 20) < HOOK_CAP:
            hoard.append(bytearray(64 << 20))  # zero-filled: every page touched
        raise FingerprintError("<fd>", "test hook: no memory limit stopped the allocation")
    if command.startswith(b"write "):  # a path to append to
        try:
            with open(os.fsdecode(command[6:].strip()), "ab") as out:
                out.write(b"written by a decoding worker\n")
        except OSError as exc:
            raise FingerprintError("<fd>", f"test hook: cannot write: {exc.strerror}") from exc
        raise FingerprintError("<fd>", "test hook: wrote to a file")


if __name__ == "__main__":
    sys.exit(main())
