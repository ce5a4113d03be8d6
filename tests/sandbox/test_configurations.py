"""The escape suite on the hosts users have, not only root on this kernel (issue 8, acceptance 1).

Each configuration starts one real server the way such a host would run it and drives every
escape case of ``escape_cases`` through ``process/start`` (pipes), checked from outside:

- ``nobody``: the server as uid 65534 (``setpriv``), and the world (files, victim, interpreter)
  belongs to that account too, so an escape is visible and not stopped by file permissions: each
  case also runs unsandboxed there and must escape;
- ``root-no-landlock`` / ``nobody-no-landlock``: the server under a seccomp filter answering
  ENOSYS to the Landlock syscalls, as a kernel without Landlock does;
- ``landlock-abi-2`` / ``landlock-abi-4``: Landlock capped (``--landlock-max-abi``);
- ``root-no-userns``: user namespaces refused; root still has mount and PID namespaces;
- ``nobody-no-userns``: user namespaces refused to an ordinary account: every sandboxed start is
  refused with the message, none runs unsandboxed.

A configuration that cannot be set up fails its tests (the server does not start, or reports
other layers than expected): nothing here skips.
"""

from __future__ import annotations

import itertools
import os
import sys
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from accounts import server_command
from conftest import make_world
from escape_cases import CASES, TIMEOUT, Case, World, no_placeholders, raw_intent_for
from exec_server.sandbox import is_sandbox_denied
from exec_server.testing import RawClient, RawRpcError, ServerProcess
from sandbox_intents import workspace_write

from tests.support import start_params, wait_until

pytestmark = pytest.mark.asyncio(loop_scope="module")

NOBODY = 65534
_EXEC_SERVER = str(Path(sys.executable).parent / "exec-server")
_CONFINE = [sys.executable, "-m", "exec_server.testing.confine"]
_AS_NOBODY = "<as nobody>"
"""Stands for ``accounts.server_command(NOBODY)`` (worked out when the server starts)."""


@dataclass(frozen=True)
class Config:
    uid: int
    command: list[str]
    layers: str
    """What the server must log at start (its sandbox line), so the setup is what we think."""
    args: list[str] = field(default_factory=list)


def _confined(*flags: str, nobody: bool = False) -> list[str]:
    # --own-root: inside a chroot (a throwaway rootfs) the kernel refuses user namespaces to
    # everyone; out of it the server sees the host as a user's machine would.
    return [*_CONFINE, "--own-root", *flags, "--", _AS_NOBODY if nobody else _EXEC_SERVER]


CONFIGS = {
    "nobody": Config(NOBODY, _confined(nobody=True), "user, mount and PID namespaces"),
    "root-no-landlock": Config(0, _confined("--hide-landlock"), "seccomp, no Landlock"),
    "nobody-no-landlock": Config(
        NOBODY,
        _confined("--hide-landlock", nobody=True),
        "user, mount and PID namespaces, own /proc, seccomp, no Landlock",
    ),
    "landlock-abi-2": Config(0, _confined(), "Landlock ABI 2", ["--landlock-max-abi", "2"]),
    "landlock-abi-4": Config(0, _confined(), "Landlock ABI 4", ["--landlock-max-abi", "4"]),
    "root-no-userns": Config(
        0, _confined("--refuse-user-namespaces"), "sandbox layers: mount and PID namespaces"
    ),
    "nobody-no-userns": Config(
        NOBODY,
        _confined("--refuse-user-namespaces", nobody=True),
        "sandbox unavailable on this host: missing user namespaces",
    ),
}
REFUSED = {"nobody-no-userns"}

_ids = itertools.count(1)


def _server_env() -> dict[str, str]:
    # Coverage of another account's server would write where that account cannot.
    env = {k: v for k, v in os.environ.items() if not k.startswith("COV")}
    return env


@pytest_asyncio.fixture(scope="module", loop_scope="module", params=list(CONFIGS))
async def configured(request: pytest.FixtureRequest) -> AsyncIterator[tuple[str, RawClient]]:
    name = str(request.param)
    config = CONFIGS[name]
    env = _server_env() if config.uid else None
    command: list[str] = []
    for part in config.command:
        command += server_command(NOBODY) if part == _AS_NOBODY else [part]
    async with ServerProcess(*config.args, command=command, env=env, cwd="/") as server:
        log = server.stderr.decode(errors="replace")
        assert config.layers in log, f"{name}: unexpected sandbox layers:\n{log[-3000:]}"
        client = await RawClient.connect(server.url)
        await client.handshake()
        try:
            yield name, client
        finally:
            await client.aclose()
    log = server.stderr.decode(errors="replace")
    print(f"---- {name} server log (tail) ----\n" + log[-6000:])
    assert "Traceback" not in log, log[-4000:]


@pytest.fixture
def config_world(configured: tuple[str, RawClient], open_base: Path) -> Iterator[World]:
    with make_world(open_base, uid=CONFIGS[configured[0]].uid) as w:
        yield w


async def _run(
    client: RawClient, w: World, command: str, sandbox: dict[str, Any] | None
) -> tuple[str, int, bytes, bool]:
    process_id = f"cfg-{next(_ids)}"
    params = start_params(process_id, ["sh", "-c", command], cwd=f"file://{w.root}")
    params["sandbox"] = sandbox
    params["env"]["PATH"] = "/usr/bin:/bin"
    result = await client.call("process/start", params)
    collected = await client.collect(process_id, timeout=TIMEOUT)
    exited = collected["exit"]
    w.extra["last_rc"] = exited["exitCode"]
    output = collected["stdout"] + collected["stderr"]
    return result["sandboxType"], exited["exitCode"], output, exited["sandboxDenied"]


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
async def test_sandboxed_command_cannot_escape_in_this_configuration(
    case: Case, configured: tuple[str, RawClient], config_world: World
) -> None:
    name, client = configured
    w = config_world
    intent = raw_intent_for(case, w)
    if name in REFUSED:
        w.extra["last_rc"] = None
        with pytest.raises(RawRpcError) as raised:
            await _run(client, w, w.fmt(case.command), intent)
        assert raised.value.code == -32603
        assert "sandbox unavailable on this host: missing user namespaces" in raised.value.message
        assert not case.escaped(w)
        return
    sandbox_type, code, output, denied = await _run(client, w, w.fmt(case.command), intent)
    assert sandbox_type == "linuxSeccomp"
    assert not case.escaped(w), f"{name}: escaped: rc={code} output={output!r}"
    assert code != 0, output
    if case.denied is not None:
        assert is_sandbox_denied(code, output) is case.denied, output
    assert denied is is_sandbox_denied(code, output), output
    await wait_until(lambda: no_placeholders(w.root), timeout=TIMEOUT)
    if name == "nobody":
        # The control for this account (root's is in test_server_escapes): the same command
        # without a sandbox does escape, so file permissions were not what stopped it.
        sandbox_type, code, output, denied = await _run(client, w, w.fmt(case.command), None)
        assert (sandbox_type, denied) == ("none", False)
        assert case.escaped(w), f"the check saw no escape: rc={code} output={output!r}"


async def test_workspace_write_still_writes_inside_its_root_in_this_configuration(
    configured: tuple[str, RawClient], config_world: World
) -> None:
    name, client = configured
    w = config_world
    command = f"echo x > {w.root}/new && mkdir {w.root}/d && mv {w.root}/new {w.root}/d/moved"
    if name in REFUSED:
        with pytest.raises(RawRpcError):
            await _run(client, w, command, workspace_write(w.root))
        return
    assert (await _run(client, w, command, workspace_write(w.root)))[1:3] == (0, b"")
    assert (w.root / "d" / "moved").read_text() == "x\n"
