"""The server: wires transports, the RPC peer, sessions, processes and file methods.

Each inbound message is handled synchronously up to its first wait: methods that can answer
at once (start, signal, terminate, a read with data ready, ...) are answered before the next
message is looked at, and only methods that must wait (a long-poll read, a write to a full
pipe, file work) continue in a task. So responses to quick requests keep their order, writes
to one process are queued in arrival order, and nothing waits behind a slow request.

Bounds per connection, so a peer that sends requests and never reads the replies cannot grow
the server's memory: at most :data:`MAX_REQUESTS_IN_FLIGHT` requests wait in tasks (then the
transport stops handing over messages until one finishes); the methods whose replies can be
large (``big_reply`` in :data:`~exec_server.handlers.HANDLERS`) run at most
:data:`MAX_BIG_REPLIES_IN_FLIGHT` at a time and start only while the send buffer is below its
high-water mark (the transport itself stops delivering messages while it is above).

Drain (:meth:`Server.start_drain`, on SIGTERM): ``/readyz`` answers 503 and ``initialize``
without a resumable session is refused (:class:`~exec_server.exceptions.Draining`); everything
else, resuming included, keeps working. :meth:`Server.wait_drained` returns once every process of
every session has closed and its end has reached the client; the caller then shuts down.
"""

from __future__ import annotations

import asyncio
import errno
import functools
import logging
import signal
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from exec_server_protocol import (
    CloseCode,
    SessionId,
    encode_notification,
    encode_result,
)
from exec_server_protocol.errors import SESSION_TAKEN_OVER_REASON
from exec_server_protocol.fs import ReadDirectoryResult, ReadFileResult, WalkResult
from exec_server_protocol.session import EnvironmentInfo, InitializeParams

from .audit import ProcessAudit
from .auth import ANONYMOUS, Principal
from .environment import environment_info
from .exceptions import Draining, QuotaExceeded, SessionTakenOver
from .fs import FsService
from .handlers import HANDLERS, Handler, Later
from .metrics import METRICS, error_class, method_label
from .processes import (
    CgroupManager,
    OrphanReaper,
    ProcessConfig,
    ProcessTable,
    make_subreaper,
    reset_inherited_signal_state,
)
from .rpc import Dispatch, Ignored, Reply, RpcPeer, error_code, error_frame
from .sessions import NotOwner, Session, SessionRegistry, SessionState
from .transport import TlsCertificate
from .transport.base import FrameSink
from .transport.websocket import Authenticator, HttpPolicy, serve_websocket
from .wire_errors import limit_hit

__all__ = ["Server", "ServerConfig", "ServerSession"]

log = logging.getLogger("exec_server.server")

MAX_REQUESTS_IN_FLIGHT = 128
"""Requests of one connection running in tasks at once (long polls, file work, ...)."""
MAX_BIG_REPLIES_IN_FLIGHT = 1
"""Requests of one connection with a possibly large reply that run at once. Each holds its data
two or three times over (read, base64, JSON) until its reply is queued; with one at a time, a
peer that never reads costs one reply in the send buffer and one in progress (an 8 MiB file:
about 50 MiB). Other connections are not held up by it."""


@dataclass
class ServerConfig:
    """Everything an operator can set, with its default: the one place defaults are written
    (the command line reads them from here)."""

    session_ttl: float = 80.0
    retention_bytes: int = 1 << 20
    closed_retention_s: float = 80.0
    max_message_size: int = 16 << 20
    authenticate: Authenticator | None = None
    use_cgroups: bool = True
    stop_grace: float = 0.5
    """Seconds each step of the stop escalation (SIGHUP to ttys, SIGTERM) waits at shutdown
    and session expiry before the next one; then SIGKILL."""
    capabilities: dict[str, bool] | None = field(default=None)
    handshake_timeout: float = 10.0
    """Seconds a WebSocket connection has to finish its HTTP handshake."""
    max_handshakes: int = 512
    max_handshakes_per_address: int = 128
    tls: TlsCertificate | None = None
    """Serve WebSocket connections over TLS with this certificate (``wss://``)."""
    drain_timeout: float = 30.0
    """Seconds a drain waits for processes to finish and be read before the shutdown."""
    max_sessions: int = 256
    max_processes: int = 1024
    max_processes_per_session: int = 256
    max_retained_bytes: int = 1 << 30
    max_session_retained_bytes: int = 128 << 20
    max_fs_handles: int = 128
    """Open ``fs/open`` handles per session."""
    cgroup_pids_max: int | None = None
    cgroup_memory_max: int | None = None
    """``pids.max`` / ``memory.max`` of each command's cgroup (None: unlimited)."""
    max_requests_in_flight: int = MAX_REQUESTS_IN_FLIGHT
    """Requests of one connection waiting in tasks at once (``--concurrent-requests``)."""
    isolation: Literal["host", "external"] = "host"
    """``external``: the operator isolates this executor from outside (``--isolation``); the
    sandbox module must be told too (``sandbox.configure(external_isolation=True)``)."""
    child_fd_limit: int | None = None
    """RLIMIT_NOFILE soft limit every command starts with (the hard limit is the server's);
    None: the server's own. The CLI sets the soft limit it was started with when it raises its
    own to the hard limit: commands get what ssh or systemd would give them."""


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


def add_signal_handler(sig: int, callback: Callable[..., object], *args: object) -> None:
    """``loop.add_signal_handler`` without the traceback a signal storm prints.

    asyncio wakes its loop through a small socket per signal: thousands of SIGCHLD in a burst
    fill it, and Python then prints a traceback per signal ("Exception ignored when trying to
    write to the signal wakeup fd"). A full buffer loses nothing (the loop is woken already and
    the handlers still run): the fd stays, the warning goes. (asyncio sets the fd again, with
    the warning, each time a handler is added: hence this wrapper for every handler.)
    """
    asyncio.get_running_loop().add_signal_handler(sig, callback, *args)
    _HANDLED_SIGNALS.add(sig)
    wakeup = signal.set_wakeup_fd(-1)
    if wakeup != -1:
        signal.set_wakeup_fd(wakeup, warn_on_full_buffer=False)


_HANDLED_SIGNALS: set[int] = set()


def remove_signal_handlers() -> None:
    """Remove every handler :func:`add_signal_handler` added, which also stops the wakeup
    writes. Call it before the loop closes: ``loop.close()`` closes its wakeup socket first
    and removes the handlers after, so a signal in between (SIGCHLD of a child killed at
    shutdown) is written to a closed descriptor and Python prints a traceback for it."""
    loop = asyncio.get_running_loop()
    for sig in list(_HANDLED_SIGNALS):
        loop.remove_signal_handler(sig)
        _HANDLED_SIGNALS.discard(sig)


class Server:
    """An exec-server instance (one per listening endpoint)."""

    def __init__(self, config: ServerConfig | None = None) -> None:
        self.config = config or ServerConfig()
        self.sessions: SessionRegistry[ServerSession] = SessionRegistry(self.config.session_ttl)
        cgroups = CgroupManager.create() if self.config.use_cgroups else None
        if self.config.cgroup_pids_max is not None or self.config.cgroup_memory_max is not None:
            if cgroups is None:
                raise OSError(errno.ENOTSUP, "no usable cgroup v2 for per-command limits")
            try:
                cgroups.set_limits(
                    pids_max=self.config.cgroup_pids_max,
                    memory_max=self.config.cgroup_memory_max,
                )
            except OSError:
                cgroups.aclose()
                raise
        if cgroups is None:
            log.warning(
                "no usable cgroup v2: tree kill of unsandboxed commands is best effort (process "
                "groups and /proc); sandboxed commands take their whole tree along (PID namespace)"
            )
        self.process_config = ProcessConfig(
            retention_bytes=self.config.retention_bytes,
            closed_retention_s=self.config.closed_retention_s,
            cgroups=cgroups,
            max_processes=self.config.max_processes,
            max_processes_per_session=self.config.max_processes_per_session,
            max_retained_bytes=self.config.max_retained_bytes,
            max_session_retained_bytes=self.config.max_session_retained_bytes,
            child_fd_limit=self.config.child_fd_limit,
        )
        self.process_config.on_settled = self._settled
        METRICS.observe_state(
            processes=lambda: len(self.process_config.live_pids),
            attached=lambda: self._sessions_in(SessionState.ATTACHED),
            detached=lambda: self._sessions_in(SessionState.DETACHED),
        )
        self.draining = False
        self._drain_progress = asyncio.Event()
        self._info: EnvironmentInfo | None = None
        self._expiry: asyncio.TimerHandle | None = None
        self._background: set[asyncio.Future[Any]] = set()
        self._listeners: list[asyncio.Server] = []
        self._reaper = OrphanReaper(lambda pid: pid in self.process_config.live_pids)
        self._subreaper = make_subreaper()
        self._reap_pending: asyncio.TimerHandle | None = None

    def log_sandbox_layers(self) -> None:
        """Probe what the sandbox gets on this host and say it in the log (a few ms: done once
        the server is ready, and the sandbox modules are imported only now)."""
        from . import sandbox

        if self.config.isolation == "external":
            log.warning(
                "--isolation external: a sandboxed command or file operation that this host "
                "cannot sandbox runs under the executor's outside isolation (its container or "
                "pod) only; what it can sandbox still is. Here: %s",
                sandbox.describe(),
            )
        else:
            log.info(sandbox.describe())

    @property
    def ready(self) -> bool:
        """What ``/readyz`` reports: False once draining."""
        return not self.draining

    def _sessions_in(self, state: SessionState) -> int:
        return sum(1 for s in self.sessions.sessions() if s.state is state)

    def start_drain(self) -> None:
        """Refuse new sessions from now on (see the module docstring)."""
        if not self.draining:
            self.draining = True
            log.info("draining: new sessions are refused; waiting for running processes")

    def drained(self) -> bool:
        """No session has a process that is running or whose end the client has not read."""
        return all(s.processes.settled for s in self.sessions.sessions())

    async def wait_drained(self) -> None:
        """Return once :meth:`drained` (the caller bounds the wait)."""
        while not self.drained():
            self._drain_progress.clear()
            await self._drain_progress.wait()

    def _settled(self) -> None:
        # Processes closed, were read or went away, or a session did: re-check the drain.
        self._drain_progress.set()

    @property
    def info(self) -> EnvironmentInfo:
        if self._info is None:
            self._info = environment_info(self.config.capabilities)
            if self.config.isolation == "external":
                self._info.isolation = "external"
                self._info.capabilities["externalIsolation"] = True
        return self._info

    def background(self, fut: asyncio.Future[Any]) -> None:
        self._background.add(fut)
        fut.add_done_callback(self._background.discard)

    def install_child_reaper(self) -> None:
        """Process-wide set-up for supervising children: reap adopted orphans, and give
        children default signal handling whatever this process inherited."""
        ignored = reset_inherited_signal_state()
        if ignored:
            log.info("children get default handling of inherited ignored signals: %s", ignored)
        if self._subreaper:
            add_signal_handler(signal.SIGCHLD, self._schedule_reap)

    def _schedule_reap(self) -> None:
        # Every exit raises SIGCHLD; one sweep shortly after a burst reaps every adopted orphan
        # (managed children are reaped by their own pidfd watchers).
        if self._reap_pending is None:
            self._reap_pending = asyncio.get_running_loop().call_later(0.05, self._reap)

    def _reap(self) -> None:
        self._reap_pending = None
        self._reaper.reap()

    # ---------------------------------------------------------------- transports

    async def listen_websocket(self, host: str, port: int) -> tuple[str, int]:
        policy = HttpPolicy(
            max_message_size=self.config.max_message_size,
            authenticate=self.config.authenticate,
            handshake_timeout=self.config.handshake_timeout,
            max_handshakes=self.config.max_handshakes,
            max_handshakes_per_address=self.config.max_handshakes_per_address,
            ready=lambda: self.ready,
            metrics=METRICS.render,
        )
        tls = self.config.tls
        server = await serve_websocket(
            host,
            port,
            policy,
            lambda sink: ClientConnection(self, sink, principal=sink.principal),
            ssl_context=tls.context if tls is not None else None,
        )
        self._listeners.append(server)
        sockname = server.sockets[0].getsockname()
        return sockname[0], sockname[1]

    def connection_for(
        self, sink: FrameSink, *, detachable: bool = True, principal: Principal = ANONYMOUS
    ) -> ClientConnection:
        """The server side of a connection a transport accepted (stdio, in-memory)."""
        return ClientConnection(self, sink, detachable=detachable, principal=principal)

    # ---------------------------------------------------------------- sessions

    def detach(self, session: ServerSession, conn: ClientConnection) -> None:
        if not conn.detachable:
            self.sessions.close(session)
            self._end(session)
            return
        if self.sessions.detach(session.id, conn, time.monotonic()) is not None:
            session.detached()
            log.info("session detached", extra={"session_id": session.id})
            self._schedule_expiry()

    def _end(self, session: ServerSession) -> None:
        """``session`` left the registry (expired or closed): stop what it owns."""
        self.background(asyncio.ensure_future(session.aclose()))
        self._settled()

    def _schedule_expiry(self) -> None:
        if self._expiry is not None:
            self._expiry.cancel()
            self._expiry = None
        deadline = self.sessions.next_deadline()
        if deadline is None:
            return
        loop = asyncio.get_running_loop()
        delay = max(0.0, deadline - time.monotonic())
        self._expiry = loop.call_later(delay, self._expire_due)

    def _expire_due(self, now: float | None = None) -> None:
        for session in self.sessions.due(time.monotonic() if now is None else now):
            self.sessions.expire(session)
            log.info("session expired", extra={"session_id": session.id})
            self._end(session)
        self._schedule_expiry()

    def initialize(self, conn: ClientConnection, p: InitializeParams) -> ServerSession:
        """Create or resume ``conn``'s session (``initialize``); a takeover closes the
        connection the session was taken from."""
        if p.resume_session_id is not None:
            now = time.monotonic()
            # A session past its deadline is expired (its processes stopped) before the
            # lookup, even when the expiry timer has not run yet (a busy server).
            self._expire_due(now)
            try:
                session, previous = self.sessions.resume(
                    p.resume_session_id, conn, now, owner=conn.principal
                )
            except NotOwner:
                # Answered exactly like an unknown id (a kind of it), so ids of others cannot
                # be probed.
                log.info(
                    "session resume refused: created by another principal",
                    extra={"session_id": p.resume_session_id, "principal": conn.principal},
                )
                raise
            session.attached(conn)
            if isinstance(previous, ClientConnection) and previous is not conn:
                log.info("session taken over", extra={"session_id": session.id})
                previous.close_taken_over()
            else:
                log.info("session resumed", extra={"session_id": session.id})
            self._schedule_expiry()
            return session
        if self.draining:
            raise Draining
        if len(self.sessions) >= self.config.max_sessions:
            raise QuotaExceeded(
                f"--max-sessions {self.config.max_sessions}",
                f"the server has {len(self.sessions)} sessions (attached or detached)",
            )
        session = self.sessions.create(
            lambda sid: ServerSession(sid, conn, server=self, principal=conn.principal)
        )
        session.attached(conn)
        log.info(
            "session created",
            extra={"session_id": session.id, "client": p.client_name, "principal": conn.principal},
        )
        return session

    async def aclose(self) -> None:
        """Stop listening and kill every process of every session."""
        for listener in self._listeners:
            listener.close()
        for session in self.sessions.sessions():
            conn = session.connection
            self.sessions.close(session)
            if conn is not None:
                conn.sink.close(1001, "server shutting down")
            await session.aclose()
        if self.process_config.cgroups is not None:
            self.process_config.cgroups.aclose()
        self._reaper.reap()
