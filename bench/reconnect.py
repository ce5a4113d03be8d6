#!/usr/bin/env python3
"""Reconnect latency on loopback (issue 3, acceptance 4): from a dropped connection to the first
successful ``process/read`` on the resumed session.

Each iteration aborts the client's TCP connection (``Client.drop_connection``: an RST, noticed
at once) and times ``await client.read(process_id)``: the client notices the drop, reconnects,
sends ``initialize {resumeSessionId}`` + ``initialized`` + the catch-up ``process/read`` of the
live process in one pipelined batch, then the timed read. Two variants:

* ``idle``: a live ``cat`` with no new output (the catch-up read returns nothing);
* ``catch-up``: a 64 KiB ``process/write`` made while detached is re-sent in the resume batch,
  ``cat`` echoes it, and the iteration ends when the process handle has delivered the echo.

    .venv/bin/python bench/reconnect.py            # 1000 iterations per variant
    .venv/bin/python bench/reconnect.py --quick    # 100
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time

from exec_server.client import OutputEvent, connect
from exec_server.testing import ServerProcess


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


def report(name: str, samples: list[float]) -> dict[str, float]:
    ms = [s * 1000 for s in samples]
    row = {
        "n": len(ms),
        "p50_ms": pct(ms, 50),
        "p99_ms": pct(ms, 99),
        "mean_ms": statistics.fmean(ms),
        "min_ms": min(ms),
    }
    print(
        f"{name:<10} n={row['n']:<5} p50={row['p50_ms']:.3f} ms  p99={row['p99_ms']:.3f} ms  "
        f"mean={row['mean_ms']:.3f} ms  min={row['min_ms']:.3f} ms"
    )
    return row


async def main(iterations: int) -> None:
    async with ServerProcess("--log-level", "warning") as server, connect(server.url) as client:
        idle = await client.start(["cat"], cwd="/tmp", pipe_stdin=True)
        for _ in range(20):  # warm-up
            client.drop_connection()
            await client.read(idle.process_id)
        samples = []
        for _ in range(iterations):
            client.drop_connection()
            t0 = time.perf_counter()
            await client.read(idle.process_id)
            samples.append(time.perf_counter() - t0)
        report("idle", samples)

        samples = []
        chunk = b"x" * 65536
        got = 0
        for _ in range(iterations // 4):
            client.drop_connection()
            t0 = time.perf_counter()
            # Queued while recovering and sent in the resume batch.
            writing = asyncio.ensure_future(idle.write(chunk))
            await client.read(idle.process_id, max_bytes=1)
            async with asyncio.timeout(10):
                while got < len(chunk):
                    event = await anext(aiter(idle))
                    assert isinstance(event, OutputEvent)
                    got += len(event.data)
            samples.append(time.perf_counter() - t0)
            await writing
            got -= len(chunk)
        report("catch-up", samples)
        print(f"reconnects: {client.reconnects}")
        await idle.terminate()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="100 iterations")
    parser.add_argument("-n", type=int, default=1000, help="iterations (default 1000)")
    args = parser.parse_args()
    asyncio.run(main(100 if args.quick else args.n))
