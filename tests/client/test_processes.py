"""terminate() is SIGTERM, kill() SIGKILL to the tree; processes() lists a session's processes
after a resume (``process/list`` [ours])."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import AsyncIterator

import pytest
from exec_server.client import Client, OutputEvent, connect

from tests.support import BackgroundServer


@pytest.fixture
async def ec(server: BackgroundServer) -> AsyncIterator[Client]:
    async with connect(server.url) as c:
        yield c


async def test_terminate_sends_sigterm_and_kill_sigkill(ec: Client) -> None:
    script = "trap 'echo got-term; exit 7' TERM; echo ready; while :; do sleep 0.1; done"
    proc = await ec.start(["sh", "-c", script])
    async with asyncio.timeout(10):
        first = await anext(proc)
        assert isinstance(first, OutputEvent) and first.data == b"ready\n"
        assert await proc.terminate() is True
        assert await proc.wait() == 7
    proc = await ec.start(["sleep", "30"])
    async with asyncio.timeout(10):
        assert await proc.kill() is True
        assert await proc.wait() == 137
    assert proc.exit is not None and proc.exit.signal == "SIGKILL"


async def test_processes_after_a_resume_lists_a_background_server(
    server: BackgroundServer,
) -> None:
    argv = [sys.executable, "-m", "http.server", "0", "--bind", "127.0.0.1"]
    async with connect(server.url) as first:
        background = await first.start(argv)
        session = first.session_id
        done = await first.run(["true"])
        assert done.returncode == 0
    async with asyncio.timeout(20), connect(server.url, resume_session_id=session) as second:
        listed = {p.process_id: p for p in await second.processes()}
        info = listed[background.process_id]
        assert (info.argv, info.running, info.exit_code) == (argv, True, None)
        assert len(listed) == 2
        proc = second.attach(background.process_id)
        assert await proc.kill() is True
        assert await proc.wait() == 137
