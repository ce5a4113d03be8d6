"""Issue 3, acceptance 3: recovery never blocks forever. When it is impossible, every pending
and later operation fails with one exception that names the cause."""

from __future__ import annotations

import asyncio
import random
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from exec_server.client import (
    Backoff,
    ClientState,
    ConnectionLost,
    OutputEvent,
    SessionLost,
    connect,
)
from exec_server.testing import FaultProxy, RawClient, ServerProcess, capability_token_args

from tests.support import ENV, BackgroundServer, wait_until

CAT = ["cat"]
FAST = Backoff(initial=0.005, maximum=0.05, rng=random.Random(3))


def gone(pid: int) -> bool:
    return not Path(f"/proc/{pid}").exists()


@pytest.fixture
async def proxy(server: BackgroundServer) -> AsyncIterator[FaultProxy]:
    async with FaultProxy.for_url(server.url) as p:
        yield p


async def test_passing_the_reconnect_deadline_fails_pending_and_later_operations(
    proxy: FaultProxy,
) -> None:
    client = await connect(proxy.url, reconnect_deadline=0.5, backoff=FAST)
    proc = await client.start(CAT, cwd="/tmp", env=ENV, pipe_stdin=True)
    proxy.refusing = True
    proxy.cut_all()
    async with asyncio.timeout(10):
        with pytest.raises(ConnectionLost) as pending:
            await proc.write(b"lost\n")  # queued while recovering, then failed
        with pytest.raises(ConnectionLost) as iterating:
            async for _ in proc:
                pass
        with pytest.raises(ConnectionLost) as waiting:
            await proc.wait()
        with pytest.raises(ConnectionLost) as later:
            await client.start(CAT, cwd="/tmp", env=ENV)
    assert not isinstance(pending.value, SessionLost)
    message = str(pending.value)
    assert "could not reconnect" in message and "within 0.5 s" in message
    assert "last error" in message
    assert iterating.value is waiting.value is later.value is pending.value
    assert client.state is ClientState.FAILED
    await client.aclose()


async def test_rejected_credentials_on_reconnect_fail_with_connection_lost(
    server: BackgroundServer, proxy: FaultProxy, tmp_path: Path
) -> None:
    other = ServerProcess(*capability_token_args(tmp_path, "the-right-token"))
    async with other:
        client = await connect(proxy.url, token="a-wrong-token", backoff=FAST)
        proc = await client.start(CAT, cwd="/tmp", env=ENV, pipe_stdin=True)
        host, _, port = other.url.removeprefix("ws://").rpartition(":")
        proxy.target = (host, int(port))  # the "same" server now wants another token
        proxy.cut_all()
        async with asyncio.timeout(10):
            with pytest.raises(ConnectionLost) as info:
                await proc.wait()
        assert "rejected the credentials" in str(info.value)
        assert "HTTP 401" in str(info.value)
        await client.aclose()


async def test_expired_session_fails_with_session_lost() -> None:
    async with (
        ServerProcess("--session-ttl", "0.3") as server,
        FaultProxy.for_url(server.url) as proxy,
    ):
        client = await connect(proxy.url, backoff=FAST)
        proc = await client.start(["sh", "-c", "echo $$; exec sleep 300"], cwd="/tmp", env=ENV)
        async with asyncio.timeout(10):
            first = await anext(aiter(proc))
        assert isinstance(first, OutputEvent)
        pid = int(first.data)
        proxy.refusing = True
        proxy.cut_all()
        await wait_until(lambda: gone(pid))  # the session expired and its tree was killed
        proxy.refusing = False
        async with asyncio.timeout(10):
            with pytest.raises(SessionLost) as info:
                await proc.wait()
        assert "expired or unknown" in str(info.value)
        assert client.session_id[:8] in str(info.value)  # a prefix: the id is a secret
        assert client.session_id not in str(info.value)
        with pytest.raises(SessionLost):
            await client.read(proc.process_id)
        await client.aclose()


async def test_takeover_by_another_connection_fails_with_session_lost(
    server: BackgroundServer,
) -> None:
    client = await connect(server.url, backoff=FAST)
    proc = await client.start(CAT, cwd="/tmp", env=ENV, pipe_stdin=True)
    poll = asyncio.ensure_future(client.read(proc.process_id, wait_ms=20_000))
    other = await RawClient.connect(server.url)
    try:
        await other.handshake(resume=client.session_id)
        async with asyncio.timeout(10):
            with pytest.raises(SessionLost, match="resumed by another connection"):
                await poll
            with pytest.raises(SessionLost):
                await proc.wait()
    finally:
        await other.aclose()
        await client.aclose()


async def test_a_silent_connection_is_noticed_by_the_keepalive_and_recovered(
    proxy: FaultProxy,
) -> None:
    client = await connect(proxy.url, ping_interval=0.1, ping_timeout=0.2, backoff=FAST)
    async with client:
        proc = await client.start(CAT, cwd="/tmp", env=ENV, pipe_stdin=True)
        assert proxy.cut_all("stall") == 1  # nothing more is forwarded, nothing is closed
        async with asyncio.timeout(10):
            await proc.write(b"still here\n", close_stdin=True)
            out, _ = await proc.communicate()
        assert out == b"still here\n"
        assert client.reconnects == 1


async def test_connecting_to_a_closed_port_names_the_address() -> None:
    async with FaultProxy("127.0.0.1", 9) as proxy:  # nothing listens behind it
        proxy.refusing = True
        with pytest.raises(ConnectionLost, match=r"ws://127\.0\.0\.1:\d+"):
            await connect(proxy.url, connect_timeout=5)


async def test_a_wrong_token_at_connect_names_the_http_status(tmp_path: Path) -> None:
    async with ServerProcess(*capability_token_args(tmp_path, "secret")) as server:
        with pytest.raises(ConnectionLost, match="HTTP 401"):
            await connect(server.url, token="wrong")
        async with connect(server.url, token="secret") as client:
            proc = await client.start([sys.executable, "-c", "print(6 * 7)"], cwd="/tmp", env=ENV)
            assert (await proc.communicate())[0] == b"42\n"
