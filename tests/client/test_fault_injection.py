"""Issue 3, acceptance 1: a proxy cuts the client<->server connection at random points while a
child echoes stdin and writes its own numbered lines. Every stdin byte reaches the child exactly
once and every output byte reaches the caller exactly once, in order.

The child reports what it saw (line count and SHA-256 of its whole stdin and of everything it
wrote) on a last line, so "exactly once, in order" is checked byte for byte on both sides.
The default run makes >= 200 cuts in total; EXEC_SERVER_STRESS=1 adds a longer run.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import random
import sys
from collections.abc import AsyncIterator

import pytest
from exec_server.client import Backoff, Client, OutputEvent, connect
from exec_server.testing import CutMode, FaultProxy, ServerProcess

from tests.support import ENV

CHILD = r"""
import hashlib, sys, threading, time
n_own = int(sys.argv[1])
out = sys.stdout.buffer
out_hash, in_hash = hashlib.sha256(), hashlib.sha256()
lock = threading.Lock()

def emit(data):
    with lock:
        out_hash.update(data)
        out.write(data)
        out.flush()

def own():
    for i in range(n_own):
        emit(b"O %06d %s\n" % (i, b"o" * (i % 50)))
        if i % 8 == 0:
            time.sleep(0.001)

thread = threading.Thread(target=own)
thread.start()
lines = 0
for line in sys.stdin.buffer:
    in_hash.update(line)
    lines += 1
    emit(b"E " + line)
thread.join()
out.write(b"DONE %d %s %s\n" % (lines, in_hash.hexdigest().encode(), out_hash.hexdigest().encode()))
out.flush()
"""

STRESS = os.environ.get("EXEC_SERVER_STRESS") == "1"


@pytest.fixture
async def proxied() -> AsyncIterator[tuple[ServerProcess, FaultProxy]]:
    server = ServerProcess("--session-ttl", "30")
    async with server, FaultProxy.for_url(server.url) as proxy:
        yield server, proxy
    assert b"Traceback" not in server.stderr, server.stderr.decode(errors="replace")[-4000:]


async def run_echo_under_cuts(
    proxy: FaultProxy,
    *,
    seed: int,
    mode: CutMode,
    lines: int,
    own_lines: int,
    min_bytes: int,
    max_bytes: int,
) -> tuple[Client, int]:
    """Run the echo child through ``proxy`` with random cuts; check every byte; return the
    client and the number of cuts made."""
    rng = random.Random(seed)
    client = await connect(
        proxy.url,
        reconnect_deadline=20,
        backoff=Backoff(initial=0.002, maximum=0.05, rng=random.Random(seed)),
    )
    async with client:
        proc = await client.start(
            [sys.executable, "-u", "-c", CHILD, str(own_lines)],
            cwd="/tmp",
            env=ENV,
            pipe_stdin=True,
        )
        received = bytearray()
        seqs: list[int] = []

        async def reader() -> None:
            async for event in proc:
                seqs.append(event.seq)
                if isinstance(event, OutputEvent):
                    assert event.stream == "stdout", bytes(event.data)
                    received.extend(event.data)

        reading = asyncio.ensure_future(reader())
        proxy.random_cuts(min_bytes, max_bytes, mode, seed=seed)
        sent: list[bytes] = []
        async with asyncio.timeout(120):
            i = 0
            while i < lines:
                batch = []
                for _ in range(rng.randint(1, 8)):
                    if i == lines:
                        break
                    line = b"L %06d %s\n" % (
                        i,
                        bytes(rng.choices(b"abcdefghij", k=rng.randint(0, 300))),
                    )
                    batch.append(line)
                    i += 1
                sent.extend(batch)
                # Several writes in flight at once: they must still arrive in call order.
                await asyncio.gather(*(proc.write(line) for line in batch))
            await proc.close_stdin()
            await reading
            returncode = await proc.wait()
        proxy.stop_cuts()

    assert returncode == 0
    assert seqs == sorted(set(seqs)), "events out of order or repeated"
    body, _, done = bytes(received).rstrip(b"\n").rpartition(b"\n")
    body += b"\n"
    tag, count, in_digest, out_digest = done.split()
    stdin_bytes = b"".join(sent)
    assert tag == b"DONE"
    assert int(count) == lines
    assert in_digest.decode() == hashlib.sha256(stdin_bytes).hexdigest(), "stdin bytes differ"
    assert out_digest.decode() == hashlib.sha256(body).hexdigest(), "output bytes differ"
    echoed = [ln[2:] + b"\n" for ln in body.splitlines() if ln.startswith(b"E ")]
    own = [ln for ln in body.splitlines() if ln.startswith(b"O ")]
    assert echoed == sent
    assert [int(ln.split()[1]) for ln in own] == list(range(own_lines))
    return client, proxy.cuts


@pytest.mark.parametrize(
    ("seed", "mode"),
    [(1, "reset"), (2, "close"), (3, "half_open"), (4, "reset")],
)
async def test_random_cuts_lose_and_repeat_no_byte(
    proxied: tuple[ServerProcess, FaultProxy], seed: int, mode: CutMode
) -> None:
    _, proxy = proxied
    client, cuts = await run_echo_under_cuts(
        proxy, seed=seed, mode=mode, lines=1500, own_lines=8000, min_bytes=300, max_bytes=100_000
    )
    # Each test contributes at least 50 of the >= 200 cuts the issue asks for.
    assert cuts >= 50, cuts
    assert client.reconnects >= 25


@pytest.mark.stress
@pytest.mark.skipif(not STRESS, reason="stress run: set EXEC_SERVER_STRESS=1")
@pytest.mark.parametrize("seed", range(100, 110))
async def test_many_random_cuts_lose_and_repeat_no_byte(
    proxied: tuple[ServerProcess, FaultProxy], seed: int
) -> None:
    _, proxy = proxied
    mode: CutMode = ("reset", "close", "half_open")[seed % 3]
    _, cuts = await run_echo_under_cuts(
        proxy, seed=seed, mode=mode, lines=6000, own_lines=40000, min_bytes=100, max_bytes=100_000
    )
    assert cuts >= 150, cuts
