"""The asyncio client: one connection at a time, recovered automatically when it drops.

Recovery (issue 3): on a dropped connection the client reconnects with bounded exponential
backoff under an overall deadline, sends ``initialize {resumeSessionId}``, ``initialized``,
then re-sends every request whose response was lost (``process/write`` keeps its writeId, so
the server writes it at most once) and a ``process/read {afterSeq}`` per live process, all in
one pipelined batch. Each process's events are merged by seq (see ``_reassembly``) so the
caller sees each exactly once, in order. When recovery is impossible the client FAILS: every
pending and later operation raises the one exception that says why (:class:`SessionLost` for
an expired, unknown or taken-over session, :class:`ConnectionLost` for a passed deadline or a
rejected token).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import subprocess
from collections.abc import Callable, Generator, Mapping
from ssl import SSLContext
from typing import Any, Literal, TypeVar, Unpack, overload

import msgspec
import pybase64
from exec_server_protocol import (
    INITIALIZED,
    METHODS,
    CloseCode,
    ErrorCode,
    ProcessId,
    ServerMessage,
    SessionId,
    decode_json,
    decode_notification,
    decode_result,
    decode_server_message,
    encode_json,
)
from exec_server_protocol.errors import (
    is_process_exists,
    is_session_taken_over,
    is_unknown_session,
)
from exec_server_protocol.process import (
    EnvPolicy,
    ListResult,
    ProcessClosedNotification,
    ProcessExitedNotification,
    ProcessInfo,
    ProcessOutputNotification,
    PtySize,
    ReadParams,
    ReadResult,
    StartParams,
    StartResult,
    TerminateParams,
)
from exec_server_protocol.sandbox import SandboxIntent
from exec_server_protocol.session import EnvironmentInfo, InitializeParams, InitializeResult
from msgspec import UnsetType

from ..exceptions import ConnectionLost, RemoteError, SessionLost
from . import _run
from ._backoff import Backoff
from ._calls import Call, CallTable
from ._errors import translate_start_error
from ._events import ClosedEvent, ExitEvent, OutputEvent
from ._feed import EventFeed
from ._host import ProcessHost
from ._paths import Argv, RemotePath, argv_list, native, to_uri
from ._process import Process, SandboxDeniedHandler
from ._shell import Shell
from ._signatures import RunOptions, StartOptions
from ._state import ClientEvent, ClientState, transition
from ._transport import HandshakeRejected, WsConnection, open_connection
from .files import Files

__all__ = ["Client", "SandboxDeniedHandler", "connect"]

log = logging.getLogger("exec_server.client")

T = TypeVar("T")

MAX_BUFFERED_OUTPUT = 8 << 20
"""Default of ``max_buffered_output``: bytes of unread output buffered per process."""


def _retrieve(fut: asyncio.Future[Any]) -> None:
    """Mark a future's exception as seen (nobody may be left waiting on it)."""
    if not fut.cancelled():
        fut.exception()


class Client:
    """A connection to an exec-server that survives drops. Make one with :func:`connect`.

    Attributes:
        session_id: the server-side session (stable across reconnects).
        environment_info: what the server reported at ``initialize``.
        state: CONNECTED, RECOVERING, FAILED or CLOSED.
        failure: the exception every operation raises once the client FAILED.
        reconnects: how many times the session was resumed on a new connection.
        sandbox_denied_handler: see :data:`SandboxDeniedHandler`.
    """

    _resumable = True
    """Whether a dropped connection can be resumed (not over stdio: the session ends with it)."""

    def __init__(
        self,
        url: str,
        *,
        token: str | None = None,
        client_name: str = "exec-server-client",
        reconnect_deadline: float = 30.0,
        connect_timeout: float = 10.0,
        request_timeout: float | None = 120.0,
        backoff: Backoff | None = None,
        ping_interval: float | None = 20.0,
        ping_timeout: float = 20.0,
        read_page_bytes: int = 1 << 20,
        ssl: SSLContext | None = None,
        max_buffered_output: int = MAX_BUFFERED_OUTPUT,
    ) -> None:
        self.url = url
        self._ssl = ssl
        self.client_name = client_name
        self.reconnect_deadline = reconnect_deadline
        self.connect_timeout = connect_timeout
        self.request_timeout = request_timeout
        self.read_page_bytes = read_page_bytes
        self.session_id = SessionId("")
        self.environment_info: EnvironmentInfo | None = None
        self.state = ClientState.CONNECTED
        self.failure: ConnectionLost | None = None
        self.reconnects = 0
        self.sandbox_denied_handler: SandboxDeniedHandler | None = None
        self.max_buffered_output = max_buffered_output
        """Output bytes buffered per process while nobody reads them (see ``Process``)."""
        self.on_notification: Callable[[str, Any], None] | None = None
        """Called with notifications the client does not handle itself (e.g. fs ones)."""
        check_token(token)
        self._token = token
        self._backoff = backoff or Backoff()
        self._ping = (ping_interval, ping_timeout)
        self._conn: WsConnection | None = None
        self._generation = 0
        self._calls: CallTable[asyncio.Future[msgspec.Raw]] = CallTable()
        self._init_call: Call[asyncio.Future[msgspec.Raw]] | None = None
        self._feeds: dict[str, EventFeed] = {}
        """The event feed of each process with events still to come, by process id."""
        self._args: dict[str, list[str]] = {}
        """The command of each process in ``_feeds`` (for :meth:`processes`)."""
        self._host: ProcessHost = _Host(self)
        self._recovery: asyncio.Task[None] | None = None
        self._ids = secrets.token_hex(4)
        self._counter = 0
        self._resumed_waiters: list[asyncio.Future[None]] = []
        self._drop_waiters: set[asyncio.Future[None]] = set()
        """Resolved when the connection drops or the client fails (see :meth:`_next_drop`)."""
        self._ready = False
        """Whether the first handshake succeeded (only then is a drop recovered)."""
        self._listeners: dict[str, list[Callable[[Any], None]]] = {}
        self._files: Files | None = None

    # ------------------------------------------------------------------ context

    async def __aenter__(self) -> Client:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    def __repr__(self) -> str:
        return f"<Client {self.url} session={_short(self.session_id)} {self.state.value}>"

    # ------------------------------------------------------------------ handshake

    async def _open(self) -> WsConnection:
        return await open_connection(
            self.url,
            token=self._token,
            on_message=self._on_message,
            on_close=self._on_close,
            ping_interval=self._ping[0],
            ping_timeout=self._ping[1],
            ssl=self._ssl,
        )

    async def _connect_first(self, resume_session_id: str | None) -> None:
        try:
            async with asyncio.timeout(self.connect_timeout):
                conn = await self._open()
        except HandshakeRejected as exc:
            raise ConnectionLost(f"{self.url} refused the connection: {exc}") from exc
        except (OSError, TimeoutError) as exc:
            raise ConnectionLost(f"cannot connect to {self.url}: {_describe(exc)}") from exc
        self._generation += 1
        self._conn = conn
        params = encode_json(
            InitializeParams(
                client_name=self.client_name,
                resume_session_id=None
                if resume_session_id is None
                else SessionId(resume_session_id),
            )
        )
        call = self._submit("initialize", params, retry=False)
        try:
            raw = await self._wait(call, self.connect_timeout)
        except RemoteError as exc:
            conn.abort()
            if resume_session_id is not None and exc.code == ErrorCode.INVALID_REQUEST:
                why = _redact(exc.message, resume_session_id)
                raise SessionLost(f"cannot resume session: {why}") from None
            raise
        except BaseException:
            conn.abort()
            raise
        result = decode_result(raw, InitializeResult)
        self.session_id = result.session_id
        self.environment_info = result.environment_info
        self._ready = True
        with contextlib.suppress(ConnectionError):
            conn.send(INITIALIZED)

    # ------------------------------------------------------------------ requests

    def _check_usable(self) -> None:
        if self.state is ClientState.FAILED:
            assert self.failure is not None
            raise self.failure
        if self.state is ClientState.CLOSED:
            raise ConnectionLost("the client is closed")

    def _submit(self, method: str, params: bytes, *, retry: bool) -> Call[asyncio.Future[Any]]:
        self._check_usable()
        fut: asyncio.Future[msgspec.Raw] = asyncio.get_running_loop().create_future()
        call = self._calls.add(method, params, fut, retry=retry)
        conn = self._conn
        if conn is not None:
            frame = self._calls.send(call, self._generation)
            # A failed send leaves the call in flight on this connection: the drop
            # handler queues it again.
            with contextlib.suppress(ConnectionError):
                conn.send(frame)
        return call

    async def _wait(self, call: Call[asyncio.Future[msgspec.Raw]], limit: float | None) -> Any:
        try:
            async with asyncio.timeout(limit):
                return await call.waiter
        except TimeoutError:
            self._calls.discard(call)
            raise TimeoutError(f"no response to {call.method} within {limit} s") from None
        except asyncio.CancelledError:
            self._calls.discard(call)
            raise

    async def _request(
        self,
        method: str,
        params: Any,
        result_type: type[T],
        *,
        retry: bool = True,
        extra_timeout: float = 0.0,
    ) -> T:
        call = self._submit(method, encode_json(params), retry=retry)
        timeout = None if self.request_timeout is None else self.request_timeout + extra_timeout
        raw = await self._wait(call, timeout)
        return decode_result(raw, result_type)

    async def call(
        self,
        method: str,
        params: Any = None,
        *,
        idempotent: bool = True,
        response_timeout: float | None = None,
    ) -> Any:
        """Send any request and return its result.

        Args:
            method: e.g. ``"fs/readFile"``.
            params: a dict or a protocol params struct (None sends ``null``).
            idempotent: whether it is safe to send again after a reconnect when its response
                was lost; if False such a call raises :class:`ConnectionLost` instead.
            response_timeout: seconds to wait for the response (default: the client's
                ``request_timeout``).

        Returns:
            The protocol result struct for methods in the registry, else the decoded JSON.

        Raises:
            RemoteError: the server answered with an error.
            ConnectionLost, SessionLost: the connection could not be recovered.
            TimeoutError: no response in time.
        """
        call = self._submit(method, encode_json(params), retry=idempotent)
        limit = self.request_timeout if response_timeout is None else response_timeout
        raw = await self._wait(call, limit)
        spec = METHODS.get(method)
        if spec is None:
            return decode_json(raw)
        return decode_result(raw, spec.result)

    async def read(
        self,
        process_id: str,
        *,
        after_seq: int = 0,
        max_bytes: int | None = None,
        wait_ms: int = 0,
    ) -> ReadResult:
        """Raw ``process/read`` long poll (it does not feed the :class:`Process` handles)."""
        return await self._request(
            "process/read",
            ReadParams(
                process_id=ProcessId(process_id),
                after_seq=after_seq,
                max_bytes=max_bytes,
                wait_ms=wait_ms,
            ),
            ReadResult,
            extra_timeout=wait_ms / 1000,
        )

    async def environment(self) -> EnvironmentInfo:
        """``environment/info``."""
        result: EnvironmentInfo = await self.call("environment/info")
        return result

    # ------------------------------------------------------------------ files

    @property
    def files(self) -> Files:
        """The server's file system (see :mod:`exec_server.client.files`)."""
        if self._files is None:
            self._files = Files(self)
        return self._files

    def _next_drop(self) -> asyncio.Future[None]:
        """A future resolved when the connection next drops (or the client fails or closes):
        for waits on a notification the server does not retain across a drop (a fired
        ``fs/watchMissing``). The caller discards it with :meth:`_forget_drop` when done."""
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        if self.state is not ClientState.CONNECTED:
            fut.set_result(None)
        else:
            self._drop_waiters.add(fut)
        return fut

    def _forget_drop(self, fut: asyncio.Future[None]) -> None:
        self._drop_waiters.discard(fut)

    def _wake_drop_waiters(self) -> None:
        waiters, self._drop_waiters = self._drop_waiters, set()
        for fut in waiters:
            if not fut.done():
                fut.set_result(None)

    def _add_listener(self, method: str, listener: Callable[[Any], None]) -> None:
        self._listeners.setdefault(method, []).append(listener)

    def _remove_listener(self, method: str, listener: Callable[[Any], None]) -> None:
        with contextlib.suppress(KeyError, ValueError):
            self._listeners[method].remove(listener)

    # ------------------------------------------------------------------ processes

    @overload
    async def start(
        self,
        argv: Argv,
        *,
        text: Literal[False] = False,
        encoding: None = None,
        **options: Unpack[StartOptions[bytes]],
    ) -> Process[bytes]: ...

    @overload
    async def start(
        self,
        argv: Argv,
        *,
        text: Literal[True],
        encoding: str | None = None,
        **options: Unpack[StartOptions[str]],
    ) -> Process[str]: ...

    @overload
    async def start(
        self,
        argv: Argv,
        *,
        text: bool = False,
        encoding: str,
        **options: Unpack[StartOptions[str]],
    ) -> Process[str]: ...

    async def start(
        self,
        argv: Argv,
        *,
        cwd: RemotePath | None = None,
        env: Mapping[str, str] | None = None,
        tty: bool = False,
        pipe_stdin: bool = False,
        arg0: str | None = None,
        env_policy: EnvPolicy | None = None,
        sandbox: SandboxIntent | None = None,
        pty_size: tuple[int, int] | None = None,
        process_id: str | None = None,
        text: bool = False,
        encoding: str | None = None,
        errors: str | None = None,
        on_stdout: Callable[[Any], object] | None = None,
        on_stderr: Callable[[Any], object] | None = None,
    ) -> Process[Any]:
        """Start a process (``process/start``).

        Args:
            argv: the command, a list of strings (a ``str`` is refused: it would not be
                split the way a shell splits it); ``argv[0]`` is looked up on the PATH of
                the child's environment, else of the server's.
            cwd: working directory: a native absolute path, a :class:`pathlib.Path` or a
                ``file:`` URI; default: the server's working directory.
            env: variables added to (or overriding) the inherited environment.
            tty: run it on a pseudo-terminal (output stream ``"pty"``).
            pipe_stdin: give a non-tty process a stdin pipe (else stdin is /dev/null).
            arg0: what the child sees as argv[0].
            env_policy: how the environment is built from the *server's* environment
                (docs/protocol.md §4). Default ``EnvPolicy(inherit="all")``: the server's
                environment except names containing KEY, SECRET or TOKEN; pass
                ``EnvPolicy(inherit="none")`` for exactly ``env``, or
                ``EnvPolicy(inherit="all", ignore_default_excludes=True)`` for everything.
            sandbox: the sandbox intent (see :mod:`exec_server.client.sandbox`).
            pty_size: (rows, cols) of the terminal.
            process_id: defaults to a fresh unique id.
            text, encoding, errors: make :attr:`Process.stdout` / :attr:`Process.stderr`
                yield ``str`` (``encoding`` default UTF-8).
            on_stdout, on_stderr: called with each chunk of that stream as it arrives (``str``
                with ``text``; a tty's output is stdout); the chunks are not buffered, and
                :meth:`Process.wait` still reports the exit.

        Raises:
            TypeError: ``argv`` is a string.
            ProgramNotFound: ``argv[0]`` does not exist (a :class:`FileNotFoundError`).
            CwdNotFound: ``cwd`` does not exist (a :class:`FileNotFoundError`).
            RemoteError: the server refused otherwise (duplicate id, quota, sandbox, ...).
        """
        argv = argv_list(argv)
        if process_id is None:
            process_id = self._new_process_id()
        if process_id in self._feeds:
            raise ValueError(f"process {process_id} is already known to this client")
        if cwd is None:
            info = self.environment_info
            cwd = info.cwd if info is not None else "/"
        params = StartParams(
            process_id=ProcessId(process_id),
            argv=list(argv),
            cwd=to_uri(cwd),
            env=dict(env or {}),
            tty=tty,
            pipe_stdin=pipe_stdin,
            arg0=arg0,
            env_policy=env_policy if env_policy is not None else EnvPolicy(inherit="all"),
            sandbox=sandbox,
            pty_size=PtySize(rows=pty_size[0], cols=pty_size[1]) if pty_size else None,
        )
        # Registered first: its notifications may race the response (the reference's do).
        feed = EventFeed(self._host, process_id)
        self._feeds[process_id] = feed
        self._args[process_id] = list(argv)
        call = self._submit("process/start", encode_json(params), retry=True)
        sandbox_type: str | None = None
        try:
            raw = await self._wait(call, self.request_timeout)
        except RemoteError as exc:
            retried = call.attempts > 1
            if not (retried and is_process_exists(exc.code, exc.message, process_id)):
                self._forget(process_id, feed)
                raise await self._start_error(exc, params) from None
            # Our first attempt reached the server; its response was lost in a drop.
        except BaseException:
            self._forget(process_id, feed)
            raise
        else:
            sandbox_type = decode_result(raw, StartResult).sandbox_type
        decode = (encoding or "utf-8", errors or "strict")
        proc: Process[Any] = Process(
            self._host,
            feed,
            args=argv,
            has_stdin=tty or pipe_stdin,
            text=decode if text or encoding is not None else None,
            on_stdout=on_stdout,
            on_stderr=on_stderr,
        )
        proc.sandbox_type = sandbox_type
        return proc

    async def _start_error(self, exc: RemoteError, params: StartParams) -> RemoteError:
        """The exception for a refused start: which path was missing, if one was."""
        if not params.argv:
            return exc
        cwd = native(params.cwd)
        reason = exc.data.get("reason") if exc.data is not None else None
        if (
            reason is None
            and exc.code == ErrorCode.INTERNAL_ERROR
            and exc.message.endswith("(os error 2)")
        ):
            # A server without error data (the reference): look at the cwd ourselves.
            with contextlib.suppress(Exception):
                if not await self.files.exists(cwd):
                    reason = "cwdNotFound"
        return translate_start_error(exc, params.argv[0], cwd, reason)

    @overload
    async def run(
        self,
        argv: Argv,
        *,
        input: bytes | None = None,
        text: Literal[False] = False,
        encoding: None = None,
        **options: Unpack[RunOptions],
    ) -> subprocess.CompletedProcess[bytes]: ...

    @overload
    async def run(
        self,
        argv: Argv,
        *,
        input: str | bytes | None = None,
        text: Literal[True],
        encoding: str | None = None,
        **options: Unpack[RunOptions],
    ) -> subprocess.CompletedProcess[str]: ...

    @overload
    async def run(
        self,
        argv: Argv,
        *,
        input: str | bytes | None = None,
        text: bool = False,
        encoding: str,
        **options: Unpack[RunOptions],
    ) -> subprocess.CompletedProcess[str]: ...

    async def run(
        self,
        argv: Argv,
        *,
        cwd: RemotePath | None = None,
        input: str | bytes | None = None,
        timeout: float | None = None,
        check: bool = False,
        env: Mapping[str, str] | None = None,
        env_policy: EnvPolicy | None = None,
        sandbox: SandboxIntent | None = None,
        tty: bool = False,
        text: bool = False,
        encoding: str | None = None,
        errors: str | None = None,
    ) -> subprocess.CompletedProcess[Any]:
        """Run a command to its end and capture its output, like :func:`subprocess.run`.

        Args:
            argv, cwd, env, env_policy, sandbox, tty: as :meth:`start`.
            input: written to stdin, which is then closed (without it stdin is /dev/null).
            timeout: seconds for the whole run; then the process tree is killed and
                :class:`TimeoutExpired` raised.
            check: raise :class:`subprocess.CalledProcessError` for a non-zero exit code.
            text, encoding, errors: decode stdout and stderr (and encode a ``str`` input).

        Returns:
            ``CompletedProcess(argv, returncode, stdout, stderr)``; a tty's output counts as
            stdout; returncode is 128+N when the process was killed by signal N.

        Raises:
            TimeoutExpired: ``timeout`` passed (the tree was killed); also a TimeoutError.
            subprocess.CalledProcessError: ``check`` and a non-zero exit code.
            SandboxDenied: the server reported that the sandbox probably caused the failure.
            ProgramNotFound, CwdNotFound, RemoteError: the server refused the start.
            ConnectionLost, SessionLost: the connection could not be recovered.

        Cancelling the awaiting task kills the remote process tree before the cancellation
        propagates.
        """
        args, data, decode = _run.prepare(argv, input, text, encoding, errors)
        proc = await self._start_for_run(
            args,
            cwd=cwd,
            env=env,
            env_policy=env_policy,
            sandbox=sandbox,
            tty=tty,
            pipe_stdin=data is not None and not tty,
        )
        return await _run.finish(
            proc, args, input=data, timeout=timeout, check=check, encoding=decode, errors=errors
        )

    def _new_process_id(self) -> str:
        self._counter += 1
        return f"p-{self._ids}-{self._counter}"

    async def _start_for_run(
        self, argv: Argv, *, process_id: str | None = None, **kwargs: Any
    ) -> Process[bytes]:
        """``start`` for ``run``: cancelled while the request is out, the process may have
        started on the server all the same, so it is killed by its id."""
        process_id = process_id or self._new_process_id()
        try:
            proc: Process[bytes] = await self.start(argv, process_id=process_id, **kwargs)
            return proc
        except asyncio.CancelledError:
            await self._kill_by_id(process_id)
            raise

    async def _kill_by_id(self, process_id: str) -> None:
        """Kill ``process_id``'s tree if the server has it; never raises. A connection's
        requests are handled in order, so this comes after a start sent before it."""
        with contextlib.suppress(Exception):
            async with asyncio.timeout(_run.KILL_GRACE):
                await self.call(
                    "process/terminate", TerminateParams(process_id=ProcessId(process_id))
                )

    async def shell(
        self,
        *,
        cwd: RemotePath | None = None,
        env: Mapping[str, str] | None = None,
        env_policy: EnvPolicy | None = None,
        sandbox: SandboxIntent | None = None,
    ) -> Shell:
        """A persistent bash: ``await sh.run("cd src && make", timeout=60)`` returns output
        and exit status; ``cd`` and exported variables persist between runs (see
        :mod:`exec_server.client._shell` for how, and why pipes rather than a pty).
        Use as ``async with await client.shell() as sh:``."""
        return await Shell.open(self, cwd=cwd, env=env, env_policy=env_policy, sandbox=sandbox)

    def _capability(self, name: str) -> bool:
        info = self.environment_info
        return info is not None and info.capabilities.get(name, False)

    async def processes(self) -> list[ProcessInfo]:
        """The session's processes, in start order, also those started before a resume by
        another client (``process/list`` [ours]); pass an id to :meth:`attach` to read one.

        Against a server without the ``processList`` capability (the reference) this lists
        the processes this client knows of.
        """
        if self._capability("processList"):
            result = await self._request("process/list", None, ListResult)
            return result.processes
        return [
            ProcessInfo(
                process_id=feed.process_id,
                argv=list(self._args.get(process_id, ())),
                tty=False,
                running=feed.known_exit is None,
                exit_code=None if feed.known_exit is None else feed.known_exit.exit_code,
                closed=feed.closed,
            )
            for process_id, feed in self._feeds.items()
        ]

    def attach(self, process_id: str, *, after_seq: int = 0) -> Process[bytes]:
        """A handle for a process started earlier in this session (e.g. by a client that ran
        before this one resumed the session); its events after ``after_seq`` are fetched."""
        if process_id in self._feeds:
            raise ValueError(f"process {process_id} is already known to this client")
        self._check_usable()
        feed = EventFeed(self._host, process_id, after_seq=after_seq)
        self._feeds[process_id] = feed
        feed.ensure_catch_up()
        return Process(self._host, feed)

    def _forget(self, process_id: str, feed: object) -> None:
        if self._feeds.get(process_id) is feed:
            del self._feeds[process_id]
            self._args.pop(process_id, None)

    # ------------------------------------------------------------------ inbound

    def _on_message(self, conn: WsConnection, data: bytes) -> None:
        if conn is not self._conn:
            return
        try:
            msg = decode_server_message(data)
        except msgspec.DecodeError:
            log.warning("undecodable message from the server: %.200r", data)
            return
        if not isinstance(msg.method, UnsetType):
            if isinstance(msg.id, UnsetType):
                self._on_notification(msg.method, msg.params)
            return
        call = self._calls.resolve(msg.id)
        if call is None:
            if msg.id == -1 and not isinstance(msg.error, UnsetType):
                log.warning("server could not parse a request: %s", msg.error.message)
            return
        fut = call.waiter
        if call is self._init_call:
            self._on_resume_answer(msg)
        if fut.done():
            return
        if isinstance(msg.error, UnsetType):
            fut.set_result(msg.result)
        elif is_session_taken_over(msg.error.message):
            # Another connection resumed our session; the close (4000) follows.
            self._give_up(_taken_over(self.session_id, msg.error.message))
            if not fut.done():
                fut.set_exception(self.failure or _taken_over(self.session_id, ""))
        else:
            detail = msg.error.data
            fut.set_exception(
                RemoteError(
                    msg.error.code,
                    msg.error.message,
                    detail if isinstance(detail, dict) else None,
                )
            )

    def _on_notification(self, method: str, params: msgspec.Raw) -> None:
        try:
            if method == "process/output":
                out = decode_notification(params, ProcessOutputNotification)
                feed = self._feeds.get(out.process_id)
                if feed is not None:
                    feed.push(OutputEvent(out.seq, out.stream, pybase64.b64decode(out.chunk)))
            elif method == "process/exited":
                ex = decode_notification(params, ProcessExitedNotification)
                feed = self._feeds.get(ex.process_id)
                if feed is not None:
                    feed.push(
                        ExitEvent(
                            ex.seq, ex.exit_code, ex.sandbox_denied, ex.signal, ex.resource_usage
                        )
                    )
            elif method == "process/closed":
                cl = decode_notification(params, ProcessClosedNotification)
                feed = self._feeds.get(cl.process_id)
                if feed is not None:
                    feed.push(ClosedEvent(cl.seq))
            else:
                decoded = decode_json(params) if params else None
                for listener in list(self._listeners.get(method, ())):
                    listener(decoded)
                if self.on_notification is not None:
                    self.on_notification(method, decoded)
        except (msgspec.DecodeError, ValueError) as exc:
            log.warning("bad %s notification from the server: %s", method, exc)

    # ------------------------------------------------------------------ drops and recovery

    def _on_close(self, conn: WsConnection, why: str) -> None:
        if conn is not self._conn:
            return
        self._conn = None
        init = self._init_call
        for call in self._calls.connection_lost(self._generation):
            if call is init:
                continue
            if not call.waiter.done():
                call.waiter.set_exception(
                    ConnectionLost(
                        f"connection lost before the response to {call.method} arrived; it "
                        f"may or may not have taken effect ({why})"
                    )
                )
        if init is not None:
            self._init_call = None
            if not init.waiter.done():
                init.waiter.set_exception(ConnectionError(why))
                _retrieve(init.waiter)
        if not self._ready or self.state in (ClientState.FAILED, ClientState.CLOSED):
            return
        if conn.close_code == CloseCode.SESSION_TAKEN_OVER:
            self._give_up(_taken_over(self.session_id, why))
            return
        if not self._resumable:
            self._give_up(ConnectionLost(f"connection to {self.url} lost ({why})"))
            return
        if self.state is ClientState.CONNECTED:
            log.info("connection to %s lost (%s): recovering", self.url, why)
            self.state = transition(self.state, ClientEvent.DROP)
            for feed in list(self._feeds.values()):
                feed.ensure_catch_up()
            self._wake_drop_waiters()
            self._recovery = asyncio.ensure_future(self._recover(why))

    async def _recover(self, why: str) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.reconnect_deadline
        self._backoff.reset()
        last = why
        while self.state is ClientState.RECOVERING:
            delay = self._backoff.next_delay()
            if loop.time() + delay >= deadline:
                self._give_up(
                    ConnectionLost(
                        f"could not reconnect to {self.url} within {self.reconnect_deadline} s "
                        f"(last error: {last})"
                    )
                )
                return
            if delay:
                await asyncio.sleep(delay)
            budget = min(self.connect_timeout, deadline - loop.time())
            try:
                async with asyncio.timeout(budget):
                    conn = await self._open()
            except HandshakeRejected as exc:
                if exc.status in (401, 403):
                    self._give_up(
                        ConnectionLost(f"{self.url} rejected the credentials on reconnect: {exc}")
                    )
                    return
                last = str(exc)
                continue
            except (OSError, TimeoutError) as exc:
                last = _describe(exc)
                continue
            if self.state is not ClientState.RECOVERING:
                conn.abort()
                return
            self._generation += 1
            self._conn = conn
            params = encode_json(
                InitializeParams(client_name=self.client_name, resume_session_id=self.session_id)
            )
            fut: asyncio.Future[msgspec.Raw] = loop.create_future()
            init = self._calls.add("initialize", params, fut, retry=False)
            self._init_call = init
            # One pipelined batch: the server handles them in order, and if the resume
            # fails the client gives up before it looks at any later answer.
            frames = [self._calls.send(init, self._generation), INITIALIZED]
            frames += self._calls.flush(self._generation)
            with contextlib.suppress(ConnectionError):
                conn.send_many(frames)
            try:
                async with asyncio.timeout(min(self.connect_timeout, deadline - loop.time())):
                    await fut
            except (ConnectionError, TimeoutError, RemoteError) as exc:
                _retrieve(fut)
                if self.state is not ClientState.RECOVERING:
                    return
                last = _describe(exc)
                if self._conn is conn:
                    conn.abort()
                continue
            return

    def _on_resume_answer(self, msg: ServerMessage) -> None:
        """The answer to a resuming ``initialize``; handled before any later frame."""
        self._init_call = None
        if not isinstance(msg.error, UnsetType):
            err = msg.error
            if is_unknown_session(err.code, err.message):
                self._give_up(
                    SessionLost(
                        f"session {_short(self.session_id)} is gone (expired or unknown to the "
                        f"server): {_redact(err.message, self.session_id)}"
                    )
                )
            else:
                self._give_up(
                    ConnectionLost(
                        "the server refused to resume the session: "
                        + _redact(err.message, self.session_id)
                    )
                )
            return
        self.state = transition(self.state, ClientEvent.RESUMED)
        self.reconnects += 1
        self._backoff.reset()
        log.info("session %s resumed", _short(self.session_id))
        waiters, self._resumed_waiters = self._resumed_waiters, []
        for waiter in waiters:
            if not waiter.done():
                waiter.set_result(None)

    def _give_up(self, exc: ConnectionLost) -> None:
        if self.state in (ClientState.FAILED, ClientState.CLOSED):
            return
        log.warning("client failed: %s", exc)
        self.state = transition(self.state, ClientEvent.GIVE_UP)
        self.failure = exc
        self._fail_everything(exc)

    def _fail_everything(self, exc: ConnectionLost) -> None:
        self._init_call = None
        for call in self._calls.drain():
            if not call.waiter.done():
                call.waiter.set_exception(exc)
                if call.method == "initialize":
                    _retrieve(call.waiter)
        for feed in list(self._feeds.values()):
            feed.fail(exc)
        self._wake_drop_waiters()
        for waiter in self._resumed_waiters:
            if not waiter.done():
                waiter.set_exception(exc)
                _retrieve(waiter)
        self._resumed_waiters = []
        conn, self._conn = self._conn, None
        if conn is not None:
            conn.abort()

    async def wait_connected(self) -> None:
        """Wait until the client is CONNECTED (at once if it is). Recovery is bounded by
        ``reconnect_deadline``, so this is too.

        Raises:
            ConnectionLost, SessionLost: recovery failed (or the client is closed).
        """
        self._check_usable()
        if self.state is ClientState.CONNECTED:
            return
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._resumed_waiters.append(fut)
        await fut

    def drop_connection(self) -> None:
        """Abort the current TCP connection (for tests and benchmarks): recovery starts."""
        if self._conn is not None:
            self._conn.abort()

    # ------------------------------------------------------------------ close

    async def aclose(self) -> None:
        """Close the connection. The server keeps the session's processes running until its
        TTL passes (resume with ``connect(url, resume_session_id=client.session_id)``);
        pending and later operations raise :class:`ConnectionLost`."""
        if self.state in (ClientState.CLOSED, ClientState.FAILED):
            return
        self.state = transition(self.state, ClientEvent.CLOSE)
        conn, self._conn = self._conn, None
        self._fail_everything(ConnectionLost("the client is closed"))
        if self._recovery is not None and not self._recovery.done():
            self._recovery.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._recovery
        for feed in self._feeds.values():
            feed.cancel_catch_up()
        if conn is not None:
            conn.close(1000, "client closed")
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(2.0):
                    await conn.lost


class _Host:
    """The :class:`ProcessHost` a client's processes see (the client's request machinery)."""

    __slots__ = ("_client",)

    def __init__(self, client: Client) -> None:
        self._client = client

    @property
    def read_page_bytes(self) -> int:
        return self._client.read_page_bytes

    @property
    def failure(self) -> ConnectionLost | None:
        return self._client.failure

    @property
    def sandbox_denied_handler(self) -> SandboxDeniedHandler | None:
        return self._client.sandbox_denied_handler

    def capability(self, name: str) -> bool:
        return self._client._capability(name)

    @property
    def max_buffered_output(self) -> int:
        return self._client.max_buffered_output

    async def request(
        self, method: str, params: Any, result_type: type[T], *, retry: bool = True
    ) -> T:
        return await self._client._request(method, params, result_type, retry=retry)

    def release(self, process_id: str, feed: object) -> None:
        self._client._forget(process_id, feed)


def _taken_over(session_id: str, why: str) -> SessionLost:
    return SessionLost(f"session {_short(session_id)} was resumed by another connection ({why})")


SESSION_ID_SHOWN = 8
"""Characters of a session id shown in messages and logs: the id is the bearer secret that
resumes a session (as in the server's logs)."""


def _short(session_id: str) -> str:
    return f"{session_id[:SESSION_ID_SHOWN]}..." if session_id else "-"


def _redact(message: str, session_id: str) -> str:
    return message.replace(session_id, _short(session_id)) if session_id else message


def check_token(token: str | None) -> None:
    """Refuse a bearer token that cannot go in an HTTP header, without echoing it.

    Raises:
        ValueError: it has whitespace or control characters (e.g. the trailing newline of a
            token file) or non-ASCII characters, or it is empty.
    """
    if token is None:
        return
    if not token:
        raise ValueError("the token is empty")
    if token != token.strip():
        raise ValueError(
            "the token has leading or trailing whitespace (a newline read from a token "
            "file?): strip it"
        )
    if not token.isascii() or not token.isprintable() or any(c.isspace() for c in token):
        raise ValueError(
            "the token has characters a bearer token cannot carry (whitespace, control or "
            "non-ASCII characters)"
        )


def _describe(exc: BaseException) -> str:
    if isinstance(exc, TimeoutError) and not str(exc):
        return "timed out"
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__


class _Connect:
    """``await connect(...)`` or ``async with connect(...) as client``."""

    def __init__(self, client: Client, resume_session_id: str | None) -> None:
        self._client = client
        self._resume = resume_session_id

    def __await__(self) -> Generator[Any, None, Client]:
        return self._go().__await__()

    async def _go(self) -> Client:
        await self._client._connect_first(self._resume)
        return self._client

    async def __aenter__(self) -> Client:
        return await self._go()

    async def __aexit__(self, *exc: object) -> None:
        await self._client.aclose()


def connect(
    url: str,
    *,
    token: str | None = None,
    client_name: str = "exec-server-client",
    resume_session_id: str | None = None,
    reconnect_deadline: float = 30.0,
    connect_timeout: float = 10.0,
    request_timeout: float | None = 120.0,
    backoff: Backoff | None = None,
    ping_interval: float | None = 20.0,
    ping_timeout: float = 20.0,
    read_page_bytes: int = 1 << 20,
    ssl: SSLContext | None = None,
    max_buffered_output: int = MAX_BUFFERED_OUTPUT,
) -> _Connect:
    """Connect to an exec-server and complete the handshake.

    Use as ``client = await connect(url)`` or ``async with connect(url) as client``.

    Args:
        url: ``ws://host:port``, or ``wss://host:port`` for TLS.
        token: sent as ``Authorization: Bearer <token>``.
        client_name: the ``clientName`` of ``initialize``.
        resume_session_id: resume this session instead of creating one.
        reconnect_deadline: after a drop, give up (:class:`ConnectionLost`) when no resume
            succeeded within this many seconds.
        connect_timeout: bound of each connection attempt and handshake.
        request_timeout: bound of each request (a long poll gets its ``waitMs`` on top);
            None waits for as long as the connection lives.
        backoff: delays between reconnect attempts (seed its ``rng`` for determinism).
        ping_interval, ping_timeout: keepalive; a silent connection is dropped after their sum.
        read_page_bytes: ``maxBytes`` of the catch-up reads after a reconnect.
        ssl: TLS settings for a ``wss://`` URL (e.g. a context trusting a private CA);
            default: the system's trusted CAs, host name checked. Only with ``wss://``.
        max_buffered_output: output bytes buffered per process while nobody reads them;
            beyond, the client relies on the server's retention (``--retention-bytes``) and
            reports what it evicted as :class:`OutputLost`.

    Raises:
        ConnectionLost: the server cannot be reached, its certificate is not trusted, or it
            refused the credentials.
        ValueError: ``url`` is not a ws:// or wss:// URL, or ``ssl`` came with ws://.
        SessionLost: ``resume_session_id`` is unknown to the server.
    """
    client = Client(
        url,
        token=token,
        client_name=client_name,
        reconnect_deadline=reconnect_deadline,
        connect_timeout=connect_timeout,
        request_timeout=request_timeout,
        backoff=backoff,
        ping_interval=ping_interval,
        ping_timeout=ping_timeout,
        read_page_bytes=read_page_bytes,
        ssl=ssl,
        max_buffered_output=max_buffered_output,
    )
    return _Connect(client, resume_session_id)
