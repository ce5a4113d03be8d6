"""A tiny static x86-64 ELF, generated per spawn, that sets the command's world up and execs it:
it enters the command's cgroup leaf (every spawn with a cgroup), gives the command the open-file
limit the server was started with (when the server raised its own) and builds the sandbox
(``exec_server.sandbox``).

Why: a Python ``preexec_fn`` forces ``fork`` instead of ``vfork`` (about +1.5 ms per spawn of a
server-sized process), more than the whole unsandboxed spawn, and bubblewrap costs 3-4 ms more.
This helper keeps the fast path: ``subprocess`` vforks and execs the helper from a memfd, the
helper runs a list of syscalls prepared here and then ``execve``s the command. There is no
compiler involved: the machine code below is a few hundred bytes, an interpreter of 7-word
records (number, six arguments) placed after it. Plain records are issued as syscalls; the first
error writes a message and exits 125. Three records are special:

- ``EXEC`` (the terminator): ``execve(argv[1], &argv[2], envp)``.
- ``FORK_OUTER``: fork; the child goes on with the next record, the parent becomes the *outer
  waiter*: it waits for that child and then ends exactly like the command did (same exit code,
  or killed by the same signal), so the server sees the command's own status.
- ``FORK_INIT``: fork; the child goes on, the parent becomes the *init* of the new PID
  namespace: it reaps every orphan and, once the command (its first child) is gone, stores the
  command's wait status in the shared scratch page and exits, which kills whatever the command
  left behind in the namespace.

The scratch page (``SCRATCH``) is a shared anonymous mapping made by a record before
``FORK_OUTER``, so the outer waiter can read the status the init stored. Pointers in the script
are absolute: the ELF is not position-independent and always loads at ``_BASE``.
"""

from __future__ import annotations

import os
import struct
from collections.abc import Sequence

from .._linux import SYSCALLS_BY_ARCH

__all__ = ["HELPER_ARCH", "SCRATCH", "TOLERATED_ERRNOS", "HelperFile", "Script"]

HELPER_ARCH = "x86_64"
_BASE = 0x400000
_HEADER_SIZE = 64 + 56
_RECORD = struct.Struct("=7q")

SCRATCH = 0x10000000
"""Address of the shared scratch page (mapped by the script with ``MAP_FIXED``)."""
_SHARED_STATUS = SCRATCH  # the command's wait status, stored by the init
_OUTER_STATUS = SCRATCH + 8  # the init's wait status, as the outer waiter got it
_INIT_STATUS = SCRATCH + 16  # wait status of whatever the init reaped last
_MASK = SCRATCH + 24  # one signal's bit, for rt_sigprocmask
_NO_CORE = SCRATCH + 32  # struct rlimit {0, 0}
_RLIMIT = struct.Struct("=qq")  # struct rlimit; RLIM_INFINITY is -1 in Python
_RLIMIT_NOFILE = 7

_EXEC, _FORK_OUTER, _FORK_INIT, _TOLERATE = -1, -2, -3, -4
TOLERATED_ERRNOS = (2, 22)
"""ENOENT and EINVAL: what a record after ``Script.tolerate()`` may fail with and go on."""

SYS = SYSCALLS_BY_ARCH[HELPER_ARCH]
_FAIL_MESSAGE = b"exec-server: sandbox setup failed\n"


def _imm32(value: int) -> bytes:
    return struct.pack("<I", value)


class _Asm:
    """Bytes and rel32 jumps to labels; two passes (every jump has a fixed size)."""

    _JCC = {"je": 0x84, "jne": 0x85, "js": 0x88, "jns": 0x89}

    def __init__(self) -> None:
        self._items: list[bytes | tuple[str, str]] = []

    def emit(self, *chunks: bytes) -> None:
        self._items.extend(chunks)

    def label(self, name: str) -> None:
        self._items.append(("label", name))

    def jump(self, kind: str, target: str) -> None:
        self._items.append((kind, target))

    def assemble(self) -> bytes:
        labels: dict[str, int] = {}
        offset = 0
        for item in self._items:
            if isinstance(item, bytes):
                offset += len(item)
            elif item[0] == "label":
                labels[item[1]] = offset
            else:
                offset += 5 if item[0] == "jmp" else 6
        out = bytearray()
        for item in self._items:
            if isinstance(item, bytes):
                out += item
            elif item[0] != "label":
                kind, target = item
                size = 5 if kind == "jmp" else 6
                rel = struct.pack("<i", labels[target] - (len(out) + size))
                out += (b"\xe9" if kind == "jmp" else bytes([0x0F, self._JCC[kind]])) + rel
        return bytes(out)


def _syscall(number: int) -> bytes:
    return b"\xb8" + _imm32(number) + b"\x0f\x05"  # mov eax, number; syscall


def _code(script_addr: int, message_addr: int) -> bytes:
    a = _Asm()
    a.emit(b"\xbb" + _imm32(script_addr))  # mov ebx, script
    a.emit(b"\x45\x31\xff")  # xor r15d, r15d       r15: the record may fail tolerably
    # -- the record loop ------------------------------------------------------------------
    a.label("loop")
    a.emit(b"\x48\x8b\x03")  # mov rax, [rbx]
    for special, target in (
        (_EXEC, "exec"),
        (_FORK_OUTER, "fork_outer"),
        (_FORK_INIT, "fork_init"),
        (_TOLERATE, "tolerate"),
    ):
        a.emit(b"\x48\x83\xf8" + struct.pack("<b", special))  # cmp rax, special
        a.jump("je", target)
    a.emit(
        b"\x48\x8b\x7b\x08",  # mov rdi, [rbx+8]
        b"\x48\x8b\x73\x10",  # mov rsi, [rbx+16]
        b"\x48\x8b\x53\x18",  # mov rdx, [rbx+24]
        b"\x4c\x8b\x53\x20",  # mov r10, [rbx+32]
        b"\x4c\x8b\x43\x28",  # mov r8, [rbx+40]
        b"\x4c\x8b\x4b\x30",  # mov r9, [rbx+48]
        b"\x0f\x05",  # syscall
        b"\x48\x85\xc0",  # test rax, rax
    )
    a.jump("js", "failed")
    a.label("next")
    a.emit(b"\x45\x31\xff")  # xor r15d, r15d
    a.label("skip")
    a.emit(b"\x48\x83\xc3\x38")  # add rbx, 56
    a.jump("jmp", "loop")
    # -- TOLERATE: the next record may fail with ENOENT or EINVAL -------------------------
    a.label("tolerate")
    a.emit(b"\x41\xbf" + _imm32(1))  # mov r15d, 1
    a.jump("jmp", "skip")
    a.label("failed")
    a.emit(b"\x45\x85\xff")  # test r15d, r15d
    a.jump("je", "fail")
    for errno_ in TOLERATED_ERRNOS:
        a.emit(b"\x48\x83\xf8" + struct.pack("<b", -errno_))  # cmp rax, -errno
        a.jump("je", "next")
    a.jump("jmp", "fail")
    # -- FORK_OUTER: the parent waits for the init and ends like the command ----------------
    a.label("fork_outer")
    a.emit(_syscall(57), b"\x48\x85\xc0")  # fork; test rax, rax
    a.jump("js", "fail")
    a.jump("je", "next")  # the child goes on with the script
    a.emit(b"\x49\x89\xc4")  # mov r12, rax          the init's pid
    a.label("outer_wait")
    a.emit(
        b"\x4c\x89\xe7",  # mov rdi, r12
        b"\xbe" + _imm32(_OUTER_STATUS),  # mov esi, &status
        b"\x31\xd2",  # xor edx, edx
        b"\x45\x31\xd2",  # xor r10d, r10d
        _syscall(61),  # wait4
        b"\x48\x83\xf8\xfc",  # cmp rax, -EINTR
    )
    a.jump("je", "outer_wait")
    a.emit(b"\x48\x85\xc0")  # test rax, rax
    a.jump("js", "fail")
    # An init that exited 0 stored the command's status; any other end (killed, setup failed)
    # is the status to report.
    a.emit(b"\x8b\x04\x25" + _imm32(_OUTER_STATUS), b"\x85\xc0")  # mov eax, [status]; test
    a.jump("jne", "have_status")
    a.emit(b"\x8b\x04\x25" + _imm32(_SHARED_STATUS))  # mov eax, [shared]
    a.label("have_status")
    a.emit(b"\x41\x89\xc5", b"\x41\x83\xe5\x7f")  # mov r13d, eax; and r13d, 0x7f (signal)
    a.jump("jne", "signaled")
    a.emit(b"\xc1\xe8\x08", b"\x0f\xb6\xf8")  # shr eax, 8; movzx edi, al
    a.jump("jmp", "exit")
    a.label("signaled")
    a.emit(
        # prlimit64(0, RLIMIT_CORE, {0, 0}, NULL): dying by SIGSEGV & co must not dump us.
        b"\x31\xff",  # xor edi, edi
        b"\xbe\x04\x00\x00\x00",  # mov esi, 4
        b"\xba" + _imm32(_NO_CORE),  # mov edx, &rlimit
        b"\x45\x31\xd2",  # xor r10d, r10d
        _syscall(SYS["prlimit64"]),
        # rt_sigprocmask(SIG_UNBLOCK, {sig}, NULL, 8)
        b"\x41\x8d\x4d\xff",  # lea ecx, [r13-1]
        b"\xb8\x01\x00\x00\x00",  # mov eax, 1
        b"\x48\xd3\xe0",  # shl rax, cl
        b"\x48\x89\x04\x25" + _imm32(_MASK),  # mov [mask], rax
        b"\xbf\x01\x00\x00\x00",  # mov edi, SIG_UNBLOCK
        b"\xbe" + _imm32(_MASK),  # mov esi, &mask
        b"\x31\xd2",  # xor edx, edx
        b"\x41\xba\x08\x00\x00\x00",  # mov r10d, 8
        _syscall(14),
        # kill(getpid(), sig); if we are still alive (a signal whose default is not fatal),
        # exit 128 + sig.
        _syscall(39),  # getpid
        b"\x48\x89\xc7",  # mov rdi, rax
        b"\x44\x89\xee",  # mov esi, r13d
        _syscall(62),  # kill
        b"\x41\x8d\xbd\x80\x00\x00\x00",  # lea edi, [r13+128]
    )
    a.jump("jmp", "exit")
    # -- FORK_INIT: the parent is PID 1 of the namespace ----------------------------------
    a.label("fork_init")
    a.emit(_syscall(57), b"\x48\x85\xc0")  # fork; test rax, rax
    a.jump("js", "fail")
    a.jump("je", "next")
    a.emit(b"\x49\x89\xc4")  # mov r12, rax          the command's pid
    a.label("init_wait")
    a.emit(
        b"\x48\xc7\xc7\xff\xff\xff\xff",  # mov rdi, -1
        b"\xbe" + _imm32(_INIT_STATUS),  # mov esi, &status
        b"\x31\xd2",  # xor edx, edx
        b"\x45\x31\xd2",  # xor r10d, r10d
        _syscall(61),  # wait4
        b"\x4c\x39\xe0",  # cmp rax, r12
    )
    a.jump("je", "command_done")
    a.emit(b"\x48\x85\xc0")  # test rax, rax         an orphan reaped, or EINTR: again
    a.jump("jns", "init_wait")
    a.emit(b"\x48\x83\xf8\xfc")  # cmp rax, -EINTR
    a.jump("je", "init_wait")
    a.jump("jmp", "fail")
    a.label("command_done")
    a.emit(
        b"\x8b\x04\x25" + _imm32(_INIT_STATUS),  # mov eax, [status]
        b"\x89\x04\x25" + _imm32(_SHARED_STATUS),  # mov [shared], eax
        b"\x31\xff",  # xor edi, edi
    )
    a.label("exit")
    a.emit(_syscall(231))  # exit_group(edi)
    # -- EXEC --------------------------------------------------------------------------------
    a.label("exec")
    a.emit(
        b"\x48\x8b\x7c\x24\x10",  # mov rdi, [rsp+16]      argv[1]
        b"\x48\x8d\x74\x24\x18",  # lea rsi, [rsp+24]      &argv[2]
        b"\x48\x8b\x04\x24",  # mov rax, [rsp]             argc
        b"\x48\x8d\x54\xc4\x10",  # lea rdx, [rsp+rax*8+16] envp
        _syscall(59),  # execve; falls through to fail when it returns
    )
    a.label("fail")
    a.emit(
        b"\xbf\x02\x00\x00\x00",  # mov edi, 2
        b"\xbe" + _imm32(message_addr),  # mov esi, message
        b"\xba" + _imm32(len(_FAIL_MESSAGE)),  # mov edx, len
        _syscall(1),  # write
        b"\xbf\x7d\x00\x00\x00",  # mov edi, 125
        _syscall(231),  # exit_group
    )
    return a.assemble()


_CODE_SIZE = len(_code(0, 0))
_DATA_ADDR = _BASE + _HEADER_SIZE + _CODE_SIZE


class Script:
    """Syscall records and the data they point at. Layout: headers, code, data, records.

    Args:
        open_fds: every descriptor open in the helper above stdio, so that the number an
            ``openat`` record will get can be predicted (``write_file``).
    """

    def __init__(self, open_fds: Sequence[int] = ()) -> None:
        self._records: list[tuple[int, ...]] = []
        self._data = bytearray()
        taken = set(open_fds)
        self._next_fd = min(set(range(3, len(taken) + 4)) - taken)

    def ref(self, blob: bytes) -> int:
        """Place ``blob`` (8-aligned) and return its address in the loaded image."""
        while len(self._data) % 8:
            self._data.append(0)
        address = _DATA_ADDR + len(self._data)
        self._data += blob
        return address

    @property
    def next_fd(self) -> int:
        """The descriptor number the next ``openat`` record will get."""
        return self._next_fd

    def cstr(self, value: bytes) -> int:
        return self.ref(value + b"\0")

    def call(self, name: str, *args: int) -> None:
        self._records.append((SYS[name], *args))

    def write_file(self, path: bytes, content: bytes) -> None:
        """open + write + close (the descriptor number is predicted)."""
        self.call("openat", -100, self.cstr(path), os.O_WRONLY | os.O_CLOEXEC)
        self.call("write", self._next_fd, self.ref(content), len(content))
        self.call("close", self._next_fd)

    def join_cgroup(self, leaf: str) -> None:
        """Move this process into cgroup ``leaf`` (before anything else: the server never
        enters a command's cgroup itself)."""
        self.write_file(os.fsencode(os.path.join(leaf, "cgroup.procs")), b"0")

    def set_fd_limit(self, soft: int, hard: int) -> None:
        """Set this process's RLIMIT_NOFILE to ``{soft, hard}`` (what the command inherits).

        Descriptors already open above ``soft`` stay usable: the limit only applies to new
        ones, and ``openat`` records get the lowest free number.
        """
        self.call("prlimit64", 0, _RLIMIT_NOFILE, self.ref(_RLIMIT.pack(soft, hard)), 0)

    def tolerate(self) -> None:
        """The next record may fail with ENOENT or EINVAL (say, a host mount that went away
        since the plan was made): the script goes on."""
        self._records.append((_TOLERATE,))

    def fork_outer(self) -> None:
        self._records.append((_FORK_OUTER,))

    def fork_init(self) -> None:
        self._records.append((_FORK_INIT,))

    def image(self) -> bytes:
        """The complete ELF file."""
        message_addr = self.ref(_FAIL_MESSAGE)
        self.ref(b"")  # align the records
        script_addr = _DATA_ADDR + len(self._data)
        body = bytearray(self._data)
        for record in [*self._records, (_EXEC,)]:
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
