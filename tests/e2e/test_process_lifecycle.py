"""process/start, notifications, seq, exit codes, process/read (docs/protocol.md §4, §5)."""

from __future__ import annotations

import asyncio
import base64
import os
import sys
from pathlib import Path

import pytest
from exec_server.testing import RawClient, RawRpcError, ServerProcess

from tests.support import ENV, BackgroundServer, start_params

PY = sys.executable


async def test_start_answers_before_any_notification_and_numbers_events_from_one(
    client: RawClient,
) -> None:
    resp = await client.request_raw(
        "process/start", start_params("p", ["sh", "-c", "echo hi; echo err >&2; exit 3"])
    )
    assert resp["result"] == {"processId": "p", "sandboxType": "none"}
    result = await client.collect("p")
    seqs = [e["params"]["seq"] for e in result["events"]]
    assert seqs == list(range(1, len(seqs) + 1))
    assert [e["method"] for e in result["events"]][-2:] == ["process/exited", "process/closed"]
    assert result["stdout"] == b"hi\n"
    assert result["stderr"] == b"err\n"
    assert result["exit"]["exitCode"] == 3
    assert result["exit"]["sandboxDenied"] is False


async def test_start_response_precedes_output_every_time(client: RawClient) -> None:
    for i in range(40):
        pid = f"e{i}"
        await client.request_raw("process/start", start_params(pid, ["echo", "x"]))
        # The response was matched before anything else could be queued for this process,
        # so the first queued notification of the process must be its first event.
        assert client.unmatched == type(client.unmatched)()
        first = await client.next_notification(process_id=pid)
        assert first["params"]["seq"] == 1
        await client.collect(pid)


async def test_exited_follows_all_output_of_a_process_without_background_children(
    client: RawClient,
) -> None:
    # A race in the reference: repeat it.
    script = "import os\nfor i in range(50): os.write(1, b'x' * 1000)\nos.write(2, b'done')"
    for i in range(60):
        pid = f"r{i}"
        await client.call("process/start", start_params(pid, [PY, "-c", script]))
        result = await client.collect(pid)
        methods = [e["method"] for e in result["events"]]
        assert methods.index("process/exited") == len(methods) - 2
        assert len(result["stdout"]) == 50_000
        assert result["stderr"] == b"done"


async def test_closed_waits_for_background_children_holding_the_pipes(client: RawClient) -> None:
    await client.call(
        "process/start",
        start_params(
            "bg", ["sh", "-c", "exec 3<&0; (read x <&3; echo late) & echo started"], pipeStdin=True
        ),
    )
    exited = await client.next_notification("process/exited", "bg")
    assert exited["params"]["exitCode"] == 0
    read = await client.call("process/read", {"processId": "bg"})
    assert read["exited"] is True and read["closed"] is False
    await client.call(
        "process/write",
        {"processId": "bg", "chunk": base64.b64encode(b"go\n").decode(), "writeId": "w"},
    )
    result = await client.collect("bg")
    assert result["stdout"] == b"started\nlate\n"
    assert result["events"][-1]["method"] == "process/closed"


@pytest.mark.parametrize(("tty", "expected"), [(False, 137), (True, 137)])
async def test_a_process_killed_by_a_signal_exits_with_128_plus_the_signal(
    client: RawClient, tty: bool, expected: int
) -> None:
    await client.call("process/start", start_params("k", ["sh", "-c", "kill -9 $$"], tty=tty))
    result = await client.collect("k")
    assert result["exit"]["exitCode"] == expected
    assert result["exit"]["signal"] == "SIGKILL"


async def test_exit_reports_resource_usage(client: RawClient) -> None:
    await client.call("process/start", start_params("u", [PY, "-c", "sum(range(3_000_000))"]))
    result = await client.collect("u")
    usage = result["exit"]["resourceUsage"]
    assert usage["userCpuMs"] + usage["systemCpuMs"] > 0
    assert usage["wallMs"] >= usage["userCpuMs"] // 2
    assert usage["maxRssKb"] > 0


async def test_child_gets_exactly_env_and_arg0_but_argv0_is_looked_up_on_the_server_path(
    client: RawClient,
) -> None:
    await client.call(
        "process/start",
        start_params("env", ["sh", "-c", "echo $0; env | sort"], env={"A": "1"}, arg0="myname"),
    )
    result = await client.collect("env")
    lines = result["stdout"].decode().splitlines()
    assert lines[0] == "myname"
    assert sorted(lines[1:]) == ["A=1", "PWD=/tmp"]


async def test_env_policy_core_keeps_core_variables_then_set_then_env(
    server: BackgroundServer,
) -> None:
    c = await RawClient.connect(server.url)
    await c.handshake()
    await c.call(
        "process/start",
        start_params(
            "pol",
            ["env"],
            env={"B": "from-env", "HOME": "/override"},
            envPolicy={
                "inherit": "core",
                "ignoreDefaultExcludes": False,
                "exclude": [],
                "set": {"B": "from-set", "C": "3"},
                "includeOnly": [],
            },
        ),
    )
    out = dict(
        line.split("=", 1) for line in (await c.collect("pol"))["stdout"].decode().splitlines()
    )
    assert out["B"] == "from-env"
    assert out["C"] == "3"
    assert out["HOME"] == "/override"
    assert "PATH" in out
    assert set(out) <= {"HOME", "LANG", "LOGNAME", "PATH", "SHELL", "TMPDIR", "USER", "B", "C"}
    await c.aclose()


async def test_env_policy_all_drops_secrets_unless_told_otherwise() -> None:
    env = dict(os.environ, MY_API_KEY="k", SOME_SECRET_X="s", GH_TOKEN="t", PLAIN="p")
    async with ServerProcess(env=env) as s:
        c = await RawClient.connect(s.url)
        await c.handshake()
        policy = {
            "inherit": "all",
            "ignoreDefaultExcludes": False,
            "exclude": ["pla*"],
            "set": {},
            "includeOnly": [],
        }
        await c.call("process/start", start_params("a", ["env"], env={}, envPolicy=policy))
        names = {
            line.split("=", 1)[0] for line in (await c.collect("a"))["stdout"].decode().splitlines()
        }
        assert not names & {"MY_API_KEY", "SOME_SECRET_X", "GH_TOKEN", "PLAIN"}
        assert "PATH" in names
        policy = {
            "inherit": "all",
            "ignoreDefaultExcludes": True,
            "exclude": [],
            "set": {},
            "includeOnly": ["*_key", "plain"],
        }
        await c.call("process/start", start_params("b", ["env"], env={}, envPolicy=policy))
        names = {
            line.split("=", 1)[0] for line in (await c.collect("b"))["stdout"].decode().splitlines()
        }
        assert names == {"MY_API_KEY", "PLAIN"}
        await c.aclose()


@pytest.mark.parametrize(
    ("params", "code", "message"),
    [
        ({"argv": []}, -32602, "argv must not be empty"),
        ({"argv": ["/no/such/prog"]}, -32603, "No such file or directory (os error 2)"),
        ({"argv": ["nosuchprog_xyz"]}, -32603, "No such file or directory (os error 2)"),
        ({"argv": ["/etc/passwd"]}, -32603, "Permission denied (os error 13)"),
        ({"cwd": "file:///no/such/dir"}, -32603, "No such file or directory (os error 2)"),
        ({"cwd": "file:///etc/hostname"}, -32603, "Not a directory (os error 20)"),
        ({"cwd": "tmp"}, -32602, "invalid URI: relative URL without a base"),
        ({"cwd": "/tmp"}, -32602, "invalid URI: relative URL without a base"),
        ({"cwd": ""}, -32602, "invalid URI: relative URL without a base"),
        ({"cwd": "http://x/tmp"}, -32602, "unsupported path URI scheme `http`"),
        ({"cwd": "file:///tmp?x=1"}, -32602, "query parameters are not allowed in path URIs"),
        ({"cwd": "file:///tmp#f"}, -32602, "fragments are not allowed in path URIs"),
        (
            {"cwd": "file://server/x"},
            -32602,
            "cwd URI `file://server/x` is not valid on this exec-server host: "
            "'file://server/x' is invalid on 'linux'",
        ),
        ({"cwd": "file:///tm%00p"}, -32602, "'file:///tm%00p' is invalid on 'linux'"),
        (
            {"cwd": "file://user@localhost/tmp"},
            -32602,
            "invalid URI: invalid international domain name",
        ),
        (
            {"cwd": "file://localhost:80/tmp"},
            -32602,
            "invalid URI: invalid international domain name",
        ),
        ({"tty": "yes"}, -32602, None),
        ({"argv": "ls"}, -32602, None),
        ({"env": None}, -32602, None),
    ],
)
async def test_start_errors_have_their_codes(
    client: RawClient, params: dict[str, object], code: int, message: str | None
) -> None:
    p = start_params("x", ["true"])
    p.update(params)
    with pytest.raises(RawRpcError) as err:
        await client.call("process/start", p)
    assert err.value.code == code
    if message is not None:
        assert err.value.message == message
    # The connection keeps working.
    await client.call("process/start", start_params("ok", ["true"]))
    await client.collect("ok")


async def test_a_file_that_is_not_a_program_fails_with_the_os_error(
    client: RawClient, tmp_path: Path
) -> None:
    garbage = tmp_path / "garbage"
    garbage.write_bytes(b"\x00\x01not a program")
    garbage.chmod(0o755)
    with pytest.raises(RawRpcError) as err:
        await client.call("process/start", start_params("x", [str(garbage)]))
    assert (err.value.code, err.value.message) == (-32603, "Exec format error (os error 8)")


async def test_missing_required_start_fields_are_invalid_params(client: RawClient) -> None:
    for field in ("processId", "argv", "cwd", "env", "tty"):
        p = start_params("x", ["true"])
        del p[field]
        with pytest.raises(RawRpcError) as err:
            await client.call("process/start", p)
        assert err.value.code == -32602
        assert field in err.value.message


@pytest.mark.parametrize(
    "cwd",
    ["file://localhost/tmp", "file:/tmp", "FILE:///tmp", "file:///tmp/../tmp/./", "file:///%74mp"],
)
async def test_accepted_cwd_forms_are_normalised(client: RawClient, cwd: str) -> None:
    await client.call("process/start", start_params("pwd", ["pwd"], cwd=cwd))
    assert (await client.collect("pwd"))["stdout"] == b"/tmp\n"


async def test_a_process_id_cannot_be_reused_while_retained(client: RawClient) -> None:
    await client.call("process/start", start_params("dup", ["true"]))
    await client.collect("dup")
    with pytest.raises(RawRpcError) as err:
        await client.call("process/start", start_params("dup", ["true"]))
    assert (err.value.code, err.value.message) == (-32600, "process dup already exists")


async def test_process_ids_are_scoped_to_their_session(
    server: BackgroundServer, client: RawClient
) -> None:
    await client.call("process/start", start_params("same", ["true"]))
    other = await RawClient.connect(server.url)
    await other.handshake()
    await other.call("process/start", start_params("same", ["true"]))
    await other.collect("same")
    with pytest.raises(RawRpcError):
        await other.call("process/read", {"processId": "never"})
    await other.aclose()


async def test_read_returns_chunks_after_seq_and_honours_max_bytes(client: RawClient) -> None:
    await client.call(
        "process/start", start_params("a", ["sh", "-c", "echo hi; echo err >&2; exit 3"])
    )
    await client.collect("a")
    full = await client.call("process/read", {"processId": "a"})
    assert [c["seq"] for c in full["chunks"]] == [1, 2]
    assert full["nextSeq"] == 5
    assert (full["exited"], full["exitCode"], full["closed"], full["failure"]) == (
        True,
        3,
        True,
        None,
    )
    assert full["retainedFromSeq"] == 1
    after1 = await client.call("process/read", {"processId": "a", "afterSeq": 1})
    assert [c["seq"] for c in after1["chunks"]] == [2]
    for max_bytes in (0, 1):
        cut = await client.call("process/read", {"processId": "a", "maxBytes": max_bytes})
        assert [c["seq"] for c in cut["chunks"]] == [1]
        assert cut["nextSeq"] == 2
    past = await client.call("process/read", {"processId": "a", "afterSeq": 100})
    assert past["chunks"] == [] and past["nextSeq"] == 5


async def test_read_of_an_unknown_process_fails_at_once_even_with_a_long_wait(
    client: RawClient,
) -> None:
    with pytest.raises(RawRpcError) as err:
        await client.call("process/read", {"processId": "nope", "waitMs": 60_000}, timeout=10)
    assert (err.value.code, err.value.message) == (-32600, "unknown process id nope")


async def test_read_rejects_negative_bounds(client: RawClient) -> None:
    await client.call("process/start", start_params("n", ["true"]))
    for field in ("afterSeq", "maxBytes", "waitMs"):
        with pytest.raises(RawRpcError) as err:
            await client.call("process/read", {"processId": "n", field: -1})
        assert err.value.code == -32602


async def test_long_poll_wakes_on_output_and_times_out_without_it(client: RawClient) -> None:
    await client.call("process/start", start_params("cat", ["cat"], pipeStdin=True))
    empty = await client.call("process/read", {"processId": "cat", "waitMs": 50})
    assert empty["chunks"] == [] and empty["nextSeq"] == 1 and empty["exited"] is False
    pending = client.call("process/read", {"processId": "cat", "waitMs": 30_000})
    import asyncio

    task = asyncio.ensure_future(pending)
    await client.call(
        "process/write",
        {"processId": "cat", "chunk": base64.b64encode(b"ping\n").decode(), "writeId": "1"},
    )
    woke = await asyncio.wait_for(task, 10)
    assert base64.b64decode(woke["chunks"][0]["chunk"]) == b"ping\n"
    # Exit newer than afterSeq also returns at once.
    await client.call("process/terminate", {"processId": "cat"})
    await client.next_notification("process/closed", "cat")
    done = await client.call(
        "process/read", {"processId": "cat", "afterSeq": 1, "waitMs": 30_000}, timeout=10
    )
    assert done["exited"] is True and done["exitCode"] == 137


async def test_retention_evicts_oldest_whole_chunks_and_reports_retained_from_seq() -> None:
    async with ServerProcess("--retention-bytes", "3000") as s:
        c = await RawClient.connect(s.url)
        await c.handshake()
        script = (
            "import os,sys\n"
            "for i in range(10):\n"
            "    os.write(1, bytes([65+i])*1000); sys.stdin.readline()"
        )
        await c.call("process/start", start_params("big", [PY, "-c", script], pipeStdin=True))
        for i in range(10):
            await c.next_notification("process/output", "big")
            await c.call(
                "process/write",
                {"processId": "big", "chunk": base64.b64encode(b"\n").decode(), "writeId": str(i)},
            )
        await c.collect("big")
        read = await c.call("process/read", {"processId": "big"})
        seqs = [ch["seq"] for ch in read["chunks"]]
        assert seqs == [8, 9, 10]
        assert read["retainedFromSeq"] == 8
        assert base64.b64decode(read["chunks"][0]["chunk"]) == b"H" * 1000
        await c.aclose()


async def test_closed_processes_are_forgotten_after_their_retention() -> None:
    async with ServerProcess("--closed-retention", "0.2") as s:
        c = await RawClient.connect(s.url)
        await c.handshake()
        await c.call("process/start", start_params("gone", ["true"]))
        await c.collect("gone")
        import asyncio

        async with asyncio.timeout(10):
            while "gone" in await _readable(c):  # noqa: ASYNC110 - a server-side timer
                await asyncio.sleep(0.05)
        # The id is free again.
        await c.call("process/start", start_params("gone", ["true"]))
        await c.collect("gone")
        await c.aclose()


async def _readable(c: RawClient) -> set[str]:
    resp = await c.request_raw("process/read", {"processId": "gone"})
    if "error" in resp:
        assert resp["error"]["code"] == -32600
        return set()
    return {"gone"}


async def test_many_small_chunks_keep_seq_continuity(client: RawClient) -> None:
    script = "import os\nfor i in range(2000): os.write(1 + i % 2, b'%d\\n' % i)"
    await client.call("process/start", start_params("many", [PY, "-c", script]))
    result = await client.collect("many")
    seqs = [e["params"]["seq"] for e in result["events"]]
    assert seqs == list(range(1, len(seqs) + 1))
    out = result["stdout"].split() + result["stderr"].split()
    assert sorted(int(x) for x in out) == list(range(2000))


async def test_large_output_arrives_complete(client: RawClient) -> None:
    await client.call(
        "process/start", start_params("big", ["head", "-c", str(8 << 20), "/dev/urandom"])
    )
    result = await client.collect("big", timeout=60)
    assert len(result["stdout"]) == 8 << 20


async def test_env_values_reach_the_child_byte_exact(client: RawClient) -> None:
    await client.call(
        "process/start",
        start_params("u", ["sh", "-c", 'printf %s "$V"'], env={**ENV, "V": "héllo wörld ✓"}),
    )
    assert (await client.collect("u"))["stdout"] == "héllo wörld ✓".encode()


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("argv", ["echo", "a\x00b"]),
        ("arg0", "x\x00"),
        ("env", {"A=B": "1"}),
        ("env", {"": "1"}),
        ("env", {"A": "x\x00y"}),
    ],
)
async def test_strings_exec_cannot_carry_are_invalid_params(
    client: RawClient, field: str, value: object
) -> None:
    params = start_params("nul", ["echo"])
    params[field] = value
    with pytest.raises(RawRpcError) as err:
        await client.call("process/start", params)
    assert err.value.code == -32602


async def test_process_ids_with_quotes_and_unicode_survive_the_notification_path(
    client: RawClient,
) -> None:
    pid = 'we"ird\\ id\n✓'
    await client.call("process/start", start_params(pid, ["echo", "hi"]))
    result = await client.collect(pid)
    assert result["stdout"] == b"hi\n"
    assert all(e["params"]["processId"] == pid for e in result["events"])


async def test_a_burst_of_1000_short_commands_is_served_without_a_traceback(
    server: BackgroundServer,
) -> None:
    # Hundreds of SIGCHLD at once overflow asyncio's signal wakeup socket; Python would print a
    # traceback for each one (the server fixture fails the test on any traceback in the log).
    # Four sessions of 250: the per-session quota is 256 running processes.
    clients = [await RawClient.connect(server.url) for _ in range(4)]
    try:
        await asyncio.gather(*(c.handshake() for c in clients))
        ids = [f"burst{i}" for i in range(250)]
        await asyncio.gather(
            *(c.call("process/start", start_params(i, ["true"])) for c in clients for i in ids)
        )
        for c in clients:
            for process_id in ids:
                assert (await c.collect(process_id, timeout=60))["exit"]["exitCode"] == 0
    finally:
        for c in clients:
            await c.aclose()
