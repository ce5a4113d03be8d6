"""Who owns which cgroup (issue 8, acceptance 2): the server never sits in a command's cgroup,
and two servers on one host — one of them in its own PID namespace — never touch each other's
trees."""

from __future__ import annotations

import asyncio
import os
import signal
import sys

import psutil
from exec_server.testing import RawClient, ServerProcess

from tests.support import BackgroundServer, start_params, wait_until

N = int(os.environ.get("CHURN_N", "200"))


def _cgroup_of(pid: int) -> str:
    with open(f"/proc/{pid}/cgroup") as f:
        return next(line[3:].strip() for line in f if line.startswith("0::"))


def _tree_of(server: BackgroundServer) -> str:
    """The cgroup tree the server created (from its log: the first command's leaf parent)."""
    for line in server.stderr.decode(errors="replace").splitlines():
        if "cgroup tree " in line:
            return line.rsplit("cgroup tree ", 1)[1].strip()
    raise AssertionError(f"no cgroup tree logged:\n{server.stderr.decode()[-2000:]}")


def _is_dir(path: str) -> bool:
    return os.path.isdir(path)


def _has_processes(tree: str) -> bool:
    """Whether any leaf of ``tree`` still holds a process (nothing left behind)."""
    try:
        leaves = [e.path for e in os.scandir(tree) if e.is_dir()]
    except FileNotFoundError:
        return False
    for leaf in leaves:
        try:
            with open(os.path.join(leaf, "cgroup.procs")) as f:
                if f.read().strip():
                    return True
        except FileNotFoundError:
            continue
    return False


async def test_the_server_is_never_in_a_command_cgroup_while_commands_start(
    server: BackgroundServer, client: RawClient
) -> None:
    home = _cgroup_of(server.pid)
    seen = set()
    for i in range(60):
        await client.call("process/start", start_params(f"p{i}", ["sleep", "5"]))
        seen.add(_cgroup_of(server.pid))
        sandboxed = start_params(f"s{i}", ["true"])
        sandboxed["sandbox"] = {"permissions": {"type": "managed", "network": "restricted",
                                "file_system": {"type": "unrestricted"}},
                                "windowsSandboxLevel": "disabled"}  # fmt: skip
        await client.call("process/start", sandboxed)
        seen.add(_cgroup_of(server.pid))
    assert seen == {home}
    for i in range(60):
        assert await client.call("process/terminate", {"processId": f"p{i}"}) == {"running": True}


async def _churn(url: str, count: int) -> list[int]:
    """Start and kill ``count`` processes concurrently; returns their exit codes."""
    client = await RawClient.connect(url)
    await client.handshake()
    try:
        await asyncio.gather(
            *(client.call("process/start", start_params(f"c{i}", ["sleep", "30"]))
              for i in range(count))
        )  # fmt: skip
        await asyncio.gather(
            *(client.call("process/terminate", {"processId": f"c{i}"}) for i in range(count))
        )
        codes = []
        for i in range(count):
            collected = await client.collect(f"c{i}", timeout=60)
            codes.append(collected["exit"]["exitCode"])
        return codes
    finally:
        await client.aclose()


async def test_two_servers_one_in_its_own_pid_namespace_keep_to_their_own_cgroups() -> None:
    inner = ServerProcess(
        command=[
            "unshare",
            "--pid",
            "--fork",
            "--kill-child",
            "--mount-proc",
            sys.executable,
            "-m",
            "exec_server",
        ]
    )
    async with ServerProcess() as outer, inner:
        inner_pid = psutil.Process(inner.pid).children()[0].pid
        # Where /sys is read-only each server mounts cgroup2 privately: look through its root.
        trees = [
            f"/proc/{pid}/root{_tree_of(server)}"
            for pid, server in ((outer.pid, outer), (inner_pid, inner))
        ]
        assert trees[0] != trees[1]
        codes = await asyncio.gather(_churn(outer.url, N), _churn(inner.url, N))
        assert codes == [[137] * N, [137] * N]
        assert all(map(_is_dir, trees))  # neither removed the other's tree
        await wait_until(lambda: not any(map(_has_processes, trees)), timeout=30)
        # unshare would SIGKILL its child on SIGTERM: stop the inner server itself.
        os.kill(inner_pid, signal.SIGTERM)
