"""A handle for one remote process, in the spirit of ``asyncio.subprocess.Process``.

Events (:class:`OutputEvent`, then :class:`ExitEvent`, possibly more output from background
children) are delivered exactly once and in seq order; iteration ends after the server's
``process/closed``. They come from the process's :class:`~._feed.EventFeed`, which the client
fills (and which bounds what it buffers: see there). Requests go through the
:class:`~._host.ProcessHost` the client implements. The output streams, callbacks and
``expect`` read the same feed through one :class:`~._streams.OutputDemux`.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import re
import secrets
import signal as _signal
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Generic

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
from ._feed import EventFeed
from ._host import ProcessHost
from ._streams import Expected, OutputDemux, OutputStream, S, expect

__all__ = ["Process", "SandboxDeniedHandler"]

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


class Process(Generic[S]):
    """A process running on the server. Made by :meth:`Client.start` or :meth:`Client.attach`.

    Attributes:
        process_id: its id in the session.
        sandbox_type: what ``process/start`` answered (None for an attached process, or when
            the start response was lost in a reconnect).
        returncode: the exit code once the exit is known, else None.
        exit: the exit event, once delivered.
        args: the command (empty for an attached process whose argv the server did not say).
    """

    def __init__(
        self,
        host: ProcessHost,
        feed: EventFeed,
        *,
        args: Sequence[str] = (),
        has_stdin: bool | None = None,
        text: tuple[str, str] | None = None,
        on_stdout: Callable[[Any], object] | None = None,
        on_stderr: Callable[[Any], object] | None = None,
    ) -> None:
        """Made by the client (a test may pass a host of its own).

        Args:
            host: the client, as its processes use it.
            feed: the process's events.
            args: the command.
            has_stdin: whether it was started with a stdin (a pipe or a tty); None: not known.
            text: ``(encoding, errors)`` to make the streams yield ``str``.
            on_stdout, on_stderr: called with each chunk of that stream (see
                ``Client.start``).
        """
        self._host = host
        self._feed = feed
        self.process_id = feed.process_id
        self.sandbox_type: str | None = None
        self.args = list(args)
        self._has_stdin = has_stdin
        self._text = text
        self._write_prefix = secrets.token_hex(4)
        self._write_ids = itertools.count(1)
        self._demux: OutputDemux | None = None
        self._output_streams: dict[str, OutputStream[S]] = {}
        if on_stdout is not None or on_stderr is not None:
            self._demuxed().set_callbacks(on_stdout, on_stderr, text)

    def __repr__(self) -> str:
        return f"<Process {self.process_id} returncode={self.returncode}>"

    @property
    def exit(self) -> ExitEvent | None:
        return self._feed.exit

    @property
    def returncode(self) -> int | None:
        known = self._feed.known_exit
        return None if known is None else known.exit_code

    @property
    def closed(self) -> bool:
        """Whether the server's last event (``process/closed``) was delivered."""
        return self._feed.closed

    @property
    def last_seq(self) -> int:
        """The highest seq delivered (pass it to ``attach(after_seq=...)`` to continue)."""
        return self._feed.last_seq

    # ------------------------------------------------------------------ streams

    @property
    def stdout(self) -> OutputStream[S]:
        """Standard output (a tty's output too) as a stream: ``readline()``,
        ``readuntil()``, ``read()``, ``async for line in proc.stdout`` (see
        :mod:`exec_server.client._streams`; do not iterate the events as well)."""
        return self._stream("stdout")

    @property
    def stderr(self) -> OutputStream[S]:
        """Standard error as a stream (see :attr:`stdout`)."""
        return self._stream("stderr")

    def _demuxed(self) -> OutputDemux:
        if self._demux is None:
            self._demux = OutputDemux(self._feed)
        return self._demux

    def _stream(self, name: str) -> OutputStream[S]:
        streams = self._output_streams
        if name not in streams:
            streams[name] = OutputStream(self._demuxed(), name, self._text)
        return streams[name]

    async def expect(
        self, pattern: bytes | re.Pattern[bytes], *, timeout: float | None = None
    ) -> Expected:
        """Read stdout (or the tty) until ``pattern`` (bytes, or a compiled bytes regex)
        appears; what comes after the match stays buffered for the next read or expect.

        Returns:
            :class:`Expected`: ``before`` (the output before the match) and ``match``.

        Raises:
            TimeoutError: ``timeout`` passed (nothing is consumed).
            EOFError: the output ended without a match.
        """
        return await expect(self._demuxed(), self.process_id, pattern, timeout)

    # ------------------------------------------------------------------ events

    def __aiter__(self) -> Process[S]:
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
        while feed.known_exit is None:
            if feed.failure is not None and not isinstance(feed.failure, OutputLost):
                raise feed.failure
            await feed.changed()
        if self._demux is not None and feed.exit is not None:
            await self._demux.callbacks_reached_exit()
        exit_event = feed.known_exit
        assert exit_event is not None  # known once, known for good
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

        Raises:
            SandboxDenied: as :meth:`wait` (after reading everything).
        """
        if input is not None:
            await self.write(input, close_stdin=True)
        out = bytearray()
        err = bytearray()
        async for event in self:
            if isinstance(event, OutputEvent):
                (err if event.stream == "stderr" else out).extend(event.data)
        await self.wait()  # SandboxDenied, as from wait()
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
        if self._has_stdin is False:
            raise StdinClosed(
                f"process {self.process_id} was started without pipe_stdin=True (its stdin "
                "is /dev/null): pass pipe_stdin=True to start() to write to it"
            )
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
        """Ask the process to stop: SIGTERM to its process group (every descendant that did
        not leave the group), as ``asyncio.subprocess.Process.terminate`` does locally. Use
        :meth:`kill` for the whole tree at once. Against a server without the
        ``processExtraSignals`` capability (the reference) this is :meth:`kill`.

        Returns:
            Whether it was still running as far as this client knows.
        """
        if not self._host.capability("processExtraSignals"):
            return await self.kill()
        running = self.exit is None
        await self.send_signal("terminate")
        return running

    async def kill(self) -> bool:
        """Kill the whole process tree at once (``process/terminate``: SIGKILL, also to
        descendants that left the process group).

        Returns:
            Whether it was still running.
        """
        result = await self._host.request(
            "process/terminate", TerminateParams(process_id=self.process_id), TerminateResult
        )
        return result.running

    async def resize(self, rows: int, cols: int) -> None:
        """Resize the terminal of a tty process."""
        await self._host.request(
            "process/resize",
            ResizeParams(process_id=self.process_id, rows=rows, cols=cols),
            EmptyResult,
        )


SandboxDeniedHandler = Callable[[Process[Any], SandboxDenied], Awaitable[int]]
"""Called by :meth:`Process.wait` when the server reported ``sandboxDenied``; its result is
returned by ``wait()`` (e.g. the exit code of an approved, unsandboxed retry). Raise to refuse."""
