"""Quotas: each one hit against a real server with a small limit; the refusal is -32011 and
names the limit and its flag, and the server keeps serving everyone else."""

from __future__ import annotations

import base64
import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
from exec_server.testing import RawClient, RawRpcError, ServerProcess
from exec_server_protocol import ErrorCode
from prometheus_client.parser import text_string_to_metric_families

from tests.support import http_request, start_params


@asynccontextmanager
async def clean_server(*args: str) -> AsyncIterator[ServerProcess]:
    s = ServerProcess(*args)
    try:
        async with s:
            yield s
    finally:
        log = s.stderr.decode(errors="replace")
        print("---- server log (tail) ----\n" + log[-6000:])  # shown when the test fails
    assert "Traceback" not in log, log[-4000:]
    assert "Warning:" not in log, log[-4000:]


async def client(url: str) -> RawClient:
    c = await RawClient.connect(url)
    await c.handshake()
    return c


async def refused(call: object, flag: str) -> RawRpcError:
    """Await ``call`` and check it is refused by the quota of ``flag``."""
    with pytest.raises(RawRpcError) as err:
        await call  # type: ignore[misc]  # a coroutine
    assert err.value.code == ErrorCode.QUOTA_EXCEEDED == -32011
    assert err.value.message.startswith("quota exceeded: ")
    assert f"({flag})" in err.value.message
    return err.value


async def limit_hits(url: str, limit: str) -> float:
    _, body = await http_request(url, b"GET /metrics HTTP/1.1\r\n\r\n")
    for family in text_string_to_metric_families(body.decode()):
        for s in family.samples:
            if s.name == "exec_server_limits_hit_total" and s.labels == {"limit": limit}:
                return s.value
    raise AssertionError(f"no limits_hit sample for {limit}")


async def still_serves(c: RawClient, process_id: str) -> None:
    """``c`` can run a command to its end."""
    await c.call("process/start", start_params(process_id, ["sh", "-c", "echo ok"]))
    assert (await c.collect(process_id))["stdout"] == b"ok\n"


async def test_sessions_per_server() -> None:
    async with clean_server("--max-sessions", "2") as s:
        first, second = await client(s.url), await client(s.url)
        third = await RawClient.connect(s.url)
        err = await refused(third.handshake(), "--max-sessions 2")
        assert "the server has 2 sessions" in err.message
        await still_serves(first, "p")
        await still_serves(second, "p")
        assert await limit_hits(s.url, "max_sessions") == 1


async def test_processes_per_session() -> None:
    async with clean_server("--max-processes-per-session", "2") as s:
        c, other = await client(s.url), await client(s.url)
        for pid in ("a", "b"):
            await c.call("process/start", start_params(pid, ["sleep", "300"]))
        await refused(
            c.call("process/start", start_params("c", ["sleep", "300"])),
            "--max-processes-per-session 2",
        )
        await still_serves(other, "p")  # another session has its own count
        await c.call("process/terminate", {"processId": "a"})
        await c.next_notification("process/closed", "a")
        await still_serves(c, "again")  # a slot was freed
        assert await limit_hits(s.url, "max_processes_per_session") == 1


async def test_processes_per_server() -> None:
    async with clean_server("--max-processes", "2") as s:
        c, other = await client(s.url), await client(s.url)
        await c.call("process/start", start_params("a", ["sleep", "300"]))
        await other.call("process/start", start_params("b", ["sleep", "300"]))
        err = await refused(
            c.call("process/start", start_params("c", ["sleep", "300"])), "--max-processes 2"
        )
        assert "the server has 2 running processes" in err.message
        assert (await other.call("environment/info"))["platformOs"]  # everything else still works
        await other.call("process/terminate", {"processId": "b"})
        await other.next_notification("process/closed", "b")
        await still_serves(c, "again")
        assert await limit_hits(s.url, "max_processes") == 1


PRINT_AND_EXIT = ["sh", "-c", "head -c 60000 /dev/zero"]
PRINT_AND_WAIT = ["sh", "-c", "head -c 60000 /dev/zero; exec sleep 300"]


async def output_of(c: RawClient, process_id: str, size: int) -> None:
    """Wait for ``size`` bytes of stdout of ``process_id`` (as notifications)."""
    got = 0
    while got < size:
        msg = await c.next_notification("process/output", process_id)
        got += len(base64.b64decode(msg["params"]["chunk"]))
    assert got == size


async def test_retained_output_per_session_evicts_closed_processes_first() -> None:
    limits = ("--retention-bytes", "65536", "--max-session-retained-bytes", "100000")
    async with clean_server(*limits) as s:
        c, other = await client(s.url), await client(s.url)
        await c.call("process/start", start_params("done", PRINT_AND_EXIT))
        assert len((await c.collect("done"))["stdout"]) == 60000
        full = await c.call("process/read", {"processId": "done"})
        assert sum(len(ch["chunk"]) for ch in full["chunks"]) > 0
        await c.call("process/start", start_params("live", PRINT_AND_WAIT))
        await output_of(c, "live", 60000)
        # 120000 bytes would be retained: the closed process's output went, the live one's
        # stayed whole.
        done = await c.call("process/read", {"processId": "done"})
        assert done["chunks"] == [] and done["closed"] and done["retainedFromSeq"] > 1
        live = await c.call("process/read", {"processId": "live"})
        assert live["retainedFromSeq"] == 1
        # 60000 retained by a running process leaves no room for another 65536.
        err = await refused(
            c.call("process/start", start_params("more", ["true"])),
            "--max-session-retained-bytes 100000",
        )
        assert "this session's running processes retain 60000 bytes" in err.message
        await still_serves(other, "p")  # another session has its own budget
        assert await limit_hits(s.url, "max_session_retained_bytes") >= 1


async def test_retained_output_per_server_evicts_another_sessions_closed_output() -> None:
    limits = ("--retention-bytes", "65536", "--max-retained-bytes", "100000")
    async with clean_server(*limits) as s:
        c, other = await client(s.url), await client(s.url)
        await c.call("process/start", start_params("done", PRINT_AND_EXIT))
        assert len((await c.collect("done"))["stdout"]) == 60000
        await other.call("process/start", start_params("live", PRINT_AND_WAIT))
        await output_of(other, "live", 60000)
        done = await c.call("process/read", {"processId": "done"})
        assert done["chunks"] == [] and done["closed"]
        await refused(
            other.call("process/start", start_params("more", ["true"])),
            "--max-retained-bytes 100000",
        )
        assert (await c.call("environment/info"))["platformOs"]
        await other.call("process/terminate", {"processId": "live"})
        await other.next_notification("process/closed", "live")
        await still_serves(c, "again")  # closed output makes room again
        assert await limit_hits(s.url, "max_retained_bytes") >= 1


async def test_open_file_handles_per_session(tmp_path: Path) -> None:
    target = tmp_path / "f"
    target.write_bytes(b"data")
    async with clean_server("--max-fs-handles", "2") as s:
        c, other = await client(s.url), await client(s.url)
        for h in ("h1", "h2"):
            await c.call("fs/open", {"handleId": h, "path": target.as_uri()})
        err = await refused(
            c.call("fs/open", {"handleId": "h3", "path": target.as_uri()}), "--max-fs-handles 2"
        )
        assert "this session has 2 open file handles" in err.message
        await other.call("fs/open", {"handleId": "h1", "path": target.as_uri()})
        await c.call("fs/close", {"handleId": "h1"})
        await c.call("fs/open", {"handleId": "h3", "path": target.as_uri()})
        assert await limit_hits(s.url, "max_fs_handles") == 1


async def test_cgroup_pids_max_is_applied_or_the_server_refuses_to_start_and_says_why() -> None:
    s = ServerProcess("--cgroup-pids-max", "7")
    try:
        await s.start()
    except RuntimeError:
        # This host does not hand the pids controller to the server's subtree.
        assert s.proc is not None and s.proc.returncode == 1
        text = s.stderr.decode()
        assert "cannot apply --cgroup-pids-max/--cgroup-memory-max" in text
        assert "pids" in text and "Traceback" not in text
        return
    try:
        c = await client(s.url)
        script = 'cat "/sys/fs/cgroup$(cut -d: -f3 /proc/self/cgroup)/pids.max"'
        await c.call("process/start", start_params("p", ["sh", "-c", script]))
        assert (await c.collect("p"))["stdout"] == b"7\n"
    finally:
        await s.stop()


def test_every_quota_flag_is_documented_and_checked() -> None:
    run = [sys.executable, "-m", "exec_server"]
    out = subprocess.run([*run, "--help"], capture_output=True, text=True, check=True).stdout
    flags = (
        "--max-sessions", "--max-processes", "--max-processes-per-session",
        "--max-retained-bytes", "--max-session-retained-bytes", "--max-fs-handles",
        "--cgroup-pids-max", "--cgroup-memory-max",
    )  # fmt: skip
    for flag in flags:
        assert flag in out, flag
        bad = subprocess.run([*run, flag, "0"], capture_output=True, text=True, check=False)
        assert bad.returncode == 2 and f"{flag} must be at least 1" in bad.stderr, flag
    assert "cannot do" in " ".join(out.split())  # why the cgroup limits are off by default
