"""Shared fixtures: a real server in a child process and a connected, initialized client."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from exec_server.testing import RawClient, ServerProcess


@pytest.fixture
async def server() -> AsyncIterator[ServerProcess]:
    """A real server; the test fails if the server logged a traceback or a warning."""
    async with ServerProcess() as s:
        yield s
    log = s.stderr.decode(errors="replace")
    # Shown by pytest only when the test fails ("Captured stdout teardown").
    print("---- server log (tail) ----\n" + log[-6000:])
    assert "Traceback" not in log, log[-4000:]
    assert "Warning:" not in log, log[-4000:]


@pytest.fixture
async def client(server: ServerProcess) -> AsyncIterator[RawClient]:
    c = await RawClient.connect(server.url)
    await c.handshake()
    try:
        yield c
    finally:
        await c.aclose()
