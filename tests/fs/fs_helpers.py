"""Helpers shared by the fs service tests (imported as a top-level module by pytest)."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Awaitable
from pathlib import Path
from typing import Any

import msgspec
import pytest
from exec_server.exceptions import ExecServerError
from exec_server.wire_errors import WireError, wire_error
from exec_server_protocol import format_path_uri


class Recorder:
    """Collects notifications; ``wait`` blocks until one arrives."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, msgspec.Struct]] = []
        self._queue: asyncio.Queue[tuple[str, msgspec.Struct]] = asyncio.Queue()

    def __call__(self, method: str, params: msgspec.Struct) -> None:
        self.sent.append((method, params))
        self._queue.put_nowait((method, params))

    async def wait(self, within: float = 10.0) -> tuple[str, msgspec.Struct]:
        async with asyncio.timeout(within):
            return await self._queue.get()


def uri(path: str | Path | bytes) -> str:
    return format_path_uri(os.fsencode(path) if not isinstance(path, bytes) else path)


async def rpc_error(awaitable: Awaitable[Any]) -> WireError:
    """The wire error the server answers for what the awaitable raises (fails the test if it
    returns, or raises something the server would answer as an unexpected internal error)."""
    with pytest.raises(ExecServerError) as info:
        await awaitable
    answer = wire_error(info.value)
    assert answer is not None, f"no wire error for {info.value!r}"
    return answer


def realpath(path: str | Path) -> str:
    return os.path.realpath(path)


def lexists(path: str | bytes) -> bool:
    return os.path.lexists(path)


def create_file(path: str | bytes | Path, content: bytes = b"", repeat: int = 1) -> None:
    with open(path, "wb") as f:
        for _ in range(repeat):
            f.write(content)
