"""Fixtures of the fs service tests: a service recording its notifications, a sample tree."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import msgspec
import pytest
from exec_server.fs import FsService


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


@pytest.fixture
def notes() -> Recorder:
    return Recorder()


@pytest.fixture
async def fs(notes: Recorder) -> AsyncIterator[FsService]:
    service = FsService(notify=notes, watch_interval=0.01)
    yield service
    await service.aclose()


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    """tmp/{f.txt "hello", d/{a "a", sub/{b "bb", .hidden/c}}, link -> f.txt, dlink -> d,
    broken -> nowhere}"""
    (tmp_path / "f.txt").write_bytes(b"hello")
    (tmp_path / "d" / "sub" / ".hidden").mkdir(parents=True)
    (tmp_path / "d" / "a").write_bytes(b"a")
    (tmp_path / "d" / "sub" / "b").write_bytes(b"bb")
    (tmp_path / "d" / "sub" / ".hidden" / "c").write_bytes(b"c")
    (tmp_path / "link").symlink_to(tmp_path / "f.txt")
    (tmp_path / "dlink").symlink_to(tmp_path / "d")
    (tmp_path / "broken").symlink_to(tmp_path / "nowhere")
    return tmp_path
