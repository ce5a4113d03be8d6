"""The client's process API end to end, over a real WebSocket to a real server."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any, TypeVar

import pytest
from exec_server.client import (
    Client,
    ConnectionLost,
    ExitEvent,
    OutputEvent,
    RemoteError,
    SandboxDenied,
    StdinClosed,
    connect,
)
from exec_server.client._events import ClosedEvent
from exec_server.client._feed import EventFeed
from exec_server.client._process import Process, SandboxDeniedHandler
from exec_server_protocol.session import EnvironmentInfo

from tests.support import ENV, BackgroundServer

T = TypeVar("T")


@pytest.fixture
async def ec(server: BackgroundServer) -> AsyncIterator[Client]:
    async with connect(server.url) as c:
        yield c


async def test_communicate_separates_stdout_and_stderr_and_returns_the_exit_code(
    ec: Client,
) -> None:
    proc = await ec.start(["sh", "-c", "echo out; echo err >&2; exit 3"], cwd="/tmp", env=ENV)
    assert proc.sandbox_type == "none"
    async with asyncio.timeout(10):
        assert await proc.communicate() == (b"out\n", b"err\n")
    assert proc.returncode == 3
    assert await proc.wait() == 3


async def test_iteration_yields_output_then_the_exit_in_seq_order(ec: Client) -> None:
    proc = await ec.start(["sh", "-c", "echo a; echo b"], cwd="/tmp", env=ENV)
    async with asyncio.timeout(10):
        events = [e async for e in proc]
    assert isinstance(events[-1], ExitEvent)
    assert b"".join(e.data for e in events if isinstance(e, OutputEvent)) == b"a\nb\n"
    assert [e.seq for e in events] == sorted(e.seq for e in events)
    assert proc.closed


async def test_writes_reach_stdin_in_order_and_close_stdin_ends_it(ec: Client) -> None:
    proc = await ec.start(["cat"], cwd="/tmp", env=ENV, pipe_stdin=True)
    await asyncio.gather(*(proc.write(b"%d\n" % i) for i in range(100)))
    await proc.close_stdin()
    async with asyncio.timeout(10):
        out, _ = await proc.communicate()
    assert out == b"".join(b"%d\n" % i for i in range(100))


async def test_writing_without_a_stdin_pipe_raises_stdin_closed(ec: Client) -> None:
    proc = await ec.start(["sleep", "30"], cwd="/tmp", env=ENV)
    with pytest.raises(StdinClosed):
        await proc.write(b"x")
    assert await proc.kill() is True
    async with asyncio.timeout(10):
        assert await proc.wait() == 137


async def test_signals_by_name_and_number(ec: Client) -> None:
    import signal

    proc = await ec.start(["sleep", "30"], cwd="/tmp", env=ENV)
    await proc.send_signal(signal.SIGINT)
    async with asyncio.timeout(10):
        assert await proc.wait() == 130
    assert proc.exit is not None and proc.exit.signal == "SIGINT"
    proc = await ec.start(["sleep", "30"], cwd="/tmp", env=ENV)
    await proc.send_signal("terminate")
    async with asyncio.timeout(10):
        assert await proc.wait() == 143
    with pytest.raises(ValueError, match="cannot be sent"):
        await proc.send_signal(signal.SIGWINCH)


async def test_a_tty_process_sees_its_resize(ec: Client) -> None:
    proc = await ec.start(
        ["sh", "-c", "read x; stty size"], cwd="/tmp", env=ENV, tty=True, pty_size=(24, 80)
    )
    await proc.resize(33, 101)
    await proc.write(b"\n")
    async with asyncio.timeout(10):
        out, _ = await proc.communicate()
    assert b"33 101" in out


async def test_start_errors_are_remote_errors_and_forget_the_process(ec: Client) -> None:
    with pytest.raises(RemoteError) as info:
        await ec.start(["/no/such/program"], cwd="/tmp", env=ENV, process_id="bad")
    assert info.value.code == -32603
    proc = await ec.start(["true"], cwd="/tmp", env=ENV, process_id="bad")  # the id is free
    async with asyncio.timeout(10):
        await proc.wait_closed()
    with pytest.raises(RemoteError, match="process bad already exists"):
        await ec.start(["true"], cwd="/tmp", env=ENV, process_id="bad")


async def test_raw_read_and_generic_call(ec: Client) -> None:
    proc = await ec.start(["sh", "-c", "echo hi"], cwd="/tmp", env=ENV)
    async with asyncio.timeout(10):
        await proc.wait_closed()
        result = await ec.read(proc.process_id, wait_ms=1000)
    assert result.closed and result.exit_code == 0
    assert [c.seq for c in result.chunks] == [1]
    info = await ec.call("environment/info")
    assert isinstance(info, EnvironmentInfo) and info.platform_os == "linux"
    with pytest.raises(RemoteError) as err:
        await ec.call("no/such")
    assert err.value.code == -32601


async def test_a_resumed_session_can_attach_to_a_running_process(server: BackgroundServer) -> None:
    first = await connect(server.url)
    proc = await first.start(["cat"], cwd="/tmp", env=ENV, pipe_stdin=True)
    await proc.write(b"one\n")
    async with asyncio.timeout(10):
        event = await anext(aiter(proc))
    assert isinstance(event, OutputEvent) and event.data == b"one\n"
    session, last = first.session_id, proc.last_seq
    await first.aclose()

    async with connect(server.url, resume_session_id=session) as second:
        again = second.attach(proc.process_id, after_seq=last)
        await again.write(b"two\n", close_stdin=True)
        async with asyncio.timeout(10):
            out, _ = await again.communicate()
        assert out == b"two\n"


# ---------------------------------------------------------------- sandbox denial hook


class _Host:
    """A :class:`ProcessHost` without a server: all a process needs from its client."""

    def __init__(self) -> None:
        self.read_page_bytes = 1 << 20
        self.failure: ConnectionLost | None = None
        self.sandbox_denied_handler: SandboxDeniedHandler | None = None
        self.released: list[str] = []
        self.max_buffered_output = 8 << 20

    def capability(self, name: str) -> bool:
        return False

    async def request(
        self, method: str, params: Any, result_type: type[T], *, retry: bool = True
    ) -> T:
        raise AssertionError(f"unexpected request {method}")

    def release(self, process_id: str, feed: object) -> None:
        self.released.append(process_id)


def _denied_process() -> tuple[Process, _Host]:
    host = _Host()
    feed = EventFeed(host, "p")
    proc = Process(host, feed)
    feed.push(OutputEvent(1, "stderr", b"touch: Read-only file system\n"))
    feed.push(ExitEvent(2, 1, sandbox_denied=True))
    return proc, host


async def test_wait_raises_sandbox_denied_with_the_output_tail() -> None:
    proc, _ = _denied_process()
    with pytest.raises(SandboxDenied) as info:
        await proc.wait()
    assert info.value.exit_code == 1
    assert info.value.output_tail.endswith(b"Read-only file system\n")
    assert await proc.wait(check_sandbox=False) == 1


async def test_a_sandbox_denied_handler_decides_what_wait_returns() -> None:
    proc, host = _denied_process()
    seen: list[SandboxDenied] = []

    async def approve_and_retry(p: Process, exc: SandboxDenied) -> int:
        seen.append(exc)
        return 0

    host.sandbox_denied_handler = approve_and_retry
    assert await proc.wait() == 0
    assert seen[0].exit_code == 1


async def test_a_process_tells_its_host_when_its_last_event_was_delivered() -> None:
    proc, host = _denied_process()
    assert host.released == [] and not proc.closed
    proc._feed.push(ClosedEvent(3))
    assert host.released == ["p"] and proc.closed
    assert [event.seq async for event in proc] == [1, 2]
