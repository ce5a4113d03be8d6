"""WebSocket transport on the sans-I/O ``websockets`` protocol, plus the plain HTTP routes.

Routes (docs/protocol.md §1): ``GET|HEAD /readyz`` (ready to serve; 503 while the policy's
``ready()`` says no, e.g. draining) and ``/livez`` (the process is alive) → 200 with an empty
body, no auth; any request
with an ``Origin`` header → 403; more than one ``Authorization`` header → 400; ``GET /metrics``
(after the auth check) → 200 with the policy's exposition; the WebSocket upgrade on ``/`` (after
the auth check) → 101; anything else → 404. Inbound messages above
``max_message_size`` close the connection with 1009. Accepted sockets get TCP_NODELAY.
With an ``ssl_context`` the listener speaks only TLS (``wss://``, and ``https://`` for the
routes); the TLS handshake is part of the connection's handshake: within ``handshake_timeout``
and counted by the caps below from accept on.
Frames that arrive with the upgrade request (in the same read) are handled after the 101.

Until its upgrade or HTTP answer, a connection is "in the handshake": it must finish within
``handshake_timeout`` seconds or it is dropped, and a new connection is dropped at once when
``max_handshakes`` are in progress, or ``max_handshakes_per_address`` from its address (see
:mod:`._limits`).

Frames are written straight to the asyncio transport from the caller's stack (no task per
message); when the transport's buffer passes its high-water mark the handler is told to pause
its producers.

Inbound flow control: while the send buffer is above its high-water mark (the peer is not
reading its replies), or while the handler asks (:meth:`WebSocketConnection.pause_reading`, for
its cap on requests in flight), no message is handed to the handler and the socket is not read:
messages already read wait in order in a queue bounded by that last read. So a peer that sends
requests and never reads replies costs at most the buffer's high-water mark plus the replies of
what was already running, and TCP flow control pushes back on it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import ssl
import struct
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from websockets.datastructures import Headers
from websockets.exceptions import InvalidState
from websockets.frames import Frame
from websockets.http11 import Request
from websockets.protocol import State
from websockets.server import ServerProtocol

from ..auth import ANONYMOUS, Principal
from ..metrics import METRICS
from ._limits import HandshakeTracker
from ._messages import MessageAssembler
from ._tcp import no_delay
from .base import MessageHandler

__all__ = ["HttpPolicy", "WebSocketConnection", "serve_websocket"]

log = logging.getLogger("exec_server.transport")

_HEADER16 = struct.Struct("!BBH")
_HEADER64 = struct.Struct("!BBQ")

MAX_HEAD = 64 * 1024
CLOSE_TIMEOUT = 5.0
WRITE_HIGH = 8 * 1024 * 1024
WRITE_LOW = 2 * 1024 * 1024
_JOIN_BELOW = 64 * 1024  # smaller frames are joined: one transport.write() beats several


class Authenticator(Protocol):
    def __call__(self, authorization: str | None) -> str | None:
        """Return None when allowed, else the 401 body text."""

    def principal(self, authorization: str | None) -> Principal:
        """Who presented ``authorization``, once :meth:`__call__` allowed it."""


@dataclass(kw_only=True)
class HttpPolicy:
    """The HTTP side of a listener (the server's configuration has the defaults)."""

    max_message_size: int
    handshake_timeout: float
    """Seconds from accept to the end of the HTTP handshake."""
    max_handshakes: int
    """Connections in the handshake at once, in all (the listener's fd budget for strangers)."""
    max_handshakes_per_address: int
    """Connections in the handshake at once from one peer address. A handshake takes about a
    millisecond, so this only binds a burst of connects or peers that stall."""
    authenticate: Authenticator | None = None
    ready: Callable[[], bool] | None = None
    """Whether ``/readyz`` answers 200 (None: always)."""
    metrics: Callable[[], tuple[bytes, str]] | None = None
    """``GET /metrics``: the body and its content type (None: 404). Authenticated like the
    upgrade."""


def _response(
    status: int,
    reason: str,
    body: bytes = b"",
    head_only: bool = False,
    content_type: str = "text/plain; charset=utf-8",
) -> bytes:
    lines = [
        f"HTTP/1.1 {status} {reason}",
        f"Content-Length: {len(body)}",
        f"Content-Type: {content_type}",
        "Connection: close",
    ]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + (b"" if head_only else body)


class WebSocketConnection(asyncio.Protocol):
    """One accepted TCP connection: first HTTP, then (maybe) WebSocket."""

    def __init__(
        self,
        policy: HttpPolicy,
        make_handler: Callable[[WebSocketConnection], MessageHandler],
        handshakes: HandshakeTracker | None = None,
        tls: ssl.SSLContext | None = None,
    ) -> None:
        self._policy = policy
        self._tls = tls
        """Speak TLS on the accepted socket (this protocol starts it: see connection_made)."""
        self._tls_start: asyncio.Task[None] | None = None
        self._before_tls_done: bytearray | None = bytearray() if tls is not None else None
        """Data decrypted before ``start_tls`` returned the TLS transport (asyncio delivers
        the first bytes from inside the handshake's completion); handled once it has."""
        self._make_handler = make_handler
        self._handshakes = handshakes or HandshakeTracker(
            max_total=policy.max_handshakes, max_per_address=policy.max_handshakes_per_address
        )
        self._handshake_timer: asyncio.TimerHandle | None = None
        self._in_handshake = False
        self._address = "?"
        self._inbox: deque[bytes] = deque()
        self._write_blocked = False  # the send buffer is above its high-water mark
        self._handler_paused = False  # the handler asked for no more messages for now
        self._reading = True
        self._draining = False
        self._transport: asyncio.Transport | None = None
        self._head = bytearray()
        self._proto: ServerProtocol | None = None
        self._handler: MessageHandler | None = None
        self._messages = MessageAssembler()
        self._closed = False
        self._close_timer: asyncio.TimerHandle | None = None
        self.peer: str = "?"
        self.principal: Principal = ANONYMOUS
        """Who authenticated the upgrade (set before the handler is made)."""
        self._fd: int | None = None
        """The socket's descriptor, for writing frames straight to it (clear text only)."""

    # -------------------------------------------------------------- asyncio side

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self._transport = transport
        sock = no_delay(transport)
        peer = transport.get_extra_info("peername")
        if peer:
            self._address = str(peer[0])
            self.peer = f"{peer[0]}:{peer[1]}"
        transport.set_write_buffer_limits(high=WRITE_HIGH, low=WRITE_LOW)
        # Frames go straight to the socket only in clear text: under TLS that would bypass
        # the encryption. (asyncio hands out a TransportSocket, which has no sendmsg:
        # os.writev on its descriptor is the same single syscall.)
        self._fd = sock.fileno() if sock is not None and self._tls is None else None
        if not self._handshakes.try_enter(self._address):
            self._closed = True
            transport.abort()
            return
        self._in_handshake = True
        loop = asyncio.get_running_loop()
        self._handshake_timer = loop.call_later(
            self._policy.handshake_timeout, self._handshake_expired
        )
        if self._tls is not None:
            # The TLS handshake is part of the connection's handshake: under its deadline and
            # inside its caps from accept on (a listener made with create_server(ssl=...)
            # would call this only once TLS is up, so peers that never send a ClientHello
            # would hold descriptors outside every cap).
            transport.pause_reading()  # nothing reaches data_received before TLS is up
            self._tls_start = loop.create_task(self._start_tls(transport, self._tls))

    async def _start_tls(self, raw: asyncio.Transport, context: ssl.SSLContext) -> None:
        try:
            tls = await asyncio.get_running_loop().start_tls(
                raw,
                self,
                context,
                server_side=True,
                ssl_handshake_timeout=self._policy.handshake_timeout,
            )
        except (OSError, ssl.SSLError, TimeoutError) as exc:  # ConnectionError is an OSError
            log.debug("TLS handshake with %s failed: %s", self.peer, exc)
            tls = None
        if tls is None or self._closed:
            # Failed, or the deadline passed: the protocol gets no connection_lost for a
            # connection that never got through TLS, so it is released here.
            self._handshake_over()
            self._closed = True
            raw.abort()
            if tls is not None:
                tls.abort()
            return
        tls.set_write_buffer_limits(high=WRITE_HIGH, low=WRITE_LOW)
        self._transport = tls
        early, self._before_tls_done = self._before_tls_done, None
        if early:
            self.data_received(bytes(early))

    def _handshake_over(self) -> None:
        if self._in_handshake:
            self._in_handshake = False
            self._handshakes.leave(self._address)
        if self._handshake_timer is not None:
            self._handshake_timer.cancel()
            self._handshake_timer = None

    def _handshake_expired(self) -> None:
        self._handshake_timer = None
        METRICS.limit_hit("handshake_timeout")
        log.debug("handshake deadline passed for %s; closing", self.peer)
        self._handshake_over()
        self._closed = True
        if self._transport is not None:
            self._transport.abort()

    def data_received(self, data: bytes) -> None:
        if self._closed:
            return  # refused or timed out: the transport is going away
        if self._before_tls_done is not None:
            self._before_tls_done += data  # replies would go out on the raw transport
            return
        if self._proto is not None:
            self._proto.receive_data(data)
            self._after_receive()
            return
        self._head += data
        end = self._head.find(b"\r\n\r\n")
        if end < 0:
            if len(self._head) > MAX_HEAD:
                self._http_reply(_response(431, "Request Header Fields Too Large"))
            return
        self._route(end + 4)

    def eof_received(self) -> bool | None:
        if self._proto is not None:
            self._proto.receive_eof()
            self._after_receive()
        return None

    def connection_lost(self, exc: Exception | None) -> None:
        self._closed = True
        self._handshake_over()
        if self._close_timer is not None:
            self._close_timer.cancel()
        handler, self._handler = self._handler, None
        if handler is not None:
            handler.on_close()

    def pause_writing(self) -> None:
        self._write_blocked = True
        self._update_reading()
        if self._handler is not None:
            self._handler.pause_output()

    def resume_writing(self) -> None:
        self._write_blocked = False
        if self._handler is not None:
            self._handler.resume_output()
        self._drain_inbox()

    # -------------------------------------------------------------- HTTP

    def _http_reply(self, payload: bytes) -> None:
        assert self._transport is not None
        self._handshake_over()
        self._transport.write(payload)
        self._transport.close()
        self._closed = True

    def _route(self, head_len: int) -> None:
        head = bytes(self._head[:head_len])
        try:
            request_line, _, rest = head.decode("latin-1").partition("\r\n")
            method, target, _version = request_line.split(" ", 2)
            headers = Headers()
            for line in rest.split("\r\n"):
                if line:
                    name, _, value = line.partition(":")
                    headers[name.strip()] = value.strip()
        except ValueError:
            self._http_reply(_response(400, "Bad Request", b"malformed HTTP request\n"))
            return
        path = target.split("?", 1)[0]
        if len(headers.get_all("Authorization")) > 1:
            # Which one would count is ambiguous (a proxy may check one, we the other).
            self._http_reply(_response(400, "Bad Request", b"more than one Authorization header\n"))
            return
        if "Origin" in headers:
            self._http_reply(_response(403, "Forbidden", b"cross-origin requests are refused\n"))
            return
        if path in ("/readyz", "/livez") and method in ("GET", "HEAD"):
            ready = self._policy.ready
            if path == "/readyz" and ready is not None and not ready():
                self._http_reply(
                    _response(503, "Service Unavailable", b"draining\n", method == "HEAD")
                )
                return
            self._http_reply(_response(200, "OK", head_only=method == "HEAD"))
            return
        metrics = self._policy.metrics if path == "/metrics" and method == "GET" else None
        if (path != "/" or method != "GET") and metrics is None:
            self._http_reply(
                _response(404, "Not Found", b"not found\n", head_only=method == "HEAD")
            )
            return
        if self._policy.authenticate is not None:
            problem = self._policy.authenticate(headers.get("Authorization"))
            if problem is not None:
                self._http_reply(_response(401, "Unauthorized", (problem + "\n").encode()))
                return
            self.principal = self._policy.authenticate.principal(headers.get("Authorization"))
        if metrics is not None:
            body, content_type = metrics()
            self._http_reply(_response(200, "OK", body, content_type=content_type))
            return
        proto = ServerProtocol(max_size=self._policy.max_message_size, logger=log)
        self._proto = proto
        # Everything read so far, frames sent right behind the request included: the protocol
        # yields the request first, then those frames.
        proto.receive_data(bytes(self._head))
        self._head = bytearray()
        self._after_receive()

    def _accept(self, request: Request) -> None:
        proto = self._proto
        assert proto is not None
        response = proto.accept(request)
        proto.send_response(response)
        self._handshake_over()
        # The 101 must be on the wire before any reply to a frame that came with the request
        # (replies bypass the protocol's buffer, see send()).
        self._flush()
        if response.status_code == 101:
            self._handler = self._make_handler(self)

    # -------------------------------------------------------------- WebSocket

    def _after_receive(self) -> None:
        proto = self._proto
        assert proto is not None
        events = proto.events_received()
        self._flush()
        for event in events:
            if isinstance(event, Request):
                self._accept(event)
            elif isinstance(event, Frame):
                message = self._messages.feed(event)
                if message is not None:
                    self._deliver(message)
        if proto.state is State.CLOSED:
            self._abort()

    def _deliver(self, data: bytes) -> None:
        if self._handler is None or self._closed:
            return
        if self._inbox or self._blocked:
            self._inbox.append(data)
            self._update_reading()
            return
        self._handler.on_message(data)

    @property
    def _blocked(self) -> bool:
        return self._write_blocked or self._handler_paused

    def _update_reading(self) -> None:
        transport = self._transport
        if transport is None or self._closed or transport.is_closing():
            return
        want = not self._blocked
        if want != self._reading:
            self._reading = want
            if want:
                transport.resume_reading()
            else:
                transport.pause_reading()

    def _drain_inbox(self) -> None:
        """Deliver queued messages while nothing blocks; then read again."""
        if self._draining:
            return  # an on_message below resumed us: the loop in progress carries on
        self._draining = True
        try:
            while self._inbox and not self._blocked and not self._closed:
                handler = self._handler
                if handler is None:
                    self._inbox.clear()
                    break
                handler.on_message(self._inbox.popleft())
        finally:
            self._draining = False
        self._update_reading()

    def _flush(self) -> None:
        proto = self._proto
        transport = self._transport
        if proto is None or transport is None:
            return
        for data in proto.data_to_send():
            if data:
                transport.write(data)
            else:
                # The protocol is done: half-close now, and drop the socket if the peer
                # does not finish the closing handshake in time. TLS cannot half-close:
                # close (after what is queued, with a close_notify), or peers wait for us.
                if transport.can_write_eof():
                    with contextlib.suppress(OSError, RuntimeError):
                        transport.write_eof()
                else:
                    transport.close()
                self._schedule_abort()
        if proto.close_expected():
            self._schedule_abort()

    def _schedule_abort(self) -> None:
        if self._close_timer is None and self._transport is not None:
            loop = asyncio.get_running_loop()
            self._close_timer = loop.call_later(CLOSE_TIMEOUT, self._abort)

    def _abort(self) -> None:
        if self._transport is not None:
            self._transport.close()

    # -------------------------------------------------------------- FrameSink

    @property
    def closed(self) -> bool:
        return self._closed or self._proto is None or self._proto.state is not State.OPEN

    def send(self, *parts: bytes) -> None:
        proto = self._proto
        transport = self._transport
        if proto is None or transport is None or self._closed or proto.state is not State.OPEN:
            return
        # A server's data frame is a header and the unmasked payload; no extension is ever
        # negotiated, so the frame is built here instead of through websockets' serializer.
        # Control frames still go through the protocol.
        n = sum(map(len, parts))
        if n < 126:
            header = bytes((0x81, n))
        elif n < 65536:
            header = _HEADER16.pack(0x81, 126, n)
        else:
            header = _HEADER64.pack(0x81, 127, n)
        fd = self._fd
        if fd is not None and not transport.get_write_buffer_size() and not transport.is_closing():
            # Nothing is queued: hand the parts to the kernel in one call, without joining
            # them; only what the socket does not take now is copied into the transport.
            try:
                sent = os.writev(fd, (header, *parts))
            except (BlockingIOError, InterruptedError):
                sent = 0
            except OSError:
                sent = 0  # the transport's own write reports the failure
            if sent == n + len(header):
                return
            self._write_parts(transport, (header, *parts), sent)
            return
        if n < _JOIN_BELOW:
            transport.write(b"".join((header, *parts)))
        else:
            self._write_parts(transport, (header, *parts), 0)

    @staticmethod
    def _write_parts(transport: asyncio.Transport, parts: tuple[bytes, ...], skip: int) -> None:
        """Queue ``parts`` minus their first ``skip`` bytes without joining them: a big reply
        is then copied once, into the transport's buffer, instead of three times."""
        for part in parts:
            if skip >= len(part):
                skip -= len(part)
                continue
            transport.write(memoryview(part)[skip:] if skip else part)
            skip = 0

    def pause_reading(self) -> None:
        self._handler_paused = True
        self._update_reading()

    def resume_reading(self) -> None:
        self._handler_paused = False
        self._drain_inbox()

    def close(self, code: int = 1000, reason: str = "") -> None:
        self._inbox.clear()
        proto = self._proto
        if proto is None or self._closed:
            return
        with contextlib.suppress(InvalidState):
            proto.send_close(code, reason)
        self._flush()
        # From now on the handler must not receive anything more.
        handler, self._handler = self._handler, None
        if handler is not None:
            handler.on_close()


async def serve_websocket(
    host: str,
    port: int,
    policy: HttpPolicy,
    make_handler: Callable[[WebSocketConnection], MessageHandler],
    *,
    ssl_context: ssl.SSLContext | None = None,
) -> asyncio.Server:
    """Listen on ``host:port`` (port 0 picks a free one); with ``ssl_context``, TLS only.

    Under TLS the connection's handshake deadline and caps start at accept and cover the TLS
    handshake too (the protocol starts TLS itself).
    """
    loop = asyncio.get_running_loop()
    handshakes = HandshakeTracker(
        max_total=policy.max_handshakes, max_per_address=policy.max_handshakes_per_address
    )
    return await loop.create_server(
        lambda: WebSocketConnection(policy, make_handler, handshakes, ssl_context),
        host,
        port,
        reuse_address=True,
        backlog=max(128, policy.max_handshakes),
    )
