"""A fleet: five servers, each in its own network namespace behind its own veth link, driven at
once by this process through ``exec_server.client`` (issue 13, acceptance 3).

What each executor goes through, all at the same time:

- e0, e1: the link is cut (the namespace's end set down) while a command runs, three times
  each; the command finishes while the link is down, the client notices (keepalive), the link
  comes back, the client resumes the session and the output arrives exactly once.
- e2: the link is degraded both ways (netem delay and loss; on a kernel without netem, a tbf
  rate limit, and the report says so) while output-heavy commands run.
- e3: the server is killed with SIGKILL while its commands run, and a new server starts at the
  same address (as a pod would be replaced): the client's resume is answered "unknown session",
  and every command of that executor fails with ``SessionLost`` (without a replacement the
  client gives up after ``reconnect_deadline`` with a plain ``ConnectionLost``). A new session
  on the replacement works.
- e4: the server is drained with SIGTERM while a command runs: the command completes and its
  output arrives, a new session is refused with -32010 (server draining), the work goes to
  another executor, and the server exits 0.

Every other executor keeps running its own stream of commands meanwhile; all of them must
succeed. The figures (commands run, links cut, recovery time p50/p99, failures) are printed:
``pytest tests/deploy/test_fleet.py -s``.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import signal
import statistics
import sys
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from exec_server.client import Backoff, Client, ClientState, RemoteError, SessionLost, connect
from exec_server.testing import ServerProcess
from exec_server_protocol.jsonrpc import ErrorCode

from tests.deploy.netns import Link, make_links, netns_unavailable, remove_links, shape
from tests.support import http_request, wait_until

_WHY_NOT = netns_unavailable()
pytestmark = pytest.mark.skipif(_WHY_NOT is not None, reason=_WHY_NOT or "")

PORT = 8765  # each server has a namespace of its own, so one fixed port fits all
EXECUTORS = 5
CUT_ROUNDS = 3


@dataclass
class Executor:
    name: str
    link: Link
    args: list[str]
    server: ServerProcess = field(init=False)

    @property
    def url(self) -> str:
        return f"ws://{self.link.ns_addr}:{PORT}"

    def new_server(self) -> ServerProcess:
        command = [*self.link.exec_prefix(), sys.executable, "-m", "exec_server"]
        self.server = ServerProcess(*self.args, command=command)
        return self.server


@dataclass
class Figures:
    commands: int = 0
    cuts: int = 0
    recoveries: list[float] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


@pytest.fixture
async def fleet(tmp_path: Path) -> AsyncIterator[tuple[list[Executor], str]]:
    token = secrets.token_urlsafe(24)
    token_file = tmp_path / "token"
    token_file.write_text(token + "\n")
    token_file.chmod(0o400)
    links = make_links(EXECUTORS)
    executors: list[Executor] = []
    try:
        for i, link in enumerate(links):
            args = [
                f"--listen=ws://{link.ns_addr}:{PORT}",
                "--ws-auth=capability-token",
                f"--ws-token-file={token_file}",
                "--drain-timeout=15",
                "--no-cgroups",
            ]
            executors.append(Executor(f"e{i}", link, args))
        await asyncio.gather(*(e.new_server().start() for e in executors))
        yield executors, token
    finally:
        for e in executors:
            with contextlib.suppress(AttributeError):
                await e.server.stop(signal.SIGINT)
        remove_links(links)
    for e in executors:
        log = e.server.stderr.decode(errors="replace")
        assert "Traceback" not in log, f"{e.name}: {log[-3000:]}"


def gated(first: int, last: int, gate: Path, done: Path | None = None) -> list[str]:
    """A command that prints ``1..first``, waits until the test opens ``gate``, prints
    ``first+1..last`` and then (optionally) creates ``done``."""
    os.mkfifo(gate)
    end = f"; : > {done}" if done else ""
    return ["sh", "-c", f"seq 1 {first}; read x < {gate}; seq {first + 1} {last}{end}"]


def numbered(first: int, last: int) -> bytes:
    return b"".join(b"%d\n" % i for i in range(first, last + 1))


async def open_gate(gate: Path) -> None:
    """Let the command waiting on ``gate`` go on (once it has opened the fifo for reading)."""

    def try_open() -> bool:
        try:
            fd = os.open(gate, os.O_WRONLY | os.O_NONBLOCK)
        except OSError:  # ENXIO: no reader yet
            return False
        os.write(fd, b"go\n")
        os.close(fd)
        return True

    await wait_until(try_open)


async def until(predicate: Callable[[], bool]) -> None:
    await wait_until(predicate, timeout=15)


async def workload(client: Client, stop: asyncio.Event, figures: Figures) -> None:
    """Short numbered commands, one after another, until ``stop``; every one must succeed."""
    n = 0
    while not stop.is_set():
        n += 1
        done = await client.run(["seq", "1", str(n)], cwd="/tmp")
        assert (done.returncode, done.stdout) == (0, numbered(1, n))
        figures.commands += 1


async def cut_link(e: Executor, client: Client, tmp: Path, figures: Figures) -> None:
    for r in range(CUT_ROUNDS):
        gate, done = tmp / f"{e.name}-gate{r}", tmp / f"{e.name}-done{r}"
        proc = await client.start(gated(2000, 6000, gate, done), cwd="/tmp")
        head = await proc.stdout.readuntil(b"\n2000\n")
        e.link.cut()
        figures.cuts += 1
        await open_gate(gate)
        await until(done.exists)  # the command ends while the link is down
        await until(lambda: client.state is ClientState.RECOVERING)
        e.link.restore()
        restored = time.monotonic()
        await client.wait_connected()
        figures.recoveries.append(time.monotonic() - restored)
        rest = await proc.stdout.read()
        assert await proc.wait() == 0
        assert head + rest == numbered(1, 6000), f"{e.name} round {r}: output not exactly once"
        figures.commands += 1


async def degraded(e: Executor, client: Client, figures: Figures) -> None:
    figures.notes.append(f"{e.name}: {shape(e.link)}")
    for n in (20_000, 40_000, 60_000):
        done = await client.run(["seq", "1", str(n)], cwd="/tmp")
        assert (done.returncode, done.stdout) == (0, numbered(1, n))
        figures.commands += 1


async def killed(e: Executor, client: Client, token: str, tmp: Path, figures: Figures) -> None:
    procs = []
    for k in range(3):
        proc = await client.start(gated(10, 20, tmp / f"{e.name}-gate{k}"), cwd="/tmp")
        await proc.stdout.readuntil(b"\n10\n")
        procs.append(proc)
    old = e.server
    os.kill(old.pid, signal.SIGKILL)
    await old.stop()
    await e.new_server().start()  # a replacement at the same address
    for k, proc in enumerate(procs):
        with pytest.raises(SessionLost, match="is gone") as info:
            await proc.wait()
        assert type(info.value) is SessionLost
        figures.failures.append(f"{e.name} command {k}: SessionLost ({info.value})")
        await open_gate(tmp / f"{e.name}-gate{k}")  # the orphan finishes
    async with connect(e.url, token=token) as fresh:
        done = await fresh.run(["seq", "1", "5"], cwd="/tmp")
        assert done.stdout == numbered(1, 5)
        figures.commands += 1


async def drained(
    e: Executor, client: Client, token: str, fallback: Client, tmp: Path, figures: Figures
) -> None:
    gate = tmp / f"{e.name}-gate"
    proc = await client.start(gated(100, 300, gate), cwd="/tmp")
    head = await proc.stdout.readuntil(b"\n100\n")
    assert e.server.proc is not None
    os.kill(e.server.pid, signal.SIGTERM)

    async def refusing() -> bool:
        status, _ = await http_request(e.url, b"GET /readyz HTTP/1.1\r\n\r\n")
        return status == 503

    async with asyncio.timeout(15):
        while not await refusing():  # noqa: ASYNC110 - the server's drain has no event of ours
            await asyncio.sleep(0.01)
    with pytest.raises(RemoteError) as info:
        await connect(e.url, token=token)
    assert info.value.code == ErrorCode.SERVER_DRAINING
    figures.failures.append(f"{e.name} new session: RemoteError {info.value.code} -> moved on")
    moved = await fallback.run(["seq", "1", "7"], cwd="/tmp")  # the work goes elsewhere
    assert moved.stdout == numbered(1, 7)
    figures.commands += 1
    await open_gate(gate)
    rest = await proc.stdout.read()
    assert await proc.wait() == 0
    assert head + rest == numbered(1, 300)
    figures.commands += 1
    assert e.server.proc is not None
    async with asyncio.timeout(15):
        assert await e.server.proc.wait() == 0


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


async def test_a_fleet_survives_cut_links_a_degraded_link_a_killed_and_a_drained_executor(
    fleet: tuple[list[Executor], str], tmp_path: Path
) -> None:
    executors, token = fleet
    figures = Figures()
    started = time.monotonic()
    clients = [
        await connect(
            e.url,
            token=token,
            reconnect_deadline=15,
            connect_timeout=0.5 if i < 2 else 5,
            ping_interval=0.2 if i < 2 else 2,
            ping_timeout=0.3 if i < 2 else 4,
            backoff=Backoff(initial=0.01, maximum=0.05),
        )
        for i, e in enumerate(executors)
    ]
    e0, e1, e2, e3, e4 = executors
    c0, c1, c2, c3, c4 = clients
    stop = asyncio.Event()
    try:
        async with asyncio.timeout(60):
            background = [asyncio.ensure_future(workload(c, stop, figures)) for c in (c0, c1, c2)]
            await asyncio.gather(
                cut_link(e0, c0, tmp_path, figures),
                cut_link(e1, c1, tmp_path, figures),
                degraded(e2, c2, figures),
                killed(e3, c3, token, tmp_path, figures),
                drained(e4, c4, token, c2, tmp_path, figures),
            )
            stop.set()
            await asyncio.gather(*background)
    finally:
        stop.set()
        for c in clients:
            await c.aclose()
    elapsed = time.monotonic() - started
    reconnects = {e.name: c.reconnects for e, c in zip(executors, clients, strict=True)}
    assert reconnects["e0"] >= CUT_ROUNDS and reconnects["e1"] >= CUT_ROUNDS
    rec = figures.recoveries
    print(
        f"\nfleet: {EXECUTORS} executors, {elapsed:.1f} s; commands run: {figures.commands}; "
        f"links cut: {figures.cuts}; reconnects: {reconnects}\n"
        f"recovery after the link came back (n={len(rec)}): "
        f"p50 {statistics.median(rec) * 1000:.0f} ms, p99 {percentile(rec, 0.99) * 1000:.0f} ms, "
        f"max {max(rec) * 1000:.0f} ms\n" + "\n".join(figures.notes + figures.failures)
    )
