"""The reference's server flags that launchers rely on: ``--exit-on-stdin-close`` and
``--concurrent-requests N`` (issue 10)."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import orjson
from exec_server.client import connect
from exec_server.testing import RawClient, ServerProcess

from tests.support import ENV, start_params, wait_until


def _alive(pid: int) -> bool:
    try:
        return not Path(f"/proc/{pid}/stat").read_text().split(") ", 1)[1].startswith("Z")
    except (OSError, IndexError):
        return False


async def test_exit_on_stdin_close_shuts_down_cleanly_when_the_launcher_goes() -> None:
    server = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "exec_server", "--exit-on-stdin-close",
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    assert server.stdin is not None
    assert server.stdout is not None
    assert server.stderr is not None
    try:
        async with asyncio.timeout(30):
            url = (await server.stdout.readline()).decode().strip()
            async with connect(url) as client:
                proc = await client.start(
                    ["sh", "-c", "echo $$; exec sleep 300"], cwd="/tmp", env=ENV
                )
                pid = int((await anext(aiter(proc))).data)  # type: ignore[union-attr]
                server.stdin.write(b"anything written is ignored\n")
                await server.stdin.drain()
                assert _alive(pid)
                server.stdin.close()
                code = await server.wait()
        log = (await server.stderr.read()).decode(errors="replace")
        assert code == 0, log
        assert "stdin closed (--exit-on-stdin-close): stopping" in log
        await wait_until(lambda: not _alive(pid))  # the clean shutdown killed its processes
    finally:
        if server.returncode is None:
            server.kill()
            await server.wait()


async def test_concurrent_requests_caps_the_requests_running_per_connection() -> None:
    async with ServerProcess("--concurrent-requests", "1") as server:
        c = await RawClient.connect(server.url)
        await c.handshake()
        await c.call("process/start", start_params("s", ["sleep", "30"]))
        for i in range(2):
            read = {"id": i, "method": "process/read", "params": {"processId": "s", "waitMs": 400}}
            await c.send_raw(orjson.dumps(read))
        await c.send_raw(b'{"id":"info","method":"environment/info"}')
        order = [(await c.next_unmatched(timeout=30))["id"] for _ in range(3)]
        # One at a time: each long poll holds the connection until it returns. (With the
        # default, "info" is answered while both polls still wait.)
        assert order == [0, 1, "info"]
        await c.call("process/terminate", {"processId": "s"})
        await c.aclose()


async def test_concurrent_requests_must_be_positive() -> None:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "exec_server", "--concurrent-requests", "0",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    _, err = await proc.communicate()
    assert proc.returncode == 2
    assert b"--concurrent-requests must be at least 1" in err
