"""Helpers shared by the tests."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
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


def jwt(secret: bytes, claims: dict[str, object], alg: str = "HS256") -> str:
    """A JWT with ``claims`` signed with ``secret`` (HS256; any other ``alg`` gets no
    signature)."""

    def b64(data: bytes) -> str:
        return base64.urlsafe_b64encode(data).rstrip(b"=").decode()

    header = b64(json.dumps({"alg": alg, "typ": "JWT"}).encode())
    payload = b64(json.dumps(claims).encode())
    sig = hmac.new(secret, f"{header}.{payload}".encode(), hashlib.sha256).digest()
    return f"{header}.{payload}.{b64(sig) if alg == 'HS256' else ''}"
