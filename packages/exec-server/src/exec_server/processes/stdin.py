"""A child's stdin as ``process/write`` sees it: a queue of writes applied in arrival order,
deduplicated by writeId (docs/protocol.md §6).

A write that the pipe takes at once is answered at once (the common case: no queue, no
future); the rest waits in the queue, written as the pipe drains (``add_writer``).
"""

from __future__ import annotations

import asyncio
import enum
import os
import termios
from collections import deque

from .writes import WriteLog, WriteOutcome, WriteStatus

__all__ = ["StdinState", "StdinWriter"]


class StdinState(enum.Enum):
    """The child's stdin as `process/write` sees it."""

    NONE = "none"
    """Not piped (stdin is /dev/null): writes are `stdinClosed`."""
    OPEN = "open"
    CLOSING = "closing"
    """A write with `closeStdin` is queued: later writes are `stdinClosed`."""
    CLOSED = "closed"
    """Closed by the client: writes are `stdinClosed`."""
    GONE = "gone"
    """No reader is left: writes are `accepted` and dropped."""


class StdinWriter:
    """The write side of one child's stdin.

    Args:
        fd: the non-blocking descriptor to write to (None: stdin is not piped).
        tty: ``fd`` is a pty's master: it is also the output stream (never closed here), and
            closing stdin sends the terminal's end-of-file character instead.
    """

    __slots__ = ("_fd", "_loop", "_queue", "_tty", "_writer_armed", "state", "writes")

    def __init__(self, fd: int | None, *, tty: bool) -> None:
        self._loop = asyncio.get_running_loop()
        self._fd = fd
        self._tty = tty
        self.state = StdinState.NONE if fd is None else StdinState.OPEN
        self._queue: deque[tuple[memoryview, bool, asyncio.Future[WriteStatus]]] = deque()
        self._writer_armed = False
        self.writes = WriteLog()

    @property
    def fd(self) -> int | None:
        """The descriptor while stdin can be written (a pty's master: its foreground group)."""
        return self._fd

    def write(self, data: bytes, write_id: str, close_stdin: bool) -> WriteOutcome:
        """Queue ``data`` for the child's stdin; returns the status or a future of it.

        Writes are applied in the order of the calls. A repeated ``write_id`` returns the
        outcome of its first use and writes nothing. Once nobody can read stdin any more (the
        process and its children closed it, or the process is closed), writes are
        ``accepted`` and dropped; after the client closed stdin, or without a stdin pipe,
        they are ``stdinClosed``.
        """
        prior = self.writes.get(write_id)
        if prior is not None:
            return prior
        outcome: WriteOutcome
        state = self.state
        if state is StdinState.GONE:
            outcome = "accepted"
        elif state is not StdinState.OPEN or self._fd is None:
            outcome = "stdinClosed"
        else:
            if self._tty and close_stdin:
                # A terminal has no separate stdin to close: send its end-of-file character.
                data = data + bytes([termios.tcgetattr(self._fd)[6][termios.VEOF][0]])
                close_stdin = False
            written = self._write_now(data) if not self._queue else 0
            if written == len(data) and not close_stdin:
                outcome = "accepted"  # the common case: no queue, no future
            elif written < 0:
                outcome = "accepted"  # the reader is gone: accepted and dropped
            else:
                fut: asyncio.Future[WriteStatus] = self._loop.create_future()
                self._queue.append((memoryview(data)[written:], close_stdin, fut))
                if close_stdin:
                    self.state = StdinState.CLOSING
                outcome = fut
                self._pump()
        self.writes.record(write_id, outcome)
        return outcome

    def _write_now(self, data: bytes) -> int:
        """Write what the pipe takes without waiting: bytes written, or -1 when the reader is
        gone (stdin is then marked gone)."""
        if not data or self._fd is None:
            return 0
        try:
            return os.write(self._fd, data)
        except BlockingIOError:
            return 0
        except OSError:
            self.gone()
            return -1

    def _pump(self) -> None:
        queue = self._queue
        while queue:
            fd = self._fd
            if fd is None:
                self._resolve_pending()
                return
            data, close_after, fut = queue[0]
            if data:
                try:
                    n = os.write(fd, data)
                except BlockingIOError:
                    n = 0
                except OSError:
                    # The reader is gone (EPIPE, or EIO on a closed pty): accepted and dropped.
                    self.gone()
                    return
                if n < len(data):
                    queue[0] = (data[n:], close_after, fut)
                    if not self._writer_armed:
                        self._writer_armed = True
                        self._loop.add_writer(fd, self._pump)
                    return
            queue.popleft()
            if not fut.done():
                fut.set_result("accepted")
            if close_after:
                self._release_fd()
                self.state = StdinState.CLOSED
        self._disarm_writer()

    def _disarm_writer(self) -> None:
        if self._writer_armed:
            self._writer_armed = False
            if self._fd is not None:
                self._loop.remove_writer(self._fd)

    def _resolve_pending(self) -> None:
        while self._queue:
            _, _, fut = self._queue.popleft()
            if not fut.done():
                fut.set_result("accepted")

    def _release_fd(self) -> None:
        self._disarm_writer()
        fd, self._fd = self._fd, None
        if fd is not None and not self._tty:  # a pty's master is the output stream's
            os.close(fd)

    def gone(self) -> None:
        """Nobody will read stdin again: pending and later writes are accepted and dropped
        (after the client closed it, or without a pipe, they stay ``stdinClosed``)."""
        if self.state is StdinState.NONE or self.state is StdinState.CLOSED:
            self._release_fd()
            return
        self._release_fd()
        self.state = StdinState.GONE
        self._resolve_pending()
