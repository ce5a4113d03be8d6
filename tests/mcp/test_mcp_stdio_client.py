"""Issue 10, acceptance 2: the ``mcp`` SDK's ClientSession over ``exec_server.mcp.stdio_client``,
with a real MCP server (built with the SDK) running on the executor.

A fault proxy cuts the connection at random points during 1,000 tool calls: every call gets its
own correct answer exactly once, the tool runs exactly once per call, and the MCP server process
is the same one throughout.
"""

from __future__ import annotations

import io
import json
import logging
import random
import sys
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path

import anyio
import mcp.types as types
import pytest
from exec_server.client import Backoff, connect
from exec_server.mcp import stdio_client
from exec_server.testing import FaultProxy, ServerProcess
from mcp import ClientSession, StdioServerParameters
from mcp.shared.message import SessionMessage

from tests.support import BackgroundServer, wait_until

SERVER = str(Path(__file__).with_name("pid_server.py"))
PARAMS = StdioServerParameters(command=sys.executable, args=[SERVER], cwd="/tmp")


@pytest.fixture
async def proxied() -> AsyncIterator[tuple[ServerProcess, FaultProxy]]:
    server = ServerProcess("--session-ttl", "30")
    async with server, FaultProxy.for_url(server.url) as proxy:
        yield server, proxy
    log = server.stderr.decode(errors="replace")
    assert "Traceback" not in log, log[-4000:]


def _answer(result: types.CallToolResult) -> dict[str, int]:
    assert not result.is_error
    block = result.content[0]
    assert isinstance(block, types.TextContent)
    answer: dict[str, int] = json.loads(block.text)
    return answer


async def test_a_session_initializes_lists_tools_and_calls_one(server: BackgroundServer) -> None:
    async with (
        stdio_client(PARAMS, url=server.url) as (read, write),
        ClientSession(read, write) as session,
    ):
        await session.initialize()
        tools = await session.list_tools()
        assert sorted(tool.name for tool in tools.tools) == ["complain", "double"]
        answer = _answer(await session.call_tool("double", {"n": 21}))
        assert answer["double"] == 42 and answer["calls"] == 1


async def test_1000_calls_under_random_cuts_answer_once_each_from_one_server(
    proxied: tuple[ServerProcess, FaultProxy],
) -> None:
    _, proxy = proxied
    seen_responses: Counter[object] = Counter()
    client = await connect(
        proxy.url,
        reconnect_deadline=20,
        backoff=Backoff(initial=0.002, maximum=0.05, rng=random.Random(10)),
    )
    async with (
        client,
        stdio_client(PARAMS, client=client) as (read, write),
    ):
        # Between the transport and the session: count every response by id, so a message
        # delivered twice shows even where the session would drop it.
        tap_send, tap_read = anyio.create_memory_object_stream[SessionMessage | Exception](0)

        async def tap() -> None:
            async with tap_send:
                async for item in read:
                    if isinstance(item, SessionMessage):
                        msg = item.message
                        if isinstance(msg, types.JSONRPCResponse | types.JSONRPCError):
                            seen_responses[msg.id] += 1
                    await tap_send.send(item)

        async with anyio.create_task_group() as tasks:
            tasks.start_soon(tap)
            async with ClientSession(tap_read, write) as session:
                await session.initialize()
                tools = await session.list_tools()
                assert "double" in [tool.name for tool in tools.tools]
                proxy.random_cuts(200, 20_000, "reset", seed=10)
                pids = set()
                with anyio.fail_after(120):
                    for i in range(1000):
                        answer = _answer(await session.call_tool("double", {"n": i}))
                        assert answer["n"] == i and answer["double"] == 2 * i
                        assert answer["calls"] == i + 1, "a call ran twice, or one was lost"
                        pids.add(answer["pid"])
                proxy.stop_cuts()
            tasks.cancel_scope.cancel()
    assert len(pids) == 1, pids
    assert proxy.cuts >= 20, proxy.cuts
    assert client.reconnects >= 20
    assert seen_responses, "the tap saw no response"
    assert set(seen_responses.values()) == {1}, [k for k, v in seen_responses.items() if v > 1]
    assert len(seen_responses) == 1002  # initialize, tools/list, 1,000 calls


async def test_stderr_goes_to_the_logger_and_to_errlog(
    server: BackgroundServer, caplog: pytest.LogCaptureFixture
) -> None:
    errlog = io.StringIO()
    caplog.set_level(logging.INFO, logger="exec_server.mcp")
    async with (
        stdio_client(PARAMS, errlog, url=server.url) as (read, write),
        ClientSession(read, write) as session,
    ):
        await session.initialize()
        await session.call_tool("complain", {"text": "disk on fire"})
        await wait_until(lambda: "disk on fire\n" in errlog.getvalue())
    assert any("disk on fire" in r.getMessage() for r in caplog.records)


async def test_leaving_the_context_ends_the_remote_server(server: BackgroundServer) -> None:
    async with connect(server.url) as client:
        async with (
            stdio_client(PARAMS, client=client) as (read, write),
            ClientSession(read, write) as session,
        ):
            await session.initialize()
            pid = _answer(await session.call_tool("double", {"n": 1}))["pid"]
        # Closing stdin ends an SDK server at once; the process is gone, not just detached.
        assert _gone(pid)


async def test_a_server_that_ignores_eof_is_killed_after_the_grace(
    server: BackgroundServer,
) -> None:
    stubborn = StdioServerParameters(
        command="sh", args=["-c", "echo $$ >&2; echo not-json; exec sleep 300"], cwd="/tmp"
    )
    errlog = io.StringIO()
    async with stdio_client(stubborn, errlog, url=server.url, stop_grace=0.2) as (read, _):
        with anyio.fail_after(10):
            item = await read.receive()
        # A line that is not JSON-RPC comes through as an exception value, as with the SDK.
        assert isinstance(item, Exception)
        await wait_until(lambda: errlog.getvalue().endswith("\n"))
        pid = int(errlog.getvalue())
        assert not _gone(pid)
    # sleep ignores the EOF on its stdin: the grace passed and its tree was killed.
    assert _gone(pid)


async def test_a_missing_command_fails_at_entry(server: BackgroundServer) -> None:
    from exec_server.client import RemoteError

    bad = StdioServerParameters(command="/nonexistent/mcp-server", cwd="/tmp")
    with pytest.raises(RemoteError):
        async with stdio_client(bad, url=server.url):
            pytest.fail("entered")


def _gone(pid: int) -> bool:
    """Whether process ``pid`` has exited (reaped, or a zombie)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(") ", 1)[1].startswith("Z")
    except (OSError, IndexError):
        return True  # no such process
