"""Issue 10, acceptance 1: ``exec-server run`` (and attach, ps, --via) driven like a user
would, in a real terminal (a pty pair) or with pipes, against a real server."""

from __future__ import annotations

import asyncio
import hashlib
import os
import signal
import sys
from collections.abc import AsyncIterator
from importlib import metadata
from pathlib import Path

import pytest
from exec_server.client import ConnectionLost, connect_stdio
from exec_server.testing import FaultProxy

from tests.cli.terminal import Terminal
from tests.support import BackgroundServer, wait_until

CLI = [sys.executable, "-m", "exec_server"]
ENV = {**os.environ, "TERM": "xterm", "LANG": "C.UTF-8"}


@pytest.fixture
async def terminals() -> AsyncIterator[list[Terminal]]:
    made: list[Terminal] = []
    yield made
    for term in made:
        term.close()


def run_in_terminal(terminals: list[Terminal], *args: str, **kwargs: int) -> Terminal:
    term = Terminal([*CLI, "run", *args], env=ENV, **kwargs)
    terminals.append(term)
    return term


async def run_piped(*args: str, stdin: int | None = None) -> tuple[int, bytes, bytes]:
    proc = await asyncio.create_subprocess_exec(
        *CLI,
        *args,
        stdin=asyncio.subprocess.DEVNULL if stdin is None else stdin,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=ENV,
    )
    async with asyncio.timeout(60):
        out, err = await proc.communicate()
    assert proc.returncode is not None
    return proc.returncode, out, err


async def run_until_ready(url: str, script: str) -> asyncio.subprocess.Process:
    """``exec-server run URL -- sh -c SCRIPT`` without a terminal, once it printed "ready"."""
    proc = await asyncio.create_subprocess_exec(
        *CLI, "run", url, "--", "sh", "-c", script,
        stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE, env=ENV,
    )  # fmt: skip
    assert proc.stdout is not None
    assert await proc.stdout.readline() == b"ready\n"
    return proc


# ---------------------------------------------------------------------------- in a terminal


async def test_an_interactive_shell_round_trips_and_exits_with_its_code(
    server: BackgroundServer, terminals: list[Terminal]
) -> None:
    term = run_in_terminal(terminals, server.url, "--tty", "--", "sh")
    term.send(b"echo $((6 * 7))x\r")
    await term.expect(rb"42x")
    term.send(b"tty; exit 5\r")
    await term.expect(rb"/dev/pts/\d+")
    assert await term.wait() == 5
    assert term.attributes() == term.saved, "the local terminal was left in raw mode"


async def test_a_window_size_change_is_seen_by_stty_size_remotely(
    server: BackgroundServer, terminals: list[Terminal]
) -> None:
    waiter = (
        "import os, signal; signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGWINCH}); "
        "os.system('stty size'); print('ready', flush=True); "
        "signal.sigwait({signal.SIGWINCH}); os.system('stty size')"
    )
    term = run_in_terminal(
        terminals, server.url, "-t", "--", sys.executable, "-c", waiter, rows=33, cols=101
    )
    await term.expect(rb"33 101\r\n.*ready")
    term.resize(40, 120)
    await term.expect(rb"40 120")
    assert await term.wait() == 0


async def test_ctrl_c_interrupts_a_remote_sleep(
    server: BackgroundServer, terminals: list[Terminal]
) -> None:
    term = run_in_terminal(
        terminals, server.url, "--tty", "--", "sh", "-c", "echo ready; exec sleep 100"
    )
    await term.expect(rb"ready")
    term.send(b"\x03")
    assert await term.wait() == 130


async def test_sigterm_restores_the_terminal(
    server: BackgroundServer, terminals: list[Terminal]
) -> None:
    term = run_in_terminal(terminals, server.url, "--tty", "--", "sh", "-c", "echo ready; cat")
    await term.expect(rb"ready")
    assert term.attributes() != term.saved, "not in raw mode while running"
    term.proc.send_signal(signal.SIGTERM)
    assert await term.wait() == 128 + signal.SIGTERM
    assert term.attributes() == term.saved


async def test_a_sandbox_denial_at_a_terminal_asks_and_retries_without_it(
    server: BackgroundServer, terminals: list[Terminal], tmp_path: Path
) -> None:
    target = tmp_path / "made"
    term = run_in_terminal(
        terminals,
        server.url,
        "--sandbox",
        "read-only",
        "--cwd",
        str(tmp_path),
        "--",
        "sh",
        "-c",
        f"touch {target} && echo made-it",
    )
    await term.expect(rb"retry without the sandbox\? \[y/N\] ")
    assert not target.exists()
    term.send(b"y\r")
    await term.expect(rb"made-it")
    assert await term.wait() == 0
    assert target.exists()


# ---------------------------------------------------------------------------- with pipes


async def test_stdin_from_a_file_reaches_the_command_with_its_eof(
    server: BackgroundServer, tmp_path: Path
) -> None:
    data = os.urandom(3 << 20)
    path = tmp_path / "input"
    path.write_bytes(data)
    with path.open("rb") as f:
        code, out, err = await run_piped("run", server.url, "--", "sha256sum", stdin=f.fileno())
    assert (code, err) == (0, b"")
    assert out.split()[0].decode() == hashlib.sha256(data).hexdigest()


@pytest.mark.parametrize(
    ("script", "expected"),
    [("exit 3", 3), ("kill -TERM $$", 128 + signal.SIGTERM), ("kill -KILL $$", 128 + 9)],
)
async def test_the_exit_code_is_the_remote_one(
    server: BackgroundServer, script: str, expected: int
) -> None:
    code, out, err = await run_piped(
        "run", server.url, "--env", "WHO=me", "--", "sh", "-c", f"echo $WHO; echo e >&2; {script}"
    )
    assert (code, out, err) == (expected, b"me\n", b"e\n")


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGHUP])
async def test_sigterm_or_sighup_to_run_ends_the_remote_command(
    server: BackgroundServer, tmp_path: Path, sig: signal.Signals
) -> None:
    pid_file = tmp_path / "pid"
    script = f"echo $$ > {pid_file}; echo ready; exec sleep 100"
    async with asyncio.timeout(30):
        proc = await run_until_ready(server.url, script)
        remote = int(pid_file.read_text())
        proc.send_signal(sig)
        assert await proc.wait() == 128 + sig
    await wait_until(lambda: not Path(f"/proc/{remote}").exists())


async def test_ctrl_c_without_a_tty_is_sent_as_an_interrupt(server: BackgroundServer) -> None:
    async with asyncio.timeout(30):
        proc = await run_until_ready(server.url, "echo ready; exec sleep 100")
        proc.send_signal(signal.SIGINT)
        assert await proc.wait() == 130


async def test_a_cut_connection_shows_only_as_late_output(server: BackgroundServer) -> None:
    async with FaultProxy.for_url(server.url) as proxy:
        proc = await asyncio.create_subprocess_exec(
            *CLI, "run", proxy.url, "--", "sh", "-c", "echo one; read line; echo two $line",
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE, env=ENV,
        )  # fmt: skip
        assert proc.stdin is not None
        assert proc.stdout is not None
        async with asyncio.timeout(30):
            assert await proc.stdout.readline() == b"one\n"
            assert proxy.cut_all() == 1
            proc.stdin.write(b"after-the-cut\n")
            await proc.stdin.drain()
            out, err = await proc.communicate()
        assert out == b"two after-the-cut\n"
        assert err == b""
        assert proc.returncode == 0
        assert proxy.accepted >= 2, "the client never reconnected"


async def test_a_detached_command_is_found_by_ps_and_attach(
    server: BackgroundServer, tmp_path: Path
) -> None:
    fifo = tmp_path / "go"
    os.mkfifo(fifo)
    code, out, _ = await run_piped(
        "run", server.url, "--detach", "--", "sh", "-c", f"echo started; read x < {fifo}; exit 7"
    )
    assert code == 0
    session, process = out.decode().split()
    code, out, _ = await run_piped("ps", server.url, session, process, "nope")
    lines = out.decode().splitlines()
    assert lines[1].split() == [process, "running", "-"]
    assert lines[2].split()[:2] == ["nope", "unknown"]
    assert code == 1
    attach = asyncio.ensure_future(run_piped("attach", server.url, session, process))
    await asyncio.to_thread(fifo.write_text, "go\n")  # the command is already reading it
    code, out, _ = await attach
    assert (code, out) == (7, b"started\n")
    code, out, _ = await run_piped("ps", server.url, session, process)
    assert out.decode().splitlines()[1].split() == [process, "closed", "7"]


async def test_ps_without_process_ids_lists_the_session(server: BackgroundServer) -> None:
    code, out, _ = await run_piped("run", server.url, "--detach", "--", "sh", "-c", "exit 4")
    session, process = out.decode().split()
    await run_piped("attach", server.url, session, process)  # until it is over
    code, out, _ = await run_piped("ps", server.url, session)
    assert code == 0
    assert out.decode().splitlines()[1].split() == [
        process,
        "closed",
        "4",
        "sh",
        "-c",
        "'exit",
        "4'",
    ]


async def test_an_unreachable_executor_exits_255(unused_tcp_port: int) -> None:
    code, _, err = await run_piped("run", f"ws://127.0.0.1:{unused_tcp_port}", "--", "true")
    assert code == 255
    assert b"cannot connect" in err


async def test_version_comes_from_the_package_metadata() -> None:
    code, out, _ = await run_piped("--version")
    assert (code, out) == (0, f"exec-server {metadata.version('exec-server')}\n".encode())


# ---------------------------------------------------------------------------- over stdio


def fake_ssh(tmp_path: Path) -> Path:
    """A stand-in for ssh: drops the host name and runs the rest of the command."""
    path = tmp_path / "ssh"
    path.write_text('#!/bin/sh\nshift\nexec "$@"\n')
    path.chmod(0o755)
    return path


async def test_run_via_a_command_speaks_to_a_stdio_server(tmp_path: Path) -> None:
    via = f"{fake_ssh(tmp_path)} somehost {sys.executable} -m exec_server --listen stdio"
    code, out, err = await run_piped(
        "run", "--via", via, "--", "sh", "-c", "echo via stdio; exit 4"
    )
    assert (code, out) == (4, b"via stdio\n"), err


async def test_connect_stdio_runs_commands_and_ends_the_server_with_the_client(
    tmp_path: Path,
) -> None:
    argv = [str(fake_ssh(tmp_path)), "host", sys.executable, "-m", "exec_server"]
    async with connect_stdio([*argv, "--listen", "stdio"]) as client:
        proc = await client.start(["sh", "-c", "cat; echo $PPID"], cwd="/tmp", pipe_stdin=True)
        out, _ = await proc.communicate(b"hi\n")
        server_pid = int(out.split()[1])
        assert out.startswith(b"hi\n")
        assert await proc.wait() == 0
        assert _alive(server_pid)
    # Closing the client closed the command's stdin: the stdio server ended.
    await wait_until(lambda: not _alive(server_pid))


async def test_connect_stdio_reports_why_the_command_failed(tmp_path: Path) -> None:
    with pytest.raises(ConnectionLost, match="no such host here"):
        async with connect_stdio(["sh", "-c", "echo 'no such host here' >&2; exit 255"]):
            pytest.fail("connected")


def _alive(pid: int) -> bool:
    try:
        return not Path(f"/proc/{pid}/stat").read_text().split(") ", 1)[1].startswith("Z")
    except (OSError, IndexError):
        return False
