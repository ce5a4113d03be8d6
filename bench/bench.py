#!/usr/bin/env python3
"""exec-server benchmark: ours vs the reference ``codex exec-server`` vs plain local asyncio.

One run on one machine starts our server (``python -m exec_server --listen ws://127.0.0.1:0``)
and, when available, the reference (``$EXEC_SERVER_REFERENCE_BIN`` or ``--reference PATH``,
run as ``<bin> exec-server --listen ws://127.0.0.1:0`` with ``CODEX_HOME`` a fresh dir under
/var/tmp), drives each over ONE WebSocket connection with a plain client (websockets' asyncio
client; we set no socket options ourselves), and measures:

  1. stream throughput: ``head -c N /dev/zero``, process/start -> process/closed, counting the
     decoded bytes of process/output (MB/s, MB = 10^6 bytes)
  2. ``true`` start -> closed latency, p50/p99 over sequential runs
  3. 2-byte process/write -> process/output echo latency through ``cat`` (pipeStdin), p50/p99
  4. K concurrent ``sleep 2`` (K pipelined process/start requests) until every process/closed
  5. server RSS (VmRSS of the server process only, never its children): idle, and with K running
     ``sleep`` processes -> RSS per running process
  6. sandboxed (read-only intent, as Codex sends it) ``true`` p50 vs unsandboxed, same server

The local-asyncio baselines run in this process, without a server: (1) the same ``head`` read
to EOF, (2) spawn ``true`` with pipes and await exit + EOF, (3) pipe echo through ``cat``,
(4) K ``sleep 2`` spawned with pipes and awaited, (5) RSS of a bare interpreter.

Prints a table with ratios (ours/reference, ours/local) and PASS/FAIL against the targets of
issue 2, and writes ``bench/results/<timestamp>[-quick].json``. Only 127.0.0.1 is contacted.
Every phase has a timeout; ``--quick`` is a smoke run that must finish in under 60 s.

    .venv/bin/python bench/bench.py                       # full run (reference if env var set)
    .venv/bin/python bench/bench.py --quick               # smoke run, < 60 s
    .venv/bin/python bench/bench.py --reference /path/to/codex
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as _dt
import json
import math
import os
import pathlib
import platform
import shutil
import sys
import tempfile
import time
import traceback
from collections.abc import Awaitable, Callable
from typing import Any

import websockets
from exec_server.testing.intents import read_only
from exec_server.testing.reference import ENV_BIN, reference_bin
from websockets.asyncio.client import connect

try:  # fast paths for the client; both are dependencies of the server anyway
    import orjson

    def _loads(data: bytes | str) -> Any:
        return orjson.loads(data)

    def _dumps(obj: Any) -> bytes:
        return orjson.dumps(obj)

except ImportError:  # pragma: no cover

    def _loads(data: bytes | str) -> Any:
        return json.loads(data)

    def _dumps(obj: Any) -> bytes:
        return json.dumps(obj, separators=(",", ":")).encode()


try:
    import pybase64 as _b64
except ImportError:  # pragma: no cover
    import base64 as _b64  # type: ignore[no-redef]


def _b64decode(text: str) -> bytes:
    # validate=True is pybase64's fast path (several times faster than the lenient decoder)
    return _b64.b64decode(text, validate=True)


HERE = pathlib.Path(__file__).resolve().parent
RESULTS = HERE / "results"
# websockets' default max_size (1 MiB) is below what a server may send (an fs/readFile reply,
# a server that reads more than our 64 KiB per output frame); Codex's own client (tungstenite)
# accepts 64 MiB.
CLIENT_MAX_SIZE = 64 * 1024 * 1024
KILL_WINDOW = 16
STALL_S = 10.0  # no message at all for this long while a case runs: the connection is wedged
ATTEMPTS = 3  # a case whose connection broke is retried on a fresh connection (new session)


# ------------------------------------------------------------------ configuration


class Sizes:
    def __init__(self, quick: bool) -> None:
        self.quick = quick
        self.stream_bytes = (16 if quick else 256) * 1024 * 1024
        self.stream_reps = 1 if quick else 3
        self.true_runs = 30 if quick else 300
        self.echo_rounds = 50 if quick else 500
        self.sleepers = 50 if quick else 500
        self.sleep_s = "1" if quick else "2"
        self.mem_procs = 50 if quick else 500
        self.sandbox_runs = 10 if quick else 100


def pctl(values: list[float], q: float) -> float:
    """Nearest-rank percentile."""
    s = sorted(values)
    return s[max(0, min(len(s) - 1, math.ceil(q * len(s)) - 1))]


def cpu_seconds(pid: int) -> float:
    """utime + stime of one process (threads included, children excluded)."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def vmrss_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for {pid}")


# ------------------------------------------------------------------ servers


class Server:
    """A server child process; first stdout line is its ws:// URL."""

    def __init__(
        self,
        name: str,
        argv: list[str],
        env: dict[str, str] | None = None,
        cleanup: str | None = None,
    ) -> None:
        self.name = name
        self.argv = argv
        self.env = env
        self.cleanup = cleanup
        self.proc: asyncio.subprocess.Process | None = None
        self.url = ""
        self.stderr_tail = bytearray()
        self._tasks: list[asyncio.Task[None]] = []

    async def start(self) -> None:
        self.proc = await asyncio.create_subprocess_exec(
            *self.argv,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env=self.env,
        )
        assert self.proc.stdout is not None
        assert self.proc.stderr is not None
        self._tasks.append(asyncio.ensure_future(self._drain(self.proc.stderr)))
        async with asyncio.timeout(30):
            line = await self.proc.stdout.readline()
        self._tasks.append(asyncio.ensure_future(self._drain(self.proc.stdout)))
        self.url = line.decode().strip()
        if not self.url.startswith("ws://127.0.0.1:"):
            raise RuntimeError(
                f"{self.name} did not print a 127.0.0.1 URL: {line!r} {self.stderr_tail[-2000:]!r}"
            )

    async def _drain(self, stream: asyncio.StreamReader) -> None:
        while chunk := await stream.read(65536):
            self.stderr_tail += chunk
            if len(self.stderr_tail) > 1 << 20:
                del self.stderr_tail[: len(self.stderr_tail) - (256 << 10)]

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def rss_kib(self) -> int:
        return vmrss_kib(self.pid)

    async def stop(self) -> None:
        proc = self.proc
        if proc is not None and proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                proc.terminate()
            try:
                async with asyncio.timeout(10):
                    await proc.wait()
            except TimeoutError:
                proc.kill()
                await proc.wait()
        for t in self._tasks:
            t.cancel()
        if self.cleanup:
            shutil.rmtree(self.cleanup, ignore_errors=True)


# ------------------------------------------------------------------ client


class Client:
    """One WebSocket connection: pipelined requests, notifications routed by processId."""

    def __init__(self, ws: Any) -> None:
        self.ws = ws
        self.next_id = 1
        self.pending: dict[int, asyncio.Future[Any]] = {}
        self.handlers: dict[str, Callable[[str, dict[str, Any]], None]] = {}
        self.last_recv = time.monotonic()
        self.stalled = False
        self.reader = asyncio.ensure_future(self._read())

    @property
    def broken(self) -> bool:
        return self.stalled or self.reader.done()

    async def watched(self, coro: Awaitable[dict[str, Any]], stall_s: float) -> dict[str, Any]:
        """Run ``coro``; fail fast when the server sends nothing at all for ``stall_s`` while
        it runs (a wedged connection otherwise only shows after the 20 s keepalive ping +
        20 s ping timeout)."""
        task = asyncio.ensure_future(coro)
        try:
            while True:
                done, _ = await asyncio.wait({task}, timeout=0.5)
                if done:
                    return task.result()
                quiet = time.monotonic() - self.last_recv
                if quiet > stall_s:
                    self.stalled = True
                    raise RuntimeError(f"server stalled: no message at all for {quiet:.0f} s")
        finally:
            if not task.done():
                task.cancel()
                with contextlib.suppress(BaseException):
                    await task

    @classmethod
    async def open(cls, url: str) -> Client:
        # Default settings except: max_size (see CLIENT_MAX_SIZE) and proxy=None (never leave
        # 127.0.0.1 even if a proxy variable is set). No socket options are touched here.
        ws = await connect(url, max_size=CLIENT_MAX_SIZE, proxy=None)
        c = cls(ws)
        await c.request("initialize", {"clientName": "exec-server-bench"})
        await c.notify("initialized", {})
        return c

    async def _read(self) -> None:
        ws = self.ws
        pending = self.pending
        handlers = self.handlers
        try:
            while True:
                msg = _loads(await ws.recv(decode=False))
                self.last_recv = time.monotonic()
                mid = msg.get("id")
                if mid is not None and "method" not in msg:
                    fut = pending.pop(mid, None)
                    if fut is not None and not fut.done():
                        fut.set_result(msg)
                    continue
                params = msg.get("params") or {}
                h = handlers.get(params.get("processId", ""))
                if h is not None:
                    h(msg["method"], params)
        except Exception as exc:  # connection closed: fail whatever waits
            for fut in pending.values():
                if not fut.done():
                    fut.set_exception(ConnectionError(f"connection lost: {exc!r}"))
            pending.clear()

    async def send(self, method: str, params: dict[str, Any]) -> asyncio.Future[Any]:
        """Send a request; the returned future resolves to the raw response message."""
        if self.reader.done():
            raise ConnectionError("connection is closed")
        mid = self.next_id
        self.next_id += 1
        fut: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self.pending[mid] = fut
        await self.ws.send(_dumps({"id": mid, "method": method, "params": params}), text=True)
        return fut

    async def request(self, method: str, params: dict[str, Any]) -> Any:
        msg = await (await self.send(method, params))
        if "error" in msg:
            raise RuntimeError(
                f"{method}: {msg['error'].get('code')} {msg['error'].get('message')}"
            )
        return msg["result"]

    async def notify(self, method: str, params: dict[str, Any]) -> None:
        await self.ws.send(_dumps({"method": method, "params": params}), text=True)

    async def close(self) -> None:
        self.reader.cancel()
        with contextlib.suppress(Exception):
            async with asyncio.timeout(2):
                await self.ws.close()


CWD_URI = pathlib.Path.cwd().as_uri()
CHILD_ENV = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LANG": "C"}
READ_ONLY_SANDBOX = read_only(pathlib.Path.cwd())


def start_params(
    pid: str, argv: list[str], pipe_stdin: bool = False, sandbox: dict[str, Any] | None = None
) -> dict[str, Any]:
    p: dict[str, Any] = {
        "processId": pid,
        "argv": argv,
        "cwd": CWD_URI,
        "env": CHILD_ENV,
        "tty": False,
        "pipeStdin": pipe_stdin,
        "arg0": None,
    }
    if sandbox is not None:
        p["sandbox"] = sandbox
    return p


class Tracker:
    """Per-process notification sink: counts output bytes, resolves on closed."""

    __slots__ = ("closed", "exit_code", "messages", "nbytes", "on_output", "out")

    def __init__(self, keep: bool = False) -> None:
        self.closed: asyncio.Future[float] = asyncio.get_running_loop().create_future()
        self.nbytes = 0
        self.messages = 0
        self.exit_code: int | None = None
        self.out = bytearray() if keep else None
        self.on_output: Callable[[], None] | None = None

    def __call__(self, method: str, params: dict[str, Any]) -> None:
        if method == "process/output":
            data = _b64decode(params["chunk"])
            self.nbytes += len(data)
            self.messages += 1
            if self.out is not None:
                self.out += data
            if self.on_output is not None:
                self.on_output()
        elif method == "process/exited":
            self.exit_code = params.get("exitCode")
        elif method == "process/closed" and not self.closed.done():
            self.closed.set_result(time.perf_counter())


class Remote:
    """The benchmark cases against one server."""

    def __init__(self, client: Client, prefix: str) -> None:
        self.c = client
        self.prefix = prefix
        self.n = 0

    def pid(self, tag: str) -> str:
        self.n += 1
        return f"{self.prefix}-{tag}-{self.n}"

    async def run_to_close(
        self, argv: list[str], keep: bool = False, sandbox: dict[str, Any] | None = None
    ) -> tuple[float, Tracker]:
        pid = self.pid(argv[0])
        tr = Tracker(keep)
        self.c.handlers[pid] = tr
        t0 = time.perf_counter()
        resp = await (await self.c.send("process/start", start_params(pid, argv, sandbox=sandbox)))
        if "error" in resp:
            del self.c.handlers[pid]
            raise RuntimeError(
                f"process/start: {resp['error'].get('code')} {resp['error'].get('message')}"
            )
        t1 = await tr.closed
        del self.c.handlers[pid]
        return t1 - t0, tr

    async def stream(self, server: Server, nbytes: int, reps: int) -> dict[str, Any]:
        """Best of ``reps`` runs (noise on a shared machine only ever slows a run down)."""
        runs = [await self.stream_once(server, nbytes) for _ in range(reps)]
        best = dict(max(runs, key=lambda x: float(x["mb_s"])))
        best["all_mb_s"] = [round(float(x["mb_s"]), 1) for x in runs]
        return best

    async def stream_once(self, server: Server, nbytes: int) -> dict[str, Any]:
        s0, c0 = cpu_seconds(server.pid), time.process_time()
        dt, tr = await self.run_to_close(["head", "-c", str(nbytes), "/dev/zero"])
        s1, c1 = cpu_seconds(server.pid), time.process_time()
        if tr.nbytes != nbytes:
            raise RuntimeError(f"got {tr.nbytes} bytes, expected {nbytes}")
        return {
            "seconds": dt,
            "bytes": tr.nbytes,
            "mb_s": nbytes / dt / 1e6,
            "server_cpu_s": s1 - s0,
            "client_cpu_s": c1 - c0,
            "output_messages": tr.messages,
        }

    async def rpc(self, rounds: int) -> dict[str, Any]:
        """Round trip of a request that starts no process: the floor under every case."""
        lat = []
        for _ in range(rounds):
            t0 = time.perf_counter()
            await self.c.request("environment/info", {})
            lat.append(time.perf_counter() - t0)
        return lat_summary(lat)

    async def true_latency(
        self, runs: int, sandbox: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        lat = []
        for _ in range(runs):
            dt, tr = await self.run_to_close(["true"], sandbox=sandbox)
            if tr.exit_code != 0:
                raise RuntimeError(f"true exited {tr.exit_code}")
            lat.append(dt)
        return lat_summary(lat)

    async def echo(self, rounds: int) -> dict[str, Any]:
        pid = self.pid("cat")
        tr = Tracker(keep=True)
        self.c.handlers[pid] = tr
        await self.c.request("process/start", start_params(pid, ["cat"], pipe_stdin=True))
        lat = []
        try:
            for i in range(rounds):
                payload = b"%02d" % (i % 100)
                want = 2 * (i + 1)
                got: asyncio.Future[float] = asyncio.get_running_loop().create_future()

                def on_output(got: asyncio.Future[float] = got, want: int = want) -> None:
                    if tr.nbytes >= want and not got.done():
                        got.set_result(time.perf_counter())

                tr.on_output = on_output
                t0 = time.perf_counter()
                wr = await self.c.send(
                    "process/write",
                    {
                        "processId": pid,
                        "chunk": _b64.b64encode(payload).decode(),
                        "writeId": f"w{i}",
                    },
                )
                t1 = await got
                lat.append(t1 - t0)
                resp = await wr
                if "error" in resp or resp["result"].get("status") != "accepted":
                    raise RuntimeError(f"process/write: {resp}")
            if bytes(tr.out or b"") != b"".join(b"%02d" % (i % 100) for i in range(rounds)):
                raise RuntimeError("echoed bytes differ")
        finally:
            tr.on_output = None
            with contextlib.suppress(Exception):
                await self.c.request("process/terminate", {"processId": pid})
            with contextlib.suppress(Exception):
                async with asyncio.timeout(10):
                    await tr.closed
            self.c.handlers.pop(pid, None)
        return lat_summary(lat)

    async def sleepers(self, count: int, secs: str) -> dict[str, Any]:
        trackers: list[tuple[str, Tracker]] = [(self.pid("sleep"), Tracker()) for _ in range(count)]
        for pid, tr in trackers:
            self.c.handlers[pid] = tr
        t0 = time.perf_counter()
        futs = [
            await self.c.send("process/start", start_params(pid, ["sleep", secs]))
            for pid, _ in trackers
        ]
        resps = await asyncio.gather(*futs)
        t_started = time.perf_counter()
        errors = [r["error"] for r in resps if "error" in r]
        if errors:
            raise RuntimeError(f"{len(errors)} starts failed, first: {errors[0]}")
        ends = await asyncio.gather(*(tr.closed for _, tr in trackers))
        for pid, _ in trackers:
            del self.c.handlers[pid]
        return {"seconds": max(ends) - t0, "all_started_s": t_started - t0, "count": count}

    async def memory(self, server: Server, count: int) -> dict[str, Any]:
        # warm up lazily imported paths, then sample idle
        for _ in range(5):
            await self.run_to_close(["true"])
        await asyncio.sleep(0.5)
        idle = server.rss_kib()
        trackers: list[tuple[str, Tracker]] = [
            (self.pid("msleep"), Tracker()) for _ in range(count)
        ]
        for pid, tr in trackers:
            self.c.handlers[pid] = tr
        futs = [
            await self.c.send("process/start", start_params(pid, ["sleep", "60"]))
            for pid, _ in trackers
        ]
        resps = await asyncio.gather(*futs)
        try:
            errors = [r["error"] for r in resps if "error" in r]
            if errors:
                raise RuntimeError(f"{len(errors)} starts failed, first: {errors[0]}")
            await asyncio.sleep(0.5)
            busy = server.rss_kib()
        finally:
            # At most KILL_WINDOW terminates in flight: the reference drops the connection
            # (1006, nothing logged) when 500 process/terminate requests arrive in one burst.
            with contextlib.suppress(Exception):
                async with asyncio.timeout(60):
                    inflight: list[asyncio.Future[Any]] = []
                    for pid, _ in trackers:
                        inflight.append(await self.c.send("process/terminate", {"processId": pid}))
                        if len(inflight) >= KILL_WINDOW:
                            await inflight.pop(0)
                    await asyncio.gather(*inflight, return_exceptions=True)
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(30):
                    await asyncio.gather(*(tr.closed for _, tr in trackers))
            for pid, _ in trackers:
                self.c.handlers.pop(pid, None)
        return {
            "idle_kib": idle,
            "busy_kib": busy,
            "count": count,
            "per_process_kib": (busy - idle) / count,
        }


def lat_summary(lat: list[float]) -> dict[str, Any]:
    return {
        "n": len(lat),
        "p50_ms": pctl(lat, 0.50) * 1e3,
        "p99_ms": pctl(lat, 0.99) * 1e3,
        "min_ms": min(lat) * 1e3,
        "max_ms": max(lat) * 1e3,
    }


# ------------------------------------------------------------------ client ceiling

# A stand-in "server" (raw asyncio streams, hand-rolled WebSocket framing) that answers
# initialize and process/start and then only replays one pre-encoded 1 MiB process/output
# payload (argv[2] bytes in all), exited and closed: no child process, no pipe, no encoding.
# Measured with the same client, it is about the most this client can ingest on this machine:
# the ceiling of the throughput figures.
CANNED_SERVER = r"""
import asyncio, base64, hashlib, struct, sys, orjson, pybase64

FULL = pybase64.b64encode(bytes(1 << 20))
GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


def frame_head(n):
    if n < 126:
        return bytes((0x81, n))
    if n < 1 << 16:
        return bytes((0x81, 126)) + struct.pack("!H", n)
    return bytes((0x81, 127)) + struct.pack("!Q", n)


async def recv(reader):
    b0, b1 = await reader.readexactly(2)
    n = b1 & 0x7F
    if n == 126:
        n = struct.unpack("!H", await reader.readexactly(2))[0]
    elif n == 127:
        n = struct.unpack("!Q", await reader.readexactly(8))[0]
    mask = await reader.readexactly(4) if b1 & 0x80 else b"\0\0\0\0"
    data = await reader.readexactly(n)
    return b0 & 0x0F, bytes(c ^ mask[i & 3] for i, c in enumerate(data))


async def handle(reader, writer):
    head = await reader.readuntil(b"\r\n\r\n")
    key = [l.split(b":", 1)[1].strip() for l in head.split(b"\r\n")
           if l.lower().startswith(b"sec-websocket-key:")][0]
    accept = base64.b64encode(hashlib.sha1(key + GUID).digest())
    writer.transport.set_write_buffer_limits(high=8 << 20, low=2 << 20)
    writer.write(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                 b"Connection: Upgrade\r\nSec-WebSocket-Accept: " + accept + b"\r\n\r\n")

    def send(payload):
        writer.write(frame_head(len(payload)))
        writer.write(payload)

    while True:
        try:
            op, data = await recv(reader)
        except (asyncio.IncompleteReadError, ConnectionError):
            return
        if op == 8:
            writer.close()
            return
        if op == 9:
            writer.write(bytes((0x8A, len(data))) + data)
            continue
        msg = orjson.loads(data)
        mid, method, params = msg.get("id"), msg.get("method"), msg.get("params") or {}
        if mid is None:
            continue
        if method == "process/start":
            pid = params["processId"]
            send(orjson.dumps({"id": mid, "result": {"processId": pid}}))
            pre = b'{"method":"process/output","params":{"processId":' + orjson.dumps(pid)
            left, seq = int(params["argv"][2]), 0
            while left > 0:
                n = min(left, 1 << 20)
                chunk = FULL if n == 1 << 20 else pybase64.b64encode(bytes(n))
                seq += 1
                mid_ = b',"seq":%d,"stream":"stdout","chunk":"' % seq
                writer.write(frame_head(len(pre) + len(mid_) + len(chunk) + 3))
                writer.write(pre)
                writer.write(mid_)
                writer.write(chunk)
                writer.write(b'"}}')
                await writer.drain()
                left -= n
            for m, extra in (("process/exited", {"exitCode": 0}), ("process/closed", {})):
                seq += 1
                send(orjson.dumps({"method": m, "params": {"processId": pid, "seq": seq, **extra}}))
        else:
            send(orjson.dumps({"id": mid, "result": {"sessionId": "canned"}}))
        await writer.drain()


async def main():
    srv = await asyncio.start_server(handle, "127.0.0.1", 0)
    print(f"ws://127.0.0.1:{srv.sockets[0].getsockname()[1]}", flush=True)
    await asyncio.Future()


asyncio.run(main())
"""


async def bench_ceiling(sizes: Sizes) -> dict[str, Any]:
    server = Server("canned", [sys.executable, "-c", CANNED_SERVER])
    await server.start()
    try:
        client = await Client.open(server.url)
        try:
            r = Remote(client, "canned")
            return await guarded(
                "ceiling",
                client.watched(r.stream(server, sizes.stream_bytes, sizes.stream_reps), STALL_S),
                60,
            )
        finally:
            await client.close()
    finally:
        await server.stop()


# ------------------------------------------------------------------ local asyncio baselines


async def _spawn_piped(*argv: str) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        *argv,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        start_new_session=True,
    )


async def _to_close(proc: asyncio.subprocess.Process) -> int:
    assert proc.stdout is not None
    assert proc.stderr is not None
    n = 0

    async def drain(s: asyncio.StreamReader) -> None:
        nonlocal n
        while chunk := await s.read(1 << 20):
            n += len(chunk)

    await asyncio.gather(drain(proc.stdout), drain(proc.stderr), proc.wait())
    return n


class Local:
    async def stream(self, nbytes: int, reps: int) -> dict[str, Any]:
        runs = [await self.stream_once(nbytes) for _ in range(reps)]
        best = dict(max(runs, key=lambda x: float(x["mb_s"])))
        best["all_mb_s"] = [round(float(x["mb_s"]), 1) for x in runs]
        return best

    async def stream_once(self, nbytes: int) -> dict[str, Any]:
        t0 = time.perf_counter()
        proc = await _spawn_piped("head", "-c", str(nbytes), "/dev/zero")
        got = await _to_close(proc)
        dt = time.perf_counter() - t0
        if got != nbytes:
            raise RuntimeError(f"got {got} bytes")
        return {"seconds": dt, "bytes": got, "mb_s": nbytes / dt / 1e6}

    async def true_latency(self, runs: int) -> dict[str, Any]:
        lat = []
        for _ in range(runs):
            t0 = time.perf_counter()
            await _to_close(await _spawn_piped("true"))
            lat.append(time.perf_counter() - t0)
        return lat_summary(lat)

    async def echo(self, rounds: int) -> dict[str, Any]:
        proc = await asyncio.create_subprocess_exec(
            "cat",
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            start_new_session=True,
        )
        assert proc.stdin is not None
        assert proc.stdout is not None
        lat = []
        try:
            for i in range(rounds):
                payload = b"%02d" % (i % 100)
                t0 = time.perf_counter()
                proc.stdin.write(payload)
                await proc.stdin.drain()
                back = await proc.stdout.readexactly(2)
                lat.append(time.perf_counter() - t0)
                if back != payload:
                    raise RuntimeError(f"echo mismatch {back!r}")
        finally:
            proc.stdin.close()
            await proc.wait()
        return lat_summary(lat)

    async def sleepers(self, count: int, secs: str) -> dict[str, Any]:
        t0 = time.perf_counter()
        procs = [await _spawn_piped("sleep", secs) for _ in range(count)]
        t_started = time.perf_counter()
        await asyncio.gather(*(_to_close(p) for p in procs))
        return {
            "seconds": time.perf_counter() - t0,
            "all_started_s": t_started - t0,
            "count": count,
        }

    async def memory(self) -> dict[str, Any]:
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-c",
            "import asyncio,sys; print(1, flush=True); sys.stdin.read()",
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
        )
        assert proc.stdout is not None
        assert proc.stdin is not None
        await proc.stdout.readline()
        rss = vmrss_kib(proc.pid)
        proc.stdin.close()
        await proc.wait()
        return {
            "idle_kib": rss,
            "busy_kib": None,
            "count": 0,
            "per_process_kib": None,
            "what": "bare interpreter (import asyncio)",
        }


# ------------------------------------------------------------------ driver


CASES = ["memory", "sleepers", "stream", "true", "echo", "rpc", "sandbox"]
TIMEOUTS = {
    "memory": 120,
    "sleepers": 120,
    "stream": 180,
    "true": 180,
    "echo": 180,
    "rpc": 120,
    "sandbox": 120,
}


async def guarded(name: str, coro: Awaitable[dict[str, Any]], timeout: float) -> dict[str, Any]:
    try:
        async with asyncio.timeout(timeout):
            return await coro
    except TimeoutError:
        return {"error": f"timed out after {timeout:.0f} s"}
    except Exception as exc:
        if os.environ.get("BENCH_DEBUG"):
            traceback.print_exc()
        text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        return {"error": text[:200]}


async def bench_server(
    server: Server, sizes: Sizes, log: Callable[[str], None], scale: float
) -> dict[str, Any]:
    out: dict[str, Any] = {}
    try:
        await server.start()
    except Exception as exc:
        return {"error": f"could not start: {exc}"}
    out["pid"] = server.pid
    try:
        client = await Client.open(server.url)
    except Exception as exc:
        await server.stop()
        return {"error": f"could not connect: {exc}"}
    out["extensions"] = [type(e).__name__ for e in getattr(client.ws.protocol, "extensions", [])]
    out["incidents"] = []
    r = Remote(client, server.name)

    def run_case(case: str) -> Awaitable[dict[str, Any]]:
        t = TIMEOUTS[case] * scale
        coro: Awaitable[dict[str, Any]]
        if case == "memory":
            coro = r.memory(server, sizes.mem_procs)
        elif case == "sleepers":
            coro = r.sleepers(sizes.sleepers, sizes.sleep_s)
        elif case == "stream":
            coro = r.stream(server, sizes.stream_bytes, sizes.stream_reps)
        elif case == "true":
            coro = r.true_latency(sizes.true_runs)
        elif case == "echo":
            coro = r.echo(sizes.echo_rounds)
        elif case == "rpc":
            coro = r.rpc(sizes.echo_rounds)
        else:
            coro = r.true_latency(sizes.sandbox_runs, READ_ONLY_SANDBOX)
        return guarded(case, r.c.watched(coro, STALL_S * (0.5 if sizes.quick else 1.0)), t)

    try:
        for case in CASES:
            log(f"  {server.name}: {case} ...")
            for attempt in range(ATTEMPTS):
                if client.broken:
                    # The previous attempt lost or wedged the connection: note it, open a fresh
                    # one (a new session) and go on, so one incident does not void the column.
                    await client.close()
                    try:
                        client = await Client.open(server.url)
                    except Exception as exc:
                        out[case] = {"error": f"reconnect failed: {exc}"}
                        break
                    r = Remote(client, f"{server.name}{len(out['incidents'])}")
                out[case] = await run_case(case)
                if "error" in out[case] and client.broken:
                    out["incidents"].append({"case": case, "error": out[case]["error"]})
                    log(f"    connection broken in {case}: {out[case]['error']}")
                    if attempt + 1 < ATTEMPTS:
                        continue
                break
            log(f"    {json.dumps(out[case])}")
    finally:
        await client.close()
        out["rss_end_kib"] = (
            server.rss_kib() if server.proc and server.proc.returncode is None else None
        )
        await server.stop()
    return out


async def bench_local(sizes: Sizes, log: Callable[[str], None], scale: float) -> dict[str, Any]:
    loc = Local()
    out: dict[str, Any] = {}
    for case in CASES:
        if case in ("sandbox", "rpc"):
            continue
        log(f"  local: {case} ...")
        t = TIMEOUTS[case] * scale
        if case == "memory":
            out[case] = await guarded(case, loc.memory(), t)
        elif case == "sleepers":
            out[case] = await guarded(case, loc.sleepers(sizes.sleepers, sizes.sleep_s), t)
        elif case == "stream":
            out[case] = await guarded(case, loc.stream(sizes.stream_bytes, sizes.stream_reps), t)
        elif case == "true":
            out[case] = await guarded(case, loc.true_latency(sizes.true_runs), t)
        elif case == "echo":
            out[case] = await guarded(case, loc.echo(sizes.echo_rounds), t)
        log(f"    {json.dumps(out[case])}")
    return out


# ------------------------------------------------------------------ report


def _get(d: dict[str, Any] | None, case: str, key: str) -> float | None:
    if not d or "error" in d:
        return None
    c = d.get(case)
    if not isinstance(c, dict) or "error" in c:
        return None
    v = c.get(key)
    return float(v) if isinstance(v, (int, float)) else None


def _err(d: dict[str, Any] | None, case: str) -> str | None:
    if d is None:
        return None
    if "error" in d:
        return str(d["error"])
    c = d.get(case)
    if isinstance(c, dict) and "error" in c:
        return str(c["error"])
    return None


def build_rows(res: dict[str, Any]) -> list[dict[str, Any]]:
    ours, ref, loc = res["ours"], res.get("reference"), res["local"]
    rows: list[dict[str, Any]] = []

    def row(
        label: str,
        unit: str,
        case: str,
        key: str,
        lower_better: bool,
        target: tuple[str, str, float] | None = None,
        local: bool = True,
    ) -> None:
        o, r, lo = (
            _get(ours, case, key),
            _get(ref, case, key),
            (_get(loc, case, key) if local else None),
        )
        entry: dict[str, Any] = {
            "label": label,
            "unit": unit,
            "ours": o,
            "reference": r,
            "local": lo,
            "ours_err": _err(ours, case),
            "ref_err": _err(ref, case) if ref is not None else "not run",
            "local_err": _err(loc, case) if local else "n/a",
            "ours_over_ref": (o / r) if (o is not None and r) else None,
            "ours_over_local": (o / lo) if (o is not None and lo) else None,
            "lower_better": lower_better,
        }
        if target is not None:
            against, text, limit = target
            ratio = entry["ours_over_ref"] if against == "reference" else entry["ours_over_local"]
            if ratio is None:
                verdict = "n/a"
            elif lower_better:
                verdict = "PASS" if ratio <= limit else "FAIL"
            else:
                verdict = "PASS" if ratio >= limit else "FAIL"
            entry["target"] = text
            entry["verdict"] = verdict
        rows.append(entry)

    row(
        f"stream {res['sizes']['stream_bytes'] >> 20} MiB throughput",
        "MB/s",
        "stream",
        "mb_s",
        False,
        ("reference", ">= 3x ref", 3.0),
    )
    row("  server CPU for the stream", "s", "stream", "server_cpu_s", True, local=False)
    row("  client CPU for the stream", "s", "stream", "client_cpu_s", True, local=False)
    row("true start->closed p50", "ms", "true", "p50_ms", True, ("local", "<= 2x local", 2.0))
    row("true start->closed p99", "ms", "true", "p99_ms", True)
    row("2-byte echo via cat p50", "ms", "echo", "p50_ms", True, ("local", "<= 4x local", 4.0))
    row("2-byte echo via cat p99", "ms", "echo", "p99_ms", True)
    row("  environment/info round trip p50", "ms", "rpc", "p50_ms", True, local=False)
    row(
        f"{res['sizes']['sleepers']} x sleep {res['sizes']['sleep_s']} all closed",
        "s",
        "sleepers",
        "seconds",
        True,
        ("local", "<= 1.15x local", 1.15),
    )
    row("server RSS idle", "MiB", "memory", "idle_mib", True)
    row(
        f"server RSS with {res['sizes']['mem_procs']} sleeps",
        "MiB",
        "memory",
        "busy_mib",
        True,
        local=False,
    )
    row(
        "RSS per running process",
        "KiB",
        "memory",
        "per_process_kib",
        True,
        ("reference", "<= 0.5x ref", 0.5),
        local=False,
    )

    # sandboxed vs unsandboxed, same server: ratio column "ours_over_local" reused as sbx/unsbx
    for who, d in (("ours", ours), ("reference", ref)):
        if d is None:
            continue
        s, u = _get(d, "sandbox", "p50_ms"), _get(d, "true", "p50_ms")
        ratio = (s / u) if (s is not None and u) else None
        entry: dict[str, Any] = {
            "label": f"sandboxed true p50 ({who})",
            "unit": "ms",
            "who": who,
            "sandboxed": s,
            "unsandboxed": u,
            "err": _err(d, "sandbox"),
            "sbx_over_unsbx": ratio,
        }
        if who == "ours":
            entry["target"] = "<= 2x unsandboxed"
            entry["verdict"] = "n/a" if ratio is None else ("PASS" if ratio <= 2.0 else "FAIL")
        rows.append(entry)
    return rows


def _fmt(v: float | None, err: str | None = None) -> str:
    if v is None:
        return f"n/a ({err})" if err and err not in ("not run", "n/a") else "n/a"
    if v >= 100:
        return f"{v:.0f}"
    if v >= 10:
        return f"{v:.1f}"
    return f"{v:.2f}"


def _ratio(v: float | None) -> str:
    return "-" if v is None else f"{v:.2f}x"


def render(res: dict[str, Any]) -> str:
    rows = res["rows"]
    head = [
        "metric",
        "unit",
        "ours",
        "reference",
        "local",
        "ours/ref",
        "ours/local",
        "target",
        "verdict",
    ]
    lines = []
    for e in rows:
        if "sandboxed" in e:
            lines.append(
                [
                    e["label"],
                    e["unit"],
                    _fmt(e["sandboxed"], e["err"]),
                    "",
                    f"unsandboxed {_fmt(e['unsandboxed'])}",
                    "",
                    f"{_ratio(e['sbx_over_unsbx'])} (sbx/unsbx)",
                    e.get("target", ""),
                    e.get("verdict", ""),
                ]
            )
        else:
            lines.append(
                [
                    e["label"],
                    e["unit"],
                    _fmt(e["ours"], e["ours_err"]),
                    _fmt(e["reference"], e["ref_err"]),
                    _fmt(e["local"], e["local_err"]),
                    _ratio(e["ours_over_ref"]),
                    _ratio(e["ours_over_local"]),
                    e.get("target", ""),
                    e.get("verdict", ""),
                ]
            )
    widths = [max(len(str(x)) for x in col) for col in zip(head, *lines, strict=False)]
    out = ["  ".join(h.ljust(w) for h, w in zip(head, widths, strict=False))]
    out.append("  ".join("-" * w for w in widths))
    out += [
        "  ".join(str(x).ljust(w) for x, w in zip(line, widths, strict=False)).rstrip()
        for line in lines
    ]
    return "\n".join(out)


def add_mib(d: dict[str, Any] | None) -> None:
    if d and isinstance(d.get("memory"), dict) and "error" not in d["memory"]:
        m = d["memory"]
        m["idle_mib"] = m["idle_kib"] / 1024
        m["busy_mib"] = m["busy_kib"] / 1024 if m.get("busy_kib") is not None else None


# ------------------------------------------------------------------ main


async def amain(args: argparse.Namespace) -> int:
    t_start = time.monotonic()
    sizes = Sizes(args.quick)
    scale = 0.25 if args.quick else 1.0

    def log(msg: str) -> None:
        if not args.quiet:
            print(msg, file=sys.stderr, flush=True)

    ref_bin = args.reference or reference_bin(HERE.parent)
    if ref_bin and not os.access(ref_bin, os.X_OK):
        log(f"reference {ref_bin!r} is not executable: skipping it")
        ref_bin = None
    if args.no_reference:
        ref_bin = None

    res: dict[str, Any] = {
        "when": _dt.datetime.now().astimezone().isoformat(timespec="seconds"),
        "quick": args.quick,
        "host": {
            "python": sys.version.split()[0],
            "websockets": getattr(websockets, "__version__", "?"),
            "cpus": os.cpu_count(),
            "loadavg_start": os.getloadavg(),
            "kernel": platform.release(),
        },
        "sizes": {k: v for k, v in vars(sizes).items()},
        "reference_bin": os.path.basename(ref_bin) if ref_bin else None,
    }

    log("client ceiling (canned server)")
    try:
        res["client_ceiling"] = await bench_ceiling(sizes)
    except Exception as exc:
        res["client_ceiling"] = {"error": str(exc)[:200]}
    log(f"    {json.dumps(res['client_ceiling'])}")
    log("ours")
    # The 500-sleeper case runs 500 processes in one session: above the default per-session
    # quota (256), which the reference does not have.
    quotas = ["--max-processes-per-session", "4096", "--max-processes", "8192"]
    ours = Server(
        "ours",
        [sys.executable, "-m", "exec_server", "--listen", "ws://127.0.0.1:0", *quotas,
         *args.ours_arg],
    )  # fmt: skip
    res["ours"] = await bench_server(ours, sizes, log, scale)
    if ref_bin:
        log("reference")
        home = tempfile.mkdtemp(prefix="exec-server-bench-codex-home-", dir="/var/tmp")
        env = dict(os.environ, CODEX_HOME=home)
        ref = Server(
            "ref", [ref_bin, "exec-server", "--listen", "ws://127.0.0.1:0"], env=env, cleanup=home
        )
        res["reference"] = await bench_server(ref, sizes, log, scale)
    else:
        res["reference"] = None
    log("local asyncio")
    res["local"] = await bench_local(sizes, log, scale)

    for k in ("ours", "reference", "local"):
        add_mib(res.get(k))
    res["host"]["loadavg_end"] = os.getloadavg()
    res["rows"] = build_rows(res)
    res["elapsed_s"] = time.monotonic() - t_start

    table = render(res)
    print(table)
    print(
        f"\n(load avg start {res['host']['loadavg_start'][0]:.2f}, "
        f"end {res['host']['loadavg_end'][0]:.2f}; "
        f"{res['elapsed_s']:.1f} s; reference: {'yes' if ref_bin else 'absent'})"
    )
    ceil = res["client_ceiling"]
    if "mb_s" in ceil:
        ref_mb = _get(res.get("reference"), "stream", "mb_s")
        need = f"; 3x the reference would need {3 * ref_mb:.0f} MB/s" if ref_mb else ""
        print(
            f"client ceiling: {ceil['mb_s']:.0f} MB/s from a canned server that only replays "
            f"pre-encoded output frames (client CPU {ceil['client_cpu_s']:.2f} s){need}"
        )
    for who in ("ours", "reference"):
        d = res.get(who)
        for inc in (d or {}).get("incidents", []):
            print(
                f"incident ({who}): connection broken during {inc['case']}: {inc['error']} "
                f"(reconnected; a case is tried at most {ATTEMPTS} times)"
            )
    if not args.no_save:
        RESULTS.mkdir(parents=True, exist_ok=True)
        stamp = _dt.datetime.now().strftime("%Y%m%d-%H%M%S")
        path = RESULTS / f"{stamp}{'-quick' if args.quick else ''}.json"
        path.write_text(json.dumps(res, indent=1, default=str) + "\n")
        print(f"results: {path}")
    if args.quick and res["elapsed_s"] >= 60:
        print(f"SMOKE FAIL: --quick took {res['elapsed_s']:.1f} s (limit 60 s)", file=sys.stderr)
        return 1
    return 0


def main() -> int:
    ap = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument(
        "--quick", action="store_true", help="smoke run with small sizes (must finish in < 60 s)"
    )
    ap.add_argument(
        "--reference", metavar="PATH", help=f"reference codex binary (default: ${ENV_BIN})"
    )
    ap.add_argument(
        "--no-reference", action="store_true", help="skip the reference even if configured"
    )
    ap.add_argument(
        "--ours-arg",
        action="append",
        default=[],
        metavar="ARG",
        help="extra argument for our server (repeatable), e.g. --ours-arg=--log-level=warning",
    )
    ap.add_argument("--no-save", action="store_true", help="do not write bench/results/*.json")
    ap.add_argument("--quiet", action="store_true", help="no progress lines on stderr")
    args = ap.parse_args()
    limit = 90 if args.quick else 900
    try:
        return asyncio.run(asyncio.wait_for(amain(args), limit))
    except TimeoutError:
        print(f"benchmark timed out ({limit} s)", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
