#!/usr/bin/env python3
"""Sandbox start overhead through the server (issue 4 acceptance 4, issue 8 acceptance 5).

For each host configuration — root on this kernel, the server as uid 65534 (``setpriv``), and
root with Landlock hidden (``exec_server.testing.confine --hide-landlock``) — one server, one
connection, ``true`` started and awaited until ``process/closed``, interleaved round-robin over
three variants so drift hits them alike: unsandboxed (``sandbox: null``), the read-only intent
and the workspace-write intent exactly as Codex sends them (docs/protocol.md, "Sandbox").
Prints p50/p90 per variant and the ratio to the same server's unsandboxed p50; the target is
p50 <= 2x unsandboxed in every configuration.

    .venv/bin/python bench/sandbox.py [--runs 300] [--config root nobody no-landlock] [--json]
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import math
import os
import sys
import tempfile
import time
from typing import Any

from exec_server.testing import RawClient, ServerProcess
from exec_server.testing.intents import read_only, workspace_write

ENV = {"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8"}
_SERVER = os.path.join(os.path.dirname(sys.executable), "exec-server")
_SETPRIV = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"]
CONFIGS: dict[str, tuple[list[str], int]] = {
    "root": ([_SERVER], 0),
    "nobody": ([*_SETPRIV, _SERVER], 65534),
    "no-landlock": (
        [sys.executable, "-m", "exec_server.testing.confine", "--hide-landlock", "--", _SERVER],
        0,
    ),
}


def intents(root: str) -> dict[str, dict[str, Any] | None]:
    return {
        "unsandboxed": None,
        "read-only": read_only(root),
        "workspace-write": workspace_write(root),
    }


def pctl(values: list[float], q: float) -> float:
    s = sorted(values)
    return s[max(0, min(len(s) - 1, math.ceil(q * len(s)) - 1))]


async def one(client: RawClient, pid: str, root: str, sandbox: dict[str, Any] | None) -> float:
    params = {
        "processId": pid,
        "argv": ["true"],
        "cwd": f"file://{root}",
        "env": ENV,
        "tty": False,
        "sandbox": sandbox,
    }
    t0 = time.perf_counter()
    await client.call("process/start", params)
    await client.next_notification("process/closed", pid, timeout=30)
    dt = time.perf_counter() - t0
    client.notifications.clear()
    return dt * 1000


async def amain(runs: int, warmup: int, config: str) -> dict[str, Any]:
    command, uid = CONFIGS[config]
    with tempfile.TemporaryDirectory(prefix="sbx-bench-", dir="/var/tmp") as root:
        os.chmod(root, 0o755)
        os.chown(root, uid, uid)
        variants = intents(root)
        samples: dict[str, list[float]] = {name: [] for name in variants}
        ids = itertools.count()
        async with ServerProcess(command=command, cwd="/") as server:
            client = await RawClient.connect(server.url)
            await client.handshake()
            try:
                for i in range(warmup + runs):
                    for name, sandbox in variants.items():
                        ms = await one(client, f"{name}-{next(ids)}", root, sandbox)
                        if i >= warmup:
                            samples[name].append(ms)
            finally:
                await client.aclose()
    base = pctl(samples["unsandboxed"], 0.5)
    out: dict[str, Any] = {"runs": runs, "config": config}
    for name, values in samples.items():
        p50 = pctl(values, 0.5)
        out[name] = {"p50_ms": p50, "p90_ms": pctl(values, 0.9), "ratio_p50": p50 / base}
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=300)
    parser.add_argument("--warmup", type=int, default=20)
    parser.add_argument("--config", nargs="+", choices=list(CONFIGS), default=list(CONFIGS))
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    args = parser.parse_args()
    results = [asyncio.run(amain(args.runs, args.warmup, config)) for config in args.config]
    if args.json:
        print(json.dumps(results, indent=2))
    worst = 0.0
    for result in results:
        print(f"[{result['config']}] true start->closed, {args.runs} runs each, interleaved")
        for name in ("unsandboxed", "read-only", "workspace-write"):
            r = result[name]
            print(
                f"  {name:16} p50 {r['p50_ms']:6.2f} ms  p90 {r['p90_ms']:6.2f} ms"
                f"  x{r['ratio_p50']:.2f}"
            )
        worst = max(worst, *(result[n]["ratio_p50"] for n in ("read-only", "workspace-write")))
    verdict = "PASS" if worst <= 2.0 else "FAIL"
    print(f"target sandboxed p50 <= 2x unsandboxed: {verdict} (worst x{worst:.2f})")
    return 0 if verdict == "PASS" else 1


if __name__ == "__main__":
    sys.exit(main())
