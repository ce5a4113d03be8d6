"""Policy -> a Landlock ruleset (file system, TCP, scopes), created in the parent.

Landlock is the sandbox's second layer: the mount namespace already keeps writes inside the
writable roots, the PID namespace keeps signals and ptrace inside, seccomp keeps the network out.
Landlock adds the same rules again where the kernel offers them, using what its ABI has:
reads (ABI 1; the only layer that can restrict *reads* to a set of paths), writes with renames
and links (ABI 2; with ABI 1 a handled file system refuses every cross-directory rename, so
writes are left to the mounts there), truncate (3), TCP (4), signal and abstract-socket
scoping (6).

The ruleset file descriptor is built before the spawn, so the child only has to call
``landlock_restrict_self`` on it. Rights that Landlock checks on the *parent directory* (make,
remove, refer) cover renames and hard links: both ends must be inside a writable root. Landlock
resolves symlinks and ``/proc/*/root`` magic links to the real file before checking, and denies
``mount``/``umount`` to every sandboxed task, in any user or mount namespace.
"""

from __future__ import annotations

import os
import stat

from . import _kernel
from ._policy import Policy

__all__ = ["READ", "build_ruleset", "handles_reads"]

_EXECUTE = 1 << 0
_WRITE_FILE = 1 << 1
_READ_FILE = 1 << 2
_READ_DIR = 1 << 3
_REMOVE_DIR = 1 << 4
_REMOVE_FILE = 1 << 5
_MAKE_CHAR = 1 << 6
_MAKE_DIR = 1 << 7
_MAKE_REG = 1 << 8
_MAKE_SOCK = 1 << 9
_MAKE_FIFO = 1 << 10
_MAKE_BLOCK = 1 << 11
_MAKE_SYM = 1 << 12
_REFER = 1 << 13
_TRUNCATE = 1 << 14

_READ = _EXECUTE | _READ_FILE | _READ_DIR
READ = _READ
_WRITE = (
    _WRITE_FILE | _REMOVE_DIR | _REMOVE_FILE | _MAKE_CHAR | _MAKE_DIR | _MAKE_REG | _MAKE_SOCK
    | _MAKE_FIFO | _MAKE_BLOCK | _MAKE_SYM | _REFER | _TRUNCATE
)  # fmt: skip
_FILE_RIGHTS = _EXECUTE | _WRITE_FILE | _READ_FILE | _TRUNCATE
# IOCTL_DEV (ABI 5) is left unhandled: handling it would break terminal ioctls on ttys the
# command opens itself (/dev/tty), and writes to device files are still governed by WRITE_FILE.

_NET_BIND_TCP = 1 << 0
_NET_CONNECT_TCP = 1 << 1

_SCOPE_ABSTRACT_UNIX_SOCKET = 1 << 0
_SCOPE_SIGNAL = 1 << 1

_WRITABLE_DEVICES = ("/dev/null", "/dev/zero", "/dev/full", "/dev/tty")
"""Device files every sandboxed command may write (no data leaves through them)."""


def handles_reads(policy: Policy, abi: int) -> bool:
    return abi >= 1 and not policy.read_all


def build_ruleset(policy: Policy, abi: int) -> int | None:
    """Create the ruleset for ``policy`` with what Landlock ``abi`` offers; the caller owns (and
    closes) the returned fd. ``None``: nothing for Landlock to add.

    Raises:
        OSError: Landlock refused the ruleset or a rule.
    """
    handled_fs = 0
    if abi >= 2 and not policy.write_all:
        handled_fs |= _WRITE & ~(_TRUNCATE if abi < 3 else 0)
    if handles_reads(policy, abi):
        handled_fs |= _READ
    handled_net = 0
    if abi >= 4 and policy.network_restricted:
        handled_net = _NET_BIND_TCP | _NET_CONNECT_TCP
    scoped = 0
    if abi >= 6:
        scoped = _SCOPE_SIGNAL
        if policy.network_restricted:
            scoped |= _SCOPE_ABSTRACT_UNIX_SOCKET
    if not (handled_fs or handled_net or scoped):
        return None
    fd = _kernel.landlock_create_ruleset(handled_fs, handled_net, scoped)
    try:
        grants: list[tuple[str, int]] = []
        if not policy.read_all:
            grants += [(path, _READ) for path in policy.readable]
        if not policy.write_all:
            grants += [(path, _READ | _WRITE) for path in policy.writable]
            grants += [(path, _READ | _WRITE) for path in _WRITABLE_DEVICES]
        for path, rights in grants:
            try:
                mode = os.stat(path).st_mode
            except OSError:
                continue  # vanished since the policy was compiled: granting less is safe
            allowed = (rights if stat.S_ISDIR(mode) else rights & _FILE_RIGHTS) & handled_fs
            if allowed:
                _kernel.landlock_add_path_rule(fd, path, allowed)
    except BaseException:
        os.close(fd)
        raise
    return fd
