"""Thin ctypes wrappers over the Linux syscalls the sandbox uses.

Every wrapper raises ``OSError`` with the kernel's errno. They are safe to call in a forked child
before exec (no Python-level locks, no allocation beyond small ctypes objects).
"""

from __future__ import annotations

import ctypes
import os
import platform
import struct

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
    "write_file",
]

_libc = ctypes.CDLL(None, use_errno=True)
_syscall = _libc.syscall
_syscall.restype = ctypes.c_long

# Syscall numbers of the generic table (same on x86_64 and aarch64).
_SYS_LANDLOCK_CREATE_RULESET = 444
_SYS_LANDLOCK_ADD_RULE = 445
_SYS_LANDLOCK_RESTRICT_SELF = 446
_SYS_CLOSE_RANGE = 436

CLONE_NEWNS = 0x00020000
CLONE_NEWUSER = 0x10000000
CLONE_NEWPID = 0x20000000

_ARCHES: dict[str, dict[str, int]] = {
    "x86_64": {
        "audit_arch": 0xC000003E,
        "capset": 126,
        "seccomp": 317,
        "ioctl": 16,
        "ptrace": 101,
        "process_vm_readv": 310,
        "process_vm_writev": 311,
        "open": 2,
        "creat": 85,
        "openat": 257,
        "openat2": 437,
        "chmod": 90,
        "fchmod": 91,
        "fchmodat": 268,
        "fchmodat2": 452,
        "mknod": 133,
        "mknodat": 259,
        "socket": 41,
        "connect": 42,
        "accept": 43,
        "sendto": 44,
        "bind": 49,
        "listen": 50,
        "socketpair": 53,
        "accept4": 288,
        "sendmmsg": 307,
        "io_uring_setup": 425,
        "io_uring_enter": 426,
        "io_uring_register": 427,
    },
    "aarch64": {
        "audit_arch": 0xC00000B7,
        "capset": 91,
        "seccomp": 277,
        "ioctl": 29,
        "ptrace": 117,
        "process_vm_readv": 270,
        "process_vm_writev": 271,
        "openat": 56,
        "openat2": 437,
        "fchmod": 52,
        "fchmodat": 53,
        "fchmodat2": 452,
        "mknodat": 33,
        "socket": 198,
        "socketpair": 199,
        "bind": 200,
        "listen": 201,
        "accept": 202,
        "connect": 203,
        "sendto": 206,
        "accept4": 242,
        "sendmmsg": 269,
        "io_uring_setup": 425,
        "io_uring_enter": 426,
        "io_uring_register": 427,
    },
}

ARCH: str | None = platform.machine() if platform.machine() in _ARCHES else None
"""The machine architecture if the sandbox knows its syscall table, else ``None``."""

SYSCALLS: dict[str, int] = _ARCHES.get(ARCH or "", {})

_PR_SET_NO_NEW_PRIVS = 38
_PR_CAP_AMBIENT = 47
_PR_CAP_AMBIENT_CLEAR_ALL = 4
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
    _check(_libc.prctl(_PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0))


def capset_drop_all() -> None:
    """Clear the effective, permitted, inheritable and ambient capability sets of this thread.

    With no_new_privs set, a later exec cannot grant them back (not even to uid 0).
    """
    _check(_libc.prctl(_PR_CAP_AMBIENT, _PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0))
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


def write_file(path: str, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CLOEXEC)
    try:
        os.write(fd, data)
    finally:
        os.close(fd)
