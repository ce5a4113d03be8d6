"""Issue 3, acceptance 2: sessions survive disconnects (server side, seen through a raw client
and through the recovering client)."""

from __future__ import annotations

import asyncio
import base64
import os
import random
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from exec_server.client import Backoff, OutputEvent, SessionLost, connect
from exec_server.testing import FaultProxy, RawClient, RawRpcError, ServerProcess

from tests.support import ENV, BackgroundServer, start_params, wait_until

# Echoes each stdin line as "got <line>".
ECHO = [sys.executable, "-u", "-c", "import sys\nfor l in sys.stdin: sys.stdout.write('got ' + l)"]


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def alive(pid: int) -> bool:
    """Whether ``pid`` exists and is not a zombie (read from /proc, outside the server)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def gone(pid: int) -> bool:
    """Whether ``pid`` is gone and reaped (no zombie left either)."""
    return not Path(f"/proc/{pid}").exists()


@pytest.fixture
async def short_ttl_server() -> AsyncIterator[ServerProcess]:
    async with ServerProcess("--session-ttl", "0.5") as s:
        yield s
    assert b"Traceback" not in s.stderr, s.stderr.decode(errors="replace")[-4000:]


async def test_resume_after_the_server_saw_the_disconnect_keeps_processes_and_ids(
    server: BackgroundServer,
) -> None:
    a = await RawClient.connect(server.url)
    sid = (await a.handshake())["sessionId"]
    await a.call("process/start", start_params("echo", ECHO, pipeStdin=True))
    await a.call("process/write", {"processId": "echo", "chunk": b64(b"one\n"), "writeId": "1"})
    first = await a.next_notification("process/output", "echo")
    assert base64.b64decode(first["params"]["chunk"]) == b"got one\n"
    await a.aclose()  # a clean close: the server has handled it when this returns

    b = await RawClient.connect(server.url)
    try:
        assert (await b.handshake(resume=sid))["sessionId"] == sid
        status = await b.call(
            "process/write", {"processId": "echo", "chunk": b64(b"two\n"), "writeId": "2"}
        )
        assert status == {"status": "accepted"}
        pushed = await b.next_notification("process/output", "echo")
        assert pushed["params"]["seq"] == 2
        assert base64.b64decode(pushed["params"]["chunk"]) == b"got two\n"
        result = await b.call("process/read", {"processId": "echo", "afterSeq": 0})
        assert [base64.b64decode(c["chunk"]) for c in result["chunks"]] == [
            b"got one\n",
            b"got two\n",
        ]
    finally:
        await b.aclose()


async def test_takeover_closes_the_old_connection_and_fails_its_pending_long_poll(
    server: BackgroundServer,
) -> None:
    old = await RawClient.connect(server.url)
    sid = (await old.handshake())["sessionId"]
    await old.call("process/start", start_params("idle", ECHO, pipeStdin=True))
    poll = asyncio.ensure_future(
        old.request_raw("process/read", {"processId": "idle", "waitMs": 20000})
    )
    # The old connection is still open from the server's point of view (half-open).
    new = await RawClient.connect(server.url)
    try:
        assert (await new.handshake(resume=sid))["sessionId"] == sid
        async with asyncio.timeout(10):
            answer = await poll
            await old.closed
        assert answer["error"] == {
            "code": -32600,
            "message": "session has been resumed by another connection",
        }
        assert old.ws.close_code == 4000
        assert old.ws.close_reason == "session resumed by another connection"
        # Notifications now go to the new connection.
        await new.call("process/write", {"processId": "idle", "chunk": b64(b"x\n"), "writeId": "1"})
        pushed = await new.next_notification("process/output", "idle")
        assert base64.b64decode(pushed["params"]["chunk"]) == b"got x\n"
    finally:
        await new.aclose()
        await old.aclose()


async def test_client_recovers_by_takeover_when_the_server_missed_the_disconnect(
    server: BackgroundServer,
) -> None:
    async with FaultProxy.for_url(server.url) as proxy, connect(proxy.url) as client:
        proc = await client.start(ECHO, cwd="/tmp", env=ENV, pipe_stdin=True)
        await proc.write(b"before\n")
        assert proxy.cut_all("half_open") == 1  # the server side stays open and silent
        await proc.write(b"after\n")
        await proc.close_stdin()
        async with asyncio.timeout(20):
            out, _ = await proc.communicate()
        assert out == b"got before\ngot after\n"
        assert client.reconnects == 1
        assert len(proxy.held) == 1


async def test_ttl_expiry_kills_the_whole_tree_including_a_setsid_grandchild(
    short_ttl_server: ServerProcess, tmp_path: Path
) -> None:
    script = (
        "import os, subprocess, sys\n"
        "gc = subprocess.Popen(['sleep', '300'], start_new_session=True)\n"
        "print(os.getpid(), gc.pid, flush=True)\n"
        "os.system('sleep 300')\n"
    )
    a = await RawClient.connect(short_ttl_server.url)
    sid = (await a.handshake())["sessionId"]
    await a.call("process/start", start_params("tree", [sys.executable, "-c", script]))
    line = await a.next_notification("process/output", "tree")
    pids = [int(p) for p in base64.b64decode(line["params"]["chunk"]).split()]
    await wait_until(lambda: all(alive(p) for p in pids))
    assert os.getsid(pids[1]) != os.getsid(pids[0])  # the grandchild left the session
    await a.aclose()

    await wait_until(lambda: all(gone(p) for p in pids), timeout=15)
    b = await RawClient.connect(short_ttl_server.url)
    try:
        with pytest.raises(RawRpcError) as info:
            await b.handshake(resume=sid)
        assert (info.value.code, info.value.message) == (-32600, f"unknown session id {sid}")
    finally:
        await b.aclose()


async def test_unknown_session_then_fresh_initialize_on_the_same_connection(
    server: BackgroundServer,
) -> None:
    c = await RawClient.connect(server.url)
    try:
        bogus = "00000000-0000-4000-8000-000000000000"
        with pytest.raises(RawRpcError) as info:
            await c.handshake(resume=bogus)
        assert (info.value.code, info.value.message) == (-32600, f"unknown session id {bogus}")
        fresh = await c.handshake()
        assert fresh["sessionId"] != bogus
        assert (await c.call("process/start", start_params("t", ["true"])))["processId"] == "t"
    finally:
        await c.aclose()
    with pytest.raises(SessionLost, match="unknown session id"):
        await connect(server.url, resume_session_id=bogus)


async def test_output_produced_while_detached_is_replayed_exactly_once(
    server: BackgroundServer, tmp_path: Path
) -> None:
    trigger, finished = tmp_path / "go", tmp_path / "done"
    script = (
        "import os, sys, time\n"
        f"while not os.path.exists({str(trigger)!r}): time.sleep(0.005)\n"
        "for i in range(3000): print(i, flush=i % 100 == 0)\n"
        "sys.stdout.flush()\n"
        f"open({str(finished)!r}, 'w').close()\n"
    )
    async with FaultProxy.for_url(server.url) as proxy:
        client = await connect(
            proxy.url, backoff=Backoff(initial=0.005, maximum=0.05, rng=random.Random(7))
        )
        async with client:
            proc = await client.start([sys.executable, "-c", script], cwd="/tmp", env=ENV)
            proxy.refusing = True
            proxy.cut_all()
            trigger.touch()
            await wait_until(finished.exists)  # all output exists while we are detached
            assert client.reconnects == 0
            proxy.refusing = False
            out = bytearray()
            async with asyncio.timeout(20):
                async for event in proc:
                    if isinstance(event, OutputEvent):
                        out += event.data
            assert out.decode().split() == [str(i) for i in range(3000)]
            assert proc.returncode == 0
            assert client.reconnects == 1
            assert proxy.refused >= 1
