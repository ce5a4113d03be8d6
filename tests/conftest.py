"""Shared fixtures: a real server in a child process, an in-process server for in-memory
connections, and a connected, initialized client.

``server`` is one server per test module: starting a server costs more than most tests (a
Python start, and coverage measuring it). Each test gets its own connection and so its own
session; a test that needs the server to itself (its flags, its log, its pid, server-wide
counts) starts its own ``ServerProcess``.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Iterator

import pytest
from exec_server.server import Server, ServerConfig
from exec_server.testing import RawClient

from tests.support import BackgroundServer


@pytest.hookimpl(tryfirst=True)  # before xdist reads the marks (its worker hook)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Under scripts/test's ``--dist loadgroup`` the tests of a module that share its server
    run on one worker, so the server starts once, not once on every worker that draws one."""
    for item in items:
        shares = "module_server" in getattr(item, "fixturenames", ())
        if shares and item.get_closest_marker("xdist_group") is None:
            item.add_marker(pytest.mark.xdist_group(f"server-{item.nodeid.partition('::')[0]}"))


@pytest.fixture(scope="module")
def module_server() -> Iterator[BackgroundServer]:
    server = BackgroundServer()
    yield server
    server.stop()
    log = server.stderr.decode(errors="replace")
    assert "Traceback" not in log, log[-4000:]
    assert "Warning:" not in log, log[-4000:]


@pytest.fixture
def server(module_server: BackgroundServer) -> Iterator[BackgroundServer]:
    """The module's server; the test fails if the server logged a traceback or a warning
    while it ran."""
    start = len(module_server.stderr)
    yield module_server
    log = module_server.stderr[start:].decode(errors="replace")
    # Shown by pytest only when the test fails ("Captured stdout teardown").
    print("---- server log (this test) ----\n" + log[-6000:])
    assert "Traceback" not in log, log[-4000:]
    assert "Warning:" not in log, log[-4000:]


@pytest.fixture
async def client(server: BackgroundServer) -> AsyncIterator[RawClient]:
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
