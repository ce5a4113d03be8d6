"""A client that stops reading makes the server stop reading the child's output (bounded
memory), and a detached session keeps pumping into its retention ring."""

from __future__ import annotations

import asyncio
from pathlib import Path

import orjson
import psutil
from exec_server.testing import RawClient, ServerProcess
from websockets.asyncio.client import connect

from tests.support import BackgroundServer, start_params, wait_until


def blocked_on_pipe_write(pid: int) -> bool:
    try:
        # "pipe_write" on older kernels, "anon_pipe_write" on newer ones.
        return Path(f"/proc/{pid}/wchan").read_text().endswith("pipe_write")
    except OSError:
        return False


async def test_a_client_that_stops_reading_pauses_the_output_pump(server: BackgroundServer) -> None:
    # max_queue=1: the client library stops reading the socket once one message is queued.
    ws = await connect(server.url, max_size=None, max_queue=1)
    await ws.send(orjson.dumps({"id": 1, "method": "initialize", "params": {"clientName": "slow"}}))
    await ws.recv()
    await ws.send(b'{"method":"initialized"}')
    before = psutil.Process(server.pid).memory_info().rss
    params = start_params("flood", ["sh", "-c", "echo $$ >&2; exec cat /dev/zero"])
    await ws.send(orjson.dumps({"id": 2, "method": "process/start", "params": params}))
    proc = psutil.Process(server.pid)
    await wait_until(lambda: any(blocked_on_pipe_write(c.pid) for c in proc.children()), timeout=30)
    grown = proc.memory_info().rss - before
    # Socket buffers + the transport's high-water mark + one pipe's worth, not gigabytes.
    assert grown < 96 << 20, grown
    # A closing handshake would wait (10 s) for a close frame queued behind megabytes of
    # output this client will never read.
    ws.transport.abort()


async def test_a_detached_session_keeps_pumping_into_retention() -> None:
    async with ServerProcess("--retention-bytes", "65536") as s:
        c = await RawClient.connect(s.url)
        await c.handshake()
        session = c.session_id
        await c.call(
            "process/start", start_params("big", ["head", "-c", str(32 << 20), "/dev/zero"])
        )
        c.ws.transport.abort()
        d = await RawClient.connect(s.url)
        await d.handshake(resume=session)
        read = await d.call("process/read", {"processId": "big", "waitMs": 30_000})
        async with asyncio.timeout(30):
            while not read["closed"]:
                read = await d.call(
                    "process/read",
                    {"processId": "big", "afterSeq": read["nextSeq"] - 1, "waitMs": 5000},
                )
        assert read["exitCode"] == 0
        assert read["retainedFromSeq"] > 1  # 32 MiB went through a 64 KiB ring
        await d.aclose()
