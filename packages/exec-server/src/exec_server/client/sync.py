"""A synchronous facade over the asyncio client, for scripts (issue 3).

The asyncio API is the primary one; this module adds no protocol behaviour. Each
:class:`SyncClient` owns one event loop, run by a private daemon thread, and every method hands
a coroutine to that loop (``asyncio.run_coroutine_threadsafe``) and blocks on its result under
a bound. Exceptions raised on the async side reach the caller unchanged (the same classes:
:class:`RemoteError`, :class:`ConnectionLost`, :class:`StdinClosed`, ...). :meth:`close`
closes the connection and stops the thread; a call blocked in another thread then raises
:class:`ConnectionLost`.

Quickstart::

    from exec_server.client import SyncClient

    with SyncClient.connect("ws://127.0.0.1:8765") as client:
        done = client.run(["sh", "-c", "echo hi; exit 3"], cwd="/tmp")
        done.returncode, done.stdout  # 3, b"hi\\n"
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import itertools
import subprocess
import threading
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Literal, TypeVar, Unpack, overload

from exec_server_protocol.process import EnvPolicy, SignalName
from exec_server_protocol.sandbox import SandboxIntent

from ..exceptions import ConnectionLost
from . import _run
from ._client import Client, connect
from ._events import Event
from ._paths import Argv, RemotePath
from ._process import Process
from ._signatures import RunOptions
from .files import SyncFiles

__all__ = ["CALL_TIMEOUT", "TERMINATE_GRACE", "SyncClient", "SyncProcess"]

T = TypeVar("T")

CALL_TIMEOUT = 180.0
"""Default bound of a call that takes no ``timeout``: connecting, starting, writing,
signalling, closing (each is bounded on the async side too, by the client's timeouts)."""

TERMINATE_GRACE = 10.0
"""How long :meth:`SyncClient.run` waits for the exit of a process it killed at its timeout."""

_LOOP_MARGIN = 5.0
"""How much longer the calling thread waits than the bound the loop enforces, so that the
loop's own TimeoutError (with its message) wins; only a stuck loop runs into this one."""

_thread_ids = itertools.count(1)


class SyncClient:
    """A blocking client: :class:`Client` on an event loop in a private thread.

    Make one with :meth:`connect`; use it as a context manager or call :meth:`close`. Its
    methods may be called from any thread.

    Attributes:
        call_timeout: bound of every call that takes no ``timeout`` of its own.
    """

    def __init__(self, *, call_timeout: float = CALL_TIMEOUT) -> None:
        """Start the loop's thread (not connected yet: use :meth:`connect`)."""
        self.call_timeout = call_timeout
        self._client: Client | None = None
        self._closed = False
        self._close_lock = threading.Lock()
        self._pending: set[concurrent.futures.Future[Any]] = set()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=_run_loop,
            args=(self._loop,),
            name=f"exec-server-sync-{next(_thread_ids)}",
            daemon=True,  # a client that was never closed must not keep the interpreter alive
        )
        self._thread.start()

    @classmethod
    def connect(
        cls,
        url: str,
        *,
        token: str | None = None,
        call_timeout: float = CALL_TIMEOUT,
        **kwargs: Any,
    ) -> SyncClient:
        """Connect to an exec-server and complete the handshake.

        Args:
            url: ``ws://host:port``, or ``wss://host:port`` for TLS.
            token: sent as ``Authorization: Bearer <token>``.
            call_timeout: see :attr:`call_timeout`.
            **kwargs: passed on to :func:`exec_server.client.connect` (``ssl``,
                ``connect_timeout``, ``request_timeout``, ``reconnect_deadline``,
                ``resume_session_id``, ...).

        Raises:
            ConnectionLost: the server cannot be reached or refused the credentials (no
                thread is left behind).
            SessionLost: ``resume_session_id`` is unknown to the server.
        """
        self = cls(call_timeout=call_timeout)

        async def open_client() -> Client:
            return await connect(url, token=token, **kwargs)

        try:
            self._client = self._call(open_client, call_timeout, f"connecting to {url}")
        except BaseException:
            self._closed = True
            self._stop_loop()
            raise
        return self

    def __enter__(self) -> SyncClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<SyncClient {self._client!r}>"

    @property
    def session_id(self) -> str:
        """The server-side session (pass it to ``connect(url, resume_session_id=...)``)."""
        return self._connected().session_id

    @property
    def files(self) -> SyncFiles:
        """The server's file system (see :class:`exec_server.client.files.SyncFiles`)."""
        return SyncFiles(self)

    def _connected(self) -> Client:
        if self._client is None:
            raise ConnectionLost("the client is not connected")
        return self._client

    # ------------------------------------------------------------------ processes

    @overload
    def run(
        self,
        argv: Argv,
        *,
        input: bytes | None = None,
        text: Literal[False] = False,
        encoding: None = None,
        **options: Unpack[RunOptions],
    ) -> subprocess.CompletedProcess[bytes]: ...

    @overload
    def run(
        self,
        argv: Argv,
        *,
        input: str | bytes | None = None,
        text: Literal[True],
        encoding: str | None = None,
        **options: Unpack[RunOptions],
    ) -> subprocess.CompletedProcess[str]: ...

    @overload
    def run(
        self,
        argv: Argv,
        *,
        input: str | bytes | None = None,
        text: bool = False,
        encoding: str,
        **options: Unpack[RunOptions],
    ) -> subprocess.CompletedProcess[str]: ...

    def run(
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
        """Run a command to its end, like :func:`subprocess.run` with captured output (see
        :meth:`Client.run` for the arguments, the result and the errors).

        A ``KeyboardInterrupt`` (Ctrl-C) while it runs kills the remote process tree, and
        waits for that, before it propagates: nothing is left running on the server.
        """
        client = self._connected()
        args, data, decode = _run.prepare(argv, input, text, encoding, errors)
        process_id = client._new_process_id()

        async def start() -> Process[Any]:
            return await client._start_for_run(
                args,
                process_id=process_id,
                cwd=cwd,
                env=env,
                env_policy=env_policy,
                sandbox=sandbox,
                tty=tty,
                pipe_stdin=data is not None and not tty,
            )

        try:
            proc = self._call(start, self.call_timeout, f"starting {args!r}")
        except (KeyboardInterrupt, SystemExit):
            # Ctrl-C while the start was out: it may have started on the server anyway.
            with contextlib.suppress(Exception):
                self._call(lambda: client._kill_by_id(process_id), TERMINATE_GRACE, "killing")
            raise

        async def finish() -> subprocess.CompletedProcess[Any]:
            return await _run.finish(
                proc, args, input=data, timeout=timeout, check=check, encoding=decode, errors=errors
            )

        bound = None if timeout is None else timeout + self.call_timeout + TERMINATE_GRACE
        try:
            return self._call(finish, bound, f"running {args!r}")
        except (KeyboardInterrupt, SystemExit):
            # The loop cancels ``finish`` (which kills too); wait here until the tree is dead.
            with contextlib.suppress(Exception):
                self._call(lambda: _run.kill_and_reap(proc), TERMINATE_GRACE, "killing")
            raise

    def start(
        self,
        argv: Argv,
        *,
        cwd: RemotePath | None = None,
        env: Mapping[str, str] | None = None,
        sandbox: SandboxIntent | None = None,
        tty: bool = False,
        **kwargs: Any,
    ) -> SyncProcess:
        """Start a process and return its handle (see :meth:`Client.start` for the arguments;
        pass ``pipe_stdin=True`` to :meth:`SyncProcess.write` to a non-tty process).

        Raises:
            RemoteError: the server refused (bad cwd, missing program, duplicate id, ...).
        """
        client = self._connected()

        async def start() -> Process[Any]:
            proc: Process[Any] = await client.start(
                list(argv), cwd=cwd, env=env, sandbox=sandbox, tty=tty, **kwargs
            )
            return proc

        proc = self._call(start, self.call_timeout, f"starting {argv!r}")
        return SyncProcess(self, proc, list(argv))

    # ------------------------------------------------------------------ close

    def close(self) -> None:
        """Close the connection (as :meth:`Client.aclose`) and stop the loop's thread.

        Calls still blocked in other threads raise :class:`ConnectionLost`. Idempotent.
        """
        if threading.current_thread() is self._thread:
            raise RuntimeError("close() cannot be called from the client's own event loop")
        with self._close_lock:
            if self._closed:
                return
            try:
                if self._client is not None:
                    self._call(self._client.aclose, self.call_timeout, "closing the client")
            finally:
                self._closed = True
                self._stop_loop()

    def _stop_loop(self) -> None:
        if self._thread.is_alive():
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(self.call_timeout)
        # A call submitted while the loop was stopping may never have run: release its caller.
        for fut in list(self._pending):
            with contextlib.suppress(concurrent.futures.InvalidStateError):
                fut.set_exception(ConnectionLost("the client is closed"))

    # ------------------------------------------------------------------ the bridge

    def _call(self, factory: Callable[[], Awaitable[T]], bound: float | None, what: str) -> T:
        """Run ``factory()`` on the loop under ``bound`` seconds and return its result.

        Raises:
            TimeoutError: ``bound`` passed (the coroutine was cancelled).
            ConnectionLost: the client is closed, or was closed while this call waited.
            Whatever the coroutine raised, unchanged.
        """
        if self._closed:
            raise ConnectionLost("the client is closed")
        coro = _bounded(factory, bound, what)
        try:
            fut = asyncio.run_coroutine_threadsafe(coro, self._loop)
        except RuntimeError:  # a concurrent close() closed the loop
            coro.close()
            raise ConnectionLost("the client is closed") from None
        self._pending.add(fut)
        fut.add_done_callback(self._pending.discard)
        outer = None if bound is None else bound + _LOOP_MARGIN
        try:
            done, _ = concurrent.futures.wait([fut], timeout=outer)
        except BaseException:  # KeyboardInterrupt: stop the coroutine too
            fut.cancel()
            raise
        if not done and fut.cancel():
            raise TimeoutError(f"{what}: the event loop did not answer within {outer} s")
        try:
            return fut.result()
        except concurrent.futures.CancelledError:  # the loop stopped under the call
            raise ConnectionLost("the client is closed") from None


class SyncProcess:
    """A process running on the server; made by :meth:`SyncClient.start`.

    Attributes:
        args: the command.
        process_id: its id in the session.
    """

    def __init__(self, owner: SyncClient, proc: Process[Any], args: list[str]) -> None:
        self._owner = owner
        self._proc = proc
        self.args = args
        self.process_id = proc.process_id

    def __repr__(self) -> str:
        return f"<SyncProcess {self.process_id} returncode={self.returncode}>"

    @property
    def returncode(self) -> int | None:
        """The exit code once the exit event was delivered, else None."""
        return self._proc.returncode

    @property
    def sandbox_type(self) -> str | None:
        """What ``process/start`` answered."""
        return self._proc.sandbox_type

    def _request(self, factory: Callable[[], Awaitable[T]], what: str) -> T:
        return self._owner._call(factory, self._owner.call_timeout, f"{what} {self.process_id}")

    def write(self, data: bytes) -> None:
        """Write to stdin; the bytes reach the child exactly once, even across reconnects.

        Raises:
            StdinClosed: the process has no stdin pipe, or it was closed.
        """
        self._request(lambda: self._proc.write(data), "writing to")

    def close_stdin(self) -> None:
        """Close stdin (EOF); a no-op if it is closed already."""
        self._request(self._proc.close_stdin, "closing stdin of")

    def send_signal(self, sig: SignalName | int) -> None:
        """Signal the process group: a wire name (``"interrupt"``, ``"terminate"``, ...) or a
        ``signal.SIG*`` number (see :meth:`Process.send_signal`)."""
        self._request(lambda: self._proc.send_signal(sig), "signalling")

    def terminate(self) -> bool:
        """SIGTERM to the process group (see :meth:`Process.terminate`). Returns whether it
        was still running as far as this client knows."""
        return self._request(self._proc.terminate, "terminating")

    def kill(self) -> bool:
        """SIGKILL the whole process tree. Returns whether it was running."""
        return self._request(self._proc.kill, "killing")

    def resize(self, rows: int, cols: int) -> None:
        """Resize the terminal of a tty process."""
        self._request(lambda: self._proc.resize(rows, cols), "resizing")

    def wait(self, timeout: float | None = None) -> int:
        """Wait for the exit and return its code (128+N when killed by signal N).

        Args:
            timeout: seconds; None waits as long as the process runs and the connection can
                be recovered.

        Raises:
            TimeoutError: ``timeout`` passed (the process keeps running).
            SandboxDenied: the server said the sandbox probably caused the failure.
            ConnectionLost, SessionLost: recovery failed before the exit was known.
        """
        return self._owner._call(self._proc.wait, timeout, f"waiting for {self.process_id}")

    def read(self, timeout: float | None = None) -> Event | None:
        """The next event (:class:`OutputEvent` or :class:`ExitEvent`), in seq order.

        Args:
            timeout: seconds to wait for one; None waits until the next arrives.

        Returns:
            The event, or None once every event was read (after the server's
            ``process/closed``).

        Raises:
            TimeoutError: no event within ``timeout`` (none is lost: read again).
            OutputLost: output was evicted before it could be read (raised once; reading
                again continues after the lost range).
            ConnectionLost, SessionLost: recovery failed before the process closed.
        """

        async def next_event() -> Event | None:
            try:
                return await anext(self._proc)
            except StopAsyncIteration:
                return None

        return self._owner._call(next_event, timeout, f"reading {self.process_id}")


async def _bounded(factory: Callable[[], Awaitable[T]], bound: float | None, what: str) -> T:
    limit = asyncio.timeout(bound)
    try:
        async with limit:
            return await factory()
    except TimeoutError:
        if limit.expired():
            raise TimeoutError(f"{what} did not finish within {bound} s") from None
        raise


def _run_loop(loop: asyncio.AbstractEventLoop) -> None:
    """The thread's body: run the loop until ``stop()``, then tear down as ``asyncio.run``."""
    asyncio.set_event_loop(loop)
    try:
        loop.run_forever()
        tasks = asyncio.all_tasks(loop)
        for task in tasks:
            task.cancel()
        loop.run_until_complete(asyncio.gather(*tasks, return_exceptions=True))
        loop.run_until_complete(loop.shutdown_asyncgens())
        loop.run_until_complete(loop.shutdown_default_executor())
    finally:
        asyncio.set_event_loop(None)
        loop.close()
