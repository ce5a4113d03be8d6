"""The event feed of one remote process: what the client pushes in, what a
:class:`~exec_server.client.Process` reads out.

Events come from pushed notifications (the client calls :meth:`EventFeed.push`) and from
``process/read`` (the feed's own catch-up, after a reconnect or when a push is missing); the
reassembler releases them exactly once, in seq order. Released events are buffered until read,
up to the host's ``max_buffered_output`` bytes of output: beyond it the feed is *held*: it stops
taking pushed events and relies on the server's retention; once the reader has taken half of
the buffer, it reads the rest back, and output the server evicted meanwhile is reported as
:class:`OutputLost` in its place. An exit pushed while held is kept aside
(:attr:`EventFeed.known_exit`), so waiting for the exit does not wait for the reader.
The feed asks its :class:`~._host.ProcessHost` for reads and tells it when the last event was
delivered; it never sees the client itself.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque

from exec_server_protocol import ProcessId
from exec_server_protocol.errors import is_unknown_process
from exec_server_protocol.process import ReadParams, ReadResult

from ..exceptions import ConnectionLost, ExecServerError, OutputLost, RemoteError
from ._events import ClosedEvent, Event, ExitEvent, LostMarker, OutputEvent
from ._host import ProcessHost
from ._reassembly import Released, SeqReassembler

__all__ = ["MIN_READ_PAGE", "TAIL_BYTES", "EventFeed"]

TAIL_BYTES = 4096
"""Output kept for :class:`SandboxDenied`'s ``output_tail``."""
MIN_READ_PAGE = 1024


class EventFeed:
    """Events of one process, in seq order, each exactly once.

    Attributes:
        process_id: the process.
        exit: the exit event, once delivered.
        failure: why no more events will come before ``closed`` (the client failed, or the
            process is gone from the server), else None.
    """

    def __init__(self, host: ProcessHost, process_id: str, *, after_seq: int = 0) -> None:
        self._host = host
        self.process_id = ProcessId(process_id)
        self.exit: ExitEvent | None = None
        self.failure: ExecServerError | None = None
        self._reasm = SeqReassembler()
        self._reasm.delivered = after_seq
        self._events: deque[Released] = deque()
        self._ended = False
        self._waiters: list[asyncio.Future[None]] = []
        self._catch_up: asyncio.Task[None] | None = None
        self._tail = bytearray()
        self._buffered = 0
        """Output bytes released but not yet read."""
        self._held = False
        """Over the host's ``max_buffered_output``: pushed events are dropped (the server
        retains them) until the reader takes enough; then a catch-up read fetches them."""
        self._held_exit: ExitEvent | None = None
        """An exit pushed while held (the event stream gets it when reading resumes)."""

    @property
    def closed(self) -> bool:
        """Whether the server's last event (``process/closed``) was delivered."""
        return self._reasm.closed

    @property
    def known_exit(self) -> ExitEvent | None:
        """The exit event once known: delivered, or pushed while the feed was held."""
        return self.exit or self._held_exit

    @property
    def last_seq(self) -> int:
        """The highest seq delivered."""
        return self._reasm.delivered

    def tail(self) -> bytes:
        """The last :data:`TAIL_BYTES` of output delivered."""
        return bytes(self._tail[-TAIL_BYTES:])

    # ------------------------------------------------------------------ in (the client)

    def push(self, event: OutputEvent | ExitEvent | ClosedEvent) -> None:
        """A pushed notification's event; a gap it reveals starts a catch-up read. Dropped
        while the feed is held (an exit is kept aside for :attr:`known_exit`)."""
        if self._held:
            if isinstance(event, ExitEvent) and self._held_exit is None:
                self._held_exit = event
                self._wake()
            return
        self._deliver(self._reasm.push(event))
        if self._reasm.has_gap:
            self.ensure_catch_up()

    def fail(self, exc: ExecServerError) -> None:
        """No more events will come (unless the process closed already): readers get ``exc``."""
        if self.failure is None and not self._reasm.closed:
            self.failure = exc
        self.cancel_catch_up()
        self._wake()

    def ensure_catch_up(self) -> None:
        """Read from the server until every event it has is delivered (one task at a time)."""
        if self._reasm.closed or self.failure is not None or self._held:
            return
        if self._catch_up is None or self._catch_up.done():
            self._catch_up = asyncio.ensure_future(self._run_catch_up())

    def cancel_catch_up(self) -> None:
        task = self._catch_up
        if task is not None and not task.done() and task is not asyncio.current_task():
            task.cancel()

    def _deliver(self, released: list[Released]) -> None:
        if not released:
            return
        for event in released:
            if isinstance(event, OutputEvent):
                self._buffered += len(event.data)
                tail = self._tail
                tail += event.data
                if len(tail) > 2 * TAIL_BYTES:
                    del tail[:-TAIL_BYTES]
            elif isinstance(event, ExitEvent):
                self.exit = event
            self._events.append(event)
        if self._reasm.closed:
            self._host.release(self.process_id, self)
        elif self._buffered > self._host.max_buffered_output:
            self._held = True
        self._wake()

    def _wake(self) -> None:
        waiters, self._waiters = self._waiters, []
        for fut in waiters:
            if not fut.done():
                fut.set_result(None)

    async def _run_catch_up(self) -> None:
        """Read until every event the server has is delivered (or the client failed).

        A read whose connection drops is not re-sent as is: the next one asks for a quarter of
        the bytes, so a link that keeps dropping still lets a page through (the server always
        returns at least one chunk); each complete page doubles the size again.
        """
        host = self._host
        page = host.read_page_bytes
        try:
            while not self._reasm.closed:
                after = self._reasm.delivered
                params = ReadParams(
                    process_id=self.process_id, after_seq=after, max_bytes=page, wait_ms=0
                )
                try:
                    result = await host.request("process/read", params, ReadResult, retry=False)
                except ConnectionLost:
                    if host.failure is not None or self.failure is not None:
                        return  # the client failed: every process was told already
                    page = max(MIN_READ_PAGE, page // 4)
                    continue
                page = min(host.read_page_bytes, page * 2)
                released, complete = self._reasm.feed_read(after, result)
                self._deliver(released)
                if self._held:
                    return  # resumed by the reader once it took enough
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
            self.fail(exc)
        except TimeoutError as exc:
            self.fail(ConnectionLost(f"catch-up read of {self.process_id} failed: {exc}"))

    # ------------------------------------------------------------------ out (the Process)

    async def changed(self) -> None:
        """Wait until something is delivered or the feed fails."""
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append(fut)
        try:
            await fut
        finally:
            with contextlib.suppress(ValueError):
                self._waiters.remove(fut)

    async def next_event(self) -> Event:
        """The next event, in seq order; it raises what :meth:`Process.__anext__` documents
        (StopAsyncIteration after the last event, OutputLost once in place of evicted output,
        the client's failure)."""
        while True:
            if self._events:
                event = self._events.popleft()
                if isinstance(event, OutputEvent):
                    self._taken(len(event.data))
                if isinstance(event, ClosedEvent):
                    self._ended = True
                    raise StopAsyncIteration
                if isinstance(event, LostMarker):
                    raise OutputLost(self.process_id, event.first_seq, event.retained_from_seq)
                return event
            if self._ended:
                raise StopAsyncIteration
            if self.failure is not None:
                raise self.failure
            await self.changed()

    def _taken(self, size: int) -> None:
        """The reader took ``size`` bytes of output: a held feed resumes at half the cap."""
        self._buffered -= size
        if self._held and self._buffered <= self._host.max_buffered_output // 2:
            self._held = False
            self.ensure_catch_up()
