"""The server: wires transports, the RPC peer, sessions, processes and file methods.

Each inbound message is handled synchronously up to its first wait: methods that can answer
at once (start, signal, terminate, a read with data ready, ...) are answered before the next
message is looked at, and only methods that must wait (a long-poll read, a write to a full
pipe, file work) continue in a task. So responses to quick requests keep their order, writes
to one process are queued in arrival order, and nothing waits behind a slow request.

Bounds per connection, so a peer that sends requests and never reads the replies cannot grow
the server's memory: at most :data:`MAX_REQUESTS_IN_FLIGHT` requests wait in tasks (then the
transport stops handing over messages until one finishes); the methods whose replies can be
large (:data:`BIG_REPLY_METHODS`) run at most :data:`MAX_BIG_REPLIES_IN_FLIGHT` at a time and
start only while the send buffer is below its high-water mark (the transport itself stops
delivering messages while it is above).

Drain (:meth:`Server.start_drain`, on SIGTERM): ``/readyz`` answers 503 and ``initialize``
without a resumable session is refused with :data:`ErrorCode.SERVER_DRAINING`; everything else,
resuming included, keeps working. :meth:`Server.wait_drained` returns once every process of
every session has closed and its end has reached the client; the caller then shuts down.
"""

from __future__ import annotations

import asyncio
import errno
import functools
import inspect
import logging
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pybase64
from exec_server_protocol import (
    CloseCode,
    EmptyResult,
    ErrorCode,
    SessionId,
    encode_notification,
    encode_result,
)
from exec_server_protocol.errors import (
    SESSION_TAKEN_OVER,
    SESSION_TAKEN_OVER_REASON,
    unknown_session,
)
from exec_server_protocol.fs import ReadDirectoryResult, ReadFileResult, WalkResult
from exec_server_protocol.process import (
    ReadParams,
    ResizeParams,
    SignalParams,
    StartParams,
    TerminateParams,
    TerminateResult,
    WriteParams,
    WriteResult,
)
from exec_server_protocol.session import EnvironmentInfo, InitializeParams, InitializeResult

from .audit import ProcessAudit
from .auth import ANONYMOUS, Principal
from .environment import environment_info
from .exceptions import QuotaExceeded, RpcError, invalid_params, invalid_request
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
from .sessions import NotOwner, SessionRecord, SessionRegistry, SessionState, UnknownSession
from .transport import TlsCertificate
from .transport.base import FrameSink
from .transport.websocket import Authenticator, HttpPolicy, serve_websocket

__all__ = ["Server", "ServerConfig"]

log = logging.getLogger("exec_server.server")

MAX_REQUESTS_IN_FLIGHT = 128
"""Requests of one connection running in tasks at once (long polls, file work, ...)."""
MAX_BIG_REPLIES_IN_FLIGHT = 1
"""Requests of one connection with a possibly large reply that run at once. Each holds its data
two or three times over (read, base64, JSON) until its reply is queued; with one at a time, a
peer that never reads costs one reply in the send buffer and one in progress (an 8 MiB file:
about 50 MiB). Other connections are not held up by it."""
BIG_REPLY_METHODS = frozenset({"fs/readFile", "fs/readDirectory", "fs/walk"})


@dataclass
class ServerConfig:
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


class SessionRuntime:
    """What a session owns: its processes, its file handles, its current connection."""

    def __init__(
        self, server: Server, record: SessionRecord[ClientConnection], principal: Principal
    ) -> None:
        self.record = record
        self.id = record.id
        self.connection: ClientConnection | None = None
        self.processes = ProcessTable(
            server.process_config,
            self.emit,
            record.id,
            attached=lambda: self.connection is not None,
        )
        self.audit = ProcessAudit(record.id, principal)
        self._stop_grace = server.config.stop_grace
        self._max_fs_handles = server.config.max_fs_handles
        self._fs: Any = None

    def emit(self, *parts: bytes) -> None:
        self.audit.observe(parts)
        conn = self.connection
        if conn is not None:
            conn.send(*parts)

    def notify(self, method: str, params: Any) -> None:
        self.emit(encode_notification(method, params))

    @property
    def fs(self) -> Any:
        if self._fs is None:
            from .fs import FsService

            self._fs = FsService(notify=self.notify, max_handles=self._max_fs_handles)
        return self._fs

    async def aclose(self) -> None:
        self.connection = None
        await self.processes.stop_all(self._stop_grace)
        self.audit.session_closed()
        if self._fs is not None:
            await self._fs.aclose()


Handler = Callable[["ClientConnection", Any], Any]


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
        self.session: SessionRuntime | None = None
        self.detachable = detachable
        self._tasks: set[asyncio.Future[Any]] = set()
        self._taken_over: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._closed = False
        self.paused = False
        self._writable = asyncio.Event()
        self._writable.set()
        self._big_replies = asyncio.Semaphore(MAX_BIG_REPLIES_IN_FLIGHT)
        self._reading_paused = False
        METRICS.connections.inc()
        METRICS.connections_active.inc()

    # ---------------------------------------------------------------- MessageHandler

    def on_message(self, frame: bytes) -> None:
        METRICS.received_bytes.inc(len(frame))
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
        METRICS.connections_active.dec()
        for task in self._tasks:
            task.cancel()
        session = self.session
        if session is not None and session.connection is self:
            session.connection = None
            # Detached output goes to the retention ring only: never leave pumps paused.
            session.processes.resume_reading()
            self.server.detach(session, self)

    def pause_output(self) -> None:
        self.paused = True
        self._writable.clear()
        if self.session is not None and self.session.connection is self:
            self.session.processes.pause_reading()

    def resume_output(self) -> None:
        self.paused = False
        self._writable.set()
        if self.session is not None and self.session.connection is self:
            self.session.processes.resume_reading()

    # ---------------------------------------------------------------- sending

    def send(self, *parts: bytes) -> None:
        if not self._closed:
            METRICS.sent_bytes.inc(sum(map(len, parts)))
            self.sink.send(*parts)

    def _answer(self, d: Dispatch, started: float, out: Any, exc: BaseException | None) -> None:
        """Send the result ``out`` of ``d`` or its error ``exc``, and count the request."""
        if exc is None:
            result = "ok"
            self.send(out.frame if isinstance(out, _Encoded) else encode_result(d.request_id, out))
        else:
            result = error_class(error_code(exc))
            if isinstance(exc, QuotaExceeded):
                METRICS.limit_hit(exc.limit)
            self.send(error_frame(d.request_id, exc))
        METRICS.request_answered(d.spec.name, result, time.perf_counter() - started)

    def _dispatch(self, d: Dispatch) -> None:
        started = time.perf_counter()
        handler = HANDLERS[d.spec.name]
        if d.spec.name in BIG_REPLY_METHODS:
            out: Any = self._big_reply(d, handler)
        else:
            try:
                out = handler(self, d.params)
            except Exception as exc:
                self._answer(d, started, None, exc)
                return
        if inspect.isawaitable(out):
            task = asyncio.ensure_future(out)
            self._tasks.add(task)
            task.add_done_callback(functools.partial(self._finish, d, started))
            if len(self._tasks) >= MAX_REQUESTS_IN_FLIGHT and not self._reading_paused:
                self._reading_paused = True
                METRICS.limit_hit("requests_in_flight")
                self.sink.pause_reading()
        else:
            self._answer(d, started, out, None)

    async def _big_reply(self, d: Dispatch, handler: Handler) -> Any:
        """Run ``handler`` once a big-reply slot is free and the send buffer has room; a large
        result is encoded in a worker thread (a 512 MiB file is seconds of JSON and base64
        work that would otherwise hold every other connection up)."""
        async with self._big_replies:
            await self._writable.wait()
            out = handler(self, d.params)
            if inspect.isawaitable(out):
                out = await out
            if _is_large(out):
                return _Encoded(await asyncio.to_thread(encode_result, d.request_id, out))
            return out

    def _finish(self, d: Dispatch, started: float, task: asyncio.Future[Any]) -> None:
        self._tasks.discard(task)
        if self._reading_paused and len(self._tasks) < MAX_REQUESTS_IN_FLIGHT:
            self._reading_paused = False
            self.sink.resume_reading()
        if task.cancelled():
            return  # the connection went away
        exc = task.exception()
        self._answer(d, started, None if exc is not None else task.result(), exc)

    # ---------------------------------------------------------------- session

    def require_session(self) -> SessionRuntime:
        if self._taken_over.done():
            raise invalid_request(SESSION_TAKEN_OVER)
        session = self.session
        assert session is not None  # the handshake check guarantees it
        return session

    def take_over(self) -> None:
        """Another connection resumed our session: fail pending long polls, then close."""
        if not self._taken_over.done():
            self._taken_over.set_result(None)
        pending = [t for t in self._tasks if not t.done()]

        async def close_after_replies() -> None:
            if pending:
                await asyncio.wait(pending, timeout=1.0)
            self.sink.close(int(CloseCode.SESSION_TAKEN_OVER), SESSION_TAKEN_OVER_REASON)

        task = asyncio.ensure_future(close_after_replies())
        self.server.background(task)

    @property
    def interrupted(self) -> asyncio.Future[None]:
        return self._taken_over


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
    wakeup = signal.set_wakeup_fd(-1)
    if wakeup != -1:
        signal.set_wakeup_fd(wakeup, warn_on_full_buffer=False)


class Server:
    """An exec-server instance (one per listening endpoint)."""

    def __init__(self, config: ServerConfig | None = None) -> None:
        self.config = config or ServerConfig()
        self.registry: SessionRegistry[ClientConnection] = SessionRegistry(self.config.session_ttl)
        self.runtimes: dict[str, SessionRuntime] = {}
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

        log.info(sandbox.describe())

    @property
    def ready(self) -> bool:
        """What ``/readyz`` reports: False once draining."""
        return not self.draining

    def _sessions_in(self, state: SessionState) -> int:
        return sum(1 for r in self.registry.sessions() if r.state is state)

    def start_drain(self) -> None:
        """Refuse new sessions from now on (see the module docstring)."""
        if not self.draining:
            self.draining = True
            log.info("draining: new sessions are refused; waiting for running processes")

    def drained(self) -> bool:
        """No session has a process that is running or whose end the client has not read."""
        return all(rt.processes.settled for rt in self.runtimes.values())

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

    def connection_for(self, sink: FrameSink, *, detachable: bool = True) -> ClientConnection:
        return ClientConnection(self, sink, detachable=detachable)

    # ---------------------------------------------------------------- sessions

    def detach(self, session: SessionRuntime, conn: ClientConnection) -> None:
        if not conn.detachable:
            self.registry.close(session.record)
            self.runtimes.pop(session.id, None)
            self.background(asyncio.ensure_future(session.aclose()))
            self._settled()
            return
        record = self.registry.detach(session.id, conn, time.monotonic())
        if record is not None:
            log.info("session detached", extra={"session_id": session.id})
            self._schedule_expiry()

    def _schedule_expiry(self) -> None:
        if self._expiry is not None:
            self._expiry.cancel()
            self._expiry = None
        deadline = self.registry.next_deadline()
        if deadline is None:
            return
        loop = asyncio.get_running_loop()
        delay = max(0.0, deadline - time.monotonic())
        self._expiry = loop.call_later(delay, self._expire_due)

    def _expire_due(self) -> None:
        self._expiry = None
        for record in self.registry.due(time.monotonic()):
            self.registry.expire(record)
            runtime = self.runtimes.pop(record.id, None)
            log.info("session expired", extra={"session_id": record.id})
            if runtime is not None:
                self.background(asyncio.ensure_future(runtime.aclose()))
        self._settled()
        self._schedule_expiry()

    def initialize(self, conn: ClientConnection, p: InitializeParams) -> InitializeResult:
        if p.resume_session_id is not None:
            try:
                record, previous = self.registry.resume(
                    p.resume_session_id, conn, time.monotonic(), owner=conn.principal
                )
            except NotOwner:
                # Answered exactly like an unknown id, so ids of others cannot be probed.
                log.info(
                    "session resume refused: created by another principal",
                    extra={"session_id": p.resume_session_id, "principal": conn.principal},
                )
                raise invalid_request(unknown_session(p.resume_session_id)) from None
            except UnknownSession:
                stale = self.runtimes.pop(p.resume_session_id, None)
                if stale is not None:  # the registry expired it just now (deadline passed)
                    self.background(asyncio.ensure_future(stale.aclose()))
                self._schedule_expiry()
                raise invalid_request(unknown_session(p.resume_session_id)) from None
            runtime = self.runtimes[record.id]
            if previous is not None and previous is not conn:
                log.info("session taken over", extra={"session_id": record.id})
                previous.take_over()
            else:
                log.info("session resumed", extra={"session_id": record.id})
            self._schedule_expiry()
        else:
            if self.draining:
                raise RpcError(
                    ErrorCode.SERVER_DRAINING,
                    "server is draining (shutting down): no new sessions; retry on another "
                    "server or after its restart",
                )
            if len(self.registry) >= self.config.max_sessions:
                raise QuotaExceeded(
                    f"--max-sessions {self.config.max_sessions}",
                    f"the server has {len(self.registry)} sessions (attached or detached)",
                )
            record = self.registry.create(conn, owner=conn.principal)
            runtime = SessionRuntime(self, record, conn.principal)
            self.runtimes[record.id] = runtime
            log.info(
                "session created",
                extra={
                    "session_id": record.id,
                    "client": p.client_name,
                    "principal": conn.principal,
                },
            )
        runtime.connection = conn
        conn.session = runtime
        conn.peer.initialize_succeeded()
        if conn.paused:
            runtime.processes.pause_reading()
        else:
            runtime.processes.resume_reading()
        return InitializeResult(session_id=SessionId(record.id), environment_info=self.info)

    async def aclose(self) -> None:
        """Stop listening and kill every process of every session."""
        for listener in self._listeners:
            listener.close()
        for record in self.registry.sessions():
            self.registry.close(record)
            runtime = self.runtimes.pop(record.id, None)
            if runtime is not None:
                if runtime.connection is not None:
                    runtime.connection.sink.close(1001, "server shutting down")
                await runtime.aclose()
        if self.process_config.cgroups is not None:
            self.process_config.cgroups.aclose()
        self._reaper.reap()


# ---------------------------------------------------------------------- handlers


def _initialize(conn: ClientConnection, p: InitializeParams) -> InitializeResult:
    return conn.server.initialize(conn, p)


def _environment_info(conn: ClientConnection, _: Any) -> EnvironmentInfo:
    return conn.server.info


def _environment_config_read(conn: ClientConnection, p: Any) -> Any:
    from .environment_config import read_environment_config

    return read_environment_config(p)


def _process_start(conn: ClientConnection, p: StartParams) -> Any:
    session = conn.require_session()
    return session.audit.start(session.processes, p)


def _process_read(conn: ClientConnection, p: ReadParams) -> Any:
    table = conn.require_session().processes
    proc = table.require(p.process_id)
    after = p.after_seq or 0
    if p.wait_ms and p.wait_ms > 0 and not proc.ready_for(after):
        return table.read(p.process_id, after, p.max_bytes, p.wait_ms, conn.interrupted)
    return table.snapshot(proc, after, p.max_bytes)


def _process_write(conn: ClientConnection, p: WriteParams) -> Any:
    table = conn.require_session().processes
    if not p.write_id:
        raise invalid_params("writeId must not be empty")
    try:
        data = pybase64.b64decode(p.chunk, validate=True)
    except ValueError as exc:
        raise invalid_params(f"chunk is not valid base64: {exc}") from exc
    proc = table.get(p.process_id)
    if proc is None:
        return WriteResult(status="unknownProcess")
    outcome = proc.write(data, p.write_id, p.close_stdin)
    if not isinstance(outcome, str) and outcome.done():
        outcome = outcome.result()  # a retry of a finished write is answered at once
    if isinstance(outcome, str):
        return WriteResult(status=outcome)  # type: ignore[arg-type]  # statuses come from WriteStatus
    return _write_result(outcome)


async def _write_result(outcome: asyncio.Future[str]) -> WriteResult:
    return WriteResult(status=await asyncio.shield(outcome))  # type: ignore[arg-type]  # see above


def _process_signal(conn: ClientConnection, p: SignalParams) -> EmptyResult:
    proc = conn.require_session().processes.get(p.process_id)
    if proc is not None:
        proc.send_signal(p.signal)
    return EmptyResult()


def _process_terminate(conn: ClientConnection, p: TerminateParams) -> TerminateResult:
    proc = conn.require_session().processes.get(p.process_id)
    if proc is None:
        return TerminateResult(running=False)
    return TerminateResult(running=proc.terminate())


def _process_resize(conn: ClientConnection, p: ResizeParams) -> EmptyResult:
    conn.require_session().processes.require(p.process_id).resize(p.rows, p.cols)
    return EmptyResult()


def _fs(method: str) -> Handler:
    def handler(conn: ClientConnection, p: Any) -> Any:
        return getattr(conn.require_session().fs, method)(p)

    handler.__name__ = f"_fs_{method}"
    return handler


HANDLERS: dict[str, Handler] = {
    "initialize": _initialize,
    "environment/info": _environment_info,
    "environmentConfig/read": _environment_config_read,
    "process/start": _process_start,
    "process/read": _process_read,
    "process/write": _process_write,
    "process/signal": _process_signal,
    "process/terminate": _process_terminate,
    "process/resize": _process_resize,
    "fs/readFile": _fs("read_file"),
    "fs/writeFile": _fs("write_file"),
    "fs/createDirectory": _fs("create_directory"),
    "fs/getMetadata": _fs("get_metadata"),
    "fs/readDirectory": _fs("read_directory"),
    "fs/remove": _fs("remove"),
    "fs/copy": _fs("copy"),
    "fs/canonicalize": _fs("canonicalize"),
    "fs/walk": _fs("walk"),
    "fs/open": _fs("open"),
    "fs/readBlock": _fs("read_block"),
    "fs/writeBlock": _fs("write_block"),
    "fs/close": _fs("close"),
    "fs/watchMissing": _fs("watch_missing"),
}
