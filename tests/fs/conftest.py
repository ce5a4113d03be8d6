"""Fixtures of the fs service tests: a service recording its notifications, a sample tree."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from exec_server.fs import FsService
from fs_helpers import Recorder


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
