"""MCP servers on the executor: a drop-in for the ``mcp`` SDK's ``stdio_client``.

::

    from mcp import ClientSession, StdioServerParameters
    from exec_server.mcp import stdio_client

    params = StdioServerParameters(command="python3", args=["my_server.py"])
    async with stdio_client(params, url="ws://127.0.0.1:8765") as (read, write):
        async with ClientSession(read, write) as session:
            await session.initialize()

The MCP server command runs on the executor (``process/start`` with a stdin pipe, no tty, no
sandbox unless asked). Each outgoing MCP message is one newline-terminated ``process/write``
with its own ``writeId``: after a dropped connection the client resumes the session and re-sends
an unanswered write with the same id, which the executor writes at most once; stdout comes back
through the process's output events, which the client delivers exactly once and in order. So a
dropped WebSocket neither loses nor repeats a message, and the MCP server process lives on.
Its stderr goes to the ``exec_server.mcp`` logger (and to ``errlog`` when one is given). Leaving
the context closes its stdin, waits ``stop_grace`` seconds for it to exit, then kills its process
tree (``process/terminate``).

Needs the ``mcp`` extra: ``pip install 'exec-server[mcp]'``.
"""

from __future__ import annotations

import codecs
import contextlib
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any, TextIO

import anyio
import mcp.types
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream
from exec_server_protocol.process import EnvPolicy
from exec_server_protocol.sandbox import SandboxIntent
from mcp.client.stdio import StdioServerParameters
from mcp.shared.message import SessionMessage

from .client import Client, OutputEvent, connect
from .exceptions import ExecServerError, OutputLost

__all__ = ["StdioServerParameters", "stdio_client"]

log = logging.getLogger("exec_server.mcp")

DEFAULT_STOP_GRACE = 2.0
"""Seconds the MCP server has to exit after its stdin closed (the SDK's own grace)."""

_FLUSH_TIMEOUT = 0.5
"""Seconds the writer has, at exit, to send messages the session already handed over."""

_KILL_TIMEOUT = 5.0
"""Seconds to wait for the exit of the killed tree, so that it is gone when the context is."""

_STREAM_GONE = (anyio.ClosedResourceError, anyio.BrokenResourceError)

ReadStream = MemoryObjectReceiveStream[SessionMessage | Exception]
WriteStream = MemoryObjectSendStream[SessionMessage]

_adapter: Any = mcp.types.jsonrpc_message_adapter


def _parse(line: str) -> SessionMessage | Exception:
    """One stdout line as a message, or the parse error as a value (as the SDK does)."""
    try:
        message = _adapter.validate_json(line, by_name=False)
    except ValueError as exc:
        log.warning("the MCP server wrote a line that is not JSON-RPC: %.200r", line)
        return exc
    return SessionMessage(message)


def _dump(message: SessionMessage) -> str:
    if _adapter is not None:
        text: str = message.message.model_dump_json(by_alias=True, exclude_unset=True)
    else:
        text = message.message.model_dump_json(by_alias=True, exclude_none=True)
    return text


@asynccontextmanager
async def stdio_client(
    server: StdioServerParameters,
    errlog: TextIO | None = None,
    *,
    url: str | None = None,
    client: Client | None = None,
    token: str | None = None,
    sandbox: SandboxIntent | None = None,
    env_policy: EnvPolicy | None = None,
    stop_grace: float = DEFAULT_STOP_GRACE,
    **connect_options: Any,
) -> AsyncIterator[tuple[ReadStream, WriteStream]]:
    """Start ``server`` on the executor; yield the streams ``mcp.ClientSession`` takes.

    Args:
        server: the command (looked up on the executor's PATH), its args, env and cwd (default:
            the executor's working directory); ``encoding`` and ``encoding_error_handler`` apply
            to the messages as with the SDK.
        errlog: also write the server's stderr here (it always goes to the
            ``exec_server.mcp`` logger, at INFO).
        url: the executor to connect to (the connection is closed at exit); or
        client: an already connected client to use (left open at exit).
        token: bearer token for ``url``.
        sandbox: run the MCP server under this sandbox intent (default: none).
        env_policy: how its environment is built from the executor's (default: the executor's
            HOME, LANG, LOGNAME, PATH, SHELL, TMPDIR and USER, like the SDK's default
            environment); ``server.env`` goes on top.
        stop_grace: seconds between closing its stdin and killing its process tree at exit.
        **connect_options: passed to :func:`exec_server.client.connect` with ``url``.

    Yields:
        ``(read_stream, write_stream)``: anyio memory object streams of ``SessionMessage``
        (the read stream also carries the exception of a line that is not JSON-RPC, and an
        :class:`~exec_server.exceptions.OutputLost` if output was evicted unread).

    Raises:
        TypeError: neither or both of ``url`` and ``client``.
        ConnectionLost: the executor cannot be reached.
        RemoteError: the executor refused to start the command (e.g. not found).
    """
    if (url is None) == (client is None):
        raise TypeError("stdio_client() takes exactly one of url= and client=")
    async with contextlib.AsyncExitStack() as stack:
        if client is None:
            assert url is not None
            client = await stack.enter_async_context(connect(url, token=token, **connect_options))
        cwd = str(server.cwd) if server.cwd is not None else None
        if cwd is None:
            info = client.environment_info or await client.environment()
            cwd = info.cwd
        proc = await client.start(
            [server.command, *server.args],
            cwd=cwd,
            env=dict(server.env or {}),
            env_policy=env_policy or EnvPolicy(inherit="core"),
            pipe_stdin=True,
            sandbox=sandbox,
        )
        log.info("MCP server %s started on the executor as %s", server.command, proc.process_id)
        read_writer, read_stream = anyio.create_memory_object_stream[SessionMessage | Exception](0)
        write_stream, write_reader = anyio.create_memory_object_stream[SessionMessage](0)
        writer_done = anyio.Event()

        async def read_output() -> None:
            decoder = codecs.getincrementaldecoder(server.encoding)(server.encoding_error_handler)
            stdout = ""
            stderr = _StderrLines(errlog)
            events = aiter(proc)
            async with read_writer:
                while True:
                    try:
                        event = await anext(events)
                    except StopAsyncIteration:
                        break
                    except OutputLost as exc:
                        decoder.reset()
                        stdout = ""  # what follows the gap starts mid-line
                        with contextlib.suppress(
                            anyio.ClosedResourceError, anyio.BrokenResourceError
                        ):
                            await read_writer.send(exc)
                        continue
                    except ExecServerError as exc:
                        log.error("MCP server %s: connection to the executor lost: %s",
                                  proc.process_id, exc)  # fmt: skip
                        break
                    if not isinstance(event, OutputEvent):
                        log.info("MCP server %s exited with %d", proc.process_id, event.exit_code)
                        continue
                    if event.stream == "stderr":
                        stderr.feed(event.data)
                        continue
                    lines = (stdout + decoder.decode(event.data)).split("\n")
                    stdout = lines.pop()
                    for line in lines:
                        if not line.strip():
                            continue
                        try:
                            await read_writer.send(_parse(line))
                        except _STREAM_GONE:
                            return  # the session is gone
                stderr.flush()

        async def write_input() -> None:
            try:
                async with write_reader:
                    async for message in write_reader:
                        data = (_dump(message) + "\n").encode(
                            server.encoding, server.encoding_error_handler
                        )
                        await proc.write(data)
            except (ExecServerError, anyio.ClosedResourceError, anyio.BrokenResourceError) as exc:
                log.warning("MCP server %s: cannot write to it: %s", proc.process_id, exc)
                # Let the session see the end instead of waiting for answers forever.
                await read_writer.aclose()
            finally:
                writer_done.set()

        async def shut_down() -> None:
            write_stream.close()
            with anyio.move_on_after(_FLUSH_TIMEOUT):
                await writer_done.wait()
            read_stream.close()
            with contextlib.suppress(ExecServerError, TimeoutError):
                await proc.close_stdin()
                with anyio.move_on_after(stop_grace):
                    await proc.wait(check_sandbox=False)
            if proc.returncode is None:
                with contextlib.suppress(ExecServerError, TimeoutError):
                    await proc.kill()
                    log.info("MCP server %s killed after %g s", proc.process_id, stop_grace)
                    with anyio.move_on_after(_KILL_TIMEOUT):
                        await proc.wait(check_sandbox=False)
            for stream in (read_writer, write_reader):
                await stream.aclose()

        async with anyio.create_task_group() as tasks:
            tasks.start_soon(read_output)
            tasks.start_soon(write_input)
            try:
                yield read_stream, write_stream
            finally:
                # The remote process must not outlive the context, even when cancelled.
                with anyio.CancelScope(shield=True):
                    await shut_down()
                tasks.cancel_scope.cancel()


class _StderrLines:
    """The MCP server's stderr, one log record per line."""

    def __init__(self, errlog: TextIO | None) -> None:
        self._errlog = errlog
        self._partial = bytearray()

    def feed(self, data: bytes) -> None:
        self._partial += data
        *lines, rest = self._partial.split(b"\n")
        self._partial = bytearray(rest)
        for line in lines:
            self._emit(line)

    def flush(self) -> None:
        if self._partial:
            self._emit(bytes(self._partial))
            self._partial.clear()

    def _emit(self, line: bytes | bytearray) -> None:
        text = line.decode("utf-8", "replace").rstrip("\r")
        log.info("MCP server stderr: %s", text)
        if self._errlog is not None:
            with contextlib.suppress(OSError, ValueError):
                self._errlog.write(text + "\n")
                self._errlog.flush()
