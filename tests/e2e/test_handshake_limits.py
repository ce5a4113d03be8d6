"""Peers that never finish the HTTP handshake cannot lock legitimate clients out: a deadline,
caps per address and in all, the fd soft limit raised, accept() failures logged without a
flood (issue 12)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import resource
import socket
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from exec_server.testing import RawClient, ServerProcess

from tests.support import self_signed_certificate, wait_until

# The server started with the usual 1024-descriptor soft limit (and the hard limit it inherits).
LOW_SOFT_LIMIT = (
    "import resource, runpy, sys\n"
    "_, hard = resource.getrlimit(resource.RLIMIT_NOFILE)\n"
    "resource.setrlimit(resource.RLIMIT_NOFILE, (min(1024, hard), hard))\n"
    "runpy.run_module('exec_server', run_name='__main__', alter_sys=True)\n"
)


def host_port(url: str) -> tuple[str, int]:
    host, port = url.removeprefix("ws://").removeprefix("wss://").rsplit(":", 1)
    return host, int(port)


async def open_idle(url: str, source: str = "127.0.0.1") -> socket.socket:
    """A TCP connection from ``source`` that never sends anything."""
    sock = socket.socket()
    sock.setblocking(False)
    sock.bind((source, 0))
    await asyncio.get_running_loop().sock_connect(sock, host_port(url))
    return sock


async def closed_by_server(sock: socket.socket) -> None:
    """Return once the server has closed ``sock`` (EOF or reset)."""
    with contextlib.suppress(ConnectionResetError):
        data = await asyncio.get_running_loop().sock_recv(sock, 1)
        assert data == b"", data


async def connect_from(url: str, source: str, **kwargs: Any) -> RawClient:
    sock = socket.socket()
    sock.bind((source, 0))
    sock.connect(host_port(url))
    sock.setblocking(False)
    return await RawClient.connect(url, sock=sock, **kwargs)


@pytest.fixture
def many_fds() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < 4096 <= hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (4096, hard))
    if resource.getrlimit(resource.RLIMIT_NOFILE)[0] < 2400:
        pytest.fail("the test needs 2,400 file descriptors (raise the hard limit)")


@pytest.fixture
async def idle_sockets() -> AsyncIterator[list[socket.socket]]:
    socks: list[socket.socket] = []
    yield socks
    for sock in socks:
        sock.close()


def assert_clean_log(server: ServerProcess) -> None:
    log = server.stderr.decode(errors="replace")
    assert "Traceback" not in log, log[-4000:]


@pytest.mark.usefixtures("many_fds")
@pytest.mark.parametrize(
    "caps",
    [
        (),  # the default caps: most are refused at accept, 128 wait for the deadline
        ("--max-handshakes", "2000", "--max-handshakes-per-address", "2000"),  # all wait
    ],
    ids=["default-caps", "no-caps"],
)
async def test_1100_idle_connections_are_closed_by_the_deadline_and_a_new_client_then_connects(
    idle_sockets: list[socket.socket], caps: tuple[str, ...]
) -> None:
    async with ServerProcess(
        "--handshake-timeout", "2", *caps, command=[sys.executable, "-c", LOW_SOFT_LIMIT]
    ) as s:
        soft, hard = resource.prlimit(s.pid, resource.RLIMIT_NOFILE)
        assert soft == hard, "the server raises its fd soft limit to the hard limit"
        for _ in range(1100):
            idle_sockets.append(await open_idle(s.url))
        async with asyncio.timeout(30):
            await asyncio.gather(*(closed_by_server(sock) for sock in idle_sockets))
        c = await RawClient.connect(s.url)
        await c.handshake()
        assert (await c.call("environment/info"))["platformOs"] == "linux"
        await c.aclose()
    assert_clean_log(s)


@pytest.mark.parametrize("tls", [False, True], ids=["clear-text", "tls"])
async def test_handshake_caps_refuse_at_once_and_spare_other_addresses(
    idle_sockets: list[socket.socket], tls: bool, tmp_path: Path
) -> None:
    # Under TLS the idle peers never send a ClientHello: the TLS handshake counts too.
    tls_args: list[str] = []
    client_args: dict[str, Any] = {}
    if tls:
        cert = self_signed_certificate(tmp_path, "server")
        tls_args = ["--tls-cert", cert.cert_file, "--tls-key", cert.key_file]
        client_args = {"ssl": cert.client_context()}
    async with ServerProcess(
        "--handshake-timeout",
        "60",
        "--max-handshakes",
        "8",
        "--max-handshakes-per-address",
        "4",
        *tls_args,
    ) as s:
        idle_sockets.extend([await open_idle(s.url) for _ in range(4)])
        # A fifth from the same address is closed at once, long before the 60 s deadline.
        fifth = await open_idle(s.url)
        idle_sockets.append(fifth)
        async with asyncio.timeout(20):
            await closed_by_server(fifth)
        # Another address still gets through, handshake and all.
        c = await connect_from(s.url, "127.0.0.2", **client_args)
        await c.handshake()
        # A finished handshake no longer counts: 4 + 4 idle fill the total cap of 8.
        idle_sockets.extend([await open_idle(s.url, "127.0.0.2") for _ in range(4)])
        ninth = await open_idle(s.url, "127.0.0.3")
        idle_sockets.append(ninth)
        async with asyncio.timeout(20):
            await closed_by_server(ninth)
        # The connected client is not affected.
        assert (await c.call("environment/info"))["platformOs"] == "linux"
        await c.aclose()
        log = s.stderr.decode()
        assert "refusing connections from 127.0.0.1: 4 handshakes in progress" in log
        assert "refusing connections: 8 handshakes in progress (--max-handshakes)" in log
    assert_clean_log(s)


async def test_accept_failing_for_lack_of_descriptors_is_logged_briefly_not_as_tracebacks(
    idle_sockets: list[socket.socket],
) -> None:
    async with ServerProcess(
        "--max-handshakes", "1000", "--max-handshakes-per-address", "1000"
    ) as s:
        # Leave the server a few spare descriptors, then connect past them.
        open_fds = len(os.listdir(f"/proc/{s.pid}/fd"))
        limit = open_fds + 20
        resource.prlimit(s.pid, resource.RLIMIT_NOFILE, (limit, limit))
        for _ in range(60):
            idle_sockets.append(await open_idle(s.url))

        def log() -> str:
            return s.stderr.decode(errors="replace")

        await wait_until(lambda: "cannot accept connections: Too many open files" in log())
        for sock in idle_sockets:
            sock.close()
        idle_sockets.clear()
        # Descriptors are free again: asyncio's retry accepts, and a client gets through.
        async with asyncio.timeout(30):
            c = await RawClient.connect(s.url)
        await c.handshake()
        await c.aclose()
    assert "Traceback" not in log()
    assert "socket.accept() out of system resource" not in log()


async def test_failed_tls_handshakes_give_their_place_back(tmp_path: Path) -> None:
    """Peers that speak clear text to the TLS port, or hang up before the TLS handshake is
    done, fail it; each failure frees its slot, so later clients from the same address are not
    refused by the per-address cap (2 here)."""
    cert = self_signed_certificate(tmp_path, "server")
    async with ServerProcess(
        "--max-handshakes-per-address", "2", "--tls-cert", cert.cert_file,
        "--tls-key", cert.key_file,
    ) as s:  # fmt: skip
        loop = asyncio.get_running_loop()
        for _ in range(3):
            sock = await open_idle(s.url)  # clear text: the server ends the connection
            await loop.sock_sendall(sock, b"GET /readyz HTTP/1.1\r\n\r\n")
            async with asyncio.timeout(20):
                await closed_by_server(sock)
            sock.close()
        for _ in range(3):
            (await open_idle(s.url)).close()  # gone before the ClientHello

        async def connects() -> bool:
            try:
                c = await RawClient.connect(s.url, ssl=cert.client_context())
            except OSError:
                return False  # refused by the cap: a slot is still taken
            await c.handshake()
            assert (await c.call("environment/info"))["platformOs"] == "linux"
            await c.aclose()
            return True

        # The server sees the hang-ups when it sees them: poll, under a deadline. A slot
        # still held by a failed handshake would refuse every attempt.
        async with asyncio.timeout(20):
            while not await connects():  # noqa: ASYNC110 - the server's view has no event
                await asyncio.sleep(0.05)
        assert await connects()
        assert await connects()  # three in a row with the cap at 2: nothing is held
    assert_clean_log(s)
