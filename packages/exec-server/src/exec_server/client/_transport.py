"""The client's WebSocket connection: the sans-I/O ``websockets`` client protocol on an asyncio
transport.

Frames are written from the caller's stack (no task per message) and inbound messages are
handed to a callback from ``data_received``, so a request costs one write and a response one
callback. A keepalive ping notices a silent peer (a half-open TCP connection): when nothing at
all was received for ``ping_interval + ping_timeout`` seconds the connection is aborted.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl as ssl_module
from collections.abc import Callable

from websockets.client import ClientProtocol
from websockets.exceptions import InvalidState, InvalidURI
from websockets.frames import Frame, Opcode
from websockets.http11 import Response
from websockets.protocol import State
from websockets.uri import parse_uri

from ..transport._messages import MessageAssembler
from ..transport._tcp import no_delay

__all__ = ["HandshakeRejected", "WsConnection", "open_connection"]

log = logging.getLogger("exec_server.client")

CLOSE_TIMEOUT = 2.0


class HandshakeRejected(Exception):
    """The server answered the WebSocket upgrade with an HTTP error."""

    def __init__(self, status: int, body: str) -> None:
        super().__init__(f"HTTP {status}" + (f": {body}" if body else ""))
        self.status = status
        self.body = body


class WsConnection(asyncio.Protocol):
    """One client WebSocket connection.

    Args:
        on_message: called with each inbound message.
        on_close: called once when the connection is gone, with a description of why.
    """

    def __init__(
        self,
        proto: ClientProtocol,
        on_message: Callable[[WsConnection, bytes], None],
        on_close: Callable[[WsConnection, str], None],
        ping_interval: float | None,
        ping_timeout: float,
    ) -> None:
        self._proto = proto
        self._on_message = on_message
        self._on_close = on_close
        self._transport: asyncio.Transport | None = None
        self._messages = MessageAssembler()
        self._loop = asyncio.get_running_loop()
        self.handshake: asyncio.Future[None] = self._loop.create_future()
        self.lost: asyncio.Future[None] = self._loop.create_future()
        self._closed = False
        self._ping_interval = ping_interval
        self._ping_timeout = ping_timeout
        self._last_rx = self._loop.time()
        self._ping_timer: asyncio.TimerHandle | None = None
        self._close_timer: asyncio.TimerHandle | None = None
        self.close_code: int | None = None
        self.close_reason = ""

    # -------------------------------------------------------------- asyncio side

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self._transport = transport
        no_delay(transport)

    def data_received(self, data: bytes) -> None:
        self._last_rx = self._loop.time()
        self._proto.receive_data(data)
        self._after_receive()

    def eof_received(self) -> bool | None:
        self._proto.receive_eof()
        self._after_receive()
        return None

    def connection_lost(self, exc: Exception | None) -> None:
        self._transport = None
        for timer in (self._ping_timer, self._close_timer):
            if timer is not None:
                timer.cancel()
        if not self.handshake.done():
            self.handshake.set_exception(
                ConnectionError(f"connection closed during the WebSocket handshake: {exc}")
            )
        self._finish(self._describe(exc))
        if not self.lost.done():
            self.lost.set_result(None)

    def _describe(self, exc: Exception | None) -> str:
        if self.close_code is not None:
            return f"closed by the server (code {self.close_code}" + (
                f", {self.close_reason!r})" if self.close_reason else ")"
            )
        if exc is not None:
            return f"connection lost: {exc}"
        return "connection closed without a close frame"

    def _finish(self, why: str) -> None:
        if not self._closed:
            self._closed = True
            self._on_close(self, why)

    # -------------------------------------------------------------- protocol

    def _after_receive(self) -> None:
        proto = self._proto
        events = proto.events_received()
        self._flush()
        for event in events:
            if isinstance(event, Response):
                if proto.handshake_exc is not None or event.status_code != 101:
                    body = (event.body or b"").decode("utf-8", "replace").strip()
                    if not self.handshake.done():
                        self.handshake.set_exception(HandshakeRejected(event.status_code, body))
                    self.abort()
                    return
                if not self.handshake.done():
                    self.handshake.set_result(None)
                self._schedule_ping()
                continue
            if not isinstance(event, Frame):
                continue
            message = self._messages.feed(event)
            if message is not None:
                self._deliver(message)
            elif event.opcode is Opcode.CLOSE and proto.close_rcvd is not None:
                self.close_code = proto.close_rcvd.code
                self.close_reason = proto.close_rcvd.reason
                # Nothing more may be delivered once the server said goodbye.
                self._finish(self._describe(None))
        if proto.state is State.CLOSED:
            self.abort()

    def _deliver(self, data: bytes) -> None:
        if not self._closed:
            self._on_message(self, data)

    def _flush(self) -> None:
        transport = self._transport
        if transport is None:
            return
        for data in self._proto.data_to_send():
            if data:
                transport.write(data)
            elif transport.can_write_eof():
                with contextlib.suppress(OSError, RuntimeError):
                    transport.write_eof()
        if self._proto.close_expected() and self._close_timer is None:
            self._close_timer = self._loop.call_later(CLOSE_TIMEOUT, self.abort)

    def _schedule_ping(self) -> None:
        if self._ping_interval is not None and not self._closed:
            self._ping_timer = self._loop.call_later(self._ping_interval, self._ping)

    def _ping(self) -> None:
        idle = self._loop.time() - self._last_rx
        assert self._ping_interval is not None
        if idle >= self._ping_interval + self._ping_timeout:
            log.info("no data from the server for %.1f s: dropping the connection", idle)
            self._finish(f"no data from the server for {idle:.1f} s (keepalive timeout)")
            self.abort()
            return
        if idle >= self._ping_interval:
            with contextlib.suppress(InvalidState):
                self._proto.send_ping(b"")
                self._flush()
        self._ping_timer = self._loop.call_later(
            min(self._ping_interval, self._ping_timeout), self._ping
        )

    # -------------------------------------------------------------- API

    @property
    def closed(self) -> bool:
        return self._closed or self._proto.state is not State.OPEN

    def send(self, frame: bytes) -> None:
        """Send one message (never blocks). Raises ConnectionError when closed."""
        if self.closed:
            raise ConnectionError("connection closed")
        self._proto.send_text(frame)
        self._flush()

    def send_many(self, frames: list[bytes]) -> None:
        if self.closed:
            raise ConnectionError("connection closed")
        for frame in frames:
            self._proto.send_text(frame)
        self._flush()

    def close(self, code: int = 1000, reason: str = "") -> None:
        """Start the closing handshake; no message is delivered after this."""
        if not self.closed:
            with contextlib.suppress(InvalidState):
                self._proto.send_close(code, reason)
            self._flush()
        self._finish("closed by the client")
        if self._close_timer is None and self._transport is not None:
            self._close_timer = self._loop.call_later(CLOSE_TIMEOUT, self.abort)

    def abort(self) -> None:
        """Drop the TCP connection at once."""
        if self._transport is not None:
            self._transport.abort()


async def open_connection(
    url: str,
    *,
    token: str | None,
    on_message: Callable[[WsConnection, bytes], None],
    on_close: Callable[[WsConnection, str], None],
    ping_interval: float | None = 20.0,
    ping_timeout: float = 20.0,
    ssl: ssl_module.SSLContext | None = None,
) -> WsConnection:
    """Connect and complete the WebSocket handshake (the caller bounds the time).

    Args:
        ssl: TLS settings of a ``wss://`` URL (default: the system's trusted CAs, the host
            name checked).

    Raises:
        HandshakeRejected: the server answered with an HTTP error (e.g. 401).
        OSError, ConnectionError: the TCP connection failed or dropped; the TLS handshake
            failed (``ssl.SSLError``, e.g. an untrusted certificate).
        ValueError: ``url`` is not a ws:// or wss:// URL, or ``ssl`` came with a ws:// URL.
    """
    try:
        uri = parse_uri(url)
    except InvalidURI as exc:
        raise ValueError(str(exc)) from exc
    if ssl is not None and not uri.secure:
        raise ValueError("ssl= needs a wss:// URL")
    if uri.secure and ssl is None:
        ssl = ssl_module.create_default_context()
    proto = ClientProtocol(uri, max_size=None, logger=log)
    request = proto.connect()
    if token is not None:
        request.headers["Authorization"] = f"Bearer {token}"
    loop = asyncio.get_running_loop()
    _, conn = await loop.create_connection(
        lambda: WsConnection(proto, on_message, on_close, ping_interval, ping_timeout),
        uri.host,
        uri.port,
        ssl=ssl,
        server_hostname=uri.host if ssl is not None else None,
    )
    try:
        # websockets logs every request header at DEBUG, the bearer token too: not ours.
        debug, proto.debug = proto.debug, False
        proto.send_request(request)
        proto.debug = debug
        if debug:
            log.debug("> GET %s HTTP/1.1 (headers not logged: they carry the token)", request.path)
        conn._flush()
        await conn.handshake
    except BaseException:
        conn.abort()
        raise
    return conn
