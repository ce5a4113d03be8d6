"""The client over stdio: an ``exec-server --listen stdio`` started through any command.

``connect_stdio(["ssh", host, "exec-server", "--listen", "stdio"])`` reaches an executor
without opening a port. One JSON message per line each way (docs/protocol.md §1). The command
(and so the server behind it) lives as long as the connection: a stdio server has no detached
sessions, so a dropped connection is not resumed; the client fails with
:class:`~exec_server.exceptions.ConnectionLost` carrying the last lines the command wrote on
stderr (where ssh says why it could not connect).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import shlex
from collections import deque
from collections.abc import Callable, Sequence
from typing import Any, cast

from ._client import Client, _Connect
from ._transport import WsConnection

__all__ = ["connect_stdio"]

log = logging.getLogger("exec_server.client")

STDERR_TAIL_LINES = 20
"""Lines of the command's stderr kept for the error message when the connection ends."""

EXIT_TIMEOUT = 5.0
"""Seconds the command has to exit after its stdin closed before it is killed."""

MAX_LINE = 64 << 20
"""The longest message line read from the command."""


class StdioConnection:
    """One client connection over a child's stdin/stdout; what the client needs of a
    :class:`~exec_server.client._transport.WsConnection`.

    Args:
        process: the started command (stdin, stdout and stderr piped).
        on_message: called with each inbound message.
        on_close: called once when the connection is gone, with a description of why.
    """

    close_code: int | None = None

    def __init__(
        self,
        process: asyncio.subprocess.Process,
        on_message: Callable[[Any, bytes], None],
        on_close: Callable[[Any, str], None],
    ) -> None:
        assert process.stdin is not None
        assert process.stdout is not None
        assert process.stderr is not None
        self._process = process
        self._stdin = process.stdin
        self._on_message = on_message
        self._on_close = on_close
        self._closed = False
        self.stderr_tail: deque[str] = deque(maxlen=STDERR_TAIL_LINES)
        loop = asyncio.get_running_loop()
        self.lost: asyncio.Future[None] = loop.create_future()
        self._stderr_done = asyncio.Event()
        self._tasks = [
            asyncio.ensure_future(self._read(process.stdout)),
            asyncio.ensure_future(self._read_stderr(process.stderr)),
        ]
        self._reaper = asyncio.ensure_future(self._reap())

    @property
    def closed(self) -> bool:
        return self._closed

    def send(self, frame: bytes) -> None:
        """Send one message (never blocks). Raises ConnectionError when closed."""
        self.send_many([frame])

    def send_many(self, frames: list[bytes]) -> None:
        if self._closed or self._stdin.is_closing():
            raise ConnectionError("connection closed")
        self._stdin.write(b"".join(frame + b"\n" for frame in frames))

    def close(self, code: int = 1000, reason: str = "") -> None:
        """Close the command's stdin (the server ends, and the command with it)."""
        if not self._stdin.is_closing():
            self._stdin.close()
        self._finish("closed by the client")

    def abort(self) -> None:
        """Kill the command at once."""
        self.close()
        with contextlib.suppress(ProcessLookupError):
            self._process.kill()

    # ---------------------------------------------------------------- internals

    async def _read(self, stdout: asyncio.StreamReader) -> None:
        why = "the command closed its stdout"
        try:
            while True:
                line = await stdout.readline()
                if not line:
                    break
                if line.strip() and not self._closed:
                    self._on_message(self, line)
        except (ValueError, asyncio.LimitOverrunError):
            why = f"a message line longer than {MAX_LINE} bytes"
            self.abort()
        except OSError as exc:
            why = f"reading the command's stdout failed: {exc}"
        # Its last words on stderr (ssh's reason) belong in the message.
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(EXIT_TIMEOUT):
                await self._stderr_done.wait()
        self._finish(why)

    async def _read_stderr(self, stderr: asyncio.StreamReader) -> None:
        try:
            with contextlib.suppress(OSError, ValueError):
                while line := await stderr.readline():
                    text = line.decode("utf-8", "replace").rstrip()
                    self.stderr_tail.append(text)
                    log.debug("stdio command stderr: %s", text)
        finally:
            self._stderr_done.set()

    async def _reap(self) -> None:
        code = await self._process.wait()
        # Whatever it wrote before it died is still read by the two readers.
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(EXIT_TIMEOUT):
                await asyncio.gather(*self._tasks, return_exceptions=True)
        self._finish(f"the command exited with code {code}")
        if not self.lost.done():
            self.lost.set_result(None)

    def _finish(self, why: str) -> None:
        if self._closed:
            return
        self._closed = True
        tail = " | ".join(line for line in self.stderr_tail if line)
        self._on_close(self, f"{why}; its stderr: {tail}" if tail else why)
        if why == "closed by the client":
            asyncio.get_running_loop().call_later(EXIT_TIMEOUT, self._kill_if_alive)

    def _kill_if_alive(self) -> None:
        if self._process.returncode is None:
            log.warning("the stdio command did not exit after its stdin closed: killing it")
            with contextlib.suppress(ProcessLookupError):
                self._process.kill()


class _StdioClient(Client):
    """A :class:`Client` whose connection is a command's stdin/stdout."""

    _resumable = False

    def __init__(self, argv: Sequence[str], **options: Any) -> None:
        super().__init__("stdio:" + shlex.join(argv), **options)
        self._argv = list(argv)

    async def _open(self) -> WsConnection:
        try:
            process = await asyncio.create_subprocess_exec(
                *self._argv,
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
                limit=MAX_LINE,
                start_new_session=True,  # a Ctrl-C at the terminal is ours to forward
            )
        except OSError as exc:
            raise OSError(f"cannot start {self._argv[0]!r}: {exc.strerror or exc}") from exc
        conn = StdioConnection(process, self._on_message, self._on_close)
        # Duck-typed: the client uses only send, send_many, close, abort, closed, lost and
        # close_code of its connection.
        return cast(WsConnection, conn)


def connect_stdio(
    argv: Sequence[str],
    *,
    client_name: str = "exec-server-client",
    connect_timeout: float = 30.0,
    request_timeout: float | None = 120.0,
    read_page_bytes: int = 1 << 20,
) -> _Connect:
    """Connect to an ``exec-server --listen stdio`` that ``argv`` starts, and do the handshake.

    Use as ``client = await connect_stdio(argv)`` or ``async with connect_stdio(argv) as
    client``. Closing the client closes the command's stdin, which ends the server and its
    processes; the command is killed if it has not exited 5 s later.

    Args:
        argv: the command, e.g. ``["ssh", "host", "exec-server", "--listen", "stdio"]``.
        client_name: the ``clientName`` of ``initialize``.
        connect_timeout: bound of the start and handshake (ssh may take a while).
        request_timeout: bound of each request; None waits as long as the connection lives.
        read_page_bytes: ``maxBytes`` of catch-up reads.

    Raises:
        ConnectionLost: the command could not be started, or ended before the handshake (its
            last stderr lines are in the message).
        ValueError: ``argv`` is empty.
    """
    if not argv:
        raise ValueError("argv must not be empty")
    client = _StdioClient(
        argv,
        client_name=client_name,
        connect_timeout=connect_timeout,
        request_timeout=request_timeout,
        read_page_bytes=read_page_bytes,
        ping_interval=None,
    )
    return _Connect(client, None)
