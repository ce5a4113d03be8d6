"""A tiny static x86-64 ELF, generated per spawn, that applies the sandbox and execs the command.

Why: a Python ``preexec_fn`` forces ``fork`` instead of ``vfork`` (about +1.5 ms per spawn of a
server-sized process), more than the whole unsandboxed spawn. This helper keeps the fast path:
``subprocess`` vforks and execs the helper from a memfd, the helper runs a list of syscalls
prepared here and then ``execve``s the command. There is no compiler involved: the machine code
below is 110 bytes, a loop that issues ``syscall`` for each 7-word record (number, six arguments)
of the script placed after it, stops at the first error (writes a message, exits 125), and at the
terminator calls ``execve(argv[1], &argv[2], envp)``. Pointers in the script are absolute: the
ELF is not position-independent and always loads at ``_BASE``.

The script is the same sequence the ``preexec_fn`` fallback runs (see ``_spawn``).
"""

from __future__ import annotations

import os
import struct
from collections.abc import Sequence

from ._mounts import MountPlan, mount_steps

__all__ = ["HELPER_ARCH", "HelperFile", "Script", "build_script"]

HELPER_ARCH = "x86_64"
_BASE = 0x400000
_HEADER_SIZE = 64 + 56
_RECORD = struct.Struct("=7q")

_SYS = {
    "write": 1,
    "close": 3,
    "openat": 257,
    "prctl": 157,
    "capset": 126,
    "unshare": 272,
    "mount": 165,
    "seccomp": 317,
    "landlock_restrict_self": 446,
    "close_range": 436,
}
_FAIL_MESSAGE = b"exec-server: sandbox setup failed\n"


def _code(script_addr: int, message_addr: int) -> bytes:
    loop = b"".join(
        [
            b"\x48\x8b\x03",  # mov rax, [rbx]
            b"\x48\x83\xf8\xff",  # cmp rax, -1
            b"\x74\x00",  # je exec (patched)
            b"\x48\x8b\x7b\x08",  # mov rdi, [rbx+8]
            b"\x48\x8b\x73\x10",  # mov rsi, [rbx+16]
            b"\x48\x8b\x53\x18",  # mov rdx, [rbx+24]
            b"\x4c\x8b\x53\x20",  # mov r10, [rbx+32]
            b"\x4c\x8b\x43\x28",  # mov r8, [rbx+40]
            b"\x4c\x8b\x4b\x30",  # mov r9, [rbx+48]
            b"\x0f\x05",  # syscall
            b"\x48\x85\xc0",  # test rax, rax
            b"\x78\x00",  # js fail (patched)
            b"\x48\x83\xc3\x38",  # add rbx, 56
            b"\xeb\x00",  # jmp loop (patched)
        ]
    )
    exec_ = b"".join(
        [
            b"\x48\x8b\x7c\x24\x10",  # mov rdi, [rsp+16]      argv[1]
            b"\x48\x8d\x74\x24\x18",  # lea rsi, [rsp+24]      &argv[2]
            b"\x48\x8b\x04\x24",  # mov rax, [rsp]             argc
            b"\x48\x8d\x54\xc4\x10",  # lea rdx, [rsp+rax*8+16] envp
            b"\xb8\x3b\x00\x00\x00",  # mov eax, 59 (execve)
            b"\x0f\x05",  # syscall
        ]
    )
    fail = b"".join(
        [
            b"\xbf\x02\x00\x00\x00",  # mov edi, 2
            b"\xbe" + struct.pack("<I", message_addr),  # mov esi, message
            b"\xba" + struct.pack("<I", len(_FAIL_MESSAGE)),  # mov edx, len
            b"\xb8\x01\x00\x00\x00",  # mov eax, 1 (write)
            b"\x0f\x05",  # syscall
            b"\xbf\x7d\x00\x00\x00",  # mov edi, 125
            b"\xb8\xe7\x00\x00\x00",  # mov eax, 231 (exit_group)
            b"\x0f\x05",  # syscall
        ]
    )
    start = b"\xbb" + struct.pack("<I", script_addr)  # mov ebx, script
    code = bytearray(start + loop + exec_ + fail)
    loop_at = len(start)
    exec_at = loop_at + len(loop)
    fail_at = exec_at + len(exec_)
    je_at = loop_at + 3 + 4  # offset of the je opcode
    code[je_at + 1] = exec_at - (je_at + 2)
    js_at = loop_at + 3 + 4 + 2 + 6 * 4 + 2 + 3
    code[js_at + 1] = fail_at - (js_at + 2)
    jmp_at = js_at + 2 + 4
    code[jmp_at + 1] = (loop_at - (jmp_at + 2)) & 0xFF
    return bytes(code)


_CODE_SIZE = len(_code(0, 0))


_DATA_ADDR = _BASE + _HEADER_SIZE + _CODE_SIZE


class Script:
    """Syscall records and the data they point at. Layout: headers, code, data, records."""

    def __init__(self) -> None:
        self._records: list[tuple[int, ...]] = []
        self._data = bytearray()

    def ref(self, blob: bytes) -> int:
        """Place ``blob`` (8-aligned) and return its address in the loaded image."""
        while len(self._data) % 8:
            self._data.append(0)
        address = _DATA_ADDR + len(self._data)
        self._data += blob
        return address

    def call(self, name: str, *args: int) -> None:
        self._records.append((_SYS[name], *args))

    def image(self) -> bytes:
        """The complete ELF file."""
        message_addr = self.ref(_FAIL_MESSAGE)
        self.ref(b"")  # align the records
        script_addr = _DATA_ADDR + len(self._data)
        body = bytearray(self._data)
        for record in [*self._records, (-1,)]:
            body += _RECORD.pack(*record, *[0] * (7 - len(record)))
        code = _code(script_addr, message_addr)
        size = _HEADER_SIZE + len(code) + len(body)
        header = struct.pack(
            "=4sBBBB8xHHIQQQIHHHHHH",
            b"\x7fELF", 2, 1, 1, 0,  # 64-bit, little endian, version 1, SYSV
            2, 62, 1,  # ET_EXEC, EM_X86_64, EV_CURRENT
            _BASE + _HEADER_SIZE, 64, 0,  # entry, phoff, shoff
            0, 64, 56, 1, 0, 0, 0,  # flags, ehsize, phentsize, phnum, shentsize, shnum, shstrndx
        )  # fmt: skip
        phdr = struct.pack("=IIQQQQQQ", 1, 5, 0, _BASE, _BASE, size, size, 0x1000)
        return header + phdr + code + bytes(body)


def build_script(
    *,
    ruleset_fd: int,
    bpf: bytes,
    mounts: MountPlan | None,
    userns: bool,
    child_fds: Sequence[int],
) -> Script:
    """The helper's syscalls: the same steps, in the same order, as ``_ChildSetup``.

    Args:
        ruleset_fd: the Landlock ruleset, open in the child at the same number.
        bpf: the seccomp program.
        mounts: read-only binds to make, if any.
        userns: enter a user namespace too (not root).
        child_fds: every descriptor open in the child above stdio (to predict ``openat``).
    """
    s = Script()
    s.call("prctl", 38, 1, 0, 0, 0)  # PR_SET_NO_NEW_PRIVS
    if mounts is not None:
        next_fd = min(set(range(3, len(child_fds) + 4)) - set(child_fds))
        for step in mount_steps(mounts, userns=userns):
            if step[0] == "write_file":
                path, content = step[1], step[2]
                assert isinstance(path, bytes)
                assert isinstance(content, bytes)
                s.call("openat", -100, s.ref(path + b"\0"), os.O_WRONLY | os.O_CLOEXEC)
                s.call("write", next_fd, s.ref(content), len(content))
                s.call("close", next_fd)
            else:
                name, *args = step
                s.call(
                    str(name), *(s.ref(a + b"\0") if isinstance(a, bytes) else int(a) for a in args)
                )
    s.call("landlock_restrict_self", ruleset_fd, 0)
    s.call("prctl", 47, 4, 0, 0, 0)  # PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL
    s.call("capset", s.ref(struct.pack("=Ii", 0x20080522, 0)), s.ref(bytes(24)))
    program = s.ref(bpf)
    s.call("seccomp", 1, 0, s.ref(struct.pack("=HxxxxxxQ", len(bpf) // 8, program)))
    s.call("close_range", 3, 0xFFFFFFFF, 0)
    return s


class HelperFile:
    """A memfd for the helper image: ``fd`` is read-only (exec refuses files open for writing)."""

    def __init__(self) -> None:
        self._rw = os.memfd_create("exec-server-sandbox", os.MFD_CLOEXEC)
        try:
            self.fd = os.open(f"/proc/self/fd/{self._rw}", os.O_RDONLY | os.O_CLOEXEC)
        except BaseException:
            os.close(self._rw)
            raise

    def write(self, script: Script) -> None:
        try:
            os.write(self._rw, script.image())
        finally:
            os.close(self._rw)
