"""A kernel without pidfds (before 5.3: Debian 10, RHEL 8; gVisor): the server watches its
children by polling instead, and everything that depends on knowing when a child ended still
holds. The server runs under ``confine --hide-pidfd`` (``pidfd_open`` & co answer ENOSYS)."""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from exec_server.testing import RawClient, ServerProcess

from tests.support import start_params, wait_until

CONFINED = [sys.executable, "-m", "exec_server.testing.confine", "--hide-pidfd", "--"]


@pytest.fixture
async def client() -> AsyncIterator[RawClient]:
    async with ServerProcess(command=[*CONFINED, sys.executable, "-m", "exec_server"]) as s:
        c = await RawClient.connect(s.url)
        await c.handshake()
        yield c
        await c.aclose()
    assert b"Traceback" not in s.stderr, s.stderr.decode(errors="replace")[-4000:]


async def test_exit_codes_signals_and_output_are_reported(client: RawClient) -> None:
    await client.call("process/start", start_params("ok", ["sh", "-c", "echo hi; exit 3"]))
    await client.call("process/start", start_params("long", ["sleep", "60"]))
    await client.call("process/signal", {"processId": "long", "signal": "interrupt"})
    ok = await client.collect("ok")
    assert (ok["exit"]["exitCode"], ok["stdout"]) == (3, b"hi\n")
    long = await client.collect("long")
    assert (long["exit"]["exitCode"], long["exit"]["signal"]) == (130, "SIGINT")


async def test_a_tty_process_and_many_short_ones(client: RawClient) -> None:
    await client.call("process/start", start_params("tty", ["sh", "-c", "tty; exit 4"], tty=True))
    tty = await client.collect("tty")
    assert tty["exit"]["exitCode"] == 4 and b"/dev/pts/" in tty["pty"]
    for i in range(50):
        await client.call("process/start", start_params(f"t{i}", ["true"]))
    for i in range(50):
        assert (await client.collect(f"t{i}"))["exit"]["exitCode"] == 0


async def test_terminate_kills_a_setsid_grandchild(client: RawClient, tmp_path: Path) -> None:
    pid_file = tmp_path / "pid"
    script = f"setsid sh -c 'echo $$ > {pid_file}; exec sleep 60' & wait"
    await client.call("process/start", start_params("tree", ["sh", "-c", script]))
    await wait_until(lambda: pid_file.exists() and pid_file.read_text().strip() != "")
    grandchild = int(pid_file.read_text())
    await client.call("process/terminate", {"processId": "tree"})
    assert (await client.collect("tree"))["exit"]["signal"] == "SIGKILL"
    await wait_until(
        lambda: (
            not Path(f"/proc/{grandchild}/cmdline").exists()
            or Path(f"/proc/{grandchild}/cmdline").read_bytes() == b""
        )
    )
