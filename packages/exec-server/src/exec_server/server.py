"""The server: wires transports, the session registry, process supervision and the
connections (:mod:`.connection`, where each message is handled and its bounds are).

What a server needs with no client yet is imported at start: the listener, the session
registry, the orphan reaper and the cgroup tree. The per-client machinery (:mod:`.connection`
with the RPC peer, the handlers, the session runtime, processes and file methods) is imported
where the first connection is made (:meth:`Server.connection_for`), so an idle executor does
not carry it (see bench/README.md "Executor start").

Drain (:meth:`Server.start_drain`, on SIGTERM): ``/readyz`` answers 503 and ``initialize``
without a resumable session is refused (:class:`~exec_server.exceptions.Draining`); everything
else, resuming included, keeps working. :meth:`Server.wait_drained` returns once every process of
every session has closed and its end has reached the client; the caller then shuts down.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from .auth import ANONYMOUS, Principal
from .exceptions import Draining, QuotaExceeded
from .metrics import METRICS
from .processes.config import ProcessConfig
from .processes.tree import (
    CgroupManager,
    OrphanReaper,
    make_subreaper,
    reset_inherited_signal_state,
)
from .sessions import NotOwner, SessionRegistry, SessionState
from .transport import TlsCertificate
from .transport.base import FrameSink
from .transport.websocket import Authenticator, HttpPolicy, serve_websocket

if TYPE_CHECKING:
    from exec_server_protocol.session import EnvironmentInfo, InitializeParams

    from .connection import ClientConnection, ServerSession

__all__ = ["Server", "ServerConfig"]

log = logging.getLogger("exec_server.server")

MAX_REQUESTS_IN_FLIGHT = 128
"""Requests of one connection running in tasks at once (long polls, file work, ...)."""


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
            from .environment import environment_info  # asked by a client: imported then

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
            lambda sink: self.connection_for(sink, principal=sink.principal),
            ssl_context=tls.context if tls is not None else None,
        )
        self._listeners.append(server)
        sockname = server.sockets[0].getsockname()
        return sockname[0], sockname[1]

    def connection_for(
        self, sink: FrameSink, *, detachable: bool = True, principal: Principal = ANONYMOUS
    ) -> ClientConnection:
        """The server side of a connection a transport accepted (WebSocket, stdio, in-memory)."""
        # Imported at the first connection, not at start: the per-client machinery is most of
        # our modules' idle RSS on a warm executor (bench/startup.py, bench/README.md).
        from .connection import ClientConnection

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
        from .connection import ClientConnection, ServerSession  # imported by conn already

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
