"""Commands start with the open-file soft limit the server was started with (README, "At start
the server raises its open-file soft limit"): the server raises its own to the hard limit, and
every spawn path (the helper with a cgroup leaf, the helper alone, a pty's ``preexec_fn``, the
sandbox's helper) gives the command the original one back, the hard limit unchanged."""

from __future__ import annotations

import os
import resource
import sys
from typing import Any

import pytest
from exec_server.testing import RawClient, ServerProcess
from exec_server.testing.accounts import server_command
from exec_server.testing.intents import read_only

from tests.support import start_params

SOFT = 256
"""The soft limit the servers here start with: below the usual 1024, so that neither the
server's raised limit nor a default could pass for it."""
HARD = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
NOBODY = 65534
REPORT = ["sh", "-c", "echo $(ulimit -Sn) $(ulimit -Hn)"]

pytestmark = pytest.mark.skipif(
    HARD == resource.RLIM_INFINITY or HARD <= SOFT,
    reason=f"the open-file hard limit ({HARD}) leaves the server nothing to raise",
)


def _started_low(command: list[str]) -> list[str]:
    """``command`` run with the open-file limit ``SOFT:HARD`` (prlimit execs it: same pid)."""
    return ["prlimit", f"--nofile={SOFT}:{HARD}", *command]


def _own_limit(pid: int) -> tuple[int, int]:
    with open(f"/proc/{pid}/limits") as limits:
        line = next(line for line in limits if line.startswith("Max open files"))
    soft, hard = line.split()[3:5]
    return int(soft), int(hard)


async def _reported(server: ServerProcess, **params: Any) -> dict[str, tuple[int, int]]:
    """What ``ulimit -Sn`` / ``-Hn`` print in a command started with each of ``params``."""
    client = await RawClient.connect(server.url)
    await client.handshake()
    try:
        seen = {}
        for name, extra in params.items():
            await client.call("process/start", start_params(name, REPORT, **extra))
            result = await client.collect(name)
            assert result["exit"]["exitCode"] == 0, result
            soft, hard = (result["stdout"] + result["pty"]).split()
            seen[name] = (int(soft), int(hard))
        return seen
    finally:
        await client.aclose()


@pytest.mark.parametrize("cgroups", [[], ["--no-cgroups"]], ids=["cgroups", "no-cgroups"])
async def test_commands_start_with_the_soft_limit_the_server_was_started_with(
    cgroups: list[str],
) -> None:
    command = _started_low([sys.executable, "-m", "exec_server"])
    async with ServerProcess(*cgroups, command=command) as server:
        assert _own_limit(server.pid) == (HARD, HARD)
        seen = await _reported(
            server,
            pipes={},
            tty={"tty": True},
            sandboxed={"sandbox": read_only()},
            sandboxed_tty={"sandbox": read_only(), "tty": True},
        )
    assert seen == dict.fromkeys(seen, (SOFT, HARD))


async def test_a_server_started_at_its_hard_limit_gives_commands_that_limit() -> None:
    command = ["prlimit", f"--nofile={HARD}:{HARD}", sys.executable, "-m", "exec_server"]
    async with ServerProcess(command=command) as server:
        seen = await _reported(server, pipes={}, sandboxed={"sandbox": read_only()})
    assert seen == dict.fromkeys(seen, (HARD, HARD))


async def test_commands_of_a_server_run_as_nobody_start_with_its_original_soft_limit() -> None:
    # Without a delegated cgroup: no leaf to join, so the limit is all the helper does.
    env = {k: v for k, v in os.environ.items() if not k.startswith("COV")}
    async with ServerProcess(
        command=_started_low(server_command(NOBODY)), env=env, cwd="/"
    ) as server:
        assert _own_limit(server.pid) == (HARD, HARD)
        seen = await _reported(server, pipes={}, tty={"tty": True})
        assert "tree kill of unsandboxed commands is best effort" in server.stderr.decode()
    assert seen == dict.fromkeys(seen, (SOFT, HARD))
