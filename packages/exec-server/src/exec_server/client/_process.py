"""A handle for one remote process, in the spirit of ``asyncio.subprocess.Process``.

Events (:class:`OutputEvent`, then :class:`ExitEvent`, possibly more output from background
children) are delivered exactly once and in seq order; iteration ends after the server's
``process/closed``. They come from pushed notifications; a ``process/read`` fills any gap
(after a reconnect, or if a push is missing). Delivered events are buffered until iterated.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import secrets
import signal as _signal
from collections import deque
from typing import TYPE_CHECKING

import pybase64
from exec_server_protocol import EmptyResult
from exec_server_protocol.errors import is_unknown_process
from exec_server_protocol.process import (
    ReadParams,
    ReadResult,
    ResizeParams,
    SignalName,
    SignalParams,
    TerminateParams,
    TerminateResult,
    WriteParams,
    WriteResult,
)

from ..exceptions import (
    ConnectionLost,
    ExecServerError,
    OutputLost,
    RemoteError,
    SandboxDenied,
    StdinClosed,
)
from ._events import ClosedEvent, Event, ExitEvent, LostMarker, OutputEvent
from ._reassembly import Released, SeqReassembler

if TYPE_CHECKING:
    from ._client import Client

__all__ = ["Process"]

log = logging.getLogger("exec_server.client")

TAIL_BYTES = 4096
"""Output kept for :class:`SandboxDenied`'s ``output_tail``."""

_SIGNALS: dict[int, SignalName] = {
    _signal.SIGINT: "interrupt",
    _signal.SIGTERM: "terminate",
    _signal.SIGKILL: "kill",
    _signal.SIGHUP: "hangup",
    _signal.SIGQUIT: "quit",
    _signal.SIGUSR1: "user1",
    _signal.SIGUSR2: "user2",
}
_STARTING_RETRIES = 50
MIN_READ_PAGE = 1024


class Process:
    """A process running on the server. Made by :meth:`Client.start` or :meth:`Client.attach`.

    Attributes:
        process_id: its id in the session.
        sandbox_type: what ``process/start`` answered (None for an attached process, or when
            the start response was lost in a reconnect).
        returncode: the exit code once the exit event was delivered, else None.
        exit: the exit event, once delivered.
    """

    def __init__(self, client: Client, process_id: str, *, after_seq: int = 0) -> None:
        self._client = client
        self.process_id = process_id
        self.sandbox_type: str | None = None
        self.returncode: int | None = None
        self.exit: ExitEvent | None = None
        self._reasm = SeqReassembler()
        self._reasm.delivered = after_seq
        self._events: deque[OutputEvent | ExitEvent | ClosedEvent | LostMarker] = deque()
        self._ended = False
        self._failure: ExecServerError | None = None
        self._waiters: list[asyncio.Future[None]] = []
        self._catch_up: asyncio.Task[None] | None = None
        self._tail = bytearray()
        self._write_prefix = secrets.token_hex(4)
        self._write_ids = itertools.count(1)

    def __repr__(self) -> str:
        return f"<Process {self.process_id} returncode={self.returncode}>"

    @property
    def closed(self) -> bool:
        """Whether the server's last event (``process/closed``) was delivered."""
        return self._reasm.closed

    @property
    def last_seq(self) -> int:
        """The highest seq delivered (pass it to ``attach(after_seq=...)`` to continue)."""
        return self._reasm.delivered

    # ------------------------------------------------------------------ events in

    def _push(self, event: OutputEvent | ExitEvent | ClosedEvent) -> None:
        self._deliver(self._reasm.push(event))
        if self._reasm.has_gap:
            self._ensure_catch_up()

    def _deliver(self, released: list[Released]) -> None:
        if not released:
            return
        for event in released:
            if isinstance(event, OutputEvent):
                tail = self._tail
                tail += event.data
                if len(tail) > 2 * TAIL_BYTES:
                    del tail[:-TAIL_BYTES]
            elif isinstance(event, ExitEvent):
                self.exit = event
                self.returncode = event.exit_code
            self._events.append(event)
        if self._reasm.closed:
            self._client._forget(self)
        self._wake()

    def _wake(self) -> None:
        waiters, self._waiters = self._waiters, []
        for fut in waiters:
            if not fut.done():
                fut.set_result(None)

    async def _changed(self) -> None:
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append(fut)
        try:
            await fut
        finally:
            with contextlib.suppress(ValueError):
                self._waiters.remove(fut)

    def _fail(self, exc: ExecServerError) -> None:
        if self._failure is None and not self._reasm.closed:
            self._failure = exc
        self._cancel_catch_up()
        self._wake()

    def _ensure_catch_up(self) -> None:
        if self._reasm.closed or self._failure is not None:
            return
        if self._catch_up is None or self._catch_up.done():
            self._catch_up = asyncio.ensure_future(self._run_catch_up())

    def _cancel_catch_up(self) -> None:
        task = self._catch_up
        if task is not None and not task.done() and task is not asyncio.current_task():
            task.cancel()

    async def _run_catch_up(self) -> None:
        """Read until every event the server has is delivered (or the client failed).

        A read whose connection drops is not re-sent as is: the next one asks for a quarter of
        the bytes, so a link that keeps dropping still lets a page through (the server always
        returns at least one chunk); each complete page doubles the size again.
        """
        client = self._client
        page = client.read_page_bytes
        try:
            while not self._reasm.closed:
                after = self._reasm.delivered
                params = ReadParams(
                    process_id=self.process_id, after_seq=after, max_bytes=page, wait_ms=0
                )
                try:
                    result = await client._request("process/read", params, ReadResult, retry=False)
                except ConnectionLost:
                    if client.failure is not None or self._failure is not None:
                        return  # the client failed: every process was told already
                    page = max(MIN_READ_PAGE, page // 4)
                    continue
                page = min(client.read_page_bytes, page * 2)
                released, complete = self._reasm.feed_read(after, result)
                self._deliver(released)
                if complete and (not self._reasm.has_gap or not released):
                    return
        except ConnectionLost:
            return
        except RemoteError as exc:
            if is_unknown_process(exc.code, exc.message):
                exc = RemoteError(
                    exc.code,
                    f"process {self.process_id} is gone from the server (its retention "
                    f"ended) before events after seq {self._reasm.delivered} were read",
                )
            self._fail(exc)
        except TimeoutError as exc:
            self._fail(ConnectionLost(f"catch-up read of {self.process_id} failed: {exc}"))

    # ------------------------------------------------------------------ events out

    def __aiter__(self) -> Process:
        return self

    async def __anext__(self) -> Event:
        """The next event, in seq order.

        Raises:
            StopAsyncIteration: after the last event.
            OutputLost: output was evicted before it could be read (raised once, in its place
                in the stream; iterating again continues after the lost range).
            ConnectionLost, SessionLost: recovery failed before the process closed.
        """
        while True:
            if self._events:
                event = self._events.popleft()
                if isinstance(event, ClosedEvent):
                    self._ended = True
                    raise StopAsyncIteration
                if isinstance(event, LostMarker):
                    raise OutputLost(self.process_id, event.first_seq, event.retained_from_seq)
                return event
            if self._ended:
                raise StopAsyncIteration
            if self._failure is not None:
                raise self._failure
            await self._changed()

    async def wait(self, *, check_sandbox: bool = True) -> int:
        """Wait for the exit and return its code (128+N when killed by signal N).

        Raises:
            SandboxDenied: the server said the sandbox probably caused the failure (unless
                ``check_sandbox`` is False, or the client's ``sandbox_denied_handler``
                decides otherwise).
            ConnectionLost, SessionLost: recovery failed before the exit was known.
        """
        while self.exit is None:
            if self._failure is not None and not isinstance(self._failure, OutputLost):
                raise self._failure
            await self._changed()
        exit_event = self.exit
        if check_sandbox and exit_event.sandbox_denied:
            denied = SandboxDenied(exit_event.exit_code, bytes(self._tail[-TAIL_BYTES:]))
            handler = self._client.sandbox_denied_handler
            if handler is None:
                raise denied
            return await handler(self, denied)
        return exit_event.exit_code

    async def wait_closed(self) -> None:
        """Wait until every event was delivered (not consumed) — output of background
        children included."""
        while not self._reasm.closed:
            if self._failure is not None:
                raise self._failure
            await self._changed()

    async def communicate(self, input: bytes | None = None) -> tuple[bytes, bytes]:
        """Write ``input`` (then close stdin), read every event to the end, wait for the exit.

        Returns:
            (stdout, stderr); a tty's output counts as stdout.
        """
        if input is not None:
            await self.write(input, close_stdin=True)
        out = bytearray()
        err = bytearray()
        async for event in self:
            if isinstance(event, OutputEvent):
                (err if event.stream == "stderr" else out).extend(event.data)
        await self.wait(check_sandbox=False)
        return bytes(out), bytes(err)

    # ------------------------------------------------------------------ control

    async def write(self, data: bytes, *, close_stdin: bool = False) -> None:
        """Write to the child's stdin (``process/write``); with ``close_stdin`` close it after.

        Each call gets a fresh writeId; a retry after a reconnect reuses it, so the bytes
        reach the child exactly once. Concurrent writes are applied in call order.

        Raises:
            StdinClosed: the process has no stdin pipe, or it was closed.
        """
        status = "starting"
        for attempt in range(_STARTING_RETRIES):
            write_id = f"{self._write_prefix}-{next(self._write_ids)}"
            params = WriteParams(
                process_id=self.process_id,
                chunk=pybase64.b64encode_as_string(data),
                write_id=write_id,
                close_stdin=close_stdin,
            )
            result = await self._client._request("process/write", params, WriteResult)
            status = result.status
            if status != "starting":
                break
            await asyncio.sleep(min(0.5, 0.005 * 2**attempt))  # spawn not finished yet
        if status == "accepted" or (status == "stdinClosed" and close_stdin and not data):
            return
        if status == "unknownProcess":
            raise StdinClosed(f"process {self.process_id} is unknown to the server")
        raise StdinClosed(f"stdin of process {self.process_id} is closed ({status})")

    async def close_stdin(self) -> None:
        """Close the child's stdin (EOF); a no-op if it is closed already."""
        await self.write(b"", close_stdin=True)

    async def send_signal(self, sig: SignalName | int) -> None:
        """Signal the process group: a wire name (``"interrupt"``, ``"terminate"``, ``"kill"``,
        ``"hangup"``, ``"quit"``, ``"user1"``, ``"user2"``) or a ``signal.SIG*`` number.
        A signal whose response was lost in a reconnect is sent again."""
        if isinstance(sig, int):
            try:
                name = _SIGNALS[sig]
            except KeyError:
                raise ValueError(f"signal {sig} cannot be sent over the protocol") from None
        else:
            name = sig
        await self._client._request(
            "process/signal", SignalParams(process_id=self.process_id, signal=name), EmptyResult
        )

    async def terminate(self) -> bool:
        """Kill the whole process tree at once (``process/terminate``: SIGKILL).

        Returns:
            Whether it was still running.
        """
        result = await self._client._request(
            "process/terminate", TerminateParams(process_id=self.process_id), TerminateResult
        )
        return result.running

    kill = terminate

    async def resize(self, rows: int, cols: int) -> None:
        """Resize the terminal of a tty process."""
        await self._client._request(
            "process/resize",
            ResizeParams(process_id=self.process_id, rows=rows, cols=cols),
            EmptyResult,
        )
