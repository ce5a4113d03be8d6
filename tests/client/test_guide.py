"""Every example of docs/client.md type-checks under ``mypy --strict`` and runs against a real
server; so do the static result types of ``start`` and ``run`` (bytes unless text or an
encoding)."""

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


def mypy_strict(directory: Path, sources: dict[str, str]) -> None:
    """``mypy --strict`` (the project's settings) over ``sources`` written to ``directory``."""
    for name, text in sources.items():
        (directory / name).write_text(text)
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
            *(str(directory / name) for name in sources),
        ],
        capture_output=True,
        text=True,
        cwd=directory,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_every_example_passes_mypy_strict(tmp_path: Path) -> None:
    mypy_strict(tmp_path, {f"guide_example_{i}.py": block for i, block in enumerate(BLOCKS)})


STATIC_TYPES = """
import subprocess
from typing import assert_type

from exec_server.client import Client, Process, SyncClient


async def checked(client: Client, sync: SyncClient, chunks: list[bytes], lines: list[str]) -> None:
    assert_type(await client.start(["a"]), Process[bytes])
    assert_type(await client.start(["a"], text=False, on_stdout=chunks.append), Process[bytes])
    assert_type(await client.start(["a"], text=True, on_stderr=lines.append), Process[str])
    assert_type(await client.start(["a"], encoding="latin-1", cwd="/"), Process[str])
    assert_type(await client.run(["a"], input=b"x"), subprocess.CompletedProcess[bytes])
    assert_type(await client.run(["a"], text=True, input="x"), subprocess.CompletedProcess[str])
    assert_type(await client.run(["a"], encoding="latin-1"), subprocess.CompletedProcess[str])
    assert_type(sync.run(["a"], timeout=1.0, check=True), subprocess.CompletedProcess[bytes])
    assert_type(sync.run(["a"], text=True), subprocess.CompletedProcess[str])
    assert_type(sync.run(["a"], encoding="utf-8"), subprocess.CompletedProcess[str])
    await client.start(["a"], on_stdout=lines.append)  # type: ignore[arg-type]
    await client.run(["a"], input="x")  # type: ignore[call-overload]
    await client.run(["a"], bogus=1)  # type: ignore[call-overload]
    sync.run(["a"], tty="yes")  # type: ignore[call-overload]
"""


def test_start_and_run_results_are_bytes_unless_text_or_an_encoding(tmp_path: Path) -> None:
    mypy_strict(tmp_path, {"static_types.py": STATIC_TYPES})


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
