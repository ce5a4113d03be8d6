"""Session, handshake and handler rules, through the server's real connection handling over
in-memory pairs (no socket, no server process). Moved here from the subprocess-server tests
(tests/e2e/test_transport.py, tests/sessions/test_session_recovery.py) with their assertions."""

from __future__ import annotations

import asyncio
import base64
import sys

import pytest
from exec_server.server import Server
from exec_server.testing import RawClient, RawRpcError

from tests.support import start_params

# Echoes each stdin line as "got <line>".
ECHO = [sys.executable, "-u", "-c", "import sys\nfor l in sys.stdin: sys.stdout.write('got ' + l)"]


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


async def session_running_echo(server: Server, process_id: str) -> tuple[RawClient, str]:
    """A client of a new session, and the session's id, with ``ECHO`` started as
    ``process_id`` (stdin piped)."""
    client = RawClient.in_memory(server)
    session_id = (await client.handshake())["sessionId"]
    await client.call("process/start", start_params(process_id, ECHO, pipeStdin=True))
    return client, session_id


async def test_unknown_method_is_minus_32601_even_before_initialize(memory_server: Server) -> None:
    c = RawClient.in_memory(memory_server)
    resp = await c.request_raw("no/such")
    assert resp["error"] == {"code": -32601, "message": "exec-server does not implement `no/such`"}
    await c.aclose()


async def test_handshake_order_is_enforced_per_family(
    memory_server: Server,
) -> None:
    c = RawClient.in_memory(memory_server)
    families = {
        "environment/info": ("environment info", None),
        "process/start": ("exec", start_params("p", ["true"])),
        "fs/readFile": ("filesystem", {"path": "file:///etc/hostname"}),
        "environmentConfig/read": (
            "environment config",
            {"cwd": "file:///tmp", "configPaths": [], "requirementsPaths": []},
        ),
    }
    for method, (family, params) in families.items():
        with pytest.raises(RawRpcError) as err:
            await c.call(method, params)
        assert (err.value.code, err.value.message) == (
            -32600,
            f"client must call initialize before using {family} methods",
        )
    await c.call("initialize", {"clientName": "t"})
    for method, (family, params) in families.items():
        with pytest.raises(RawRpcError) as err:
            await c.call(method, params)
        assert err.value.message == f"client must send initialized before using {family} methods"
    with pytest.raises(RawRpcError) as err:
        await c.call("initialize", {"clientName": "t"})
    assert (err.value.code, err.value.message) == (
        -32600,
        "initialize may only be sent once per connection",
    )
    await c.notify("initialized", {})
    assert (await c.call("environment/info"))["platformOs"] == "linux"
    await c.aclose()


async def test_params_are_decoded_before_the_handshake_check(
    memory_server: Server,
) -> None:
    c = RawClient.in_memory(memory_server)
    bad = start_params("p", ["true"])
    bad["argv"] = "ls"
    with pytest.raises(RawRpcError) as err:
        await c.call("process/start", bad)
    assert err.value.code == -32602
    with pytest.raises(RawRpcError) as err:
        await c.call("fs/readFile", {})
    assert err.value.code == -32602
    await c.aclose()


async def test_a_failed_initialize_does_not_use_up_the_attempt(
    memory_server: Server,
) -> None:
    c = RawClient.in_memory(memory_server)
    for params in ({}, None, "x"):
        with pytest.raises(RawRpcError) as err:
            await c.call("initialize", params)
        assert err.value.code == -32602
    with pytest.raises(RawRpcError) as err:
        await c.call("initialize", {"clientName": "x", "resumeSessionId": "nope"})
    assert (err.value.code, err.value.message) == (-32600, "unknown session id nope")
    result = await c.call("initialize", {"clientName": "x", "extra": 1})
    assert len(result["sessionId"]) == 36
    await c.aclose()


async def test_resume_after_the_server_saw_the_disconnect_keeps_processes_and_ids(
    memory_server: Server,
) -> None:
    a, sid = await session_running_echo(memory_server, "echo")
    await a.call("process/write", {"processId": "echo", "chunk": b64(b"one\n"), "writeId": "1"})
    first = await a.next_notification("process/output", "echo")
    assert base64.b64decode(first["params"]["chunk"]) == b"got one\n"
    await a.aclose()  # a clean close: the server has handled it when this returns

    b = RawClient.in_memory(memory_server)
    try:
        assert (await b.handshake(resume=sid))["sessionId"] == sid
        status = await b.call(
            "process/write", {"processId": "echo", "chunk": b64(b"two\n"), "writeId": "2"}
        )
        assert status == {"status": "accepted"}
        pushed = await b.next_notification("process/output", "echo")
        assert pushed["params"]["seq"] == 2
        assert base64.b64decode(pushed["params"]["chunk"]) == b"got two\n"
        result = await b.call("process/read", {"processId": "echo", "afterSeq": 0})
        assert [base64.b64decode(c["chunk"]) for c in result["chunks"]] == [
            b"got one\n",
            b"got two\n",
        ]
    finally:
        await b.aclose()


async def test_takeover_closes_the_old_connection_and_fails_its_pending_long_poll(
    memory_server: Server,
) -> None:
    old, sid = await session_running_echo(memory_server, "idle")
    poll = asyncio.ensure_future(
        old.request_raw("process/read", {"processId": "idle", "waitMs": 20000})
    )
    # The old connection is still open from the server's point of view (half-open).
    new = RawClient.in_memory(memory_server)
    try:
        assert (await new.handshake(resume=sid))["sessionId"] == sid
        async with asyncio.timeout(10):
            answer = await poll
            await old.closed
        assert answer["error"] == {
            "code": -32600,
            "message": "session has been resumed by another connection",
        }
        assert old.ws.close_code == 4000
        assert old.ws.close_reason == "session resumed by another connection"
        # Notifications now go to the new connection.
        await new.call("process/write", {"processId": "idle", "chunk": b64(b"x\n"), "writeId": "1"})
        pushed = await new.next_notification("process/output", "idle")
        assert base64.b64decode(pushed["params"]["chunk"]) == b"got x\n"
    finally:
        await new.aclose()
        await old.aclose()


async def test_unknown_session_then_fresh_initialize_on_the_same_connection(
    memory_server: Server,
) -> None:
    c = RawClient.in_memory(memory_server)
    try:
        bogus = "00000000-0000-4000-8000-000000000000"
        with pytest.raises(RawRpcError) as info:
            await c.handshake(resume=bogus)
        assert (info.value.code, info.value.message) == (-32600, f"unknown session id {bogus}")
        fresh = await c.handshake()
        assert fresh["sessionId"] != bogus
        assert (await c.call("process/start", start_params("t", ["true"])))["processId"] == "t"
    finally:
        await c.aclose()
