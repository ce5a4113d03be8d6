"""Drain on SIGTERM: /readyz 503, new sessions refused, running work finishes, then exit 0."""

from __future__ import annotations

import asyncio
import base64
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from exec_server.testing import RawClient, RawRpcError, ServerProcess
from exec_server_protocol import ErrorCode

from tests.support import http_request, start_params, wait_metric, wait_until

READYZ = b"GET /readyz HTTP/1.1\r\nHost: x\r\n\r\n"


async def readyz(url: str) -> int:
    status, _ = await http_request(url, READYZ)
    return status


async def wait_readyz(url: str, status: int) -> None:
    """Wait until /readyz answers ``status`` (the signal is handled asynchronously)."""
    async with asyncio.timeout(10):
        while await readyz(url) != status:  # noqa: ASYNC110 - the server's state has no event we can await
            await asyncio.sleep(0.01)


async def wait_exit(s: ServerProcess) -> int:
    assert s.proc is not None
    async with asyncio.timeout(20):
        return await s.proc.wait()


def assert_clean(s: ServerProcess) -> None:
    log = s.stderr.decode(errors="replace")
    assert "Traceback" not in log, log[-4000:]
    assert "Warning:" not in log, log[-4000:]


async def test_sigterm_refuses_new_sessions_lets_running_work_finish_then_exits_0() -> None:
    async with ServerProcess("--drain-timeout", "30") as s:
        first = await RawClient.connect(s.url)
        await first.handshake()
        # The command waits for a line on stdin, so the test decides when it finishes.
        await first.call(
            "process/start",
            start_params("job", ["sh", "-c", "read x; echo done $x"], pipeStdin=True),
        )
        assert await readyz(s.url) == 200
        s.proc.send_signal(signal.SIGTERM)  # type: ignore[union-attr]  # started above
        await wait_readyz(s.url, 503)

        second = await RawClient.connect(s.url)
        with pytest.raises(RawRpcError) as refused:
            await second.handshake()
        assert refused.value.code == ErrorCode.SERVER_DRAINING == -32010
        assert "draining" in refused.value.message
        await second.aclose()

        chunk = base64.b64encode(b"now\n").decode()
        await first.call("process/write", {"processId": "job", "chunk": chunk, "writeId": "w1"})
        result = await first.collect("job")
        assert result["stdout"] == b"done now\n"
        assert result["exit"]["exitCode"] == 0
        assert await wait_exit(s) == 0
        await first.closed  # the shutdown closed the first client's connection
    assert_clean(s)
    assert b"drained: every process has finished and been read" in s.stderr


async def test_a_detached_session_resumes_during_the_drain_and_reads_what_it_missed(
    tmp_path: Path,
) -> None:
    go = tmp_path / "go"
    async with ServerProcess("--drain-timeout", "30") as s:
        first = await RawClient.connect(s.url)
        await first.handshake()
        session = first.session_id
        command = f"while [ ! -e {go} ]; do sleep 0.01; done; echo got it"
        await first.call("process/start", start_params("job", ["sh", "-c", command]))
        s.proc.send_signal(signal.SIGTERM)  # type: ignore[union-attr]  # started above
        await wait_readyz(s.url, 503)
        await first.aclose()
        await wait_metric(s.url, b"exec_server_sessions_detached 1.0")
        go.touch()
        # The process ends while nobody is attached: the drain waits for a read.
        await wait_metric(s.url, b"exec_server_processes_active 0.0")

        again = await RawClient.connect(s.url)
        await again.handshake(resume=session)
        read = await again.call("process/read", {"processId": "job", "waitMs": 10_000})
        output = b""
        while True:
            output += b"".join(base64.b64decode(c["chunk"]) for c in read["chunks"])
            if read["closed"]:
                break
            read = await again.call(
                "process/read",
                {"processId": "job", "afterSeq": read["nextSeq"] - 1, "waitMs": 10_000},
            )
        assert output == b"got it\n"
        assert read["exitCode"] == 0
        assert await wait_exit(s) == 0
    assert_clean(s)
    assert b"drained: every process has finished and been read" in s.stderr


async def test_a_second_sigterm_stops_at_once_and_kills_what_runs(tmp_path: Path) -> None:
    pid_file = tmp_path / "pid"
    async with ServerProcess("--drain-timeout", "300") as s:
        c = await RawClient.connect(s.url)
        await c.handshake()
        command = f"echo $$ > {pid_file}; exec sleep 300"
        await c.call("process/start", start_params("long", ["sh", "-c", command]))
        await wait_until(lambda: pid_file.exists() and pid_file.read_text().endswith("\n"))
        pid = int(pid_file.read_text())
        s.proc.send_signal(signal.SIGTERM)  # type: ignore[union-attr]  # started above
        await wait_readyz(s.url, 503)
        s.proc.send_signal(signal.SIGTERM)  # type: ignore[union-attr]  # started above
        assert await wait_exit(s) == 0
        await wait_until(lambda: not _alive(pid))
    assert_clean(s)
    assert b"drain cut short (stop requested)" in s.stderr


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


async def test_the_drain_timeout_bounds_the_wait() -> None:
    async with ServerProcess("--drain-timeout", "0.5") as s:
        c = await RawClient.connect(s.url)
        await c.handshake()
        await c.call("process/start", start_params("long", ["sleep", "300"]))
        s.proc.send_signal(signal.SIGTERM)  # type: ignore[union-attr]  # started above
        assert await wait_exit(s) == 0
    assert_clean(s)
    assert b"drain cut short (--drain-timeout 0.5 s passed)" in s.stderr


def test_drain_timeout_is_documented_and_checked() -> None:
    run = [sys.executable, "-m", "exec_server"]
    help_text = subprocess.run([*run, "--help"], capture_output=True, text=True, check=True)
    assert "--drain-timeout" in help_text.stdout
    bad = subprocess.run([*run, "--drain-timeout", "-1"], capture_output=True, text=True)
    assert bad.returncode == 2
    assert "--drain-timeout must not be negative" in bad.stderr
