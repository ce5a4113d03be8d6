"""Output nobody reads is buffered up to ``max_buffered_output`` per process; beyond it the
client relies on the server's retention and reports the gap as OutputLost."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import textwrap
from collections.abc import AsyncIterator

import pytest
from exec_server.client import Client, ExitEvent, OutputEvent, OutputLost, connect

from tests.support import BackgroundServer

RSS_SCRIPT = textwrap.dedent(
    """
    import asyncio, json, resource, sys
    from exec_server.client import connect

    async def main(url):
        async with connect(url) as client:
            before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
            proc = await client.start(["head", "-c", str(300 << 20), "/dev/zero"])
            code = await proc.wait()
            after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
            print(json.dumps({"code": code, "growth_kib": after - before}))

    asyncio.run(main(sys.argv[1]))
    """
)


@pytest.fixture
async def ec(server: BackgroundServer) -> AsyncIterator[Client]:
    async with connect(server.url, max_buffered_output=1 << 20) as c:
        yield c


def test_300_mb_of_never_read_output_grows_client_rss_by_less_than_50_mb(
    server: BackgroundServer,
) -> None:
    done = subprocess.run(
        [sys.executable, "-c", RSS_SCRIPT, server.url],
        capture_output=True,
        timeout=120,
        check=True,
    )
    report = json.loads(done.stdout)
    assert report["code"] == 0
    assert report["growth_kib"] < 50 * 1024, report


async def test_output_past_the_cap_is_read_back_or_reported_lost(ec: Client) -> None:
    # 8 MiB: past the client's 1 MiB cap and the server's 1 MiB retention.
    proc = await ec.start(["head", "-c", str(8 << 20), "/dev/zero"])
    async with asyncio.timeout(60):
        assert await proc.wait() == 0
        got = 0
        lost: list[OutputLost] = []
        exits = 0
        while True:
            try:
                event = await anext(proc)
            except StopAsyncIteration:
                break
            except OutputLost as exc:
                lost.append(exc)
                continue
            if isinstance(event, OutputEvent):
                got += len(event.data)
            elif isinstance(event, ExitEvent):
                exits += 1
    assert exits == 1
    assert len(lost) == 1
    assert (1 << 20) <= got < (8 << 20)
