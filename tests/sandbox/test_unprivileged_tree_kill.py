"""Tree kill for a server running as an ordinary account (issue 8, acceptance 3).

With a cgroup subtree delegated to the account (root creates it, hands it over and starts the
server in it — what systemd's ``Delegate=yes`` does), a setsid'd, double-forked background
child of an unsandboxed command dies with ``process/terminate`` and at session expiry. Without
one, the server says at start that tree kill is best effort, and a sandboxed command still
leaves nothing behind (its PID namespace).
"""

from __future__ import annotations

import os
import secrets
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import psutil
import pytest
from exec_server.testing import RawClient, ServerProcess
from exec_server.testing.accounts import server_command
from sandbox_intents import workspace_write

from tests.support import TREE, start_params, wait_until

NOBODY = 65534
TIMEOUT = 30
_OWN_ROOT = [sys.executable, "-m", "exec_server.testing.confine", "--own-root", "--"]
"""Out of a chroot first (a throwaway rootfs refuses user namespaces to chrooted processes)."""


def _alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def _pids(d: Path) -> list[int] | None:
    files = [d / n for n in ("plain", "setsid", "daemon")]
    if not all(f.exists() and f.read_text().strip() for f in files):
        return None
    return [int(f.read_text()) for f in files]


def _delegating_launcher(cgroup_name: str) -> list[str]:
    """Root mounts cgroup2 in a private mount namespace (the host's may be read-only), creates
    a subtree, gives it to the account, enters it and execs the server as that account."""
    mount = f"/tmp/{cgroup_name}-mnt"
    script = (
        f"mkdir -p {mount} && mount -t cgroup2 none {mount}"
        f" && mkdir {mount}/{cgroup_name}"
        f" && chown -R {NOBODY}:{NOBODY} {mount}/{cgroup_name}"
        f" && echo $$ > {mount}/{cgroup_name}/cgroup.procs"
        f' && exec "$@"'
    )
    return ["unshare", "--mount", "--propagation", "private", "sh", "-c", script, "sh"]


@pytest.fixture
def shared_dir(open_base: Path) -> Path:
    d = open_base / "pids"
    d.mkdir()
    os.chown(open_base, NOBODY, NOBODY)
    os.chown(d, NOBODY, NOBODY)
    return d


@pytest.fixture
async def delegated() -> AsyncIterator[ServerProcess]:
    name = f"exec-server-delegated-{secrets.token_hex(4)}"
    command = [*_OWN_ROOT, *_delegating_launcher(name), *server_command(NOBODY)]
    env = {k: v for k, v in os.environ.items() if not k.startswith("COV")}
    async with ServerProcess("--session-ttl", "1", command=command, env=env, cwd="/") as server:
        yield server
    log = server.stderr.decode(errors="replace")
    print("---- server log (tail) ----\n" + log[-4000:])
    assert "Traceback" not in log


async def _start_tree(client: RawClient, d: Path) -> list[int]:
    params = start_params("tree", ["sh", "-c", TREE.format(d=d)], cwd=f"file://{d}")
    await client.call("process/start", params)
    await wait_until(lambda: _pids(d) is not None, timeout=TIMEOUT)
    pids = _pids(d)
    assert pids is not None and all(map(_alive, pids))
    assert all(psutil.Process(p).uids().real == NOBODY for p in pids)
    return pids


async def test_as_nobody_with_a_delegated_cgroup_terminate_kills_the_whole_tree(
    delegated: ServerProcess, shared_dir: Path
) -> None:
    assert "tree kill through cgroup tree" in delegated.stderr.decode()
    client = await RawClient.connect(delegated.url)
    await client.handshake()
    try:
        pids = await _start_tree(client, shared_dir)
        assert await client.call("process/terminate", {"processId": "tree"}) == {"running": True}
        await wait_until(lambda: not any(map(_alive, pids)), timeout=TIMEOUT)
    finally:
        await client.aclose()


async def test_as_nobody_with_a_delegated_cgroup_session_expiry_kills_the_whole_tree(
    delegated: ServerProcess, shared_dir: Path
) -> None:
    client = await RawClient.connect(delegated.url)
    await client.handshake()
    pids = await _start_tree(client, shared_dir)
    await client.aclose()  # detached: the session expires after --session-ttl 1
    await wait_until(lambda: not any(map(_alive, pids)), timeout=TIMEOUT)


async def test_as_nobody_without_delegation_tree_kill_is_best_effort_but_sandboxed_trees_die(
    shared_dir: Path,
) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("COV")}
    command = [*_OWN_ROOT, *server_command(NOBODY)]
    async with ServerProcess(command=command, env=env, cwd="/") as server:
        assert "tree kill of unsandboxed commands is best effort" in server.stderr.decode()
        client = await RawClient.connect(server.url)
        await client.handshake()
        try:
            marker = shared_dir / "go"
            script = f"setsid sh -c 'while [ ! -e {marker} ]; do sleep 0.01; done' & echo started"
            params = start_params("bg", ["sh", "-c", script], cwd=f"file://{shared_dir}")
            params["sandbox"] = workspace_write(shared_dir)
            await client.call("process/start", params)
            collected = await client.collect("bg", timeout=TIMEOUT)
            assert collected["stdout"] == b"started\n"

            def survivors() -> list[int]:
                return [
                    proc.pid
                    for proc in psutil.process_iter(["cmdline", "status"])
                    if str(marker) in " ".join(proc.info["cmdline"] or [])
                    and "setsid" not in (proc.info["cmdline"] or [""])[0:1][0]
                    and proc.info["status"] != psutil.STATUS_ZOMBIE
                ]

            await wait_until(lambda: not survivors(), timeout=TIMEOUT)
        finally:
            await client.aclose()
