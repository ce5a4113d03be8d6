"""Client.shell(): a persistent bash whose runs cannot be ended early by what they print."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from exec_server.client import Client, Shell, ShellExited, connect

from tests.support import BackgroundServer, process_running, wait_until


@pytest.fixture
async def sh(server: BackgroundServer) -> AsyncIterator[Shell]:
    async with connect(server.url) as client, await client.shell(cwd="/") as shell:
        yield shell


async def test_cd_and_exports_persist_and_status_is_reported(sh: Shell, tmp_path: Path) -> None:
    async with asyncio.timeout(20):
        first = await sh.run(f"cd {tmp_path} && export GREETING=hi && echo done")
        assert (first.returncode, first.stdout, first.stderr) == (0, "done\n", "")
        second = await sh.run("pwd; echo $GREETING; echo err >&2; printf no-newline")
        assert second.stdout == f"{tmp_path}\nhi\nno-newline"
        assert second.stderr == "err\n"
        assert (await sh.run("false")).returncode == 1
        assert (await sh.run("exit_code() { return 7; }; exit_code")).returncode == 7
        assert (await sh.run("echo 'unbalanced")).returncode == 2  # a syntax error only


async def test_an_interrupted_command_leaves_the_shell_usable(sh: Shell) -> None:
    async with asyncio.timeout(20):
        with pytest.raises(TimeoutError):
            await sh.run("echo before; sleep 30", timeout=1)
        after = await sh.run("echo still here")
        assert (after.returncode, after.stdout) == (0, "still here\n")
        task = asyncio.ensure_future(sh.run("sleep 30.875"))
        await wait_until(lambda: process_running("sleep 30.875"))
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert (await sh.run("echo again")).stdout == "again\n"


async def test_printing_something_like_the_end_marker_does_not_end_the_run(sh: Shell) -> None:
    # What the markers look like: 32 hex digits; the command cannot know this run's.
    fake = "0123456789abcdef0123456789abcdef"
    async with asyncio.timeout(20):
        done = await sh.run(f"echo {fake}; echo {fake} 0 >&2; set -x; echo traced; echo last")
        assert done.stdout == f"{fake}\ntraced\nlast\n"
        assert done.stderr.startswith(f"{fake} 0\n")
        assert (await sh.run("set +x; echo clean")).stdout == "clean\n"


async def test_exit_ends_the_shell(sh: Shell) -> None:
    async with asyncio.timeout(20):
        with pytest.raises(ShellExited):
            await sh.run("exit 3")
        with pytest.raises(ShellExited):
            await sh.run("echo hi")


async def test_reading_stdin_cannot_eat_the_next_command(server: BackgroundServer) -> None:
    async with asyncio.timeout(20), connect(server.url) as client:
        shell: Shell = await client.shell()
        assert (await shell.run("cat; echo after-cat")).stdout == "after-cat\n"
        assert (await shell.run("echo next")).stdout == "next\n"
        await shell.aclose()
    assert isinstance(client, Client)
