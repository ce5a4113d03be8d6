"""Numbers of the Linux ABI the server uses, written once: syscall numbers per architecture and
the clone, mount and prctl flags. Pure constants: no ctypes, no libc (the sandbox's ``_kernel``
calls them, the spawn helper assembles them, ``testing.confine`` filters them)."""

from __future__ import annotations

__all__ = [
    "CLONE_NEWNS",
    "CLONE_NEWPID",
    "CLONE_NEWUSER",
    "GENERIC_SYSCALLS",
    "MNT_DETACH",
    "MS_BIND",
    "MS_NODEV",
    "MS_NOEXEC",
    "MS_NOSUID",
    "MS_PRIVATE",
    "MS_RDONLY",
    "MS_REC",
    "MS_REMOUNT",
    "MS_SLAVE",
    "PR_CAP_AMBIENT",
    "PR_CAP_AMBIENT_CLEAR_ALL",
    "PR_SET_CHILD_SUBREAPER",
    "PR_SET_NO_NEW_PRIVS",
    "PR_SET_PDEATHSIG",
    "SYSCALLS_BY_ARCH",
]

CLONE_NEWNS = 0x00020000
CLONE_NEWUSER = 0x10000000
CLONE_NEWPID = 0x20000000

MS_RDONLY = 1
MS_NOSUID = 2
MS_NODEV = 4
MS_NOEXEC = 8
MS_REMOUNT = 32
MS_BIND = 4096
MS_REC = 1 << 14
MS_PRIVATE = 1 << 18
MS_SLAVE = 1 << 19
MNT_DETACH = 2

PR_SET_PDEATHSIG = 1
PR_SET_CHILD_SUBREAPER = 36
PR_SET_NO_NEW_PRIVS = 38
PR_CAP_AMBIENT = 47
PR_CAP_AMBIENT_CLEAR_ALL = 4

GENERIC_SYSCALLS: dict[str, int] = {
    "io_uring_setup": 425,
    "io_uring_enter": 426,
    "io_uring_register": 427,
    "pidfd_send_signal": 424,
    "pidfd_open": 434,
    "clone3": 435,
    "close_range": 436,
    "openat2": 437,
    "pidfd_getfd": 438,
    "landlock_create_ruleset": 444,
    "landlock_add_rule": 445,
    "landlock_restrict_self": 446,
    "fchmodat2": 452,
}
"""Syscalls added since Linux 5.1 share one number on every architecture."""

SYSCALLS_BY_ARCH: dict[str, dict[str, int]] = {
    "x86_64": {
        **GENERIC_SYSCALLS,
        "audit_arch": 0xC000003E,
        "write": 1,
        "open": 2,
        "close": 3,
        "chdir": 80,
        "mmap": 9,
        "rt_sigprocmask": 14,
        "ioctl": 16,
        "socket": 41,
        "connect": 42,
        "accept": 43,
        "sendto": 44,
        "bind": 49,
        "listen": 50,
        "socketpair": 53,
        "clone": 56,
        "creat": 85,
        "chmod": 90,
        "fchmod": 91,
        "ptrace": 101,
        "capset": 126,
        "mknod": 133,
        "prctl": 157,
        "pivot_root": 155,
        "mount": 165,
        "openat": 257,
        "mknodat": 259,
        "fchmodat": 268,
        "unshare": 272,
        "accept4": 288,
        "prlimit64": 302,
        "sendmmsg": 307,
        "process_vm_readv": 310,
        "process_vm_writev": 311,
        "seccomp": 317,
    },
    "aarch64": {
        **GENERIC_SYSCALLS,
        "audit_arch": 0xC00000B7,
        "chdir": 49,
        "mknodat": 33,
        "pivot_root": 41,
        "fchmod": 52,
        "fchmodat": 53,
        "openat": 56,
        "capset": 91,
        "unshare": 97,
        "ptrace": 117,
        "socket": 198,
        "socketpair": 199,
        "bind": 200,
        "listen": 201,
        "accept": 202,
        "connect": 203,
        "sendto": 206,
        "clone": 220,
        "accept4": 242,
        "sendmmsg": 269,
        "process_vm_readv": 270,
        "process_vm_writev": 271,
        "seccomp": 277,
        "ioctl": 29,
    },
}
"""Syscall numbers by ``platform.machine()``, with the seccomp ``AUDIT_ARCH`` as ``audit_arch``."""
