"""Every example of docs/client.md type-checks under ``mypy --strict`` and runs against a real
server."""

from __future__ import annotations

import asyncio
import inspect
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from exec_server.client import connect

from tests.support import BackgroundServer

ROOT = Path(__file__).resolve().parents[2]
GUIDE = ROOT / "docs" / "client.md"
BLOCKS = re.findall(r"```python\n(.*?)```", GUIDE.read_text(), re.S)


def test_the_guide_has_an_example_per_task() -> None:
    assert len(BLOCKS) >= 11


def test_every_example_passes_mypy_strict(tmp_path: Path) -> None:
    paths = []
    for i, block in enumerate(BLOCKS):
        path = tmp_path / f"guide_example_{i}.py"
        path.write_text(block)
        paths.append(str(path))
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "mypy",
            "--strict",
            "--config-file",
            str(ROOT / "pyproject.toml"),
            "--cache-dir",
            str(ROOT / ".mypy_cache"),
            *paths,
        ],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout + done.stderr


@pytest.mark.parametrize("index", range(len(BLOCKS)))
async def test_every_example_runs(index: int, server: BackgroundServer, tmp_path: Path) -> None:
    namespace: dict[str, Any] = {"__name__": f"guide_example_{index}"}
    exec(compile(BLOCKS[index], f"docs/client.md example {index}", "exec"), namespace)
    workdir = tmp_path / "work"
    workdir.mkdir()
    async with asyncio.timeout(60):
        if "sync_example" in namespace:
            await asyncio.to_thread(namespace["sync_example"], server.url, workdir)
            return
        example = namespace["example"]
        if next(iter(inspect.signature(example).parameters)) == "url":
            await example(server.url, workdir)
            return
        async with connect(server.url) as client:
            await example(client, workdir)
