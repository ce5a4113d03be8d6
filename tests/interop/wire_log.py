"""A recording TCP proxy for WebSocket traffic: it forwards bytes unchanged between Codex and an
exec-server and decodes the WebSocket frames on both sides (no extensions are negotiated by
either end, so frames are plain), recording every JSON-RPC message in order.

Used to capture exactly which methods the stock Codex CLI calls on an exec-server, with full
params, independent of the server's own logging (so it works in front of the reference too).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from dataclasses import dataclass, field
from typing import Any

__all__ = ["Frame", "WireLog"]


@dataclass
class Frame:
    t: float
    direction: str  # ">" client to server, "<" server to client
    conn: int
    message: dict[str, Any]

    @property
    def method(self) -> str | None:
        m = self.message.get("method")
        return m if isinstance(m, str) else None


class _Decoder:
    """Incremental WebSocket frame decoder for one direction (after the HTTP upgrade)."""

    def __init__(self) -> None:
        self.buf = bytearray()
        self.upgraded = False
        self.fragments = bytearray()

    def feed(self, data: bytes) -> list[bytes]:
        self.buf += data
        out: list[bytes] = []
        if not self.upgraded:
            end = self.buf.find(b"\r\n\r\n")
            if end < 0:
                return out
            del self.buf[: end + 4]
            self.upgraded = True
        while True:
            if len(self.buf) < 2:
                return out
            b0, b1 = self.buf[0], self.buf[1]
            opcode = b0 & 0x0F
            masked = b1 & 0x80
            n = b1 & 0x7F
            pos = 2
            if n == 126:
                if len(self.buf) < 4:
                    return out
                n = int.from_bytes(self.buf[2:4], "big")
                pos = 4
            elif n == 127:
                if len(self.buf) < 10:
                    return out
                n = int.from_bytes(self.buf[2:10], "big")
                pos = 10
            mask = b""
            if masked:
                if len(self.buf) < pos + 4:
                    return out
                mask = bytes(self.buf[pos : pos + 4])
                pos += 4
            if len(self.buf) < pos + n:
                return out
            payload = bytearray(self.buf[pos : pos + n])
            del self.buf[: pos + n]
            if mask:
                for i in range(len(payload)):
                    payload[i] ^= mask[i & 3]
            if opcode in (0x1, 0x2, 0x0):
                self.fragments += payload
                if b0 & 0x80:
                    out.append(bytes(self.fragments))
                    self.fragments.clear()


@dataclass
class WireLog:
    """``async with WireLog(server_url) as log: log.url`` (give ``log.url`` to Codex)."""

    target_url: str
    frames: list[Frame] = field(default_factory=list)
    connections: int = 0
    port: int = 0
    _server: asyncio.Server | None = None
    _tasks: set[asyncio.Task[None]] = field(default_factory=set)

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}"

    async def __aenter__(self) -> WireLog:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._server is not None:
            self._server.close()
        for t in list(self._tasks):
            t.cancel()
        for t in list(self._tasks):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await t

    def methods(self, conn: int | None = None) -> list[str]:
        """Methods of the requests and notifications Codex sent, in order."""
        return [
            f.method
            for f in self.frames
            if f.direction == ">" and f.method is not None and (conn is None or f.conn == conn)
        ]

    def sent(self, method: str) -> list[dict[str, Any]]:
        """The params of every ``method`` message Codex sent."""
        return [
            f.message.get("params") or {}
            for f in self.frames
            if f.direction == ">" and f.method == method
        ]

    def requests(self, method: str) -> list[tuple[int, Any, dict[str, Any]]]:
        """(connection, id, params) of every ``method`` request Codex sent."""
        return [
            (f.conn, f.message.get("id"), f.message.get("params") or {})
            for f in self.frames
            if f.direction == ">" and f.method == method and "id" in f.message
        ]

    def response(self, conn: int, request_id: Any) -> dict[str, Any]:
        """The result the server sent for request ``request_id`` on connection ``conn``."""
        for f in self.frames:
            if (
                f.direction == "<"
                and f.conn == conn
                and f.method is None
                and f.message.get("id") == request_id
                and "result" in f.message
            ):
                result: dict[str, Any] = f.message["result"]
                return result
        raise KeyError(f"no result for request {request_id} on connection {conn}")

    def received(self, method: str) -> list[dict[str, Any]]:
        """The params of every ``method`` notification the server sent."""
        return [
            f.message.get("params") or {}
            for f in self.frames
            if f.direction == "<" and f.method == method
        ]

    async def _accept(self, down_r: asyncio.StreamReader, down_w: asyncio.StreamWriter) -> None:
        self.connections += 1
        conn = self.connections
        hostport = self.target_url.split("://", 1)[-1].rstrip("/")
        host, _, port = hostport.rpartition(":")
        try:
            up_r, up_w = await asyncio.open_connection(host, int(port))
        except OSError:
            down_w.close()
            return
        a = asyncio.ensure_future(self._pump(down_r, up_w, ">", conn))
        b = asyncio.ensure_future(self._pump(up_r, down_w, "<", conn))
        self._tasks.update((a, b))
        await asyncio.wait({a, b}, return_when=asyncio.FIRST_COMPLETED)
        for w in (up_w, down_w):
            w.close()
        for t in (a, b):
            t.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await t
            self._tasks.discard(t)

    async def _pump(
        self, r: asyncio.StreamReader, w: asyncio.StreamWriter, direction: str, conn: int
    ) -> None:
        dec = _Decoder()
        while data := await r.read(65536):
            for payload in dec.feed(data):
                try:
                    msg = json.loads(payload)
                except ValueError:
                    continue
                if isinstance(msg, dict):
                    self.frames.append(Frame(time.monotonic(), direction, conn, msg))
            w.write(data)
            await w.drain()
        with contextlib.suppress(OSError):
            w.write_eof()
