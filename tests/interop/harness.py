"""Running the stock ``codex exec`` against our exec-server and a mock model.

One :class:`Interop` per test: a fresh exec-server (``--log-level debug``, with a random
``EXEC_SERVER_MARKER`` in *its* environment only), a :class:`WireLog` in front of it that records
every JSON-RPC message, and temp directories under /var/tmp (Codex cannot set up its sandbox
helpers under /tmp) for ``CODEX_HOME`` and the workspace. :meth:`Interop.start` writes a
``config.toml`` pointing the model provider at a fresh :class:`MockResponses` and launches
``codex exec`` with ``CODEX_EXEC_SERVER_URL`` set; :meth:`CodexRun.finish` waits for it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import shutil
import sys
import tempfile
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from exec_server.testing import ServerProcess
from exec_server.testing.accounts import server_command
from exec_server.testing.reference import reference_bin
from mock_responses import MockResponses, Script
from wire_log import WireLog

ROOT = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
MCP_SERVER = HERE / "mcp_marker_server.py"


def codex_bin() -> str | None:
    """The stock Codex CLI: ``EXEC_SERVER_REFERENCE_BIN`` or the copy in ``.reference/``."""
    return reference_bin(ROOT)


def skip_reason() -> str | None:
    """Why the interop tests cannot run here, or None when they can."""
    if os.environ.get("EXEC_SERVER_CODEX_INTEROP") != "1":
        return "Codex interop tests are opt-in: set EXEC_SERVER_CODEX_INTEROP=1"
    if codex_bin() is None:
        return (
            "stock codex CLI not found (scripts/install-reference, or set "
            "EXEC_SERVER_REFERENCE_BIN to an executable codex 0.169.0)"
        )
    return None


def toml_str(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


@dataclass
class CodexResult:
    returncode: int
    stdout: str
    stderr: str


@dataclass
class CodexRun:
    """One running ``codex exec``."""

    proc: asyncio.subprocess.Process
    mock: MockResponses
    timeout: float
    result: CodexResult | None = None

    async def finish(self) -> CodexResult:
        try:
            async with asyncio.timeout(self.timeout):
                out, err = await self.proc.communicate()
        except TimeoutError:
            self.proc.kill()
            out, err = await self.proc.communicate()
            raise AssertionError(
                f"codex exec did not finish in {self.timeout}s:\n{err.decode(errors='replace')}"
            ) from None
        finally:
            await self.mock.__aexit__(None, None, None)
        self.result = CodexResult(
            self.proc.returncode or 0, out.decode(errors="replace"), err.decode(errors="replace")
        )
        return self.result


@dataclass
class Interop:
    server: ServerProcess
    wire: WireLog
    marker: str
    home: Path
    work: Path
    binary: str
    ours: bool = True
    runs: list[CodexRun] = field(default_factory=list)

    @property
    def server_log(self) -> str:
        return self.server.stderr.decode(errors="replace")

    async def start(
        self,
        script: Script,
        *,
        prompt: str = "Do the scripted task.",
        sandbox: str = "danger-full-access",
        extra_config: str = "",
        exec_server_url: str | None = None,
        timeout: float = 120.0,
    ) -> CodexRun:
        mock = MockResponses(script)
        await mock.__aenter__()
        config = "\n".join(
            [
                'model = "gpt-5.5"',
                'model_provider = "mock"',
                'approval_policy = "never"',
                f"sandbox_mode = {toml_str(sandbox)}",
                "",
                "[model_providers.mock]",
                'name = "mock"',
                f"base_url = {toml_str(mock.base_url)}",
                'wire_api = "responses"',
                "",
                extra_config,
            ]
        )
        (self.home / "config.toml").write_text(config)
        env = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith(("CODEX_", "EXEC_SERVER_", "OPENAI_", "RUST_LOG"))
        }
        env.update(
            CODEX_HOME=str(self.home),
            CODEX_EXEC_SERVER_URL=exec_server_url or self.wire.url,
            NO_COLOR="1",
        )
        proc = await asyncio.create_subprocess_exec(
            self.binary,
            "exec",
            "--skip-git-repo-check",
            "--color",
            "never",
            "-C",
            str(self.work),
            prompt,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env=env,
        )
        run = CodexRun(proc, mock, timeout)
        self.runs.append(run)
        return run

    async def run(self, script: Script, **kwargs: Any) -> CodexResult:
        result = await (await self.start(script, **kwargs)).finish()
        assert result.returncode == 0, result.stderr[-4000:]
        return result

    def methods(self) -> list[str]:
        return self.wire.methods()

    def process_ids(self, *, command_contains: str) -> list[str]:
        """processIds of the ``process/start`` calls whose argv contains ``command_contains``."""
        return [
            str(p["processId"])
            for p in self.wire.sent("process/start")
            if any(command_contains in a for a in p.get("argv", []))
        ]

    def mcp_config(self, name: str, cwd: Path) -> str:
        # The server's account must be able to run the interpreter (the MCP server needs only
        # the standard library): another account gets the system one.
        python = sys.executable if not os.environ.get("EXEC_SERVER_INTEROP_UID") else "python3"
        return "\n".join(
            [
                f"[mcp_servers.{name}]",
                f"command = {toml_str(python)}",
                f"args = [{toml_str(str(MCP_SERVER))}]",
                f"cwd = {toml_str(str(cwd))}",
                'environment_id = "remote"',
                'default_tools_approval_mode = "approve"',
                'env_vars = [{ name = "EXEC_SERVER_MARKER", source = "remote" }]',
                "",
            ]
        )


def dump(it: Interop, name: str) -> None:
    """With EXEC_SERVER_INTEROP_DUMP=DIR, keep each test's wire log, model requests and
    server log in DIR (for reading what Codex did)."""
    target = os.environ.get("EXEC_SERVER_INTEROP_DUMP")
    if not target:
        return
    out = Path(target)
    out.mkdir(parents=True, exist_ok=True)
    with (out / f"{name}.wire.jsonl").open("w") as f:
        for fr in it.wire.frames:
            f.write(
                json.dumps(
                    {"t": round(fr.t, 4), "dir": fr.direction, "conn": fr.conn, "msg": fr.message}
                )
                + "\n"
            )
    (out / f"{name}.requests.json").write_text(
        json.dumps([r.mock.requests for r in it.runs], indent=1)
    )
    (out / f"{name}.server.log").write_text(it.server_log)
    for i, r in enumerate(it.runs):
        if r.result is not None:
            (out / f"{name}.codex{i}.stderr").write_text(r.result.stderr)


@contextlib.asynccontextmanager
async def interop_env(name: str, *server_args: str) -> Any:
    binary = codex_bin()
    assert binary is not None
    marker = f"mk-{uuid.uuid4().hex[:16]}"
    home = Path(tempfile.mkdtemp(prefix="codex-interop-home-", dir="/var/tmp"))
    work = Path(tempfile.mkdtemp(prefix="codex-interop-work-", dir="/var/tmp"))
    env = {k: v for k, v in os.environ.items() if not k.startswith("CODEX_")}
    env["EXEC_SERVER_MARKER"] = marker
    # EXEC_SERVER_INTEROP_SERVER=reference runs the same scenarios against the reference
    # `codex exec-server` (for comparing what Codex does against each).
    ours = os.environ.get("EXEC_SERVER_INTEROP_SERVER", "ours") != "reference"
    # EXEC_SERVER_INTEROP_UID=65534 runs our server as that account (out of a chroot first):
    # the sandbox scenarios must hold for an ordinary account too.
    uid = int(os.environ.get("EXEC_SERVER_INTEROP_UID", "0"))
    if ours and uid:
        for directory in (work, home):
            os.chown(directory, uid, uid)
        env = {k: v for k, v in env.items() if not k.startswith("COV")}
        own_root = [sys.executable, "-m", "exec_server.testing.confine", "--own-root", "--"]
        server_process = ServerProcess(
            "--log-level", "debug", *server_args,
            command=[*own_root, *server_command(uid)], env=env, cwd="/",
        )  # fmt: skip
    elif ours:
        server_process = ServerProcess("--log-level", "debug", *server_args, env=env)
    else:
        env["CODEX_HOME"] = str(home / "server-home")
        (home / "server-home").mkdir()
        server_process = ServerProcess(
            "exec-server", "--listen", "ws://127.0.0.1:0", command=[binary], env=env
        )
    try:
        async with server_process as server, WireLog(server.url) as wire:
            it = Interop(server, wire, marker, home, work, binary, ours)
            try:
                yield it
            finally:
                for run in it.runs:
                    if run.proc.returncode is None:
                        run.proc.kill()
                        await run.proc.wait()
        dump(it, name)
        assert "Traceback" not in it.server_log, it.server_log[-4000:]
    finally:
        shutil.rmtree(home, ignore_errors=True)
        shutil.rmtree(work, ignore_errors=True)


async def wait_until(predicate: Callable[[], bool], *, timeout: float) -> None:
    """Wait until ``predicate()`` holds, for state another process produces (polled)."""
    async with asyncio.timeout(timeout):
        while not predicate():  # noqa: ASYNC110 - state of another process, no event to await
            await asyncio.sleep(0.02)


SESSION_RE = re.compile(r"session ID (\d+)")


def session_id(output: str) -> int:
    """The unified-exec session id Codex reports for a command still running."""
    m = SESSION_RE.search(output)
    assert m is not None, f"no running session in: {output!r}"
    return int(m.group(1))
