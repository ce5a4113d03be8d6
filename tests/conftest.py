"""Shared fixtures: a real server in a child process and a connected, initialized client."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from exec_server.testing import RawClient, ServerProcess

@pytest.fixture
async def server() -> AsyncIterator[ServerProcess]:
    async with ServerProcess() as s:
        yield s


@pytest.fixture
async def client(server: ServerProcess) -> AsyncIterator[RawClient]:
    c = await RawClient.connect(server.url)
    await c.handshake()
    try:
        yield c
    finally:
        await c.aclose()
