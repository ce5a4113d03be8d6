"""stdio transport: one JSON message per line on stdin/stdout (blank lines ignored).

There is no detach: when stdin closes the server ends and its processes are killed.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
from collections.abc import Callable

from .base import MessageHandler

__all__ = ["StdioConnection", "serve_stdio"]


class StdioConnection:
    def __init__(self) -> None:
        self._closed = False
        self._out = sys.stdout.buffer
        self._readable = asyncio.Event()
        self._readable.set()

    def pause_reading(self) -> None:
        self._readable.clear()

    def resume_reading(self) -> None:
        self._readable.set()

    async def wait_readable(self) -> None:
        """Return when the handler takes messages (writes to stdout block, so only the
        handler pauses reading here)."""
        await self._readable.wait()

    @property
    def closed(self) -> bool:
        return self._closed

    def send(self, *parts: bytes) -> None:
        if self._closed:
            return
        try:
            self._out.write(b"".join((*parts, b"\n")))
            self._out.flush()
        except (BrokenPipeError, ValueError):
            self._closed = True

    def close(self, code: int = 1000, reason: str = "") -> None:
        self._closed = True


async def serve_stdio(
    make_handler: Callable[[StdioConnection], MessageHandler], max_message_size: int
) -> None:
    """Serve one connection on stdin/stdout until stdin closes."""
    loop = asyncio.get_running_loop()
    conn = StdioConnection()
    handler = make_handler(conn)
    reader = asyncio.StreamReader(limit=max_message_size + 1)
    await loop.connect_read_pipe(
        lambda: asyncio.StreamReaderProtocol(reader), os.fdopen(0, "rb", 0)
    )
    try:
        while not conn.closed:
            await conn.wait_readable()
            try:
                line = await reader.readuntil(b"\n")
            except asyncio.IncompleteReadError as exc:
                line = exc.partial
                if line.strip():
                    handler.on_message(line)
                break
            except asyncio.LimitOverrunError:
                break  # an oversized message ends the connection, as on WebSocket
            if line.strip():
                handler.on_message(line)
    finally:
        conn.close()
        with contextlib.suppress(Exception):
            handler.on_close()
