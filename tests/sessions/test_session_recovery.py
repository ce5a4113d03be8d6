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

from tests.support import ENV, start_params, wait_until

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


async def test_client_recovers_by_takeover_when_the_server_missed_the_disconnect(
    server: ServerProcess,
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


async def test_the_client_reports_an_unknown_session_as_lost(server: ServerProcess) -> None:
    bogus = "00000000-0000-4000-8000-000000000000"
    with pytest.raises(SessionLost, match="unknown session id"):
        await connect(server.url, resume_session_id=bogus)


async def test_output_produced_while_detached_is_replayed_exactly_once(
    server: ServerProcess, tmp_path: Path
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
