"""Escape attempts (issue 4, acceptance 1): each a real child under the real kernel features.

Every case is data: a command, the intent it runs under, and a check made from *outside* the
sandbox that says whether it escaped. Each case runs sandboxed (must be blocked, and
``sandboxDenied`` must follow the §8 heuristic) and unsandboxed (must escape, so the check can see
an escape). Both spawn mechanisms run every case: the generated helper and the preexec fallback.
The runner is a plain function so the same cases can later go through the server.
"""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from exec_server.sandbox import (
    _spawn,
    capabilities,
    is_sandbox_denied,
    prepare_spawn,
    run_fs_sandboxed,
)
from sandbox_intents import PROTECTED, decode, read_only, workspace_write

PY = sys.executable
TIMEOUT = 30


@pytest.fixture(autouse=True, scope="module")
def _kernel_features_present() -> None:
    """Fail loudly (never skip) when this host cannot enforce what these tests expect."""
    caps = capabilities()
    assert caps["sandbox"], f"sandbox not enforceable on this host: {caps}"
    assert caps["sandboxFs"], f"fs sandbox not enforceable on this host: {caps}"


@pytest.fixture(params=["helper", "preexec"])
def mechanism(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setattr(_spawn, "USE_HELPER", request.param == "helper")
    return str(request.param)


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
            py=PY,
        )


def _pending(sock: socket.socket) -> bool:
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


_VICTIM = (
    "import signal, sys; signal.pthread_sigmask(signal.SIG_BLOCK, [signal.SIGUSR1]);"
    " print('ready', flush=True); sys.stdin.read()"
)


def _signal_pending(proc: subprocess.Popen[bytes], signum: int) -> bool:
    with open(f"/proc/{proc.pid}/status") as status:
        for line in status:
            if line.startswith("ShdPnd:"):
                return bool(int(line.split()[1], 16) & (1 << (signum - 1)))
    raise AssertionError("no ShdPnd line")


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    root = tmp_path / "root"
    outside = tmp_path / "outside"
    root.mkdir()
    outside.mkdir()
    (root / "a").write_text("a")
    (root / "mnt").mkdir()
    (root / "link").symlink_to(outside)
    (root / ".git").mkdir()
    (root / ".git" / "config").write_text("original")
    tcp = socket.create_server(("127.0.0.1", 0))
    udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    udp.bind(("127.0.0.1", 0))
    unix = socket.socket(socket.AF_UNIX)
    unix.bind(str(outside / "listen.sock"))
    unix.listen()
    abstract_name = f"exec-server-test-{os.getpid()}-{id(tmp_path)}"
    abstract = socket.socket(socket.AF_UNIX)
    abstract.bind("\0" + abstract_name)
    abstract.listen()
    # The victim blocks SIGUSR1, so a signal that got through stays visibly pending.
    victim = subprocess.Popen([PY, "-c", _VICTIM], stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    assert victim.stdout is not None
    assert victim.stdout.readline() == b"ready\n"
    try:
        yield World(root, outside, tcp, udp, unix, abstract, abstract_name, victim)
    finally:
        victim.kill()
        victim.wait(TIMEOUT)
        for sock in (tcp, udp, unix, abstract):
            sock.close()


@dataclass(frozen=True)
class Case:
    name: str
    command: str
    escaped: Callable[[World], bool]
    """Checked from outside after the command exited."""
    denied: bool = True
    """What the §8 heuristic must say for the blocked (sandboxed) run."""
    intent: str = "workspace-write"


def _exists(relative: str) -> Callable[[World], bool]:
    def check(w: World) -> bool:
        return os.path.lexists(w.fmt(relative))

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
    Case("rename .git away", "mv {root}/.git {root}/g", _exists("{root}/g")),
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
        )
        for name in PROTECTED[1:]
    ],
    Case(
        "tcp connect to 127.0.0.1",
        _py_sock('socket.create_connection(("127.0.0.1", {tcp}))'),
        lambda w: _pending(w.tcp),
    ),
    Case(
        "udp send to 127.0.0.1",
        _py_sock('socket.socket(2, 2).sendto(b"x", ("127.0.0.1", {udp}))'),
        lambda w: _pending(w.udp),
    ),
    Case(
        "bind a unix socket outside the roots",
        _py_sock('socket.socket(1).bind("{out}/bound.sock")'),
        _exists("{out}/bound.sock"),
    ),
    Case(
        "connect a unix socket outside the roots",
        _py_sock('socket.socket(1).connect("{unix}")'),
        lambda w: _pending(w.unix),
    ),
    Case(
        "connect an abstract unix socket",
        _py_sock('socket.socket(1).connect("\\0{abstract}")'),
        lambda w: _pending(w.abstract),
    ),
    Case(
        "signal a process outside",
        "kill -USR1 {victim}",
        lambda w: _signal_pending(w.victim, 10),
    ),
    Case(
        "read another process's memory map (ptrace access)",
        "cat /proc/{victim}/environ > /dev/null",
        lambda w: w.extra["last_rc"] == 0,
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
        "write anywhere under a read-only intent",
        "echo x > {root}/f",
        _exists("{root}/f"),
        intent="read-only",
    ),
]


def _intent(case: Case, w: World) -> Any:
    raw = read_only() if case.intent == "read-only" else workspace_write(w.root)
    return decode(raw)


def run(
    intent: Any, command: str, w: World, *, extra_fds: tuple[int, ...] = ()
) -> tuple[int, bytes]:
    """Spawn ``sh -c command`` the way the server does; returns (exit code, stdout+stderr)."""
    plan = prepare_spawn(
        intent, argv=["sh", "-c", command], cwd=str(w.root), env=dict(os.environ), arg0=None
    )
    try:
        proc = subprocess.run(
            plan.argv,
            executable=plan.executable,
            env=plan.env,
            cwd=w.root,
            preexec_fn=plan.preexec_fn,
            pass_fds=plan.pass_fds + extra_fds,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            start_new_session=True,
            timeout=TIMEOUT,
            check=False,
        )
    finally:
        if plan.release is not None:
            plan.release()
    w.extra["last_rc"] = proc.returncode
    return proc.returncode, proc.stdout + proc.stderr


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_sandboxed_command_cannot_escape(case: Case, world: World, mechanism: str) -> None:
    code, output = run(_intent(case, world), world.fmt(case.command), world)
    assert not case.escaped(world), f"escaped: rc={code} output={output!r}"
    assert code != 0, output
    assert is_sandbox_denied(code, output) is case.denied, output
    assert not any((world.root / name).exists() for name in PROTECTED[1:]), "placeholder left"


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_same_command_unsandboxed_does_escape(case: Case, world: World) -> None:
    code, output = run(None, world.fmt(case.command), world)
    assert case.escaped(world), f"the check saw no escape: rc={code} output={output!r}"


def test_workspace_write_command_still_writes_inside_its_root(world: World, mechanism: str) -> None:
    command = (
        "echo x > {root}/new && mkdir -p {root}/d/sub/.git && mv {root}/new {root}/d/moved"
        " && ln {root}/d/moved {root}/d/hard && echo y > {root}/d/sub/.git/config"
        " && echo z > /dev/null && cat {root}/.git/config"
    )
    code, output = run(decode(workspace_write(world.root)), world.fmt(command), world)
    assert code == 0, output
    assert output == b"original"
    assert (world.root / "d" / "moved").read_text() == "x\n"
    assert (world.root / "d" / "sub" / ".git" / "config").read_text() == "y\n"


def test_creating_missing_git_fails_like_the_reference(world: World, mechanism: str) -> None:
    (world.root / ".git" / "config").unlink()
    (world.root / ".git").rmdir()
    code, output = run(decode(workspace_write(world.root)), world.fmt("mkdir {root}/.git"), world)
    assert code == 1
    assert b"File exists" in output
    assert not (world.root / ".git").exists()


def test_sandboxed_child_inherits_no_descriptor_beyond_stdio(world: World, mechanism: str) -> None:
    leaked = os.open(os.devnull, os.O_RDONLY)
    try:
        sandboxed = run(decode(read_only()), "ls /proc/self/fd", world, extra_fds=(leaked,))
        plain = run(None, "ls /proc/self/fd", world, extra_fds=(leaked,))
    finally:
        os.close(leaked)
    assert str(leaked).encode() not in sandboxed[1].split()
    assert str(leaked).encode() in plain[1].split()


def test_sandboxed_child_runs_without_capabilities_and_with_no_new_privs(
    world: World, mechanism: str
) -> None:
    code, output = run(
        decode(read_only()), "grep -E '^(CapEff|NoNewPrivs|Seccomp):' /proc/self/status", world
    )
    assert code == 0, output
    fields = dict(line.split(b":\t") for line in output.splitlines())
    assert fields[b"CapEff"] == b"0000000000000000"
    assert fields[b"NoNewPrivs"] == b"1"
    assert fields[b"Seccomp"] == b"2"


def test_sandboxed_plan_asks_for_the_tree_to_die_with_the_main_process(world: World) -> None:
    plan = prepare_spawn(
        decode(workspace_write(world.root)), argv=["true"], cwd=str(world.root), env={}, arg0=None
    )
    try:
        assert plan.kill_tree_on_exit
        assert plan.sandbox_type == "linuxSeccomp"
    finally:
        assert plan.release is not None
        plan.release()


# -- fs methods --------------------------------------------------------------------------------


def _write(path: str) -> None:
    with open(path, "w") as file:
        file.write("x")


def _snapshot(path: str) -> str | None:
    return _read(path) if os.path.exists(path) else None


def _read(path: str) -> str:
    with open(path) as file:
        return file.read()


@pytest.mark.parametrize(
    ("target", "error"),
    [
        ("{out}/f", PermissionError),
        ("{root}/link/f", PermissionError),
        ("{root}/.git/config", OSError),
    ],
    ids=["outside", "through a symlink", "into .git"],
)
async def test_fs_method_cannot_write_outside_the_roots(
    world: World, target: str, error: type
) -> None:
    path = world.fmt(target)
    before = _snapshot(path)
    async with asyncio.timeout(TIMEOUT):
        with pytest.raises(error):
            await run_fs_sandboxed(decode(workspace_write(world.root)), _write, path)
    assert _snapshot(path) == before


async def test_fs_method_writes_inside_and_reads_protected_paths(world: World) -> None:
    intent = decode(workspace_write(world.root))
    async with asyncio.timeout(TIMEOUT):
        await run_fs_sandboxed(intent, _write, str(world.root / "inside"))
        assert (
            await run_fs_sandboxed(intent, _read, str(world.root / ".git" / "config")) == "original"
        )
    assert (world.root / "inside").read_text() == "x"
    assert not any((world.root / name).exists() for name in PROTECTED[1:])


async def test_fs_method_without_sandbox_does_escape(world: World) -> None:
    disabled = decode({"permissions": {"type": "disabled"}, "windowsSandboxLevel": "disabled"})
    async with asyncio.timeout(TIMEOUT):
        await run_fs_sandboxed(disabled, _write, str(world.outside / "f"))
    assert (world.outside / "f").exists()
