#!/usr/bin/env python3
"""Executor start time and idle memory (issue 13, acceptance 5).

Warm pools start an executor per pod or per session and want it ready in well under a second.
Ours runs from a venv with only its runtime dependencies, installed as ``pip install
'exec-server[server]'`` and the container image install them: regular (not editable) installs
with their modules compiled to bytecode at install time (pip's default; uv's
``--compile-bytecode``). Without the bytecode every start compiles every module again when
``PYTHONDONTWRITEBYTECODE`` is set, as it is in this development environment (``--no-compile``
measures that: about 1.6 times the start time). The venv is built with uv under /var/tmp, one
per checkout and mode. The development venv also holds ``typing_extensions``, which msgspec
imports when present (+20 ms, +7 MiB): it is not used here.

For ours and, when present, the reference ``codex exec-server``: ``--runs`` starts each,
alternating; each measures exec -> the first ``GET /readyz`` answered 200 (polled every 2 ms on
a port chosen beforehand), then the server's RSS once ready (idle, no connection). Reports p50
and max; targets: ours p50 <= 150 ms, idle RSS <= 28 MiB. Then, on the same server, two
connections one after the other, each a WebSocket connect and an ``initialize`` answered: the
first pays for what the server imports at its first client (ours defers the per-client
machinery to it), the second does not; and the RSS with that one session.

    .venv/bin/python bench/startup.py [--runs 10] [--no-reference] [--no-compile] [--json]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import psutil
from exec_server.testing.reference import reference_bin
from websockets.sync.client import connect

ROOT = Path(__file__).resolve().parent.parent
ROOT_DIR = str(ROOT)


def runtime_python(base: str, *, compile_bytecode: bool = True) -> str:
    """A venv made from interpreter ``base`` with the workspace's two packages and their
    runtime dependencies only."""
    key = f"{ROOT_DIR}\0{os.path.realpath(base)}"
    checkout = hashlib.sha256(key.encode()).hexdigest()[:8]
    mode = "" if compile_bytecode else "-no-compile"
    venv = f"/var/tmp/exec-server-bench-runtime-{checkout}{mode}"
    python = os.path.join(venv, "bin", "python")
    uv = os.path.join(ROOT_DIR, ".uv", "bin", "uv")
    subprocess.run([uv, "venv", "-q", "--allow-existing", venv, "--python", base],
                   check=True)  # fmt: skip
    packages = [
        os.path.join(ROOT_DIR, "packages", "exec-server-protocol"),
        os.path.join(ROOT_DIR, "packages", "exec-server") + "[server]",
    ]
    # --no-sources: the protocol package as a regular install (the workspace source would make
    # it an editable one, its modules read from the checkout).
    flags = ["--no-sources", *(["--compile-bytecode"] if compile_bytecode else [])]
    subprocess.run([uv, "pip", "install", "-q", *flags, "--reinstall-package", "exec-server",
                    "--reinstall-package", "exec-server-protocol", "--python", python, *packages],
                   check=True)  # fmt: skip
    return python


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _ready(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1) as s:
            s.sendall(b"GET /readyz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            return s.recv(64).startswith(b"HTTP/1.1 200")
    except OSError:
        return False


def _connect_and_initialize(port: int) -> float:
    """Ms from connect to the ``initialize`` result, on a new connection (closed after)."""
    t0 = time.perf_counter()
    with connect(f"ws://127.0.0.1:{port}", open_timeout=30) as ws:
        ws.send(json.dumps({"id": 1, "method": "initialize", "params": {"clientName": "bench"}}))
        reply = json.loads(ws.recv(timeout=30))
        elapsed = (time.perf_counter() - t0) * 1000
        if "result" not in reply:
            raise RuntimeError(f"initialize failed: {reply}")
    return elapsed


def one(command: list[str], env: dict[str, str]) -> tuple[float, float, float, float, float]:
    """Start ``command`` (with ``{port}`` filled in); returns (ms to ready, idle RSS MiB, ms of
    the first and of the second connect + initialize, RSS MiB after them)."""
    port = _free_port()
    argv = [part.format(port=port) for part in command]
    t0 = time.perf_counter()
    proc = subprocess.Popen(
        argv,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        stdin=subprocess.DEVNULL,
        env=env,
    )
    try:
        while not _ready(port):
            if proc.poll() is not None:
                raise RuntimeError(f"{argv[0]} exited with {proc.returncode}")
            if time.perf_counter() - t0 > 30:
                raise RuntimeError(f"{argv[0]} not ready after 30 s")
            time.sleep(0.002)
        ready_ms = (time.perf_counter() - t0) * 1000
        time.sleep(0.2)  # let it settle after the first request before reading its memory
        server = psutil.Process(proc.pid)
        rss = server.memory_info().rss / (1 << 20)
        first_ms = _connect_and_initialize(port)
        second_ms = _connect_and_initialize(port)
        time.sleep(0.2)
        rss_after = server.memory_info().rss / (1 << 20)
    finally:
        proc.terminate()
        proc.wait(10)
    return ready_ms, rss, first_ms, second_ms, rss_after


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--no-reference", action="store_true")
    parser.add_argument(
        "--no-compile", action="store_true", help="install ours without compiling its bytecode"
    )
    parser.add_argument(
        "--python",
        default=sys.executable,
        help="the interpreter ours runs on (default: this one; e.g. /usr/bin/python3, what the "
        "container image and a Debian host run)",
    )
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    python = runtime_python(args.python, compile_bytecode=not args.no_compile)
    servers: dict[str, tuple[list[str], dict[str, str]]] = {
        "ours": (
            [python, "-m", "exec_server", "--listen", "ws://127.0.0.1:{port}"],
            # Its own installed modules only, whatever PYTHONPATH this script runs with.
            {k: v for k, v in os.environ.items() if k != "PYTHONPATH"},
        ),
    }
    reference = None if args.no_reference else reference_bin(ROOT)
    home = tempfile.mkdtemp(prefix="startup-ref-home-", dir="/var/tmp")
    if reference:
        env = dict(os.environ, CODEX_HOME=home)
        servers["reference"] = (
            [reference, "exec-server", "--listen", "ws://127.0.0.1:{port}"],
            env,
        )
    samples: dict[str, list[tuple[float, float, float, float, float]]] = {
        name: [] for name in servers
    }
    one(*servers["ours"])  # warm the page cache once, for both alike
    for _ in range(args.runs):
        for name, (command, env) in servers.items():
            samples[name].append(one(command, env))
    result: dict[str, Any] = {
        "runs": args.runs,
        "load": os.getloadavg()[0],
        "bytecode": not args.no_compile,
        "python": subprocess.run(
            [python, "-c", "import sys; print(sys.version.split()[0], sys.base_prefix)"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip(),
    }
    for name, values in samples.items():
        ready = [v[0] for v in values]
        rss = [v[1] for v in values]
        result[name] = {
            "ready_p50_ms": statistics.median(ready),
            "ready_max_ms": max(ready),
            "rss_p50_mib": statistics.median(rss),
            "first_initialize_p50_ms": statistics.median(v[2] for v in values),
            "second_initialize_p50_ms": statistics.median(v[3] for v in values),
            "rss_one_session_p50_mib": statistics.median(v[4] for v in values),
        }
    if args.json:
        print(json.dumps(result, indent=2))
    mode = "" if result["bytecode"] else ", ours without bytecode"
    print(
        f"exec -> /readyz 200 and idle RSS, {args.runs} starts each "
        f"(load {result['load']:.2f}{mode}; ours on Python {result['python']})"
    )
    for name in servers:
        r = result[name]
        print(
            f"  {name:10} ready p50 {r['ready_p50_ms']:7.1f} ms  max {r['ready_max_ms']:7.1f} ms"
            f"  idle RSS p50 {r['rss_p50_mib']:5.1f} MiB"
        )
        print(
            f"  {'':10} connect+initialize p50 1st {r['first_initialize_p50_ms']:5.1f} ms"
            f"  2nd {r['second_initialize_p50_ms']:5.1f} ms"
            f"  RSS with one session p50 {r['rss_one_session_p50_mib']:5.1f} MiB"
        )
    ours = result["ours"]
    ok = ours["ready_p50_ms"] <= 150 and ours["rss_p50_mib"] <= 28
    print(f"targets ready p50 <= 150 ms, idle RSS <= 28 MiB: {'PASS' if ok else 'FAIL'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
