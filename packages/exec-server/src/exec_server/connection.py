"""The server side of one client connection, and the session it initializes.

Imported by :class:`~exec_server.server.Server` when it makes its first connection, not at
start: with it come the RPC peer, the handlers, process supervision and the file methods, which
an executor with no client yet does not need (idle RSS of a warm executor, see bench/README.md
"Executor start").

Each inbound message is handled synchronously up to its first wait: methods that can answer
at once (start, signal, terminate, a read with data ready, ...) are answered before the next
message is looked at, and only methods that must wait (a long-poll read, a write to a full
pipe, file work) continue in a task. So responses to quick requests keep their order, writes
to one process are queued in arrival order, and nothing waits behind a slow request.

Bounds per connection, so a peer that sends requests and never reads the replies cannot grow
the server's memory: at most ``max_requests_in_flight`` requests (``--concurrent-requests``)
wait in tasks (then the transport stops handing over messages until one finishes); the methods
whose replies can be large (``big_reply`` in :data:`~exec_server.handlers.HANDLERS`) run at
most :data:`MAX_BIG_REPLIES_IN_FLIGHT` at a time and start only while the send buffer is below
its high-water mark (the transport itself stops delivering messages while it is above).
"""

from __future__ import annotations

import asyncio
import functools
import time
from collections.abc import Awaitable
from typing import TYPE_CHECKING, Any

from exec_server_protocol import CloseCode, SessionId, encode_notification, encode_result
from exec_server_protocol.errors import SESSION_TAKEN_OVER_REASON
from exec_server_protocol.fs import ReadDirectoryResult, ReadFileResult, WalkResult

from .audit import ProcessAudit
from .auth import ANONYMOUS, Principal
from .exceptions import SessionTakenOver
from .fs import FsService
from .handlers import HANDLERS, Handler, Later
from .metrics import METRICS, error_class, method_label
from .processes.table import ProcessTable
from .rpc import Dispatch, Ignored, Reply, RpcPeer, error_code, error_frame
from .sessions import Session
from .wire_errors import limit_hit

if TYPE_CHECKING:
    from .server import Server
    from .transport.base import FrameSink

__all__ = ["MAX_BIG_REPLIES_IN_FLIGHT", "ClientConnection", "ServerSession"]

MAX_BIG_REPLIES_IN_FLIGHT = 1
"""Requests of one connection with a possibly large reply that run at once. Each holds its data
two or three times over (read, base64, JSON) until its reply is queued; with one at a time, a
peer that never reads costs one reply in the send buffer and one in progress (an 8 MiB file:
about 50 MiB). Other connections are not held up by it."""


class ServerSession(Session["ClientConnection"]):
    """A session and what it owns: its processes, its file service, its audit trail.

    Owned by the server's :class:`SessionRegistry`; its attachment (state, connection,
    deadline) is the base class's, moved only by the registry. A connection holds a reference
    and asks :meth:`attached_to` whether the session is still its own.
    """

    def __init__(
        self,
        session_id: SessionId,
        connection: ClientConnection,
        *,
        server: Server,
        principal: Principal,
    ) -> None:
        super().__init__(session_id, connection, owner=principal)
        self.audit = ProcessAudit(session_id, principal)
        self.processes = ProcessTable(
            server.process_config,
            self.emit,
            session_id,
            attached=lambda: self.connection is not None,
            on_exited=self.audit.process_exited,
        )
        self._stop_grace = server.config.stop_grace
        self._max_fs_handles = server.config.max_fs_handles
        self._fs: FsService | None = None
        self.interrupted: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        """Resolved when the current attachment is taken over (long polls end on it)."""

    def emit(self, *parts: bytes) -> None:
        conn = self.connection
        if conn is not None:
            conn.send(*parts)

    def notify(self, method: str, params: Any) -> None:
        self.emit(encode_notification(method, params))

    @property
    def fs(self) -> FsService:
        if self._fs is None:
            self._fs = FsService(notify=self.notify, max_handles=self._max_fs_handles)
        return self._fs

    def attached(self, connection: ClientConnection) -> None:
        """``connection`` was attached (created, resumed or taken over): pump output as fast as
        it takes it; end what waits on the previous attachment."""
        if not self.interrupted.done():
            self.interrupted.set_result(None)
        self.interrupted = asyncio.get_running_loop().create_future()
        if connection.writable:
            self.processes.resume_reading()
        else:
            self.processes.pause_reading()

    def detached(self) -> None:
        # Detached output goes to the retention ring only: never leave pumps paused.
        self.processes.resume_reading()

    async def aclose(self) -> None:
        await self.processes.stop_all(self._stop_grace)
        self.audit.session_closed()
        if self._fs is not None:
            await self._fs.aclose()


class ClientConnection:
    """The server side of one connection (a :class:`MessageHandler`)."""

    def __init__(
        self,
        server: Server,
        sink: FrameSink,
        *,
        detachable: bool = True,
        principal: Principal = ANONYMOUS,
    ) -> None:
        self.server = server
        self.sink = sink
        self.principal = principal
        """Who authenticated the connection: it may resume only sessions it created."""
        self.peer = RpcPeer()
        self.session: ServerSession | None = None
        """The session this connection initialized (it may have been taken over since:
        ``session.attached_to(self)`` says)."""
        self.detachable = detachable
        self._tasks: set[asyncio.Future[Any]] = set()
        self._closed = False
        self._writable = asyncio.Event()
        self._writable.set()
        self._big_replies = asyncio.Semaphore(MAX_BIG_REPLIES_IN_FLIGHT)
        self._reading_paused = False
        self._max_in_flight = server.config.max_requests_in_flight
        METRICS.connections += 1
        METRICS.connections_active += 1

    # ---------------------------------------------------------------- MessageHandler

    def on_message(self, frame: bytes) -> None:
        METRICS.received_bytes += len(frame)
        action = self.peer.receive(frame)
        if isinstance(action, Dispatch):
            self._dispatch(action)
        elif isinstance(action, Reply):
            METRICS.request_answered(method_label(action.method), error_class(action.code), 0.0)
            self.send(action.frame)
        else:
            assert isinstance(action, Ignored)

    def on_close(self) -> None:
        if self._closed:
            return
        self._closed = True
        METRICS.connections_active -= 1
        for task in self._tasks:
            task.cancel()
        session = self.session
        if session is not None and session.attached_to(self):
            self.server.detach(session, self)

    @property
    def writable(self) -> bool:
        """Whether the transport's send buffer is below its high-water mark."""
        return self._writable.is_set()

    def pause_output(self) -> None:
        self._writable.clear()
        if self.session is not None and self.session.attached_to(self):
            self.session.processes.pause_reading()

    def resume_output(self) -> None:
        self._writable.set()
        if self.session is not None and self.session.attached_to(self):
            self.session.processes.resume_reading()

    # ---------------------------------------------------------------- sending

    def send(self, *parts: bytes) -> None:
        if not self._closed:
            METRICS.sent_bytes += sum(map(len, parts))
            self.sink.send(*parts)

    def _answer(self, d: Dispatch, started: float, out: Any, exc: BaseException | None) -> None:
        """Send the result ``out`` of ``d`` or its error ``exc``, and count the request."""
        if exc is None:
            result = "ok"
            self.peer.succeeded(d)
            self.send(out.frame if isinstance(out, _Encoded) else encode_result(d.request_id, out))
        else:
            result = error_class(error_code(exc))
            limit = limit_hit(exc)
            if limit is not None:
                METRICS.limit_hit(limit)
            self.send(error_frame(d.request_id, exc))
        METRICS.request_answered(d.spec.name, result, time.perf_counter() - started)

    def _dispatch(self, d: Dispatch) -> None:
        started = time.perf_counter()
        handler = HANDLERS[d.spec]
        pending: Awaitable[Any]
        if handler.big_reply:
            pending = self._big_reply(d, handler)
        else:
            try:
                out = handler.run(self, d.params)
            except Exception as exc:
                self._answer(d, started, None, exc)
                return
            if handler.in_task:
                pending = out
            elif isinstance(out, Later):
                pending = out.awaitable
            else:
                self._answer(d, started, out, None)
                return
        task = asyncio.ensure_future(pending)
        self._tasks.add(task)
        task.add_done_callback(functools.partial(self._finish, d, started))
        if len(self._tasks) >= self._max_in_flight and not self._reading_paused:
            self._reading_paused = True
            METRICS.limit_hit("requests_in_flight")
            self.sink.pause_reading()

    async def _big_reply(self, d: Dispatch, handler: Handler[Any, Any]) -> Any:
        """Run ``handler`` (a file method) once a big-reply slot is free and the send buffer
        has room; a large result is encoded in a worker thread (a 512 MiB file is seconds of
        JSON and base64 work that would otherwise hold every other connection up)."""
        async with self._big_replies:
            await self._writable.wait()
            out = await handler.run(self, d.params)
            if _is_large(out):
                return _Encoded(await asyncio.to_thread(encode_result, d.request_id, out))
            return out

    def _finish(self, d: Dispatch, started: float, task: asyncio.Future[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled():  # cancelled: the connection went away
            exc = task.exception()
            self._answer(d, started, None if exc is not None else task.result(), exc)
        # Only then take the next request: one answered at once would otherwise go out first.
        if self._reading_paused and len(self._tasks) < self._max_in_flight:
            self._reading_paused = False
            self.sink.resume_reading()

    # ---------------------------------------------------------------- session

    def require_session(self) -> ServerSession:
        session = self.session
        assert session is not None  # the handshake check guarantees it
        if not session.attached_to(self):
            raise SessionTakenOver
        return session

    def close_taken_over(self) -> None:
        """Another connection took our session over (its long polls have been ended): close
        once the pending replies went out."""
        pending = [t for t in self._tasks if not t.done()]

        async def close_after_replies() -> None:
            if pending:
                await asyncio.wait(pending, timeout=1.0)
            self.sink.close(int(CloseCode.SESSION_TAKEN_OVER), SESSION_TAKEN_OVER_REASON)

        task = asyncio.ensure_future(close_after_replies())
        self.server.background(task)


class _Encoded:
    """A reply already encoded (off the event loop)."""

    __slots__ = ("frame",)

    def __init__(self, frame: bytes) -> None:
        self.frame = frame


_LARGE_BYTES = 1 << 20
_LARGE_ENTRIES = 10_000


def _is_large(out: Any) -> bool:
    """Whether encoding ``out`` is worth a trip to a worker thread."""
    if isinstance(out, ReadFileResult):
        return len(out.data_base64) > _LARGE_BYTES
    if isinstance(out, (ReadDirectoryResult, WalkResult)):
        return len(out.entries) > _LARGE_ENTRIES
    return False
