"""Thin ctypes wrappers over the Linux syscalls the sandbox uses.

Every wrapper raises ``OSError`` with the kernel's errno. They are safe to call in a forked child
before exec (no Python-level locks, no allocation beyond small ctypes objects).
"""

from __future__ import annotations

import ctypes
import os
import platform
import struct

from .._linux import (
    CLONE_NEWNS,
    CLONE_NEWPID,
    CLONE_NEWUSER,
    GENERIC_SYSCALLS,
    PR_CAP_AMBIENT,
    PR_CAP_AMBIENT_CLEAR_ALL,
    PR_SET_NO_NEW_PRIVS,
    SYSCALLS_BY_ARCH,
)

__all__ = [
    "ARCH",
    "CLONE_NEWNS",
    "CLONE_NEWPID",
    "CLONE_NEWUSER",
    "SYSCALLS",
    "capset_drop_all",
    "close_range_cloexec",
    "landlock_abi",
    "landlock_add_path_rule",
    "landlock_create_ruleset",
    "landlock_restrict_self",
    "mount",
    "seccomp_set_filter",
    "set_no_new_privs",
    "unshare",
]

_libc = ctypes.CDLL(None, use_errno=True)
_syscall = _libc.syscall
_syscall.restype = ctypes.c_long

_SYS_LANDLOCK_CREATE_RULESET = GENERIC_SYSCALLS["landlock_create_ruleset"]
_SYS_LANDLOCK_ADD_RULE = GENERIC_SYSCALLS["landlock_add_rule"]
_SYS_LANDLOCK_RESTRICT_SELF = GENERIC_SYSCALLS["landlock_restrict_self"]
_SYS_CLOSE_RANGE = GENERIC_SYSCALLS["close_range"]

ARCH: str | None = platform.machine() if platform.machine() in SYSCALLS_BY_ARCH else None
"""The machine architecture if the sandbox knows its syscall table, else ``None``."""

SYSCALLS: dict[str, int] = SYSCALLS_BY_ARCH.get(ARCH or "", {})

_LANDLOCK_CREATE_RULESET_VERSION = 1
_LANDLOCK_RULE_PATH_BENEATH = 1
_SECCOMP_SET_MODE_FILTER = 1
_LINUX_CAPABILITY_VERSION_3 = 0x20080522
_CLOSE_RANGE_CLOEXEC = 1 << 2


def _check(result: int) -> int:
    if result < 0:
        errno = ctypes.get_errno()
        raise OSError(errno, os.strerror(errno))
    return result


def _call(number: int, *args: object) -> int:
    return _check(_syscall(ctypes.c_long(number), *args))


def landlock_abi() -> int:
    """The Landlock ABI version of the running kernel, or 0 when Landlock is unavailable."""
    result = _syscall(
        ctypes.c_long(_SYS_LANDLOCK_CREATE_RULESET),
        None,
        ctypes.c_size_t(0),
        ctypes.c_uint32(_LANDLOCK_CREATE_RULESET_VERSION),
    )
    return max(int(result), 0)


def landlock_create_ruleset(handled_fs: int, handled_net: int, scoped: int) -> int:
    """Create a ruleset; returns its (close-on-exec) file descriptor."""
    attr = struct.pack("=QQQ", handled_fs, handled_net, scoped)
    return _call(_SYS_LANDLOCK_CREATE_RULESET, attr, ctypes.c_size_t(len(attr)), ctypes.c_uint32(0))


def landlock_add_path_rule(ruleset_fd: int, path: str, allowed: int) -> None:
    """Allow ``allowed`` beneath ``path`` (a directory, or a file for file rights)."""
    fd = os.open(path, os.O_PATH | os.O_CLOEXEC)
    try:
        attr = struct.pack("=Qi", allowed, fd)
        _call(
            _SYS_LANDLOCK_ADD_RULE,
            ctypes.c_int(ruleset_fd),
            ctypes.c_int(_LANDLOCK_RULE_PATH_BENEATH),
            attr,
            ctypes.c_uint32(0),
        )
    finally:
        os.close(fd)


def landlock_restrict_self(ruleset_fd: int) -> None:
    """Enforce the ruleset on the calling thread and its future children."""
    _call(_SYS_LANDLOCK_RESTRICT_SELF, ctypes.c_int(ruleset_fd), ctypes.c_uint32(0))


def set_no_new_privs() -> None:
    _check(_libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0))


def capset_drop_all() -> None:
    """Clear the effective, permitted, inheritable and ambient capability sets of this thread.

    With no_new_privs set, a later exec cannot grant them back (not even to uid 0).
    """
    _check(_libc.prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0))
    header = struct.pack("=Ii", _LINUX_CAPABILITY_VERSION_3, 0)
    data = bytes(24)
    _call(SYSCALLS["capset"], header, data)


def seccomp_set_filter(program: bytes) -> None:
    """Install a classic-BPF seccomp filter (``program`` is packed ``struct sock_filter``s)."""
    buffer = ctypes.create_string_buffer(program, len(program))
    fprog = struct.pack("=HxxxxxxQ", len(program) // 8, ctypes.addressof(buffer))
    _call(SYSCALLS["seccomp"], ctypes.c_uint(_SECCOMP_SET_MODE_FILTER), ctypes.c_uint(0), fprog)


def close_range_cloexec(first: int) -> None:
    """Mark every descriptor from ``first`` up close-on-exec."""
    _call(
        _SYS_CLOSE_RANGE,
        ctypes.c_uint(first),
        ctypes.c_uint(0xFFFFFFFF),
        ctypes.c_uint(_CLOSE_RANGE_CLOEXEC),
    )


def unshare(flags: int) -> None:
    _check(_libc.unshare(ctypes.c_int(flags)))


def mount(source: bytes | None, target: bytes, flags: int, fstype: bytes | None = None) -> None:
    _check(_libc.mount(source, target, fstype, ctypes.c_ulong(flags), None))
