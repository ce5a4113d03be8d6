"""Helpers shared by the tests."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable
from typing import Any

ENV = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LANG": "C.UTF-8"}


def start_params(process_id: str, argv: list[str], **extra: Any) -> dict[str, Any]:
    """process/start params with the defaults tests use (cwd /tmp, a minimal env)."""
    params: dict[str, Any] = {
        "processId": process_id,
        "argv": argv,
        "cwd": "file:///tmp",
        "env": dict(ENV),
        "tty": False,
    }
    params.update(extra)
    return params


async def wait_until(predicate: Callable[[], bool], *, timeout: float = 10.0) -> None:
    """Wait until ``predicate()`` is true, for state only the OS can tell (files, /proc).

    Polls every 10 ms under a deadline; nothing the test controls is waited on this way.
    """
    async with asyncio.timeout(timeout):
        while not predicate():  # noqa: ASYNC110 - OS state has no event to wait on
            await asyncio.sleep(0.01)


async def http_request(url: str, request: bytes) -> tuple[int, bytes]:
    """Send a raw HTTP ``request`` to the server at ``url`` (ws://host:port); returns the
    status code and the body once the server closed the connection."""
    host, port = url.removeprefix("ws://").rsplit(":", 1)
    reader, writer = await asyncio.open_connection(host, int(port))
    writer.write(request)
    await writer.drain()
    async with asyncio.timeout(10):
        data = await reader.read()
    writer.close()
    head, _, body = data.partition(b"\r\n\r\n")
    return int(head.split()[1]), body


async def wait_metric(url: str, sample: bytes, *, headers: bytes = b"") -> None:
    """Wait until a scrape of the server's /metrics has the line ``sample`` (server state that
    no event of ours reports, such as a session detached after its connection closed)."""

    async def shown() -> bool:
        _, body = await http_request(url, b"GET /metrics HTTP/1.1\r\n" + headers + b"\r\n")
        return sample in body.splitlines()

    async with asyncio.timeout(10):
        while not await shown():  # noqa: ASYNC110 - the server's state has no event we can await
            await asyncio.sleep(0.01)
