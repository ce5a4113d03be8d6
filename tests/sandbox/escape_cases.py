"""Escape cases as data (issue 4, acceptance 1), shared by the direct and the server runs.

Every case is a shell command, the intent it runs under, and a check made from *outside* the
sandbox that says whether it escaped (called after the command exited). ``World`` is what a case
can escape to: a directory outside the writable root, listeners on 127.0.0.1, unix and abstract
sockets, and a victim process.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import stat
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from exec_server.sandbox import capabilities
from sandbox_intents import PROTECTED, decode, read_only, workspace_write

PY = sys.executable
TIMEOUT = 30


def no_placeholders(root: Path) -> bool:
    """Whether none of the placeholders a sandbox may create in ``root`` is there."""
    return not any((root / name).exists() for name in PROTECTED[1:])


def wait_for(predicate: Callable[[], bool], *, timeout: float = TIMEOUT) -> bool:
    """Poll ``predicate`` until true or ``timeout``; for state only the OS can tell (a worker
    thread's ``rmdir``). Returns the last answer."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.005)
    return True


def require_kernel_features() -> None:
    """Fail loudly (never skip) when this host cannot enforce what these tests expect."""
    caps = capabilities()
    assert caps["sandbox"], f"sandbox not enforceable on this host: {caps}"
    assert caps["sandboxFs"], f"fs sandbox not enforceable on this host: {caps}"


@dataclass
class World:
    """A writable root, a directory outside it, and listeners/victims to escape to."""

    root: Path
    outside: Path
    tcp: socket.socket
    udp: socket.socket
    unix: socket.socket
    abstract: socket.socket
    abstract_name: str
    victim: subprocess.Popen[bytes]
    py: str = PY
    """The interpreter commands of this world's account run."""
    uid: int = 0
    extra: dict[str, Any] = field(default_factory=dict)

    def fmt(self, command: str) -> str:
        return command.format(
            root=self.root,
            out=self.outside,
            tcp=self.tcp.getsockname()[1],
            udp=self.udp.getsockname()[1],
            unix=self.outside / "listen.sock",
            abstract=self.abstract_name,
            victim=self.victim.pid,
            py=self.py,
        )


def pending(sock: socket.socket) -> bool:
    """Whether a connection or datagram already reached ``sock`` (non-blocking, no waiting)."""
    sock.setblocking(False)
    try:
        if sock.type == socket.SOCK_DGRAM:
            sock.recv(100)
        else:
            sock.accept()[0].close()
    except BlockingIOError:
        return False
    return True


VICTIM = (
    "import signal, sys; signal.pthread_sigmask(signal.SIG_BLOCK, [signal.SIGUSR1]);"
    " print('ready', flush=True); sys.stdin.read()"
)


def signal_pending(proc: subprocess.Popen[bytes], signum: int) -> bool:
    with open(f"/proc/{proc.pid}/status") as status:
        for line in status:
            if line.startswith("ShdPnd:"):
                return bool(int(line.split()[1], 16) & (1 << (signum - 1)))
    raise AssertionError("no ShdPnd line")


@dataclass(frozen=True)
class Case:
    name: str
    command: str
    escaped: Callable[[World], bool]
    """Checked from outside after the command exited."""
    denied: bool | None = True
    """What the §8 heuristic must say for the blocked (sandboxed) run; ``None`` when the layer
    that refuses first decides the message (then only the verdict's agreement with the
    heuristic is checked)."""
    intent: str = "workspace-write"


def _exists(relative: str) -> Callable[[World], bool]:
    def check(w: World) -> bool:
        return os.path.lexists(w.fmt(relative))

    return check


def _tool_changed(w: World) -> bool:
    """Whether the outside file's mode, times or extended attributes changed."""
    st = os.stat(w.outside / "tool")
    return (
        stat.S_IMODE(st.st_mode) != 0o755
        or st.st_mtime != 1_000_000_000
        or bool(os.listxattr(w.outside / "tool"))
    )


def _set_id_bit(name: str, bit: int) -> Callable[[World], bool]:
    def check(w: World) -> bool:
        path = w.root / name
        return path.exists() and bool(path.stat().st_mode & bit)

    return check


def _py_sock(stmt: str) -> str:
    return "{py} -c 'import socket; " + stmt + "'"


CASES = [
    Case("write outside the roots", "echo x > {out}/f", _exists("{out}/f")),
    Case("write through a symlink pointing out", "echo x > {root}/link/f", _exists("{out}/f")),
    Case("write via /proc/self/root", "echo x > /proc/self/root{out}/f", _exists("{out}/f")),
    Case("rename out of the root", "mv {root}/a {out}/a", _exists("{out}/a")),
    Case("hard link out of the root", "ln {root}/a {out}/a", _exists("{out}/a")),
    Case(
        "modify .git inside the root",
        "echo pwned > {root}/.git/config",
        lambda w: (w.root / ".git" / "config").read_text() != "original",
    ),
    # Where Landlock (ABI >= 2) handles writes it refuses first ("Permission denied"); where the
    # mounts alone do, a mount point answers "Device or resource busy" and a placeholder
    # directory "Is a directory", as with the reference's bubblewrap.
    Case("rename .git away", "mv {root}/.git {root}/g", _exists("{root}/g"), denied=None),
    *[
        Case(
            f"create {name} inside the root",
            f"mkdir -p {{root}}/{name}/x",
            _exists(f"{{root}}/{name}/x"),
        )
        for name in PROTECTED[1:]
    ],
    *[
        Case(
            f"create {name} as a file",
            f"echo x > {{root}}/{name}",
            lambda w, n=name: (w.root / n).is_file(),
            denied=None,
        )
        for name in PROTECTED[1:]
    ],
    Case(
        "tcp connect to 127.0.0.1",
        _py_sock('socket.create_connection(("127.0.0.1", {tcp}))'),
        lambda w: pending(w.tcp),
    ),
    Case(
        "udp send to 127.0.0.1",
        _py_sock('socket.socket(2, 2).sendto(b"x", ("127.0.0.1", {udp}))'),
        lambda w: pending(w.udp),
    ),
    Case(
        "bind a unix socket outside the roots",
        _py_sock('socket.socket(1).bind("{out}/bound.sock")'),
        _exists("{out}/bound.sock"),
    ),
    Case(
        "connect a unix socket outside the roots",
        _py_sock('socket.socket(1).connect("{unix}")'),
        lambda w: pending(w.unix),
    ),
    Case(
        "connect an abstract unix socket",
        _py_sock('socket.socket(1).connect("\\0{abstract}")'),
        lambda w: pending(w.abstract),
    ),
    # Processes outside the command's PID namespace do not exist for it: "No such process" and
    # "No such file or directory" are no denial by the heuristic (as with the reference).
    Case(
        "signal a process outside",
        "kill -USR1 {victim}",
        lambda w: signal_pending(w.victim, 10),
        denied=False,
    ),
    Case(
        "read another process's memory map (ptrace access)",
        "cat /proc/{victim}/environ > /dev/null",
        lambda w: w.extra["last_rc"] == 0,
        denied=False,
    ),
    Case(
        "remount after unshare",
        "M='mount --bind {out} {root}/mnt && echo x > {root}/mnt/f';"
        ' unshare -m sh -c "$M" || unshare -rm sh -c "$M"',
        _exists("{out}/f"),
    ),
    Case(
        "io_uring setup",
        "{py} -c 'import ctypes,sys; p=ctypes.create_string_buffer(120);"
        " r=ctypes.CDLL(None, use_errno=True).syscall(425, 4, p);"
        ' sys.exit(0 if r >= 0 else print("io_uring: Operation not permitted") or 1)\'',
        lambda w: w.extra["last_rc"] == 0,
    ),
    Case(
        "ptrace itself (PTRACE_TRACEME)",
        "{py} -c 'import ctypes,sys; r=ctypes.CDLL(None, use_errno=True).ptrace(0, 0, 0, 0);"
        ' sys.exit(0 if r == 0 else print("ptrace: Operation not permitted") or 1)\'',
        lambda w: w.extra["last_rc"] == 0,
    ),
    *[
        Case(f"{what} under {intent}", command, _tool_changed, intent=intent)
        for intent in ("workspace-write", "read-only")
        for what, command in (
            ("chmod setuid a file outside the roots", "chmod 4755 {out}/tool"),
            ("touch a file outside the roots", "touch -d 2001-01-01 {out}/tool"),
            (
                "set an extended attribute outside the roots",
                '{py} -c \'import os; os.setxattr("{out}/tool", "user.pwned", b"1")\'',
            ),
        )
    ],
    Case(
        "make a setuid copy inside the workspace",
        "cp {root}/a {root}/suid && chmod 4755 {root}/suid",
        _set_id_bit("suid", stat.S_ISUID),
    ),
    Case(
        "make a setgid copy inside the workspace",
        "cp {root}/a {root}/sgid && chmod g+s {root}/sgid",
        _set_id_bit("sgid", stat.S_ISGID),
    ),
    Case(
        "write anywhere under a read-only intent",
        "echo x > {root}/f",
        _exists("{root}/f"),
        intent="read-only",
    ),
]


WRITE_INSIDE_COMMAND = (
    "echo x > {root}/new && mkdir -p {root}/d/sub/.git && mv {root}/new {root}/d/moved"
    " && ln {root}/d/moved {root}/d/hard && echo y > {root}/d/sub/.git/config"
    " && echo z > /dev/null && cat {root}/.git/config"
)
"""Everything a workspace-write command may do inside its root; prints ``original``."""


def intent_for(case: Case, w: World) -> Any:
    """The decoded intent of ``case`` (as the server would receive it)."""
    return decode(raw_intent_for(case, w))


def raw_intent_for(case: Case, w: World) -> dict[str, Any]:
    """The wire form of ``case``'s intent, exactly as Codex sends it."""
    return read_only() if case.intent == "read-only" else workspace_write(w.root)


SYSTEM_PYTHON = shutil.which("python3", path="/usr/bin:/bin") or "python3"
"""What another account runs (the venv's interpreter may live where it cannot reach)."""


def _chown_tree(top: Path, uid: int) -> None:
    os.chown(top, uid, uid)
    for dirpath, dirnames, filenames in os.walk(top):
        for name in dirnames + filenames:
            os.chown(os.path.join(dirpath, name), uid, uid, follow_symlinks=False)


@contextlib.contextmanager
def make_world(base: Path, *, uid: int = 0) -> Iterator[World]:
    """A world in ``base`` whose files, victim and interpreter belong to account ``uid``."""
    root = base / "root"
    outside = base / "outside"
    root.mkdir()
    outside.mkdir()
    (root / "a").write_text("a")
    (root / "mnt").mkdir()
    (root / "link").symlink_to(outside)
    (root / ".git").mkdir()
    (root / ".git" / "config").write_text("original")
    tool = outside / "tool"
    tool.write_text("#!/bin/sh\n")
    tool.chmod(0o755)
    os.utime(tool, (1_000_000_000, 1_000_000_000))
    py = PY if uid == 0 else SYSTEM_PYTHON
    prefix = [] if uid == 0 else ["setpriv", f"--reuid={uid}", f"--regid={uid}", "--clear-groups"]
    if uid:
        base.chmod(0o755)
        _chown_tree(base, uid)
    tcp = socket.create_server(("127.0.0.1", 0))
    udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    udp.bind(("127.0.0.1", 0))
    unix = socket.socket(socket.AF_UNIX)
    unix.bind(str(outside / "listen.sock"))
    (outside / "listen.sock").chmod(0o777)
    unix.listen()
    abstract_name = f"exec-server-test-{os.getpid()}-{id(base)}"
    abstract = socket.socket(socket.AF_UNIX)
    abstract.bind("\0" + abstract_name)
    abstract.listen()
    # The victim blocks SIGUSR1, so a signal that got through stays visibly pending. It runs
    # no project code: -I -S keeps it from loading site-packages (under pytest-cov, a .pth there
    # starts coverage in every Python process: 0.15 s a start, and a world per test).
    victim = subprocess.Popen(
        [*prefix, py, "-I", "-S", "-c", VICTIM], stdin=subprocess.PIPE, stdout=subprocess.PIPE
    )
    assert victim.stdout is not None
    assert victim.stdout.readline() == b"ready\n"
    try:
        yield World(root, outside, tcp, udp, unix, abstract, abstract_name, victim, py=py, uid=uid)
    finally:
        victim.kill()
        victim.wait(TIMEOUT)
        for sock in (tcp, udp, unix, abstract):
            sock.close()
