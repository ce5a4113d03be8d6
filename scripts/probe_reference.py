#!/usr/bin/env python3
"""Probe the reference ``codex exec-server`` over a real WebSocket and print raw frames.

The reference binary is located via ``--bin`` or the environment variable
``EXEC_SERVER_REFERENCE_BIN`` (never a hard-coded path).  The server is started on a free
port with ``CODEX_HOME`` set to ``--codex-home`` / ``$EXEC_SERVER_REFERENCE_CODEX_HOME`` or a
fresh temporary directory under ``/var/tmp`` (the reference cannot set up its sandbox helpers
when CODEX_HOME is under /tmp).

Script format (``--script FILE`` or ``-`` for stdin), one step per line:

    {"id":1,"method":"initialize","params":{"clientName":"probe"}}   send this JSON object
    raw <text>                 send <text> verbatim as a text frame (e.g. ``raw [1,2]``)
    binary <text>              send <text> as a binary frame
    wait <seconds>             collect frames for this long
    expect <n>                 wait until n more frames arrived (timeout --timeout)
    handshake                  initialize + initialized, prints both directions
    # comment / blank lines    ignored

After each sent message the script collects frames until ``--settle`` seconds pass without one.
Every frame is printed as ``>>> <sent>`` / ``<<< <received>`` exactly as on the wire.

It is also importable: ``Reference`` starts/stops the binary, ``Conn`` wraps one connection with
``send``/``send_raw``/``request``/``recv``/``notifications``.

Examples:

    EXEC_SERVER_REFERENCE_BIN=/path/to/codex python scripts/probe_reference.py --script steps.txt
    printf 'handshake\\n{"id":2,"method":"environment/info"}\\n' | \\
        python scripts/probe_reference.py --bin /path/to/codex --script -
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import shutil
import socket
import sys
import tempfile
import time
from collections.abc import Iterable
from typing import Any

import websockets

ENV_BIN = "EXEC_SERVER_REFERENCE_BIN"
ENV_HOME = "EXEC_SERVER_REFERENCE_CODEX_HOME"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def find_binary(explicit: str | None) -> str:
    path = explicit or os.environ.get(ENV_BIN)
    if not path:
        raise SystemExit(f"reference binary not given: pass --bin or set {ENV_BIN}")
    if not os.access(path, os.X_OK):
        raise SystemExit(f"reference binary {path!r} is not executable")
    return path


class Reference:
    """A running reference exec-server process."""

    def __init__(
        self,
        binary: str,
        codex_home: str | None = None,
        extra_args: Iterable[str] = (),
        env: dict[str, str] | None = None,
        cwd: str | None = None,
    ) -> None:
        self.binary = binary
        self._own_home = codex_home is None
        self.codex_home = codex_home or tempfile.mkdtemp(prefix="codex-ref-home-", dir="/var/tmp")
        self.extra_args = list(extra_args)
        self.env = env
        self.cwd = cwd
        self.proc: asyncio.subprocess.Process | None = None
        self.url = ""
        self.stderr_lines: list[str] = []

    async def start(self, port: int | None = None) -> str:
        port = port or free_port()
        env = dict(os.environ if self.env is None else self.env)
        env["CODEX_HOME"] = self.codex_home
        self.proc = await asyncio.create_subprocess_exec(
            self.binary,
            "exec-server",
            "--listen",
            f"ws://127.0.0.1:{port}",
            *self.extra_args,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            stdin=asyncio.subprocess.DEVNULL,
            env=env,
            cwd=self.cwd,
        )
        assert self.proc.stdout is not None
        line = await asyncio.wait_for(self.proc.stdout.readline(), 30)
        self.url = line.decode().strip()
        asyncio.get_running_loop().create_task(self._drain_stderr())
        return self.url

    async def _drain_stderr(self) -> None:
        assert self.proc is not None
        assert self.proc.stderr is not None
        async for raw in self.proc.stderr:
            self.stderr_lines.append(raw.decode(errors="replace").rstrip("\n"))

    async def stop(self) -> None:
        if self.proc is not None and self.proc.returncode is None:
            self.proc.terminate()
            try:
                await asyncio.wait_for(self.proc.wait(), 5)
            except TimeoutError:
                self.proc.kill()
                await self.proc.wait()
        if self._own_home:
            shutil.rmtree(self.codex_home, ignore_errors=True)

    async def __aenter__(self) -> Reference:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()


class Conn:
    """One WebSocket connection; records every frame in ``log``."""

    def __init__(self, ws: Any, verbose: bool = True) -> None:
        self.ws = ws
        self.verbose = verbose
        self.log: list[tuple[float, str, str]] = []
        self.queue: asyncio.Queue[str | None] = asyncio.Queue()
        self.notifications: list[dict[str, Any]] = []
        self._next_id = 1000
        self._waiters: dict[Any, asyncio.Future[dict[str, Any]]] = {}
        self._reader = asyncio.get_running_loop().create_task(self._read())
        self.closed: str | None = None

    @classmethod
    async def connect(cls, url: str, verbose: bool = True, **kw: Any) -> Conn:
        ws = await websockets.connect(url, max_size=None, **kw)
        return cls(ws, verbose)

    def _print(self, direction: str, text: str) -> None:
        self.log.append((time.monotonic(), direction, text))
        if self.verbose:
            print(f"{direction} {text}", flush=True)

    async def _read(self) -> None:
        try:
            async for frame in self.ws:
                text = (
                    frame
                    if isinstance(frame, str)
                    else "<binary>" + frame.decode("utf-8", "replace")
                )
                self._print("<<<", text)
                try:
                    msg = json.loads(frame)
                except ValueError:
                    msg = None
                if isinstance(msg, dict) and "method" in msg and "id" not in msg:
                    self.notifications.append(msg)
                if isinstance(msg, dict) and "id" in msg and "method" not in msg:
                    fut = self._waiters.pop(_key(msg["id"]), None)
                    if fut is not None and not fut.done():
                        fut.set_result(msg)
                        continue
                await self.queue.put(text)
        except websockets.ConnectionClosed as e:
            self.closed = f"code={e.code} reason={e.reason!r}"
        except Exception as e:
            self.closed = f"{type(e).__name__}: {e}"
        finally:
            if self.closed is None:
                self.closed = (
                    f"code={getattr(self.ws, 'close_code', None)} "
                    f"reason={getattr(self.ws, 'close_reason', None)!r}"
                )
            self._print("---", f"connection closed: {self.closed}")
            for fut in self._waiters.values():
                if not fut.done():
                    fut.set_exception(ConnectionError(self.closed))
            await self.queue.put(None)

    async def send_raw(self, text: str | bytes) -> None:
        self._print(
            ">>>", text if isinstance(text, str) else "<binary>" + text.decode("utf-8", "replace")
        )
        try:
            await self.ws.send(text)
        except websockets.ConnectionClosed as e:
            self._print("---", f"send failed, connection closed: {e}")

    async def send(self, obj: Any) -> None:
        await self.send_raw(json.dumps(obj, separators=(",", ":")))

    async def notify(self, method: str, params: Any = None) -> None:
        msg: dict[str, Any] = {"method": method}
        if params is not None:
            msg["params"] = params
        await self.send(msg)

    async def request(
        self,
        method: str,
        params: Any = None,
        *,
        id: Any = None,
        timeout: float = 30,
        omit_params: bool = False,
    ) -> dict[str, Any]:
        if id is None:
            self._next_id += 1
            id = self._next_id
        msg: dict[str, Any] = {"id": id, "method": method}
        if not omit_params:
            msg["params"] = params if params is not None else {}
        fut: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._waiters[_key(id)] = fut
        await self.send(msg)
        return await asyncio.wait_for(fut, timeout)

    async def recv(self, timeout: float = 5) -> str | None:
        """Next frame that is not a response claimed by ``request``."""
        return await asyncio.wait_for(self.queue.get(), timeout)

    async def collect(self, settle: float = 0.3, total: float = 10) -> list[str]:
        out: list[str] = []
        end = time.monotonic() + total
        while time.monotonic() < end:
            try:
                item = await asyncio.wait_for(self.queue.get(), settle)
            except TimeoutError:
                break
            if item is None:
                break
            out.append(item)
        return out

    async def wait_notification(
        self,
        method: str,
        pred: Any = None,
        timeout: float = 10,
    ) -> dict[str, Any]:
        end = time.monotonic() + timeout
        seen = 0
        while True:
            for n in self.notifications[seen:]:
                if n.get("method") == method and (pred is None or pred(n.get("params", {}))):
                    return n
            seen = len(self.notifications)
            if time.monotonic() > end:
                raise TimeoutError(method)
            await asyncio.sleep(0.01)

    async def handshake(self, client_name: str = "probe", **extra: Any) -> dict[str, Any]:
        res = await self.request("initialize", {"clientName": client_name, **extra})
        await self.notify("initialized", {})
        return res

    async def close(self) -> None:
        await self.ws.close()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self._reader, 5)


def _key(id: Any) -> str:
    return json.dumps(id)


async def run_script(url: str, lines: Iterable[str], settle: float, timeout: float) -> None:
    conn = await Conn.connect(url)
    for line in lines:
        line = line.rstrip("\n")
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        cmd, _, rest = line.strip().partition(" ")
        if cmd == "raw":
            await conn.send_raw(rest)
        elif cmd == "binary":
            await conn.send_raw(rest.encode())
        elif cmd == "wait":
            await conn.collect(settle=float(rest), total=float(rest))
            continue
        elif cmd == "expect":
            for _ in range(int(rest)):
                if await conn.recv(timeout) is None:
                    break
            continue
        elif cmd == "handshake":
            await conn.send({"id": 0, "method": "initialize", "params": {"clientName": "probe"}})
            await conn.collect(settle=settle, total=timeout)
            await conn.send({"method": "initialized", "params": {}})
        else:
            await conn.send_raw(line.strip())
        await conn.collect(settle=settle, total=timeout)
        if conn.closed:
            break
    await conn.close()


async def amain(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--bin", help=f"reference codex binary (default ${ENV_BIN})")
    ap.add_argument(
        "--codex-home", default=os.environ.get(ENV_HOME), help="CODEX_HOME (keep outside /tmp)"
    )
    ap.add_argument("--script", default="-", help="step file, '-' = stdin")
    ap.add_argument(
        "--url", help="probe an already-running server instead of starting the reference"
    )
    ap.add_argument("--settle", type=float, default=0.3, help="quiet period that ends a step")
    ap.add_argument("--timeout", type=float, default=10.0)
    ap.add_argument(
        "--show-stderr", action="store_true", help="print the server's stderr at the end"
    )
    ap.add_argument("server_args", nargs="*", help="extra args for `codex exec-server` (after --)")
    args = ap.parse_args(argv)
    if args.script == "-":
        lines = sys.stdin.readlines()
    else:
        with open(args.script) as fh:  # noqa: ASYNC230 - small local file, read once
            lines = fh.readlines()
    if args.url:
        await run_script(args.url, lines, args.settle, args.timeout)
        return
    ref = Reference(find_binary(args.bin), args.codex_home, args.server_args)
    url = await ref.start()
    print(f"# reference listening on {url} (CODEX_HOME={ref.codex_home})", flush=True)
    try:
        await run_script(url, lines, args.settle, args.timeout)
    finally:
        await ref.stop()
        if args.show_stderr:
            for line in ref.stderr_lines:
                print(f"# stderr: {line}")


if __name__ == "__main__":
    asyncio.run(amain())
