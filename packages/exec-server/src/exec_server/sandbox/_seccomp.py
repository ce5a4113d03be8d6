"""The seccomp filter, assembled as classic BPF without a compiler or a binding.

The filter complements Landlock where Landlock has no rule (docs/protocol.md §8):

- any architecture other than the native one (i386 ``int 0x80``, x32) kills the process, so the
  syscall numbers below cannot be sidestepped;
- ``io_uring_*`` fail with EPERM in every sandbox (io_uring would bypass socket filters);
- ``ptrace``, ``process_vm_readv``/``writev`` and the ``TIOCSTI`` ioctl (typing into a terminal
  the command shares with others) fail with EPERM, as in the reference;
- no setuid or setgid file can be made, in the writable roots either (as Flatpak's filter):
  ``chmod``-family calls, and ``open``/``creat``/``mknod``-family calls whose mode carries
  ``S_ISUID`` or ``S_ISGID`` fail with EPERM; ``openat2`` (whose mode seccomp cannot read)
  answers ENOSYS, so C libraries fall back to ``openat``;
- with restricted network: ``socket``/``socketpair`` only for AF_UNIX stream or seqpacket
  sockets (no AF_INET/AF_INET6 at all, so no UDP and no raw sockets; no unix datagram sockets,
  whose ``sendmsg`` can name any path), and ``connect``, ``bind``, ``listen``, ``accept``,
  ``accept4``, ``sendmmsg`` and ``sendto`` with an address fail with EPERM, like the reference;
- with network enabled: only AF_VSOCK sockets are refused (they reach host services).
"""

from __future__ import annotations

import functools
import struct
from dataclasses import dataclass

from ._kernel import SYSCALLS

__all__ = ["build_filter"]

# BPF opcodes.
_LD_W_ABS = 0x20
_JEQ_K = 0x15
_JGE_K = 0x35
_JSET_K = 0x45
_AND_K = 0x54
_RET_K = 0x06

_RET_ALLOW = 0x7FFF0000
_RET_KILL_PROCESS = 0x80000000
_RET_ERRNO_EPERM = 0x00050000 | 1
_RET_ERRNO_ENOSYS = 0x00050000 | 38

_OFF_NR = 0
_OFF_ARCH = 4


def _off_arg_low(index: int) -> int:
    return 16 + 8 * index


_X32_SYSCALL_BIT = 0x40000000
_AF_UNIX = 1
_AF_VSOCK = 40
_SOCK_STREAM = 1
_SOCK_SEQPACKET = 5
_SOCK_TYPE_MASK = 0xF
_TIOCSTI = 0x5412
_SET_ID_BITS = 0o6000
_MODE_ARG = {"chmod": 1, "fchmod": 1, "fchmodat": 2, "fchmodat2": 2, "open": 2, "creat": 1,
             "openat": 3, "mknod": 1, "mknodat": 2}  # fmt: skip
"""Which argument of each call carries a file mode."""


@dataclass
class _Jump:
    code: int
    k: int
    true: str | None
    false: str | None


@dataclass
class _Op:
    code: int
    k: int


def _assemble(program: list[_Op | _Jump | str]) -> bytes:
    """Lay out ``program`` (strings are labels; ``None`` jump targets fall through)."""
    labels: dict[str, int] = {}
    index = 0
    for item in program:
        if isinstance(item, str):
            labels[item] = index
        else:
            index += 1
    out = bytearray()
    index = 0
    for item in program:
        if isinstance(item, str):
            continue
        if isinstance(item, _Jump):
            offsets = []
            for target in (item.true, item.false):
                offset = 0 if target is None else labels[target] - index - 1
                if not 0 <= offset <= 255:
                    raise ValueError(f"BPF jump to {target!r} out of range")
                offsets.append(offset)
            out += struct.pack("=HBBI", item.code, offsets[0], offsets[1], item.k)
        else:
            out += struct.pack("=HBBI", item.code, 0, 0, item.k)
        index += 1
    return bytes(out)


@functools.cache
def build_filter(*, network_restricted: bool) -> bytes:
    """The packed ``struct sock_filter`` array for this machine (built once per flag).

    Raises:
        KeyError: the machine's syscall table is unknown (checked by ``capabilities()``).
    """
    denied = [
        "io_uring_setup", "io_uring_enter", "io_uring_register",
        "ptrace", "process_vm_readv", "process_vm_writev",
    ]  # fmt: skip
    if network_restricted:
        denied += ["connect", "bind", "listen", "accept", "accept4", "sendmmsg"]
    p: list[_Op | _Jump | str] = [
        _Op(_LD_W_ABS, _OFF_ARCH),
        _Jump(_JEQ_K, SYSCALLS["audit_arch"], None, "kill"),
        _Op(_LD_W_ABS, _OFF_NR),
        _Jump(_JGE_K, _X32_SYSCALL_BIT, "kill", None),
    ]
    p += [_Jump(_JEQ_K, SYSCALLS[name], "deny", None) for name in denied]
    p += [
        _Jump(_JEQ_K, SYSCALLS["openat2"], "nosys", None),
        _Jump(_JEQ_K, SYSCALLS["ioctl"], "ioctl", None),
        _Jump(_JEQ_K, SYSCALLS["socket"], "socket", None),
        _Jump(_JEQ_K, SYSCALLS["socketpair"], "socket", None),
    ]
    modes = [(name, arg) for name, arg in _MODE_ARG.items() if name in SYSCALLS]
    p += [_Jump(_JEQ_K, SYSCALLS[name], f"mode{arg}", None) for name, arg in modes]
    if network_restricted:
        p += [_Jump(_JEQ_K, SYSCALLS["sendto"], "sendto", None)]
    p += [_Op(_RET_K, _RET_ALLOW)]
    for arg in sorted({arg for _, arg in modes}):
        p += [
            f"mode{arg}",
            _Op(_LD_W_ABS, _off_arg_low(arg)),
            _Jump(_JSET_K, _SET_ID_BITS, "deny", "allow"),
        ]
    p += [
        "ioctl",
        _Op(_LD_W_ABS, _off_arg_low(1)),
        _Jump(_JEQ_K, _TIOCSTI, "deny", "allow"),
    ]
    p += ["socket", _Op(_LD_W_ABS, _off_arg_low(0))]
    if network_restricted:
        p += [
            _Jump(_JEQ_K, _AF_UNIX, None, "deny"),
            _Op(_LD_W_ABS, _off_arg_low(1)),
            _Op(_AND_K, _SOCK_TYPE_MASK),
            _Jump(_JEQ_K, _SOCK_STREAM, "allow", None),
            _Jump(_JEQ_K, _SOCK_SEQPACKET, "allow", "deny"),
            # sendto(fd, buf, len, flags, dest_addr, addrlen): only without an address.
            "sendto",
            _Op(_LD_W_ABS, _off_arg_low(4)),
            _Jump(_JEQ_K, 0, None, "deny"),
            _Op(_LD_W_ABS, _off_arg_low(4) + 4),
            _Jump(_JEQ_K, 0, "allow", "deny"),
        ]
    else:
        p += [_Jump(_JEQ_K, _AF_VSOCK, "deny", "allow")]
    p += [
        "allow",
        _Op(_RET_K, _RET_ALLOW),
        "deny",
        _Op(_RET_K, _RET_ERRNO_EPERM),
        "nosys",
        _Op(_RET_K, _RET_ERRNO_ENOSYS),
        "kill",
        _Op(_RET_K, _RET_KILL_PROCESS),
    ]
    return _assemble(p)
