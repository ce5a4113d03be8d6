"""process/write, process/signal, process/terminate, process/resize (docs/protocol.md §6)."""

from __future__ import annotations

import asyncio
import base64
import sys

import pytest
from exec_server.testing import RawClient, RawRpcError, ServerProcess

from tests.support import start_params

PY = sys.executable


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


async def write(c: RawClient, pid: str, data: bytes, write_id: str, **extra: object) -> str:
    params = {"processId": pid, "chunk": b64(data), "writeId": write_id, **extra}
    return (await c.call("process/write", params))["status"]  # type: ignore[no-any-return]


async def test_write_statuses(client: RawClient) -> None:
    await client.call("process/start", start_params("cat", ["cat"], pipeStdin=True))
    await client.call("process/start", start_params("nostdin", ["sleep", "30"]))
    assert await write(client, "cat", b"hello\n", "w1") == "accepted"
    assert await write(client, "nope", b"x", "w1") == "unknownProcess"
    assert await write(client, "nostdin", b"x", "w1") == "stdinClosed"
    assert await write(client, "cat", b"", "w-empty") == "accepted"
    out = await client.next_notification("process/output", "cat")
    assert base64.b64decode(out["params"]["chunk"]) == b"hello\n"
    await client.call("process/terminate", {"processId": "nostdin"})
    await client.collect("nostdin")
    assert await write(client, "nostdin", b"x", "w2") == "stdinClosed"
    await client.call("process/terminate", {"processId": "cat"})
    await client.collect("cat")
    assert await write(client, "cat", b"late", "w3") == "accepted"


@pytest.mark.parametrize(
    ("params", "code"),
    [
        ({"chunk": "!!notbase64", "writeId": "a"}, -32602),
        ({"chunk": "aGk", "writeId": "b"}, -32602),
        ({"chunk": "eA==", "writeId": ""}, -32602),
        ({"chunk": "eA=="}, -32602),
        ({"writeId": "c"}, -32602),
    ],
)
async def test_bad_writes_are_invalid_params(
    client: RawClient, params: dict[str, object], code: int
) -> None:
    await client.call("process/start", start_params("cat", ["cat"], pipeStdin=True))
    with pytest.raises(RawRpcError) as err:
        await client.call("process/write", {"processId": "cat", **params})
    assert err.value.code == code
    assert await write(client, "cat", b"ok\n", "fine") == "accepted"


async def test_a_repeated_write_id_writes_once(client: RawClient) -> None:
    await client.call("process/start", start_params("cat", ["cat"], pipeStdin=True))
    assert await write(client, "cat", b"one\n", "same") == "accepted"
    assert await write(client, "cat", b"one\n", "same") == "accepted"
    assert await write(client, "cat", b"two\n", "other", closeStdin=True) == "accepted"
    result = await client.collect("cat")
    assert result["stdout"] == b"one\ntwo\n"


async def test_the_same_write_id_on_two_processes_writes_to_both(client: RawClient) -> None:
    for pid in ("a", "b"):
        await client.call("process/start", start_params(pid, ["cat"], pipeStdin=True))
        assert await write(client, pid, pid.encode(), "1", closeStdin=True) == "accepted"
    assert (await client.collect("a"))["stdout"] == b"a"
    assert (await client.collect("b"))["stdout"] == b"b"


async def test_write_ids_are_remembered_in_a_window_of_4096(client: RawClient) -> None:
    # A child that counts bytes until EOF.
    script = "import sys; print(len(sys.stdin.buffer.read()))"
    await client.call("process/start", start_params("count", [PY, "-c", script], pipeStdin=True))
    sends = [
        client.call("process/write", {"processId": "count", "chunk": "eA==", "writeId": str(i)})
        for i in range(4097)
    ]
    assert all(r["status"] == "accepted" for r in await asyncio.gather(*sends))
    # "4096" is the newest id: still remembered. "0" is the oldest: evicted by the 4097th.
    assert await write(client, "count", b"y", "4096") == "accepted"
    assert await write(client, "count", b"z", "0") == "accepted"
    assert await write(client, "count", b"", "end", closeStdin=True) == "accepted"
    result = await client.collect("count")
    assert result["stdout"] == b"4098\n"


async def test_close_stdin_sends_eof_and_later_writes_are_stdin_closed(client: RawClient) -> None:
    await client.call("process/start", start_params("wc", ["wc", "-c"], pipeStdin=True))
    assert await write(client, "wc", b"12345", "1", closeStdin=True) == "accepted"
    assert await write(client, "wc", b"more", "2") == "stdinClosed"
    result = await client.collect("wc")
    assert result["stdout"].strip() == b"5"


async def test_a_write_blocked_on_a_full_pipe_does_not_delay_other_requests(
    client: RawClient,
) -> None:
    # The child never reads stdin; 4 MiB cannot fit in a pipe.
    await client.call("process/start", start_params("deaf", ["sleep", "60"], pipeStdin=True))
    await client.call("process/start", start_params("talk", ["echo", "hi"]))
    blocked = asyncio.ensure_future(write(client, "deaf", b"x" * (4 << 20), "big"))
    for _ in range(3):
        assert (await client.call("environment/info"))["platformOs"] == "linux"
    read = await client.call("process/read", {"processId": "talk", "waitMs": 5000})
    assert read["exited"] is True
    assert not blocked.done()
    # Later writes to the same process queue behind it, in order.
    second = asyncio.ensure_future(write(client, "deaf", b"y", "after"))
    # Requests are read in order: had the write been answered at once, its answer would have
    # come before this one.
    await client.call("environment/info")
    assert not second.done()
    await client.call("process/terminate", {"processId": "deaf"})
    assert await asyncio.wait_for(blocked, 10) == "accepted"
    assert await asyncio.wait_for(second, 10) == "accepted"


async def test_writes_to_one_process_are_applied_in_arrival_order(client: RawClient) -> None:
    await client.call("process/start", start_params("cat", ["cat"], pipeStdin=True))
    chunks = [f"{i:05d}\n".encode() * 200 for i in range(200)]
    sends = [
        client.call("process/write", {"processId": "cat", "chunk": b64(chunk), "writeId": str(i)})
        for i, chunk in enumerate(chunks)
    ]
    await asyncio.gather(*sends)
    await write(client, "cat", b"", "eof", closeStdin=True)
    result = await client.collect("cat")
    assert result["stdout"] == b"".join(chunks)


async def test_interrupt_sends_sigint_to_the_process_group(client: RawClient) -> None:
    script = (
        "import signal,sys,time\nsys.stdout.write('ready\\n'); sys.stdout.flush()\ntime.sleep(60)"
    )
    await client.call("process/start", start_params("int", [PY, "-c", script]))
    await client.next_notification("process/output", "int")
    assert await client.call("process/signal", {"processId": "int", "signal": "interrupt"}) == {}
    result = await client.collect("int")
    assert result["exit"]["exitCode"] == 130  # Python re-raises an unhandled SIGINT
    assert b"KeyboardInterrupt" in result["stderr"]


@pytest.mark.parametrize(
    ("name", "code"),
    [
        ("terminate", 143),
        ("kill", 137),
        ("hangup", 129),
        ("quit", 131),
        ("user1", 138),
        ("user2", 140),
    ],
)
async def test_extra_signal_names_deliver_their_signal(
    client: RawClient, name: str, code: int
) -> None:
    await client.call("process/start", start_params("s", ["sleep", "60"]))
    await client.call("process/signal", {"processId": "s", "signal": name})
    assert (await client.collect("s"))["exit"]["exitCode"] == code


async def test_signal_and_terminate_of_unknown_or_exited_processes_are_harmless(
    client: RawClient,
) -> None:
    assert await client.call("process/signal", {"processId": "nope", "signal": "interrupt"}) == {}
    assert await client.call("process/terminate", {"processId": "nope"}) == {"running": False}
    await client.call("process/start", start_params("t", ["true"]))
    await client.collect("t")
    assert await client.call("process/signal", {"processId": "t", "signal": "interrupt"}) == {}
    assert await client.call("process/terminate", {"processId": "t"}) == {"running": False}
    with pytest.raises(RawRpcError) as err:
        await client.call("process/signal", {"processId": "t", "signal": "bogus"})
    assert err.value.code == -32602


async def test_terminate_of_a_running_process_reports_running_then_not(client: RawClient) -> None:
    await client.call("process/start", start_params("s", ["sleep", "60"]))
    assert await client.call("process/terminate", {"processId": "s"}) == {"running": True}
    result = await client.collect("s")
    assert result["exit"]["exitCode"] == 137
    assert await client.call("process/terminate", {"processId": "s"}) == {"running": False}


async def test_tty_processes_use_a_pty_of_the_requested_size_and_can_be_resized(
    client: RawClient,
) -> None:
    script = "stty size; read line; stty size; echo got:$line"
    await client.call(
        "process/start",
        start_params("tty", ["sh", "-c", script], tty=True, ptySize={"rows": 40, "cols": 120}),
    )
    first = await client.next_notification("process/output", "tty")
    assert b"40 120" in base64.b64decode(first["params"]["chunk"])
    assert await client.call("process/resize", {"processId": "tty", "rows": 50, "cols": 132}) == {}
    assert await write(client, "tty", b"hello\n", "1") == "accepted"
    result = await client.collect("tty")
    assert b"50 132" in result["pty"]
    assert b"got:hello" in result["pty"]
    assert result["exit"]["exitCode"] == 0


async def test_tty_defaults_to_24x80_and_is_the_controlling_terminal(client: RawClient) -> None:
    await client.call(
        "process/start", start_params("tty", ["sh", "-c", "stty size; tty; echo err >&2"], tty=True)
    )
    result = await client.collect("tty")
    assert result["stdout"] == result["stderr"] == b""
    lines = result["pty"].split(b"\r\n")
    assert lines[0] == b"24 80"
    assert lines[1].startswith(b"/dev/pts/")
    assert lines[2] == b"err"


async def test_resize_of_a_non_tty_process_is_an_error(client: RawClient) -> None:
    await client.call("process/start", start_params("p", ["sleep", "30"]))
    with pytest.raises(RawRpcError) as err:
        await client.call("process/resize", {"processId": "p", "rows": 10, "cols": 10})
    assert err.value.code == -32600
    with pytest.raises(RawRpcError) as err:
        await client.call("process/resize", {"processId": "p", "rows": 0, "cols": 10})
    assert err.value.code == -32602
    await client.call("process/terminate", {"processId": "p"})


async def test_interrupt_on_a_tty_reaches_the_foreground_job(client: RawClient) -> None:
    # "ready" comes from the job itself, once it handles SIGINT: a shell's "echo ready; sleep"
    # let the signal land between the echo and the fork, where `sh -c` holds it until sleep ends.
    job = f"{sys.executable} -c 'import time; print(\"ready\", flush=True); time.sleep(60)'"
    await client.call("process/start", start_params("tty", ["sh", "-c", job], tty=True))
    await client.next_notification("process/output", "tty")
    await client.call("process/signal", {"processId": "tty", "signal": "interrupt"})
    result = await client.collect("tty")
    assert result["exit"]["exitCode"] == 130


async def test_close_stdin_on_a_tty_sends_end_of_file(client: RawClient) -> None:
    await client.call("process/start", start_params("tty", ["cat"], tty=True))
    assert await write(client, "tty", b"abc\n", "1", closeStdin=True) == "accepted"
    result = await client.collect("tty")
    assert result["exit"]["exitCode"] == 0
    assert b"abc" in result["pty"]


async def test_a_tty_process_that_closes_its_terminal_is_not_hung_up(client: RawClient) -> None:
    # GNU cat closes its stdio before it exits; the server saw EOF on the pty then and closed
    # the master, which hung the terminal up and killed cat with SIGHUP (about 1 in 50 runs).
    argv = ["sh", "-c", "exec 0<&- 1>&- 2>&-; sleep 0.1; exit 3"]
    await client.call("process/start", start_params("closer", argv, tty=True))
    result = await client.collect("closer")
    assert (result["exit"]["exitCode"], result["exit"]["signal"]) == (3, None)


async def test_children_get_default_signal_handling_even_if_the_server_inherited_ignores() -> None:
    # Start the server the way a non-interactive shell starts a background job: SIGINT and
    # SIGQUIT ignored, SIGHUP ignored as under nohup.
    script = (
        "import os, signal, sys\n"
        "for s in (signal.SIGINT, signal.SIGQUIT, signal.SIGHUP):\n"
        "    signal.signal(s, signal.SIG_IGN)\n"
        "os.execv(sys.executable, [sys.executable, '-m', 'exec_server'])\n"
    )
    async with ServerProcess(command=[sys.executable, "-c", script]) as s:
        c = await RawClient.connect(s.url)
        await c.handshake()
        for name, code in (("interrupt", 130), ("quit", 131), ("hangup", 129)):
            pid = f"s-{name}"
            await c.call("process/start", start_params(pid, ["sleep", "60"]))
            await c.call("process/signal", {"processId": pid, "signal": name})
            assert (await c.collect(pid))["exit"]["exitCode"] == code
        await c.aclose()
