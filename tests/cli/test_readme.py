"""The README's client example and its "From a terminal" and "MCP servers on the executor"
sections, run as written (the executor's URL, the host and the MCP server's script replaced by
the test's own)."""

from __future__ import annotations

import asyncio
import os
import re
import shlex
import sys
from pathlib import Path

import pytest

from tests.cli.terminal import Terminal
from tests.support import BackgroundServer

README = Path(__file__).parents[2] / "README.md"
EXAMPLE_URL = "ws://127.0.0.1:8765"
BIN = str(Path(sys.executable).parent)
ENV = {**os.environ, "PATH": f"{BIN}:{os.environ.get('PATH', '/usr/bin:/bin')}", "TERM": "xterm"}


def block(section: str, language: str) -> str:
    text = README.read_text()
    body = text.split(f"## {section}\n", 1)[1].split("\n## ", 1)[0]
    match = re.search(rf"```{language}\n(.*?)```", body, re.S)
    assert match, f"no {language} block in {section}"
    return match.group(1)


def commands() -> list[str]:
    return [line.split("  #", 1)[0].strip() for line in block("From a terminal", "sh").splitlines()]


@pytest.fixture
def ssh_dir(tmp_path: Path) -> Path:
    (tmp_path / "ssh").write_text('#!/bin/sh\nshift\nexec "$@"\n')  # drops the host name
    (tmp_path / "ssh").chmod(0o755)
    return tmp_path


async def sh(line: str, env: dict[str, str]) -> tuple[int, bytes, bytes]:
    proc = await asyncio.create_subprocess_shell(
        line, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, env=env
    )
    async with asyncio.timeout(60):
        out, err = await proc.communicate()
    assert proc.returncode is not None
    return proc.returncode, out, err


async def test_the_terminal_section_runs_as_written(
    server: BackgroundServer, ssh_dir: Path
) -> None:
    run, shell, via = (c.replace(EXAMPLE_URL, server.url) for c in commands())
    assert await sh(run, ENV) == (3, b"Linux\n", b"")

    term = Terminal(shlex.split(shell), env=ENV)
    try:
        term.send(b"echo $((6 * 7))x\r")
        await term.expect(rb"42x")
        term.send(b"exit\r")
        assert await term.wait() == 0
    finally:
        term.close()

    env = {**ENV, "PATH": f"{ssh_dir}:{ENV['PATH']}"}
    assert await sh(via, env) == (0, b"Linux\n", b"")


async def test_the_mcp_section_runs_as_written(server: BackgroundServer) -> None:
    code = block("MCP servers on the executor", "python")
    code = code.replace(EXAMPLE_URL, server.url).replace('"python3"', repr(sys.executable))
    script = Path(__file__).parents[1] / "mcp" / "pid_server.py"
    code = code.replace('"my_mcp_server.py"', repr(str(script)))
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-c", code, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE, env=ENV,
    )  # fmt: skip
    async with asyncio.timeout(60):
        out, err = await proc.communicate()
    assert (proc.returncode, out) == (0, b"['double', 'complain']\n"), err.decode()[-3000:]


async def test_the_client_example_runs_as_written(server: BackgroundServer, tmp_path: Path) -> None:
    script = tmp_path / "example.py"
    script.write_text(block("Using the Python client", "python").replace(EXAMPLE_URL, server.url))
    code, out, err = await sh(f"{shlex.quote(sys.executable)} {script}", ENV)
    assert (code, err) == (0, b""), err
    assert out.decode() == "3 b'hello\\n'\nb'42'\nhello\n\n"
