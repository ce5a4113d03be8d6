"""proc.stdout / proc.stderr as streams, text mode, callbacks and expect(), end to end."""

from __future__ import annotations

import asyncio
import re
import sys
from collections.abc import AsyncIterator

import pytest
from exec_server.client import Client, connect

from tests.support import BackgroundServer

# Writes its output in pieces that split lines (and a UTF-8 character) across chunks.
PIECES = r"""
import os, sys
for piece in [b"al", b"pha\nbe", b"ta\n\xc3", b"\xa9\ngamma"]:
    os.write(1, piece)
    os.write(2, b"E")
"""


@pytest.fixture
async def ec(server: BackgroundServer) -> AsyncIterator[Client]:
    async with connect(server.url) as c:
        yield c


async def test_lines_split_across_chunks_come_out_whole(ec: Client) -> None:
    proc = await ec.start([sys.executable, "-c", PIECES])
    async with asyncio.timeout(10):
        lines = [line async for line in proc.stdout]
        assert await proc.stderr.read() == b"EEEE"
        assert await proc.wait() == 0
    assert lines == [b"alpha\n", b"beta\n", "é\n".encode(), b"gamma"]
    assert proc.stdout.at_eof()


async def test_text_mode_streams_yield_str(ec: Client) -> None:
    proc = await ec.start([sys.executable, "-c", PIECES], text=True)
    async with asyncio.timeout(10):
        assert await proc.stdout.readline() == "alpha\n"
        assert await proc.stdout.readuntil("a") == "beta"
        assert await proc.stdout.read() == "\né\ngamma"
    with pytest.raises(asyncio.IncompleteReadError):
        await proc.stdout.readuntil("x")


async def test_callbacks_get_every_chunk_before_wait_returns(ec: Client) -> None:
    out: list[str] = []
    err: list[str] = []
    proc = await ec.start(
        [sys.executable, "-c", PIECES], text=True, on_stdout=out.append, on_stderr=err.append
    )
    async with asyncio.timeout(10):
        assert await proc.wait() == 0
    assert "".join(out) == "alpha\nbeta\né\ngamma"
    assert "".join(err) == "EEEE"


async def test_expect_drives_an_interactive_python(ec: Client) -> None:
    proc = await ec.start([sys.executable, "-i", "-q"], tty=True, env={"PYTHONSTARTUP": ""})
    async with asyncio.timeout(20):
        await proc.expect(b">>> ")
        await proc.write(b"print(6 * 7)\n")
        got = await proc.expect(re.compile(rb"(\d+)\r?\n>>> "))
        assert got.match.group(1) == b"42"
        await proc.write(b"print('a'); print('b')\n")
        assert (await proc.expect(b"a\r\n")).before.endswith(b"print('b')\r\n")
        assert (await proc.expect(b">>> ")).before == b"b\r\n"  # the rest was kept
        with pytest.raises(TimeoutError):
            await proc.expect(b"never", timeout=0.2)
        await proc.write(b"exit()\n")
        assert await proc.wait() == 0
        with pytest.raises(EOFError):
            await proc.expect(b">>> ")
