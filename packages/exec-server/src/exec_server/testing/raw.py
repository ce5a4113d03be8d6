"""A raw JSON-RPC client over a WebSocket, for tests and probes.

It speaks exactly what you tell it: no recovery, no handshake unless asked. Notifications are
queued per connection and can be awaited by method and process id.
"""

from __future__ import annotations

import asyncio
import base64
import itertools
from collections import deque
from typing import TYPE_CHECKING, Any, Protocol

import orjson
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

    from ..server import Server

__all__ = ["RawClient", "RawRpcError"]


class FrameChannel(Protocol):
    """What :class:`RawClient` needs of a connection: a ``websockets`` client connection, or
    the client end of :mod:`.memory`'s pair."""

    close_code: int | None
    close_reason: str | None

    async def send(self, data: str | bytes, /) -> None: ...

    async def close(self) -> None: ...

    def __aiter__(self) -> AsyncIterator[str | bytes]: ...


class RawRpcError(Exception):
    def __init__(self, code: int, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message


class RawClient:
    def __init__(self, ws: ClientConnection | FrameChannel) -> None:
        self.ws = ws
        self._ids = itertools.count(1)
        self._pending: dict[Any, asyncio.Future[Any]] = {}
        self.notifications: deque[dict[str, Any]] = deque()
        self.unmatched: deque[dict[str, Any]] = deque()
        self._notified = asyncio.Event()
        self._reader = asyncio.ensure_future(self._read_loop())
        self.closed: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.session_id: str | None = None

    @classmethod
    async def connect(cls, url: str, **kwargs: Any) -> RawClient:
        ws = await connect(url, max_size=None, open_timeout=10, **kwargs)
        return cls(ws)

    @classmethod
    def in_memory(cls, server: Server, **kwargs: Any) -> RawClient:
        """A client of ``server`` over an in-memory pair (see :mod:`.memory`; ``kwargs`` go
        to its ``connect``)."""
        from . import memory

        return cls(memory.connect(server, **kwargs))

    async def _read_loop(self) -> None:
        try:
            async for frame in self.ws:
                msg = orjson.loads(frame)
                if isinstance(msg, dict) and "method" in msg and "id" not in msg:
                    self.notifications.append(msg)
                    self._notified.set()
                    continue
                fut = self._pending.pop(msg.get("id"), None) if isinstance(msg, dict) else None
                if fut is None:
                    self.unmatched.append(msg)
                    self._notified.set()
                elif not fut.done():
                    fut.set_result(msg)
        except ConnectionClosed:
            pass
        finally:
            for fut in self._pending.values():
                if not fut.done():
                    fut.set_exception(ConnectionError("connection closed"))
            if not self.closed.done():
                self.closed.set_result(None)
            self._notified.set()

    async def send_raw(self, data: str | bytes) -> None:
        await self.ws.send(data)

    async def send_request(
        self, method: str, params: Any = None, *, id: Any = None
    ) -> asyncio.Future[dict[str, Any]]:
        """Send a request; returns the future of its whole response object. Requests sent
        one after another from one task reach the server in that order."""
        rid = next(self._ids) if id is None else id
        fut: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._pending[rid] = fut
        msg: dict[str, Any] = {"id": rid, "method": method}
        if params is not None:
            msg["params"] = params
        await self.ws.send(orjson.dumps(msg).decode())
        return fut

    async def request_raw(
        self, method: str, params: Any = None, *, id: Any = None, timeout: float = 30
    ) -> dict[str, Any]:
        """Send a request and return the whole response object."""
        fut = await self.send_request(method, params, id=id)
        async with asyncio.timeout(timeout):
            return await fut

    async def call(self, method: str, params: Any = None, *, timeout: float = 30) -> Any:
        resp = await self.request_raw(method, params, timeout=timeout)
        if "error" in resp:
            raise RawRpcError(resp["error"]["code"], resp["error"]["message"])
        return resp["result"]

    async def notify(self, method: str, params: Any = None) -> None:
        msg: dict[str, Any] = {"method": method}
        if params is not None:
            msg["params"] = params
        await self.ws.send(orjson.dumps(msg).decode())

    async def handshake(
        self, *, resume: str | None = None, client_name: str = "test"
    ) -> dict[str, Any]:
        params: dict[str, Any] = {"clientName": client_name}
        if resume is not None:
            params["resumeSessionId"] = resume
        result = await self.call("initialize", params)
        await self.notify("initialized", {})
        self.session_id = result["sessionId"]
        return result  # type: ignore[no-any-return]

    async def next_notification(
        self, method: str | None = None, process_id: str | None = None, *, timeout: float = 30
    ) -> dict[str, Any]:
        """Pop the first queued notification matching ``method``/``process_id`` (waiting)."""
        async with asyncio.timeout(timeout):
            while True:
                for i, msg in enumerate(self.notifications):
                    if method is not None and msg["method"] != method:
                        continue
                    if (
                        process_id is not None
                        and msg.get("params", {}).get("processId") != process_id
                    ):
                        continue
                    del self.notifications[i]
                    return msg
                if self.closed.done():
                    raise ConnectionError("connection closed")
                self._notified.clear()
                await self._notified.wait()

    async def next_unmatched(self, *, timeout: float = 30) -> dict[str, Any]:
        """Pop the first frame that answered no pending request (e.g. an id -1 error)."""
        async with asyncio.timeout(timeout):
            while not self.unmatched:
                if self.closed.done():
                    raise ConnectionError("connection closed")
                self._notified.clear()
                await self._notified.wait()
            return self.unmatched.popleft()

    async def collect(self, process_id: str, *, timeout: float = 30) -> dict[str, Any]:
        """Wait for `process/closed` of ``process_id``; return its events in arrival order:
        ``{"events": [...], "stdout": bytes, "stderr": bytes, "pty": bytes, "exit": {...}}``."""
        events: list[dict[str, Any]] = []
        out = {"stdout": b"", "stderr": b"", "pty": b""}
        exit_params: dict[str, Any] = {}
        while True:
            msg = await self.next_notification(process_id=process_id, timeout=timeout)
            events.append(msg)
            params = msg["params"]
            if msg["method"] == "process/output":
                out[params["stream"]] += base64.b64decode(params["chunk"])
            elif msg["method"] == "process/exited":
                exit_params = params
            elif msg["method"] == "process/closed":
                return {"events": events, **out, "exit": exit_params}

    async def aclose(self) -> None:
        await self.ws.close()
        self._reader.cancel()
