"""The typed sandbox helpers: a denied command raises SandboxDenied from every way of waiting;
an fs write the sandbox refuses is a PermissionError."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from exec_server.client import Client, SandboxDenied, connect, sandbox
from exec_server_protocol.sandbox import ManagedPermissions, SandboxIntent

from tests.support import BackgroundServer


@pytest.fixture
async def ec(server: BackgroundServer) -> AsyncIterator[Client]:
    async with connect(server.url) as c:
        yield c


def test_the_helpers_build_the_typed_intent_codex_sends(tmp_path: Path) -> None:
    intent = sandbox.workspace_write(tmp_path)
    assert isinstance(intent, SandboxIntent)
    assert isinstance(intent.permissions, ManagedPermissions)
    assert intent.workspace_roots == [f"file://{tmp_path}"]
    assert sandbox.read_only().workspace_roots is None


async def test_a_denied_write_raises_sandbox_denied_from_run_wait_and_communicate(
    ec: Client, tmp_path: Path
) -> None:
    root = tmp_path / "root"
    root.mkdir()
    write_outside = ["sh", "-c", f"echo x > {tmp_path}/outside"]
    intent = sandbox.workspace_write(root)
    async with asyncio.timeout(30):
        ok = await ec.run(["sh", "-c", f"echo x > {root}/inside"], cwd=root, sandbox=intent)
        assert ok.returncode == 0 and (root / "inside").exists()
        with pytest.raises(SandboxDenied):
            await ec.run(write_outside, cwd=root, sandbox=intent)
        proc = await ec.start(write_outside, cwd=root, sandbox=intent)
        with pytest.raises(SandboxDenied):
            await proc.communicate()
        proc = await ec.start(write_outside, cwd=root, sandbox=sandbox.read_only(root))
        with pytest.raises(SandboxDenied) as caught:
            await proc.wait()
    assert b"Read-only file system" in caught.value.output_tail
    assert not (tmp_path / "outside").exists()


async def test_an_fs_write_refused_by_the_sandbox_is_a_permission_error(
    ec: Client, tmp_path: Path
) -> None:
    root = tmp_path / "root"
    root.mkdir()
    intent = sandbox.workspace_write(root)
    async with asyncio.timeout(30):
        await ec.files.write_bytes(root / "ok", b"x", sandbox=intent)
        with pytest.raises(PermissionError) as caught:
            await ec.files.write_bytes(tmp_path / "nope", b"x", sandbox=intent)
    assert caught.value.filename == str(tmp_path / "nope")
    assert not (tmp_path / "nope").exists()
