"""The escape suite on the hosts users have, not only root on this kernel (issue 8, acceptance 1).

Each configuration starts one real server the way such a host would run it and drives every
escape case of ``escape_cases`` through ``process/start`` (pipes), checked from outside:

- ``root``: as root on this kernel (the escape cases run here also on ptys, with controls, in
  ``test_server_escapes``);
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

import base64
import itertools
import os
import sys
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil
import pytest
import pytest_asyncio
from escape_cases import CASES, TIMEOUT, Case, World, make_world, no_placeholders, raw_intent_for
from exec_server.sandbox import is_sandbox_denied
from exec_server.testing import RawClient, RawRpcError, ServerProcess
from exec_server.testing.accounts import server_command
from fs_cases import FS_OPS, FS_PARAMS, FS_TARGETS, fs_intent, prepare_fs_world, tree
from sandbox_intents import read_only, workspace_write

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
    "root": Config(0, _confined(), "user, mount and PID namespaces"),
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


SECRET = f"exec-server-secret-{os.getpid()}"
"""In every configured server's environment: a sandboxed fs method must never return it."""


def _server_env(uid: int) -> dict[str, str]:
    env = dict(os.environ, EXEC_SERVER_TEST_SECRET=SECRET)
    if uid:
        # Coverage of another account's server would write where that account cannot.
        env = {k: v for k, v in env.items() if not k.startswith("COV")}
    return env


@pytest_asyncio.fixture(
    scope="module",
    loop_scope="module",
    # One worker per configuration under scripts/test's `--dist loadgroup`: each configured
    # server starts once, not once on every worker that draws one of its tests.
    params=[
        pytest.param(name, marks=pytest.mark.xdist_group(f"config-{name}")) for name in CONFIGS
    ],
)
async def configured(request: pytest.FixtureRequest) -> AsyncIterator[tuple[str, RawClient]]:
    name = str(request.param)
    config = CONFIGS[name]
    env = _server_env(config.uid)
    command: list[str] = []
    for part in config.command:
        command += server_command(NOBODY) if part == _AS_NOBODY else [part]
    async with ServerProcess(*config.args, command=command, env=env, cwd="/") as server:
        try:
            await wait_until(lambda: b"sandbox " in server.stderr, timeout=TIMEOUT)
        finally:
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


@pytest.mark.parametrize(
    ("op", "target", "intent"), FS_PARAMS, ids=["-".join(p) for p in FS_PARAMS]
)
async def test_sandboxed_fs_method_cannot_write_outside_the_roots_in_this_configuration(
    op: str, target: str, intent: str, configured: tuple[str, RawClient], config_world: World
) -> None:
    name, client = configured
    w = config_world
    prepare_fs_world(w)
    base = w.fmt(FS_TARGETS.get(target, "{root}"))
    before = tree(w.root.parent)
    with pytest.raises(RawRpcError) as raised:
        await FS_OPS[op](client, w, base, fs_intent(intent, w))
    if name in REFUSED:
        assert "sandbox unavailable on this host" in raised.value.message
    else:
        assert (raised.value.code, raised.value.message) == (
            -32603,
            "Read-only file system (os error 30)",
        )
    await wait_until(lambda: no_placeholders(w.root), timeout=TIMEOUT)
    assert tree(w.root.parent) == before


async def test_workspace_write_fs_method_still_writes_inside_its_root_in_this_configuration(
    configured: tuple[str, RawClient], config_world: World
) -> None:
    name, client = configured
    w = config_world
    params = {"path": f"file://{w.root}/made", "dataBase64": "eA==", "sandbox": None}
    params["sandbox"] = workspace_write(w.root)
    if name in REFUSED:
        with pytest.raises(RawRpcError):
            await client.call("fs/writeFile", params)
        return
    await client.call("fs/writeFile", params)
    assert (w.root / "made").read_text() == "x"


async def test_sandboxed_fs_method_cannot_read_the_servers_own_proc_in_this_configuration(
    configured: tuple[str, RawClient], config_world: World
) -> None:
    name, client = configured
    for path in ("/proc/self/environ", "/proc/thread-self/environ"):
        params = {"path": f"file://{path}", "sandbox": read_only()}
        try:
            data = base64.b64decode((await client.call("fs/readFile", params))["dataBase64"])
        except RawRpcError:
            continue  # hidden (a root server's fs thread) or refused
        # A server that is not root reads through a sandboxed child: its own /proc/self.
        assert name not in REFUSED
        assert SECRET.encode() not in data
    # Without a sandbox the server reads its own entry (the check above can fail).
    plain = await client.call("fs/readFile", {"path": "file:///proc/self/environ"})
    assert SECRET.encode() in base64.b64decode(plain["dataBase64"])


async def test_sandboxed_fs_method_refuses_to_write_through_a_second_hard_link(
    configured: tuple[str, RawClient], config_world: World
) -> None:
    name, client = configured
    w = config_world
    outside = w.outside / "linked"
    outside.write_text("outside")
    os.link(outside, w.root / "linked")
    os.chown(w.root / "linked", w.uid, w.uid)
    sandbox = workspace_write(w.root)
    for method, params in (
        ("fs/copy", {"sourcePath": f"file://{w.root}/a", "destinationPath":
                     f"file://{w.root}/linked", "recursive": False}),
        ("fs/open", {"handleId": f"h{next(_ids)}", "path": f"file://{w.root}/linked",
                     "mode": "replace"}),
    ):  # fmt: skip
        with pytest.raises(RawRpcError) as raised:
            await client.call(method, {**params, "sandbox": sandbox})
        if name not in REFUSED:
            assert "more than one hard link" in raised.value.message
    assert outside.read_text() == "outside"


def _cgroup2_root() -> str:
    """Where this process sees the cgroup2 hierarchy (the usual place when it sees none)."""
    with open("/proc/self/mountinfo") as f:
        for line in f:
            left, _, right = line.partition(" - ")
            if right.startswith("cgroup2 "):
                return left.split()[4]
    return "/sys/fs/cgroup"


async def test_sandboxed_command_that_moves_itself_to_the_root_cgroup_still_dies_on_terminate(
    configured: tuple[str, RawClient], config_world: World
) -> None:
    name, client = configured
    w = config_world
    seconds = f"1000.{os.getpid()}{next(_ids)}"  # a unique command line to look for
    script = f"echo 0 > {_cgroup2_root()}/cgroup.procs; echo tried; exec sleep {seconds}"
    process_id = f"cg-{next(_ids)}"
    params = start_params(process_id, ["sh", "-c", script], cwd=f"file://{w.root}")
    params["sandbox"] = workspace_write(w.root)
    if name in REFUSED:
        with pytest.raises(RawRpcError):
            await client.call("process/start", params)
        return
    await client.call("process/start", params)
    seen = b""
    while b"tried" not in seen:
        output = await client.next_notification("process/output", process_id, timeout=TIMEOUT)
        seen += base64.b64decode(output["params"]["chunk"])

    def sleepers() -> list[int]:
        return [
            p.pid
            for p in psutil.process_iter(["cmdline"])
            if p.info["cmdline"] == ["sleep", seconds]
        ]

    await wait_until(lambda: bool(sleepers()), timeout=TIMEOUT)
    assert await client.call("process/terminate", {"processId": process_id}) == {"running": True}
    await wait_until(lambda: not sleepers(), timeout=TIMEOUT)
