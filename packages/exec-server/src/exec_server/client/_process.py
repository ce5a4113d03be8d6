"""A handle for one remote process, in the spirit of ``asyncio.subprocess.Process``.

Events (:class:`OutputEvent`, then :class:`ExitEvent`, possibly more output from background
children) are delivered exactly once and in seq order; iteration ends after the server's
``process/closed``. They come from the process's :class:`~._feed.EventFeed`, which the client
fills. Requests go through the :class:`~._host.ProcessHost` the client implements.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import secrets
import signal as _signal
from collections.abc import Awaitable, Callable

import pybase64
from exec_server_protocol import EmptyResult, WriteId
from exec_server_protocol.process import (
    ResizeParams,
    SignalName,
    SignalParams,
    TerminateParams,
    TerminateResult,
    WriteParams,
    WriteResult,
)

from ..exceptions import OutputLost, SandboxDenied, StdinClosed
from ._events import Event, ExitEvent, OutputEvent
from ._feed import TAIL_BYTES, EventFeed
from ._host import ProcessHost

__all__ = ["TAIL_BYTES", "Process", "SandboxDeniedHandler"]

log = logging.getLogger("exec_server.client")

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


class Process:
    """A process running on the server. Made by :meth:`Client.start` or :meth:`Client.attach`.

    Attributes:
        process_id: its id in the session.
        sandbox_type: what ``process/start`` answered (None for an attached process, or when
            the start response was lost in a reconnect).
        returncode: the exit code once the exit event was delivered, else None.
        exit: the exit event, once delivered.
    """

    def __init__(self, host: ProcessHost, feed: EventFeed) -> None:
        self._host = host
        self._feed = feed
        self.process_id = feed.process_id
        self.sandbox_type: str | None = None
        self._write_prefix = secrets.token_hex(4)
        self._write_ids = itertools.count(1)

    def __repr__(self) -> str:
        return f"<Process {self.process_id} returncode={self.returncode}>"

    @property
    def exit(self) -> ExitEvent | None:
        return self._feed.exit

    @property
    def returncode(self) -> int | None:
        return None if self._feed.exit is None else self._feed.exit.exit_code

    @property
    def closed(self) -> bool:
        """Whether the server's last event (``process/closed``) was delivered."""
        return self._feed.closed

    @property
    def last_seq(self) -> int:
        """The highest seq delivered (pass it to ``attach(after_seq=...)`` to continue)."""
        return self._feed.last_seq

    # ------------------------------------------------------------------ events

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
        return await self._feed.next_event()

    async def wait(self, *, check_sandbox: bool = True) -> int:
        """Wait for the exit and return its code (128+N when killed by signal N).

        Raises:
            SandboxDenied: the server said the sandbox probably caused the failure (unless
                ``check_sandbox`` is False, or the client's ``sandbox_denied_handler``
                decides otherwise).
            ConnectionLost, SessionLost: recovery failed before the exit was known.
        """
        feed = self._feed
        while feed.exit is None:
            if feed.failure is not None and not isinstance(feed.failure, OutputLost):
                raise feed.failure
            await feed.changed()
        exit_event = feed.exit
        if check_sandbox and exit_event.sandbox_denied:
            denied = SandboxDenied(exit_event.exit_code, feed.tail())
            handler = self._host.sandbox_denied_handler
            if handler is None:
                raise denied
            return await handler(self, denied)
        return exit_event.exit_code

    async def wait_closed(self) -> None:
        """Wait until every event was delivered (not consumed) — output of background
        children included."""
        feed = self._feed
        while not feed.closed:
            if feed.failure is not None:
                raise feed.failure
            await feed.changed()

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
                write_id=WriteId(write_id),
                close_stdin=close_stdin,
            )
            result = await self._host.request("process/write", params, WriteResult)
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
        await self._host.request(
            "process/signal", SignalParams(process_id=self.process_id, signal=name), EmptyResult
        )

    async def terminate(self) -> bool:
        """Kill the whole process tree at once (``process/terminate``: SIGKILL).

        Returns:
            Whether it was still running.
        """
        result = await self._host.request(
            "process/terminate", TerminateParams(process_id=self.process_id), TerminateResult
        )
        return result.running

    kill = terminate

    async def resize(self, rows: int, cols: int) -> None:
        """Resize the terminal of a tty process."""
        await self._host.request(
            "process/resize",
            ResizeParams(process_id=self.process_id, rows=rows, cols=cols),
            EmptyResult,
        )


SandboxDeniedHandler = Callable[[Process, SandboxDenied], Awaitable[int]]
"""Called by :meth:`Process.wait` when the server reported ``sandboxDenied``; its result is
returned by ``wait()`` (e.g. the exit code of an approved, unsandboxed retry). Raise to refuse."""
