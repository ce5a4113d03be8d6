"""``--isolation external`` (issue 13): an operator who runs each executor in its own sandboxed
pod says so, and then a sandboxed intent this host cannot enforce runs under that isolation
only: loudly (a WARNING at start, ``environmentInfo.isolation``). Without the flag such a start
is refused with the message; where the host can sandbox, the flag changes nothing.

The host that cannot sandbox is simulated as in ``test_configurations``: the server runs as an
ordinary account (uid 65534) under a seccomp filter refusing user namespaces, as a container
runtime's default profile does.
"""

from __future__ import annotations

import os
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from exec_server.testing import RawClient, RawRpcError, ServerProcess
from exec_server.testing.accounts import server_command
from sandbox_intents import read_only

from tests.support import start_params, wait_until

NOBODY = 65534
REFUSED = "sandbox unavailable on this host: missing user namespaces"
_CONFINE = [sys.executable, "-m", "exec_server.testing.confine", "--own-root"]


def _env() -> dict[str, str]:
    # Coverage of another account's server would write where that account cannot.
    return {k: v for k, v in os.environ.items() if not k.startswith("COV")}


async def _server(*args: str, confined: bool) -> ServerProcess:
    if confined:
        command = [*_CONFINE, "--refuse-user-namespaces", "--", *server_command(NOBODY)]
    else:
        command = [*_CONFINE, "--", str(Path(sys.executable).parent / "exec-server")]
    server = ServerProcess(*args, command=command, env=_env(), cwd="/")
    await server.start()
    await wait_until(lambda: b"sandbox " in server.stderr, timeout=30)
    return server


@pytest.fixture
async def served() -> AsyncIterator[list[ServerProcess]]:
    servers: list[ServerProcess] = []
    yield servers
    for server in servers:
        await server.stop()
        assert b"Traceback" not in server.stderr, server.stderr.decode(errors="replace")[-3000:]


async def _start(server: ServerProcess, command: str) -> tuple[str, dict[str, object], bytes]:
    client = await RawClient.connect(server.url)
    try:
        info = (await client.handshake())["environmentInfo"]
        params = start_params("p", ["sh", "-c", command], sandbox=read_only())
        result = await client.call("process/start", params)
        collected = await client.collect("p")
        return result["sandboxType"], info, collected["stdout"] + collected["stderr"]
    finally:
        await client.aclose()


async def test_without_the_flag_a_sandbox_the_host_cannot_set_up_is_refused(
    served: list[ServerProcess],
) -> None:
    server = await _server(confined=True)
    served.append(server)
    assert REFUSED.encode() in server.stderr
    client = await RawClient.connect(server.url)
    try:
        info = (await client.handshake())["environmentInfo"]
        with pytest.raises(RawRpcError) as refused:
            await client.call(
                "process/start", start_params("p", ["echo", "ran"], sandbox=read_only())
            )
    finally:
        await client.aclose()
    assert refused.value.code == -32603
    assert REFUSED in refused.value.message
    assert "isolation" not in info
    assert info["capabilities"]["externalIsolation"] is False
    assert b"--isolation external" not in server.stderr


async def test_with_external_isolation_it_runs_unsandboxed_and_says_so(
    served: list[ServerProcess],
) -> None:
    server = await _server("--isolation", "external", confined=True)
    served.append(server)
    log = server.stderr.decode(errors="replace")
    warning = next(line for line in log.splitlines() if "--isolation external" in line)
    assert " WARNING " in warning and REFUSED in warning, log
    sandbox_type, info, output = await _start(server, "echo ran; id -u")
    assert (sandbox_type, output) == ("none", f"ran\n{NOBODY}\n".encode())
    assert info["isolation"] == "external"
    assert info["capabilities"]["externalIsolation"] is True  # type: ignore[index]  # JSON


async def test_with_external_isolation_a_host_that_can_sandbox_still_does(
    served: list[ServerProcess], tmp_path: Path
) -> None:
    server = await _server("--isolation", "external", confined=False)
    served.append(server)
    assert b"sandbox layers: " in server.stderr
    target = tmp_path / "written"
    sandbox_type, info, output = await _start(server, f"echo x > {target}")
    assert sandbox_type == "linuxSeccomp"
    assert b"Read-only file system" in output
    assert not target.exists()
    assert info["isolation"] == "external"
