"""A refused start says what was missing: ProgramNotFound / CwdNotFound name their path (from
the error's ``data`` [ours], or found out by the client against the reference); the server's
audit log gives the reason."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from exec_server.client import (
    Client,
    CwdNotFound,
    ExecServerError,
    ProgramNotFound,
    RemoteError,
    StdinClosed,
    connect,
)
from exec_server.testing import RawClient

from tests.support import BackgroundServer, start_params


@pytest.fixture
async def ec(server: BackgroundServer) -> AsyncIterator[Client]:
    async with connect(server.url) as c:
        yield c


async def test_a_missing_program_raises_program_not_found_naming_it(ec: Client) -> None:
    with pytest.raises(ProgramNotFound) as caught:
        await ec.start(["no-such-program-xyz", "arg"])
    err = caught.value
    assert isinstance(err, FileNotFoundError) and isinstance(err, ExecServerError)
    assert err.filename == "no-such-program-xyz"
    assert "no-such-program-xyz" in str(err)
    assert (err.code, err.message) == (-32603, "No such file or directory (os error 2)")
    with pytest.raises(ProgramNotFound, match="/no/such/bin"):
        await ec.run(["/no/such/bin"])


async def test_a_missing_cwd_raises_cwd_not_found_naming_it(ec: Client, tmp_path: Path) -> None:
    missing = tmp_path / "gone"
    with pytest.raises(CwdNotFound) as caught:
        await ec.run(["true"], cwd=missing)
    assert isinstance(caught.value, FileNotFoundError)
    assert caught.value.filename == str(missing)
    assert str(missing) in str(caught.value)


async def test_the_wire_error_keeps_the_reference_code_and_message_and_adds_data(
    server: BackgroundServer, tmp_path: Path
) -> None:
    c = await RawClient.connect(server.url)
    try:
        await c.handshake()
        cwd = f"file://{tmp_path}/gone"
        reply = await c.request_raw("process/start", start_params("p1", ["true"], cwd=cwd))
        assert reply["error"] == {
            "code": -32603,
            "message": "No such file or directory (os error 2)",
            "data": {"reason": "cwdNotFound", "path": f"{tmp_path}/gone"},
        }
    finally:
        await c.aclose()
    start = server.stderr.rfind(b"process start refused")
    line = server.stderr[start : server.stderr.find(b"\n", start)].decode()
    assert "(cwdNotFound)" in line and f"cwd=file://{tmp_path}/gone" in line


async def test_writing_without_pipe_stdin_says_so(ec: Client) -> None:
    proc = await ec.start(["sleep", "30"])
    with pytest.raises(StdinClosed, match="without pipe_stdin=True"):
        await proc.write(b"x")
    await proc.kill()
    async with asyncio.timeout(10):
        await proc.wait()


async def test_other_refusals_stay_remote_errors(ec: Client) -> None:
    with pytest.raises(RemoteError) as caught:
        await ec.start([])
    assert not isinstance(caught.value, OSError)
