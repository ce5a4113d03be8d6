"""Run a real exec-server in a child process (for tests and benchmarks)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
from pathlib import Path
from typing import Any

__all__ = ["ServerProcess", "capability_token_args"]


def capability_token_args(directory: Path, token: str) -> tuple[str, ...]:
    """The server arguments that make ``token`` its one capability token (written to
    ``directory/token``, read with ``--ws-token-file``)."""
    path = directory / "token"
    path.write_text(token + "\n")
    return ("--ws-auth", "capability-token", "--ws-token-file", str(path))


class ServerProcess:
    """``async with ServerProcess(*extra_args) as s: s.url``; stderr is kept in ``s.stderr``."""

    def __init__(
        self,
        *args: str,
        command: list[str] | None = None,
        env: dict[str, str] | None = None,
        cwd: str | None = None,
    ) -> None:
        self.command = command or [sys.executable, "-m", "exec_server"]
        self.args = list(args)
        self.env = env
        self.cwd = cwd
        self.url = ""
        self.proc: asyncio.subprocess.Process | None = None
        self.stderr = bytearray()
        self._stderr_task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> ServerProcess:
        await self.start()
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self.stop()

    async def start(self) -> None:
        self.proc = await asyncio.create_subprocess_exec(
            *self.command,
            *self.args,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            stdin=asyncio.subprocess.DEVNULL,
            env=self.env,
            cwd=self.cwd,
        )
        assert self.proc.stdout is not None
        assert self.proc.stderr is not None
        self._stderr_task = asyncio.ensure_future(self._drain(self.proc.stderr))
        async with asyncio.timeout(30):
            line = await self.proc.stdout.readline()
        if not line:
            await self.proc.wait()
            raise RuntimeError(f"server did not start: {self.stderr.decode(errors='replace')}")
        self.url = line.decode().strip()

    async def _drain(self, stream: asyncio.StreamReader) -> None:
        while chunk := await stream.read(65536):
            self.stderr += chunk
            if len(self.stderr) > 4 << 20:
                del self.stderr[: len(self.stderr) - (2 << 20)]

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    async def stop(self, sig: int = signal.SIGINT) -> int:
        """Send ``sig`` and wait (20 s, then SIGKILL) for the exit; returns the exit code.
        The default, SIGINT, stops at once; SIGTERM drains first (``--drain-timeout``)."""
        proc = self.proc
        if proc is None:
            return 0
        if proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(proc.pid, sig)
            try:
                async with asyncio.timeout(20):
                    await proc.wait()
            except TimeoutError:
                proc.kill()
                await proc.wait()
        if self._stderr_task is not None:
            try:
                async with asyncio.timeout(5):
                    await self._stderr_task
            except TimeoutError:
                self._stderr_task.cancel()
        return proc.returncode or 0
