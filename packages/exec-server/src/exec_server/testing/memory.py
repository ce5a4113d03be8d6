"""An in-memory connection pair: the server's real connection handling (``ClientConnection``,
the RPC peer, the handlers, sessions) driven by a client without sockets, in-process.

:func:`connect` gives the client end, a :class:`MemoryWebSocket` that quacks like the
``websockets`` client connection :class:`~exec_server.testing.RawClient` wraps (``send``,
``async for``, ``close``, ``close_code``); the server end is a :class:`MemorySink`, the
transport side a ``ClientConnection`` expects (``FrameSink``). Frames are delivered in order
on the next loop iterations, as a transport would, and the server's ``pause_reading`` holds
them back. What it does not model: the send buffer's flow control (the client end never
pushes back), the HTTP upgrade and its authentication (pass a ``principal``), byte-level
framing. Tests of those use a real socket.

    async with ServerProcess() ...   # a real socket
    client = await RawClient.in_memory(server)   # this module
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING

from ..auth import ANONYMOUS, Principal
from ..transport.base import MessageHandler

if TYPE_CHECKING:
    from ..server import Server

__all__ = ["MemorySink", "MemoryWebSocket", "connect"]

_CLOSED = object()


class MemorySink:
    """The server end: what the server's connection sends goes to the client end's inbox."""

    def __init__(self, client: MemoryWebSocket) -> None:
        self._client = client
        self._loop = asyncio.get_running_loop()
        self.handler: MessageHandler | None = None
        self._inbox: deque[bytes] = deque()
        self._paused = False
        self._scheduled = False
        self._closed = False

    # ---------------------------------------------------------------- FrameSink

    def send(self, *parts: bytes) -> None:
        if not self._closed:
            self._client._receive(b"".join(parts))

    def close(self, code: int = 1000, reason: str = "") -> None:
        if self._closed:
            return
        self._closed = True
        self._inbox.clear()
        self._client._closed_by_peer(code, reason)
        handler, self.handler = self.handler, None
        if handler is not None:
            handler.on_close()

    def pause_reading(self) -> None:
        self._paused = True

    def resume_reading(self) -> None:
        self._paused = False
        self._schedule()

    @property
    def closed(self) -> bool:
        return self._closed

    # ---------------------------------------------------------------- from the client end

    def _deliver(self, frame: bytes) -> None:
        if self._closed:
            return
        self._inbox.append(frame)
        self._schedule()

    def _schedule(self) -> None:
        if not self._scheduled and self._inbox:
            self._scheduled = True
            self._loop.call_soon(self._drain)

    def _drain(self) -> None:
        self._scheduled = False
        while self._inbox and not self._paused and self.handler is not None:
            self.handler.on_message(self._inbox.popleft())

    def _client_closed(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._inbox.clear()
        handler, self.handler = self.handler, None
        if handler is not None:
            handler.on_close()


class MemoryWebSocket:
    """The client end, shaped like a ``websockets`` client connection."""

    def __init__(self) -> None:
        self._inbox: asyncio.Queue[object] = asyncio.Queue()
        self.sink = MemorySink(self)
        self.close_code: int | None = None
        self.close_reason: str | None = None

    async def send(self, data: str | bytes) -> None:
        if self.close_code is not None:
            raise ConnectionError("connection closed")
        self.sink._deliver(data.encode() if isinstance(data, str) else data)

    async def close(self, code: int = 1000, reason: str = "") -> None:
        """Close from the client's side: the server's connection sees its end at once."""
        if self.close_code is None:
            self.close_code, self.close_reason = code, reason
            self._inbox.put_nowait(_CLOSED)
        self.sink._client_closed()

    def __aiter__(self) -> AsyncIterator[bytes]:
        return self._frames()

    async def _frames(self) -> AsyncIterator[bytes]:
        while True:
            item = await self._inbox.get()
            if item is _CLOSED:
                return
            assert isinstance(item, bytes)
            yield item

    def _receive(self, frame: bytes) -> None:
        if self.close_code is None:
            self._inbox.put_nowait(frame)

    def _closed_by_peer(self, code: int, reason: str) -> None:
        if self.close_code is None:
            self.close_code, self.close_reason = code, reason
            self._inbox.put_nowait(_CLOSED)


def connect(
    server: Server, *, detachable: bool = True, principal: Principal = ANONYMOUS
) -> MemoryWebSocket:
    """A new connection to ``server`` (its ``ClientConnection`` made as a listener would)."""
    ws = MemoryWebSocket()
    ws.sink.handler = server.connection_for(ws.sink, detachable=detachable, principal=principal)
    return ws
