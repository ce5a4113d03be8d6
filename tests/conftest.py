"""Shared fixtures: a real server in a child process, an in-process server for in-memory
connections, and a connected, initialized client."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator

import pytest
from exec_server.server import Server, ServerConfig
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


@pytest.fixture
async def memory_server(caplog: pytest.LogCaptureFixture) -> AsyncIterator[Server]:
    """A server in this process, for clients over in-memory pairs (``RawClient.in_memory``):
    the real connection handling, sessions and handlers, no socket. The test fails if the
    server logged an error (an unexpected exception is logged there, with its traceback)."""
    caplog.set_level(logging.INFO, logger="exec_server")
    server = Server(ServerConfig(use_cgroups=False))
    try:
        yield server
    finally:
        await server.aclose()
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert not errors, [r.getMessage() for r in errors]
