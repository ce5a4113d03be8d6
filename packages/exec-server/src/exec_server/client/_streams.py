"""A process's output as streams: ``proc.stdout`` / ``proc.stderr`` (``readline``,
``readuntil``, ``read``, line iteration), ``on_stdout=`` / ``on_stderr=`` callbacks and
``proc.expect(pattern)``.

One :class:`OutputDemux` per process is the only consumer of its events once a stream, a
callback or ``expect`` is used: it pulls the next event from the process's
:class:`~._feed.EventFeed` when a reader needs more, appends the chunk to the
buffer of its stream (a tty's output is stdout) or hands it to that stream's callback, and
leaves the exit to :meth:`Process.wait`. Do not iterate the process's events yourself as well
(each event is delivered once: either there or here). Whatever a read does not take stays
buffered for the next one; a stream nobody reads grows while another is read (read both, or
use callbacks).
"""

from __future__ import annotations

import asyncio
import codecs
import re
import typing
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Generic

from ..exceptions import ExecServerError
from ._events import ExitEvent, OutputEvent
from ._feed import EventFeed

if TYPE_CHECKING:
    from typing_extensions import TypeVar

    S = TypeVar("S", str, bytes, default=bytes)
    """What the output streams of a process yield: bytes, or str for ``text=True``."""
else:
    S = typing.TypeVar("S", str, bytes)

__all__ = ["Expected", "OutputDemux", "OutputStream", "S", "expect"]

Callback = Callable[[Any], object]


@dataclass(frozen=True, slots=True)
class Expected:
    """What :meth:`Process.expect` found.

    Attributes:
        before: the output that came before the match (consumed with it).
        match: the match (``match.group()`` is the matched text).
    """

    before: bytes
    match: re.Match[bytes]


class OutputDemux:
    """The consumer of one process's events for its streams, callbacks and ``expect``."""

    def __init__(self, feed: EventFeed) -> None:
        self._feed = feed
        self.buffers = {"stdout": bytearray(), "stderr": bytearray()}
        self.eof = False
        self._lock = asyncio.Lock()
        self._callbacks: dict[str, Callback] = {}
        self._pump: asyncio.Task[None] | None = None
        self._exit_passed = asyncio.Event()

    async def fill(self, ready: Callable[[], bool]) -> None:
        """Pull events until ``ready()`` or the end.

        Raises:
            OutputLost, ConnectionLost, SessionLost: as iterating the events raises them
                (reading again continues after an OutputLost).
        """
        while not ready() and not self.eof:
            async with self._lock:
                if ready() or self.eof:
                    return
                try:
                    event = await self._feed.next_event()
                except StopAsyncIteration:
                    self.eof = True
                    return
                if isinstance(event, ExitEvent):
                    self._exit_passed.set()
                elif isinstance(event, OutputEvent):
                    name = "stderr" if event.stream == "stderr" else "stdout"
                    callback = self._callbacks.get(name)
                    if callback is not None:
                        callback(event.data)
                    else:
                        self.buffers[name] += event.data

    def set_callbacks(
        self,
        on_stdout: Callback | None,
        on_stderr: Callback | None,
        text: tuple[str, str] | None,
    ) -> None:
        for name, callback in (("stdout", on_stdout), ("stderr", on_stderr)):
            if callback is None:
                continue
            if text is None:
                self._callbacks[name] = callback
            else:
                self._callbacks[name] = _TextCallback(callback, text)
        if self._pump is None:
            self._pump = asyncio.ensure_future(self._run_pump())

    async def callbacks_reached_exit(self) -> None:
        """With callbacks: wait until every chunk before the exit was handed to them."""
        pump = self._pump
        if pump is None or self._exit_passed.is_set():
            return
        done = asyncio.ensure_future(self._exit_passed.wait())
        try:
            await asyncio.wait([done, pump], return_when=asyncio.FIRST_COMPLETED)
        finally:
            done.cancel()

    async def _run_pump(self) -> None:
        """Feed the callbacks until the end; a failure is left for ``wait()`` to raise."""
        while not self.eof:
            try:
                await self.fill(lambda: False)
            except ExecServerError:
                if self._feed.failure is not None:
                    return  # the client failed: wait() raises it
                continue  # OutputLost: the rest still comes


class _TextCallback:
    """A ``str`` callback fed bytes: decodes incrementally (a character split across chunks
    is passed whole)."""

    def __init__(self, callback: Callback, text: tuple[str, str]) -> None:
        self._callback = callback
        self._decoder = codecs.getincrementaldecoder(text[0])(text[1])

    def __call__(self, data: bytes) -> None:
        decoded = self._decoder.decode(data)
        if decoded:
            self._callback(decoded)


class OutputStream(Generic[S]):
    """One output stream of a process (``proc.stdout`` or ``proc.stderr``), in the spirit of
    :class:`asyncio.StreamReader`; ``str`` for a process started with ``text=True``."""

    def __init__(self, demux: OutputDemux, name: str, text: tuple[str, str] | None) -> None:
        self._demux = demux
        self._buffer = demux.buffers[name]
        self._text = text
        self._decoder = codecs.getincrementaldecoder(text[0])(text[1]) if text else None

    def _out(self, data: bytes, final: bool = False) -> S:
        if self._decoder is None:
            return data  # type: ignore[return-value]  # S is bytes without text
        return self._decoder.decode(data, final)  # type: ignore[return-value]  # S is str

    def _sep(self, separator: bytes | str) -> bytes:
        if isinstance(separator, str):
            return separator.encode(self._text[0] if self._text else "utf-8")
        return separator

    def at_eof(self) -> bool:
        """Whether the process closed and everything was read."""
        return self._demux.eof and not self._buffer

    async def read(self, n: int = -1) -> S:
        """Up to ``n`` bytes (everything up to the end when negative); empty at the end."""
        buf = self._buffer
        if n < 0:
            await self._demux.fill(lambda: False)
            data = bytes(buf)
            buf.clear()
            return self._out(data, final=True)
        await self._demux.fill(lambda: bool(buf))
        data = bytes(buf[:n])
        del buf[:n]
        return self._out(data, final=not buf and self._demux.eof)

    async def readuntil(self, separator: bytes | str = b"\n") -> S:
        """Everything up to and including ``separator``.

        Raises:
            asyncio.IncompleteReadError: the stream ended first (``partial`` holds the rest,
                as bytes; it is consumed).
        """
        sep = self._sep(separator)
        buf = self._buffer
        found = -1
        searched = 0

        def ready() -> bool:
            nonlocal found, searched
            found = buf.find(sep, searched)
            searched = max(0, len(buf) - len(sep) + 1)
            return found >= 0

        await self._demux.fill(ready)
        if found < 0:
            ready()
        if found < 0:
            rest = bytes(buf)
            buf.clear()
            raise asyncio.IncompleteReadError(rest, None)
        end = found + len(sep)
        data = bytes(buf[:end])
        del buf[:end]
        return self._out(data)

    async def readline(self) -> S:
        """One line with its ``\\n``; at the end, the last unterminated line or an empty
        value."""
        try:
            return await self.readuntil(b"\n")
        except asyncio.IncompleteReadError as exc:
            return self._out(exc.partial, final=True)

    def __aiter__(self) -> OutputStream[S]:
        return self

    async def __anext__(self) -> S:
        """The next line (with its ``\\n``)."""
        line = await self.readline()
        if not line:
            raise StopAsyncIteration
        return line


async def expect(
    demux: OutputDemux,
    process_id: str,
    pattern: bytes | re.Pattern[bytes],
    timeout: float | None,
) -> Expected:
    """See :meth:`Process.expect`."""
    regex = re.compile(re.escape(pattern)) if isinstance(pattern, bytes) else pattern
    buf = demux.buffers["stdout"]
    found: list[re.Match[bytes]] = []

    def ready() -> bool:
        m = regex.search(buf)
        if m is not None:
            found.append(m)
        return m is not None

    async with asyncio.timeout(timeout):
        await demux.fill(ready)
    if not found and not ready():
        raise EOFError(f"the output of {process_id} ended before {regex.pattern!r} appeared")
    m = found[-1]
    snapshot = bytes(buf[: m.end()])
    del buf[: m.end()]
    match = regex.match(snapshot, m.start())
    assert match is not None
    return Expected(snapshot[: m.start()], match)
