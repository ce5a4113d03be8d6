"""Issue 12: one audit line per process start (or refusal) and per process end, with who and
what, and nothing secret: no environment values, no arguments past argv[0], no token."""

from __future__ import annotations

import hashlib
import re
import sys
from pathlib import Path

import pytest
from exec_server.testing import RawClient, RawRpcError, ServerProcess, capability_token_args

from tests.support import ENV, start_params

TOKEN = "audit-token-s3cret"
ENV_SECRET = "env-value-s3cret-4242"
ARG_SECRET = "--password=argv-s3cret-77"


def _audit_lines(log: str) -> dict[str, str]:
    """Audit lines by process id."""
    lines: dict[str, str] = {}
    for line in log.splitlines():
        if " exec_server.audit: " in line:
            process_id = re.search(r" process_id=(\S+)", line)
            assert process_id is not None, line
            key = process_id.group(1)
            lines[key] = lines.get(key, "") + line + "\n"
    return lines


def _fields(line: str) -> dict[str, str]:
    return dict(re.findall(r" (\w+)=(\"(?:[^\"\\]|\\.)*\"|\S+)", line))


async def test_process_starts_refusals_and_ends_are_audited_without_secrets(
    tmp_path: Path,
) -> None:
    args = capability_token_args(tmp_path, TOKEN)
    async with ServerProcess(*args, "--stop-grace", "0.2") as s:
        c = await RawClient.connect(s.url, additional_headers={"Authorization": "Bearer " + TOKEN})
        sid = (await c.handshake())["sessionId"]
        env = {**ENV, "API_KEY": ENV_SECRET}
        big = "import sys; sys.stdout.write('x' * 100_000); sys.exit(3)"
        await c.call(
            "process/start", start_params("done", [sys.executable, "-c", big, ARG_SECRET], env=env)
        )
        assert (await c.collect("done"))["exit"]["exitCode"] == 3
        with pytest.raises(RawRpcError) as err:
            await c.call(
                "process/start",
                start_params("missing", ["no-such-program\nforged=line", ARG_SECRET], env=env),
            )
        refusal = err.value.message
        await c.call("process/start", start_params("killed", ["sleep", "60"], env=env))
        await c.call("process/terminate", {"processId": "killed"})
        assert (await c.collect("killed"))["exit"]["signal"] is not None
        # Ignores SIGTERM: still running when the server stops, so killed with its session.
        stubborn = "trap '' TERM HUP; echo ready; while :; do sleep 0.05; done"
        await c.call("process/start", start_params("stubborn", ["sh", "-c", stubborn], env=env))
        await c.next_notification("process/output", "stubborn")
        await c.aclose()
    log = s.stderr.decode(errors="replace")
    assert "Traceback" not in log, log[-4000:]
    for secret in (TOKEN, hashlib.sha256(TOKEN.encode()).hexdigest(), ENV_SECRET, "argv-s3cret"):
        assert secret not in log
    assert sid not in log
    lines = _audit_lines(log)
    principal = "token:" + hashlib.sha256(TOKEN.encode()).hexdigest()[:8]

    start, end = lines["done"].splitlines()
    assert "process start " in start and "process end " in end
    assert _fields(start) | {"argv0": "-"} == {
        "session_id": sid[:8],
        "principal": principal,
        "process_id": "done",
        "argv0": "-",
        "cwd": "file:///tmp",
        "sandboxed": "no",
        "outcome": "started",
    }
    assert _fields(start)["argv0"] == sys.executable
    end_fields = _fields(end)
    assert end_fields["outcome"] == "exited"
    assert (end_fields["exit_code"], end_fields["output_bytes"]) == ("3", "100000")
    assert int(end_fields["duration_ms"]) >= 0
    assert "signal" not in end_fields

    (refused,) = lines["missing"].splitlines()
    assert "process start refused" in refused
    refused_fields = _fields(refused)
    assert refused_fields["argv0"] == '"no-such-program\\nforged=line"'  # escaped, one line
    assert refused_fields["outcome"].strip('"') == f"{refusal} (programNotFound)"
    assert "forged=line" not in log.replace('"no-such-program\\nforged=line"', "")

    killed_end = lines["killed"].splitlines()[1]
    assert _fields(killed_end)["signal"].startswith("SIG")

    stubborn_end = _fields(lines["stubborn"].splitlines()[1])
    assert stubborn_end["outcome"] == '"killed with the session"'
    assert stubborn_end["output_bytes"] == "6"  # "ready\n"
