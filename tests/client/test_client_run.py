"""``Client.run`` / ``SyncClient.run``: subprocess.run semantics against a real server; a
cancelled, timed-out or interrupted run leaves nothing running on the server."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
import textwrap
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from exec_server.client import Client, SyncClient, connect
from exec_server.client._run import TimeoutExpired
from exec_server.testing import FaultProxy
from exec_server_protocol.process import EnvPolicy

from tests.support import BackgroundServer, process_running, wait_until


@pytest.fixture
async def ec(server: BackgroundServer) -> AsyncIterator[Client]:
    async with connect(server.url) as c:
        yield c


async def test_run_captures_output_and_returncode(ec: Client) -> None:
    async with asyncio.timeout(10):
        done = await ec.run(["sh", "-c", "echo out; echo err >&2; exit 3"])
    assert (done.args, done.returncode, done.stdout, done.stderr) == (
        ["sh", "-c", "echo out; echo err >&2; exit 3"],
        3,
        b"out\n",
        b"err\n",
    )


async def test_run_feeds_input_decodes_text_and_checks(ec: Client, tmp_path: Path) -> None:
    async with asyncio.timeout(10):
        done = await ec.run(["cat"], input="héllo", text=True, cwd=tmp_path)
        assert done.stdout == "héllo"
        with pytest.raises(subprocess.CalledProcessError) as caught:
            await ec.run(["sh", "-c", "echo no >&2; exit 2"], check=True)
    assert caught.value.returncode == 2
    assert caught.value.stderr == b"no\n"


async def test_the_child_inherits_the_server_environment_and_env_adds_to_it(ec: Client) -> None:
    async with asyncio.timeout(10):
        home = await ec.run(["sh", "-c", "echo $HOME"])
        assert home.stdout.strip()
        added = await ec.run(["sh", "-c", "echo $HOME:$EXTRA"], env={"EXTRA": "x"}, text=True)
        assert added.stdout.strip().endswith(":x") and added.stdout.strip() != ":x"
        exact = await ec.run(
            ["/usr/bin/env"], env={"ONLY": "1"}, env_policy=EnvPolicy(inherit="none")
        )
    assert exact.stdout == b"ONLY=1\n"


async def test_a_timeout_kills_the_tree_and_raises_timeout_expired(ec: Client) -> None:
    marker = "sleep 30.125"
    async with asyncio.timeout(20):
        with pytest.raises(TimeoutExpired) as caught:
            await ec.run(["sh", "-c", f"echo started; {marker}; echo never"], timeout=1)
    assert isinstance(caught.value, TimeoutError)
    assert isinstance(caught.value, subprocess.TimeoutExpired)
    assert caught.value.output == b"started\n"
    assert not process_running(marker)


async def test_cancelling_a_run_kills_the_remote_process(ec: Client) -> None:
    marker = "30.25"
    task = asyncio.ensure_future(ec.run(["sleep", marker]))
    await wait_until(lambda: process_running(f"sleep {marker}"))
    await asyncio.sleep(1)  # the acceptance scenario: cancelled after one second
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await wait_until(lambda: not process_running(f"sleep {marker}"), timeout=1)


async def test_cancelling_a_run_before_its_start_is_answered_kills_the_process(
    server: BackgroundServer,
) -> None:
    # The answer to process/start is held back: the client is cancelled knowing only the id
    # it chose, and must still kill what the server started.
    async with FaultProxy.for_url(server.url) as proxy, connect(proxy.url) as client:
        proxy.hold_replies()
        task = asyncio.ensure_future(client.run(["sleep", "30.85"]))
        await wait_until(lambda: process_running("sleep 30.85"))
        task.cancel()
        proxy.release_replies()
        with pytest.raises(asyncio.CancelledError):
            await task
        await wait_until(lambda: not process_running("sleep 30.85"), timeout=2)


async def test_a_str_argv_is_a_type_error(ec: Client) -> None:
    with pytest.raises(TypeError, match="list of strings"):
        await ec.run("echo hi")  # type: ignore[call-overload]  # the mistake under test
    with pytest.raises(TypeError, match="list of strings"):
        await ec.start("echo hi")  # type: ignore[call-overload]  # the mistake under test


def test_sync_run_with_a_native_path_and_text(server: BackgroundServer, tmp_path: Path) -> None:
    with SyncClient.connect(server.url) as sc:
        done = sc.run(["pwd"], cwd=tmp_path, text=True)
    assert done.stdout == f"{tmp_path}\n"


def test_ctrl_c_in_a_script_inside_sync_run_leaves_nothing_remote(
    server: BackgroundServer, tmp_path: Path
) -> None:
    marker = "sleep 30.5"
    script = tmp_path / "script.py"
    script.write_text(
        textwrap.dedent(
            f"""
            import sys
            from exec_server.client import SyncClient
            with SyncClient.connect({server.url!r}) as sc:
                print("connected", flush=True)
                sc.run(["sh", "-c", "echo go; {marker}"])
            """
        )
    )
    # As from a terminal: Ctrl-C is a KeyboardInterrupt even where this test runs with SIGINT
    # inherited ignored (under a background job of a non-interactive shell, as in CI).
    child = subprocess.Popen(
        [sys.executable, str(script)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    try:
        assert child.stdout is not None
        assert child.stdout.readline() == b"connected\n"
        asyncio.run(wait_until(lambda: process_running(marker)))
        child.send_signal(signal.SIGINT)
        _, err = child.communicate(timeout=20)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
    assert b"KeyboardInterrupt" in err
    assert not process_running(marker)
