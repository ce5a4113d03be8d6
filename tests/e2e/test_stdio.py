"""The stdio transport: one JSON message per line; closing stdin ends the server."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import orjson

from tests.support import start_params, wait_until


async def test_stdio_speaks_one_message_per_line_and_exits_with_stdin(tmp_path: Path) -> None:
    pipe = asyncio.subprocess.PIPE
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "exec_server",
        "--listen",
        "stdio",
        stdin=pipe,
        stdout=pipe,
        stderr=pipe,
    )
    assert proc.stdin is not None
    assert proc.stdout is not None

    async def send(msg: object) -> None:
        assert proc.stdin is not None
        proc.stdin.write(orjson.dumps(msg) + b"\n")
        await proc.stdin.drain()

    async def receive() -> dict[str, object]:
        assert proc.stdout is not None
        async with asyncio.timeout(10):
            return orjson.loads(await proc.stdout.readline())  # type: ignore[no-any-return]

    proc.stdin.write(b"\n   \n")  # blank lines are ignored
    await send({"id": 1, "method": "initialize", "params": {"clientName": "stdio"}})
    assert "sessionId" in (await receive())["result"]  # type: ignore[operator]
    await send({"method": "initialized"})
    proc.stdin.write(b"{not json\n")
    assert (await receive())["id"] == -1
    pid_file = tmp_path / "pid"
    script = f"echo $$ > {pid_file}; echo hi; exec sleep 300"
    await send(
        {"id": 2, "method": "process/start", "params": start_params("s", ["sh", "-c", script])}
    )
    seen = [await receive() for _ in range(2)]
    assert seen[0] == {"id": 2, "result": {"processId": "s", "sandboxType": "none"}}
    assert seen[1]["method"] == "process/output"
    await wait_until(lambda: pid_file.exists() and bool(pid_file.read_text().strip()))
    child = int(pid_file.read_text())
    proc.stdin.close()
    async with asyncio.timeout(20):
        assert await proc.wait() == 0
    await wait_until(lambda: not Path(f"/proc/{child}").exists() or _zombie(child))


def _zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(") ")[1].startswith("Z")
    except OSError:
        return True
