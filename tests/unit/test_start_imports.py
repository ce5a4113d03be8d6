"""An idle executor has not imported what only a client needs: the per-client machinery (the
RPC peer, the handlers, the session runtime, process supervision, file methods) is imported at
the first connection (its cost is the idle RSS of a warm executor, see bench/README.md)."""

from __future__ import annotations

import json
import subprocess
import sys

import exec_server
import pytest
from exec_server import processes, sandbox, transport

PER_CLIENT = (
    "exec_server.connection",
    "exec_server.handlers",
    "exec_server.rpc",
    "exec_server.processes.process",
    "exec_server.processes.table",
    "exec_server.fs",
    "exec_server.audit",
    "exec_server.environment",
)

# What `exec-server --listen ...` does up to ready (cli._run), then one client's handshake over
# a real WebSocket; prints the per-client modules loaded at each point.
_START_THEN_CONNECT = f"""
import asyncio, json, sys
import exec_server._entry, exec_server.cli
from exec_server.server import Server, ServerConfig
from websockets.asyncio.client import connect

def loaded():
    return [m for m in {PER_CLIENT!r} if m in sys.modules]

async def main():
    server = Server(ServerConfig(use_cgroups=False))
    server.install_child_reaper()
    host, port = await server.listen_websocket("127.0.0.1", 0)
    server.log_sandbox_layers()
    print(json.dumps(loaded()))
    async with asyncio.timeout(30):
        async with connect(f"ws://{{host}}:{{port}}") as ws:
            request = {{"id": 1, "method": "initialize", "params": {{"clientName": "t"}}}}
            await ws.send(json.dumps(request))
            assert "result" in json.loads(await ws.recv())
    print(json.dumps(loaded()))
    print(sys.modules["exec_server"].__file__)
    await server.aclose()

asyncio.run(main())
"""


def test_a_listening_server_imports_the_per_client_machinery_at_the_first_connection() -> None:
    out = subprocess.run(
        [sys.executable, "-c", _START_THEN_CONNECT], capture_output=True, text=True, check=False
    )
    assert out.returncode == 0, out.stderr
    at_start, after_connect, package = out.stdout.splitlines()
    assert package == exec_server.__file__  # the code under test, not an installed copy
    assert json.loads(at_start) == []
    assert json.loads(after_connect) == list(PER_CLIENT)


def test_every_name_a_lazy_package_exports_resolves_and_others_raise_attribute_error() -> None:
    for package in (processes, sandbox, transport):
        for name in package.__all__:
            assert getattr(package, name) is not None, (package.__name__, name)
        with pytest.raises(AttributeError, match="no attribute 'nope'"):
            _ = package.nope  # type: ignore[attr-defined]  # the name that is not there
