"""Reaping children: the exit watch never invents a status, and forgetting a process that is
still dying never blocks the event loop yet leaves no zombie."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys

from exec_server.processes.exit import ExitStatus, ExitWatch


def start(code: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-c", code])


def reap_elsewhere(pid: int) -> None:
    """Take the child's status the way another waiter would (it has exited or will)."""
    os.waitpid(pid, 0)


def unreaped(pid: int) -> bool:
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        return False
    return True


async def test_a_child_reaped_by_someone_else_has_no_exit_status() -> None:
    child = start("raise SystemExit(7)")
    got: asyncio.Future[ExitStatus] = asyncio.get_running_loop().create_future()
    ExitWatch(child.pid, got.set_result)
    reap_elsewhere(child.pid)
    child.returncode = 7  # (so Popen.__del__ leaves it alone)
    async with asyncio.timeout(10):
        status = await got
    assert status.code is None
    assert status.resource_usage is None


async def test_an_exit_is_reported_with_its_code_signal_and_usage() -> None:
    child = start("import os; os.kill(os.getpid(), 9)")
    got: asyncio.Future[ExitStatus] = asyncio.get_running_loop().create_future()
    ExitWatch(child.pid, got.set_result)
    async with asyncio.timeout(10):
        status = await got
    child.returncode = -9
    assert (status.code, status.signal_name) == (128 + 9, "SIGKILL")
    assert status.resource_usage is not None


async def test_forgetting_a_running_child_reaps_it_when_it_dies_without_waiting() -> None:
    child = start("import time; time.sleep(300)")
    reported: list[ExitStatus] = []
    watch = ExitWatch(child.pid, reported.append)
    reaped = asyncio.Event()
    os.kill(child.pid, signal.SIGKILL)
    watch.forget(reaped.set)  # returns at once: the child may not even be dead yet
    async with asyncio.timeout(10):
        await reaped.wait()
    child.returncode = -9
    assert watch.reaped
    assert reported == []  # a forgotten exit is not reported
    assert not unreaped(child.pid)  # no zombie is left
