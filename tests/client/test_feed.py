"""The event feed of one process without a server: its bounded buffer (the held state) driven
through a ProcessHost of the test's own."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any, TypeVar

import pybase64
from exec_server.client import ConnectionLost, Event, ExitEvent, OutputEvent
from exec_server.client._feed import EventFeed
from exec_server_protocol.process import OutputChunk, ReadParams, ReadResult

T = TypeVar("T")


class _Host:
    """Answers each ``process/read`` from a queue the test fills."""

    def __init__(self, cap: int) -> None:
        self.read_page_bytes = 1 << 20
        self.max_buffered_output = cap
        self.failure: ConnectionLost | None = None
        self.sandbox_denied_handler = None
        self.reads: list[ReadParams] = []
        self.answers: asyncio.Queue[ReadResult] = asyncio.Queue()
        self.read_sent = asyncio.Event()

    def capability(self, name: str) -> bool:
        return False

    async def request(
        self, method: str, params: Any, result_type: type[T], *, retry: bool = True
    ) -> T:
        assert method == "process/read"
        self.reads.append(params)
        self.read_sent.set()
        answer: T = await self.answers.get()  # type: ignore[assignment]  # a ReadResult
        return answer

    def release(self, process_id: str, feed: object) -> None:
        pass


def _read(chunks: dict[int, bytes], next_seq: int, *, exit_code: int | None) -> ReadResult:
    return ReadResult(
        chunks=[
            OutputChunk(seq=seq, stream="stdout", chunk=pybase64.b64encode(data).decode())
            for seq, data in chunks.items()
        ],
        next_seq=next_seq,
        exited=exit_code is not None,
        exit_code=exit_code,
        closed=exit_code is not None,
        failure=None,
        sandbox_denied=False,
        retained_from_seq=1,
    )


async def test_a_feed_over_its_cap_drops_pushes_keeps_the_exit_and_reads_back_at_half() -> None:
    host = _Host(cap=10)
    feed = EventFeed(host, "p")
    for seq in (1, 2, 3):
        feed.push(OutputEvent(seq, "stdout", b"x" * 4))  # the third goes over 10 bytes
    feed.push(OutputEvent(4, "stdout", b"dropped"))  # held: the server retains it
    feed.push(ExitEvent(5, 0))
    assert feed.exit is None and feed.known_exit is not None
    assert feed.known_exit.exit_code == 0
    assert host.reads == []

    first = await feed.next_event()  # 8 bytes left: still over half the cap
    assert isinstance(first, OutputEvent) and first.seq == 1
    assert host.reads == []
    await feed.next_event()  # 4 bytes left: resumes with a catch-up read after seq 3
    async with asyncio.timeout(10):
        await host.read_sent.wait()
    assert host.reads[0].after_seq == 3

    host.answers.put_nowait(_read({4: b"dropped"}, next_seq=7, exit_code=0))
    async with asyncio.timeout(10):
        seqs = [event.seq async for event in _events(feed)]
    assert seqs == [3, 4, 5]
    assert feed.closed and feed.exit is not None


async def _events(feed: EventFeed) -> AsyncIterator[Event]:
    while True:
        try:
            yield await feed.next_event()
        except StopAsyncIteration:
            return
