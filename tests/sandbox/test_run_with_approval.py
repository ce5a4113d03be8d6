"""The client's approval flow against a real server (issue 4): ``Process.wait()`` raises
``SandboxDenied``; ``run_with_approval`` asks and reruns without the sandbox."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from escape_cases import TIMEOUT
from exec_server.client import (
    Client,
    CompletedRun,
    SandboxDenied,
    connect,
    run_with_approval,
)
from sandbox_intents import decode, workspace_write

from tests.support import ENV, BackgroundServer

pytestmark = pytest.mark.usefixtures("kernel_features")


@pytest.fixture
async def exec_client(server: BackgroundServer) -> AsyncIterator[Client]:
    async with connect(server.url) as c:
        yield c


@pytest.fixture
def root(tmp_path: Path) -> Path:
    path = tmp_path / "root"
    path.mkdir()
    return path


class Approver:
    """Records every denial it is asked about and answers ``answer``."""

    def __init__(self, answer: bool) -> None:
        self.answer = answer
        self.asked: list[SandboxDenied] = []

    async def __call__(self, denial: SandboxDenied) -> bool:
        self.asked.append(denial)
        return self.answer


async def run_in_root(
    client: Client, root: Path, script: str, approve: Approver, **options: Any
) -> CompletedRun:
    """``sh -c script`` in ``root`` through ``run_with_approval``, sandboxed to write only
    there (bounded by TIMEOUT)."""
    async with asyncio.timeout(TIMEOUT):
        return await run_with_approval(
            client,
            ["sh", "-c", script],
            sandbox=decode(workspace_write(root)),
            approve=approve,
            cwd=str(root),
            env=ENV,
            **options,
        )


async def test_wait_raises_sandbox_denied_with_exit_code_and_output_tail(
    exec_client: Client, root: Path, tmp_path: Path
) -> None:
    sandbox = decode(workspace_write(root))
    proc = await exec_client.start(
        ["sh", "-c", f"echo x > {tmp_path}/out"], cwd=str(root), env=ENV, sandbox=sandbox
    )
    assert proc.sandbox_type == "linuxSeccomp"
    async with asyncio.timeout(TIMEOUT):
        with pytest.raises(SandboxDenied) as raised:
            await proc.wait()
        await proc.wait_closed()
    assert raised.value.exit_code == 2
    assert b"Read-only file system" in raised.value.output_tail
    assert not (tmp_path / "out").exists()


async def test_denied_then_approved_command_is_retried_without_the_sandbox(
    exec_client: Client, root: Path, tmp_path: Path
) -> None:
    approve = Approver(True)
    result = await run_in_root(
        exec_client, root, f"echo x > {tmp_path}/out && echo wrote", approve, process_id="approved"
    )
    assert [(d.exit_code, b"Read-only file system" in d.output_tail) for d in approve.asked] == [
        (2, True)
    ]
    assert result == CompletedRun(0, b"wrote\n", b"", sandboxed=False, denial=approve.asked[0])
    assert (tmp_path / "out").read_text() == "x\n"


async def test_denied_then_refused_command_raises_sandbox_denied(
    exec_client: Client, root: Path, tmp_path: Path
) -> None:
    approve = Approver(False)
    with pytest.raises(SandboxDenied) as raised:
        await run_in_root(exec_client, root, f"echo x > {tmp_path}/out", approve)
    assert approve.asked == [raised.value]
    assert raised.value.exit_code == 2
    assert b"Read-only file system" in raised.value.output_tail
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    ("command", "code"), [("echo ok > {root}/in", 0), ("exit 3", 3)], ids=["success", "failure"]
)
async def test_a_run_the_server_does_not_call_denied_is_returned_without_asking(
    exec_client: Client, root: Path, command: str, code: int
) -> None:
    approve = Approver(True)
    result = await run_in_root(exec_client, root, command.format(root=root), approve)
    assert (result.returncode, result.sandboxed, result.denial) == (code, True, None)
    assert approve.asked == []
