"""The stock ``codex exec`` completes user tasks through our exec-server.

Each test scripts the model side (a mock Responses API), lets Codex run the tools on our
server (``CODEX_EXEC_SERVER_URL``), and checks the tool output Codex sent back to the model.
Commands print ``$EXEC_SERVER_MARKER``, a random value only our server's environment holds.
"""

from __future__ import annotations

import pytest
from harness import Interop, session_id
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
    terminates = [p for p in interop.wire.sent("process/terminate") if p["processId"] == pid]
    assert terminates, interop.methods()
    # Our server saw it and killed the process.
    log = interop.server_log
    assert '"method":"process/terminate"' in log
    assert f"process exited process_id={pid}" in log
    exited = [p for p in interop.wire.received("process/exited") if p["processId"] == pid]
    assert exited and exited[0]["signal"] == "SIGKILL", exited
