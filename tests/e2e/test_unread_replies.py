"""A client that sends requests and never reads the replies cannot grow the server's memory
without bound, nor hold other clients up (issue 12)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import struct
import time
from collections.abc import AsyncIterator
from pathlib import Path

import orjson
import psutil
import pytest
from exec_server.server import MAX_REQUESTS_IN_FLIGHT
from exec_server.testing import RawClient, ServerProcess

from tests.support import BackgroundServer, start_params

UPGRADE = (
    b"GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
    b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
)
RSS_BOUND = 150_000_000  # bytes (150 MB)


def client_frame(payload: bytes) -> bytes:
    """A masked, final text frame (an all-zero mask keeps the payload as is)."""
    n = len(payload)
    short = n < 126
    header = bytes((0x81, 0x80 | n)) if short else struct.pack("!BBH", 0x81, 0xFE, n)
    return header + b"\0\0\0\0" + payload


class PeakRss:
    """Samples a process's RSS every 10 ms until stopped; observation only."""

    def __init__(self, pid: int) -> None:
        self._proc = psutil.Process(pid)
        self.peak = 0
        self._task = asyncio.ensure_future(self._run())

    async def _run(self) -> None:
        while True:
            self.peak = max(self.peak, self._proc.memory_info().rss)
            await asyncio.sleep(0.01)

    async def stop(self) -> int:
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
        return self.peak


@pytest.fixture
async def server() -> AsyncIterator[ServerProcess]:
    async with ServerProcess() as s:
        yield s
    assert "Traceback" not in s.stderr.decode(errors="replace")


async def test_a_client_that_never_reads_keeps_server_memory_bounded_and_others_served(
    server: BackgroundServer, tmp_path: Path
) -> None:
    big = tmp_path / "big"
    big.write_bytes(os.urandom(8 << 20))
    rss = PeakRss(server.pid)

    host, port = server.url.removeprefix("ws://").rsplit(":", 1)
    reader, writer = await asyncio.open_connection(host, int(port))
    writer.write(UPGRADE)
    async with asyncio.timeout(10):
        await reader.readuntil(b"\r\n\r\n")
    init = orjson.dumps({"id": 0, "method": "initialize", "params": {"clientName": "greedy"}})
    requests = [client_frame(init), client_frame(b'{"method":"initialized"}')]
    read = orjson.dumps({"method": "fs/readFile", "params": {"path": big.as_uri()}})
    requests += [client_frame(read[:-1] + b',"id":%d}' % i) for i in range(1, 401)]
    # About 40 kB that ask for 4.4 GB of replies; then this client never reads again.
    writer.write(b"".join(requests))
    await writer.drain()

    # Meanwhile another client connects, initializes and reads the same file repeatedly.
    started = time.monotonic()
    other = await RawClient.connect(server.url)
    await other.handshake()
    initialize_s = time.monotonic() - started
    for _ in range(10):
        await other.call("fs/readFile", {"path": big.as_uri()}, timeout=60)
    await other.aclose()

    peak = await rss.stop()
    assert peak < RSS_BOUND, f"server RSS reached {peak >> 20} MiB"
    assert initialize_s < 5, initialize_s  # generous: an unbounded server took over 10 s
    assert not writer.is_closing()  # the greedy client is slowed down, not disconnected
    writer.close()


async def test_requests_in_flight_are_capped_per_connection(server: BackgroundServer) -> None:
    c = await RawClient.connect(server.url)
    await c.handshake()
    await c.call("process/start", start_params("s", ["sleep", "30"]))
    polls = MAX_REQUESTS_IN_FLIGHT + 2
    for i in range(polls):
        read = {"id": i, "method": "process/read", "params": {"processId": "s", "waitMs": 1500}}
        await c.send_raw(orjson.dumps(read))
    await c.send_raw(b'{"id":"info","method":"environment/info"}')
    order = [(await c.next_unmatched(timeout=30))["id"] for _ in range(polls + 1)]
    # Without the cap "info" would be answered at once; with it, it waits for a free slot.
    assert order.index("info") >= 1
    assert sorted(i for i in order if i != "info") == list(range(polls))
    await c.call("process/terminate", {"processId": "s"})
    await c.aclose()
