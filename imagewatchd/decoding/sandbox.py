"""Landlock for a decoding worker: once its decoders are loaded, it may create, write, truncate,
remove, rename, link or execute nothing on any filesystem, and open no TCP connection.

The worker still reads what it is handed (the open file passed over its socket) and could read
what the service user may read; everything that changes a filesystem is refused by the kernel
(``EACCES``), whatever a compromised decoder tries. Landlock (Linux 5.13 and later) needs no
privilege; where the kernel lacks it, or a seccomp filter refuses its system calls, the worker
runs with its resource limits alone and says so in its hello.
"""

from __future__ import annotations

import ctypes
import os
import struct

_CREATE_RULESET, _RESTRICT_SELF = 444, 446  # the same numbers on every architecture
_VERSION = 1  # LANDLOCK_CREATE_RULESET_VERSION
_PR_SET_NO_NEW_PRIVS = 38

# handled_access_fs bits refused, by the ABI version that introduced them. Reading files and
# listing directories (bits 2 and 3) are not handled, so they stay allowed.
_FS_BY_ABI = (
    (1, 1 << 0 | 1 << 1 | sum(1 << bit for bit in range(4, 13))),  # execute, write, make, remove
    (2, 1 << 13),  # refer: rename or link across directories
    (3, 1 << 14),  # truncate
    (5, 1 << 15),  # ioctl on devices
)
_NET_TCP = 1 << 0 | 1 << 1  # bind and connect (ABI 4)
_SCOPED = 1 << 0 | 1 << 1  # abstract unix sockets and signals outside the sandbox (ABI 6)


def abi() -> int:
    """The kernel's Landlock ABI version; 0 when it has none (or may not be asked)."""
    return max(0, _ask_version(ctypes.CDLL(None, use_errno=True)))


def _ask_version(libc: ctypes.CDLL) -> int:
    version: int = libc.syscall(
        _CREATE_RULESET, None, ctypes.c_size_t(0), ctypes.c_uint32(_VERSION)
    )
    return version


def restrict() -> str:
    """Sandbox this process for good; what was done, for the worker's hello."""
    libc = ctypes.CDLL(None, use_errno=True)
    abi = _ask_version(libc)
    if abi < 0:
        return f"no landlock ({os.strerror(ctypes.get_errno())}): resource limits only"
    handled_fs = sum(bits for since, bits in _FS_BY_ABI if abi >= since)
    attr = struct.pack("=QQQ", handled_fs, _NET_TCP if abi >= 4 else 0, _SCOPED if abi >= 6 else 0)
    buffer = ctypes.create_string_buffer(attr, len(attr))
    ruleset = libc.syscall(_CREATE_RULESET, buffer, ctypes.c_size_t(len(attr)), ctypes.c_uint32(0))
    if ruleset < 0:
        return f"no landlock ruleset ({os.strerror(ctypes.get_errno())}): resource limits only"
    try:
        if libc.prctl(_PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) or libc.syscall(
            _RESTRICT_SELF, ctypes.c_int(ruleset), ctypes.c_uint32(0)
        ):
            return f"landlock refused ({os.strerror(ctypes.get_errno())}): resource limits only"
    finally:
        os.close(ruleset)
    return f"landlock ABI {abi}: no filesystem changes, no execution, no TCP"
