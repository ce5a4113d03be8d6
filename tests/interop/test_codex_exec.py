"""The stock ``codex exec`` completes user tasks through our exec-server.

Each test scripts the model side (a mock Responses API), lets Codex run the tools on our
server (``CODEX_EXEC_SERVER_URL``), and checks the tool output Codex sent back to the model.
Commands print ``$EXEC_SERVER_MARKER``, a random value only our server's environment holds.
"""

from __future__ import annotations

import asyncio
import base64

import pytest
from exec_server.testing import FaultProxy
from harness import Interop, session_id, wait_until
from mock_responses import Final, Json, Script, ToolCall, output_text, tool_outputs

pytestmark = [pytest.mark.codex, pytest.mark.timeout(240)]


async def test_plain_command(interop: Interop) -> None:
    call = ToolCall("exec_command", {"cmd": "echo marker=$EXEC_SERVER_MARKER; uname -s"})
    script = Script([call, Final("done")])
    result = await interop.run(script)

    mock = interop.runs[-1].mock
    out = mock.output_for(call)
    assert f"marker={interop.marker}" in out
    assert "Process exited with code 0" in out
    assert "Linux" in out
    assert "done" in result.stdout
    assert len(mock.requests) == 2
    methods = interop.methods()
    assert methods[:2] == ["initialize", "initialized"]
    assert methods.count("process/start") == 1
    assert "process/terminate" in methods


async def test_interactive_tty_command(interop: Interop) -> None:
    start = ToolCall(
        "exec_command",
        {
            "cmd": 'printf "name? "; read -r line; echo "got=$line marker=$EXEC_SERVER_MARKER"',
            "tty": True,
            "login": False,
            "yield_time_ms": 1000,
        },
    )
    holder: dict[str, ToolCall] = {}

    def write(body: Json) -> ToolCall:
        first = next(o for o in tool_outputs(body) if o.get("call_id") == start.call_id)
        holder["write"] = ToolCall(
            "write_stdin",
            {
                "session_id": session_id(output_text(first)),
                "chars": "hello-from-codex\n",
                "yield_time_ms": 2000,
            },
        )
        return holder["write"]

    script = Script([start, write, Final("done")])
    await interop.run(script)
    mock = interop.runs[-1].mock

    first = mock.output_for(start)
    assert "Process running with session ID" in first
    assert "name?" in first
    second = mock.output_for(holder["write"])
    assert f"got=hello-from-codex marker={interop.marker}" in second
    assert "Process exited with code 0" in second

    (started,) = interop.wire.sent("process/start")
    assert started["tty"] is True
    writes = interop.wire.sent("process/write")
    assert any(w["processId"] == started["processId"] for w in writes)


async def test_apply_patch_create_then_edit(interop: Interop) -> None:
    add = ToolCall(
        "apply_patch",
        "*** Begin Patch\n*** Add File: notes/todo.txt\n+alpha\n+beta\n+gamma\n*** End Patch\n",
        custom=True,
    )
    edit = ToolCall(
        "apply_patch",
        "*** Begin Patch\n*** Update File: notes/todo.txt\n@@\n alpha\n-beta\n+BETA\n gamma\n"
        "*** End Patch\n",
        custom=True,
    )
    show = ToolCall("exec_command", {"cmd": "cat notes/todo.txt; echo marker=$EXEC_SERVER_MARKER"})
    await interop.run(Script([add, edit, show, Final("done")]))
    mock = interop.runs[-1].mock

    assert "notes/todo.txt" in mock.output_for(add)
    assert "notes/todo.txt" in mock.output_for(edit)
    assert "alpha\nBETA\ngamma\n" in mock.output_for(show)
    assert f"marker={interop.marker}" in mock.output_for(show)
    assert (interop.work / "notes" / "todo.txt").read_text() == "alpha\nBETA\ngamma\n"
    # The edits went through our server's file RPCs.
    written = [p["path"] for p in interop.wire.sent("fs/writeFile")]
    assert any(p.endswith("/notes/todo.txt") for p in written), written
    assert "fs/readFile" in interop.methods()


async def test_read_only_sandbox_denial(interop: Interop) -> None:
    call = ToolCall(
        "exec_command",
        {"cmd": "echo marker=$EXEC_SERVER_MARKER; touch denied.txt", "login": False},
    )
    await interop.run(Script([call, Final("done")]), sandbox="read-only")
    mock = interop.runs[-1].mock

    out = mock.output_for(call)
    assert f"marker={interop.marker}" in out
    assert "Process exited with code 1" in out
    assert "cannot touch 'denied.txt'" in out
    assert not (interop.work / "denied.txt").exists()
    # Codex asked for the read-only intent; our server enforced it and flagged the denial.
    (started,) = interop.wire.sent("process/start")
    fs = started["sandbox"]["permissions"]["file_system"]
    assert fs["entries"] == [
        {"path": {"type": "special", "value": {"kind": "root"}}, "access": "read"}
    ]
    (exited,) = interop.wire.received("process/exited")
    assert exited["exitCode"] == 1
    assert exited["sandboxDenied"] is True
    # `codex exec` runs with approval policy "never": no approval request, no unsandboxed
    # retry (the same as against the reference exec-server).
    assert len(interop.wire.sent("process/start")) == 1
    assert len(mock.requests) == 2


async def test_command_running_at_end_of_turn_is_terminated(interop: Interop) -> None:
    call = ToolCall(
        "exec_command",
        {
            "cmd": "echo started marker=$EXEC_SERVER_MARKER; exec sleep 600",
            "login": False,
            "yield_time_ms": 1000,
        },
    )
    await interop.run(Script([call, Final("done, leaving it running")]))
    mock = interop.runs[-1].mock

    out = mock.output_for(call)
    assert f"started marker={interop.marker}" in out
    assert "Process running with session ID" in out
    (pid,) = interop.process_ids(command_contains="sleep 600")
    # Codex terminated it at the end of the turn; the first terminate found it running.
    terminates = [
        (conn, rid)
        for conn, rid, params in interop.wire.requests("process/terminate")
        if params["processId"] == pid
    ]
    assert terminates, interop.methods()
    assert interop.wire.response(*terminates[0]) == {"running": True}
    if interop.ours:
        # Our server got the request and killed the process (it logs both).
        killed = f"process_id={pid} exit_code=137 signal=SIGKILL"
        await wait_until(lambda: killed in interop.server_log, timeout=10)
        assert '"method":"process/terminate"' in interop.server_log


async def test_connection_cut_mid_run_resumes_with_all_output(interop: Interop) -> None:
    lines = 200
    # Two lines, a pause (we arm the cut), then a burst: the cut lands mid-burst, so output
    # is lost in flight and more is produced while Codex is disconnected.
    call = ToolCall(
        "exec_command",
        {
            "cmd": "echo line-1; echo line-2; sleep 1; "
            f"for i in $(seq 3 {lines}); do echo line-$i; done; "
            "sleep 0.5; echo marker=$EXEC_SERVER_MARKER",
            "login": False,
            "yield_time_ms": 20000,
        },
    )
    async with FaultProxy.for_url(interop.wire.url) as proxy:
        run = await interop.start(Script([call, Final("done")]), exec_server_url=proxy.url)

        def got_output() -> bool:
            return b"line-2\n" in b"".join(
                base64.b64decode(f.message["params"]["chunk"])
                for f in interop.wire.frames
                if f.direction == "<" and f.method == "process/output"
            )

        await wait_until(got_output, timeout=60)
        proxy.cut_after(1500, "reset")
        async with asyncio.timeout(30):
            await proxy.wait_cuts(1)
        proxy.stop_cuts()
        result = await run.finish()
    assert result.returncode == 0, result.stderr[-4000:]

    out = run.mock.output_for(call)
    expected = "".join(f"line-{i}\n" for i in range(1, lines + 1))
    assert expected + f"marker={interop.marker}\n" in out, out
    assert "Process exited with code 0" in out

    # Codex reconnected, resumed the same session and read what it had missed.
    inits = interop.wire.sent("initialize")
    assert len(inits) >= 2
    first_session = interop.wire.response(1, 1)["sessionId"]
    assert inits[0]["resumeSessionId"] is None
    assert all(i["resumeSessionId"] == first_session for i in inits[1:])
    (pid,) = interop.process_ids(command_contains="line-$i")
    recovered = [
        c
        for conn, rid, params in interop.wire.requests("process/read")
        if params["processId"] == pid
        for c in interop.wire.response(conn, rid)["chunks"]
    ]
    assert recovered, "nothing was missed: the cut came too late"
    assert proxy.cuts >= 1


async def test_stdio_mcp_server_on_the_executor(interop: Interop) -> None:
    mcp_cwd = interop.work / "mcp-cwd"
    mcp_cwd.mkdir()
    search = ToolCall("tool_search", {"query": "read marker", "limit": 8})
    holder: dict[str, ToolCall] = {}

    def call_found_tool(body: Json) -> ToolCall:
        (found,) = [o for o in tool_outputs(body) if o.get("call_id") == search.call_id]
        assert found["type"] == "tool_search_output", found
        (namespace,) = [t for t in found["tools"] if t.get("type") == "namespace"]
        (tool,) = namespace["tools"]
        holder["call"] = ToolCall(
            tool["name"], {"note": "via-codex"}, namespace=str(namespace["name"])
        )
        return holder["call"]

    await interop.run(
        Script([search, call_found_tool, Final("done")]),
        extra_config=interop.mcp_config("markersrv", mcp_cwd),
    )
    mock = interop.runs[-1].mock

    call = holder["call"]
    assert (call.namespace, call.name) == ("mcp__markersrv", "read_marker")
    out = mock.output_for(call)
    assert f"mcp marker={interop.marker} cwd={mcp_cwd} " in out, out
    assert "note=via-codex" in out

    # Codex started the MCP server through our server and spoke MCP over process/write.
    (started,) = [p for p in interop.wire.sent("process/start") if p["pipeStdin"]]
    assert started["argv"][-1].endswith("mcp_marker_server.py")
    assert started["cwd"] == mcp_cwd.as_uri()
    assert started["sandbox"] is None
    assert "EXEC_SERVER_MARKER" in started["envPolicy"]["includeOnly"]
    sent = b"".join(
        base64.b64decode(w["chunk"])
        for w in interop.wire.sent("process/write")
        if w["processId"] == started["processId"]
    )
    for method in (b'"initialize"', b'"tools/list"', b'"tools/call"'):
        assert method in sent
    terminates = interop.wire.sent("process/terminate")
    assert any(t["processId"] == started["processId"] for t in terminates)
