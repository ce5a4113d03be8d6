"""The escape suite through the server (issue 4, acceptance 1).

Each case of ``escape_cases`` is a real child started with ``process/start`` — the intent exactly
as Codex sends it (docs/protocol.md §8, docs/reference-notes.md §6.1) — and checked from outside the
sandbox once the server reported ``process/closed``: it is blocked, ``sandboxDenied`` follows the
§8 heuristic on ``process/exited`` and on later ``process/read``, and the same command started
with ``sandbox: null`` does escape. Every case runs on pipes; a representative subset also on a
pty. Then: a setsid'd background child is gone when the command exits, and the fs methods cannot
write outside the writable roots (also through symlinks) when they carry a ``sandbox``.
"""

from __future__ import annotations

import itertools
import os
from dataclasses import dataclass
from typing import Any

import pytest
from escape_cases import (
    CASES,
    TIMEOUT,
    WRITE_INSIDE_COMMAND,
    Case,
    World,
    no_placeholders,
    raw_intent_for,
)
from exec_server.sandbox import is_sandbox_denied
from exec_server.testing import RawClient, RawRpcError, ServerProcess
from fs_cases import FS_OPS, FS_PARAMS, FS_TARGETS, fs_intent, prepare_fs_world, tree
from sandbox_intents import read_only, workspace_write

from tests.support import start_params, wait_until

pytestmark = pytest.mark.usefixtures("kernel_features")


_ids = itertools.count(1)

PTY_SUBSET = {
    "write outside the roots",
    "write through a symlink pointing out",
    "hard link out of the root",
    "modify .git inside the root",
    "tcp connect to 127.0.0.1",
    "connect an abstract unix socket",
    "signal a process outside",
    "io_uring setup",
    "write anywhere under a read-only intent",
}
"""Cases that also run on a pty: one of each kind of rule (fs, protected path, network, scope)."""

PIPE_AND_PTY = [(case, False) for case in CASES] + [
    (case, True) for case in CASES if case.name in PTY_SUBSET
]


ON_PIPES_AND_PTY = pytest.mark.parametrize("tty", [False, True], ids=["pipes", "pty"])
"""Runs a test once with the command on pipes, once on a pty."""


def _ids_of(params: list[tuple[Case, bool]]) -> list[str]:
    return [f"{case.name}-{'pty' if tty else 'pipes'}" for case, tty in params]


@dataclass
class Run:
    """One command through the server, observed until ``process/closed``."""

    process_id: str
    sandbox_type: str
    exit_code: int
    output: bytes
    """stdout + stderr, or the pty's output."""
    exited: dict[str, Any]
    """The ``process/exited`` params."""
    read: dict[str, Any]
    """``process/read`` from the start, after close."""
    read_after_exit: dict[str, Any]
    """``process/read`` after the exit's seq (nothing left to return but the verdict)."""


async def run(
    client: RawClient,
    w: World,
    command: str,
    *,
    sandbox: dict[str, Any] | None,
    tty: bool = False,
) -> Run:
    """Start ``sh -c command`` in the root (``sandbox`` None = ``"sandbox": null``), wait for
    ``process/closed`` and read the verdict back."""
    process_id = f"esc-{next(_ids)}"
    params = start_params(
        process_id, ["sh", "-c", command], cwd=f"file://{w.root}", tty=tty, pipeStdin=False
    )
    params["sandbox"] = sandbox
    result = await client.call("process/start", params)
    collected = await client.collect(process_id, timeout=TIMEOUT)
    exited = collected["exit"]
    read = await client.call("process/read", {"processId": process_id, "afterSeq": 0})
    later = await client.call(
        "process/read", {"processId": process_id, "afterSeq": exited["seq"], "waitMs": 0}
    )
    w.extra["last_rc"] = exited["exitCode"]
    output = collected["stdout"] + collected["stderr"] + collected["pty"]
    return Run(process_id, result["sandboxType"], exited["exitCode"], output, exited, read, later)


async def run_in_root(client: RawClient, w: World, command: str, *, tty: bool = False) -> Run:
    """``run`` of the ``command`` template under the workspace-write intent of the root."""
    return await run(client, w, w.fmt(command), sandbox=workspace_write(w.root), tty=tty)


def _verdicts(r: Run) -> list[bool]:
    return [r.exited["sandboxDenied"], r.read["sandboxDenied"], r.read_after_exit["sandboxDenied"]]


@pytest.mark.parametrize(("case", "tty"), PIPE_AND_PTY, ids=_ids_of(PIPE_AND_PTY))
async def test_sandboxed_command_started_through_the_server_cannot_escape(
    case: Case, tty: bool, world: World, client: RawClient
) -> None:
    r = await run(
        client, world, world.fmt(case.command), sandbox=raw_intent_for(case, world), tty=tty
    )
    assert r.sandbox_type == "linuxSeccomp"
    assert not case.escaped(world), f"escaped: rc={r.exit_code} output={r.output!r}"
    assert r.exit_code != 0, r.output
    verdict = is_sandbox_denied(r.exit_code, r.output)
    if case.denied is not None:
        assert verdict is case.denied, r.output
    assert _verdicts(r) == [verdict] * 3, r.output
    assert r.read["closed"] and r.read_after_exit["closed"]
    await wait_until(lambda: no_placeholders(world.root), timeout=TIMEOUT)


@pytest.mark.parametrize(("case", "tty"), PIPE_AND_PTY, ids=_ids_of(PIPE_AND_PTY))
async def test_same_command_started_unsandboxed_through_the_server_does_escape(
    case: Case, tty: bool, world: World, client: RawClient
) -> None:
    r = await run(client, world, world.fmt(case.command), sandbox=None, tty=tty)
    assert r.sandbox_type == "none"
    assert case.escaped(world), f"the check saw no escape: rc={r.exit_code} output={r.output!r}"
    assert _verdicts(r) == [False] * 3


@ON_PIPES_AND_PTY
async def test_workspace_write_command_through_the_server_still_writes_inside_its_root(
    tty: bool, world: World, client: RawClient
) -> None:
    r = await run_in_root(client, world, WRITE_INSIDE_COMMAND, tty=tty)
    assert (r.sandbox_type, r.exit_code) == ("linuxSeccomp", 0), r.output
    assert r.output == b"original"
    assert _verdicts(r) == [False] * 3
    assert (world.root / "d" / "moved").read_text() == "x\n"
    assert (world.root / "d" / "hard").samefile(world.root / "d" / "moved")
    assert (world.root / "d" / "sub" / ".git" / "config").read_text() == "y\n"


@pytest.mark.parametrize("intent", ["workspace-write", "read-only"])
async def test_relative_paths_resolve_in_the_sandboxed_working_directory(
    intent: str, world: World, client: RawClient
) -> None:
    # cwd is the root: a relative write lands in it under workspace-write (it met the host
    # mount beneath the root's bind mount, read-only, before the helper entered it again).
    sandbox = workspace_write(world.root) if intent == "workspace-write" else read_only()
    r = await run(client, world, "echo rel > rel.txt && cat rel.txt", sandbox=sandbox)
    if intent == "workspace-write":
        assert (r.exit_code, r.output) == (0, b"rel\n")
        assert (world.root / "rel.txt").read_text() == "rel\n"
    else:
        assert r.exit_code != 0 and b"Read-only file system" in r.output, r.output
        assert not (world.root / "rel.txt").exists()


# -- background children ------------------------------------------------------------------------

_BACKGROUND = (
    # The background child leaves the session, reports its pid, keeps the output open and waits
    # for a go-file that only the test creates (after the command is over), then writes.
    "setsid sh -c 'echo $$ > {root}/bg.tmp && mv {root}/bg.tmp {root}/bgpid;"
    " while [ ! -e {root}/go ]; do sleep 0.01; done; echo late > {root}/late' &"
    " while [ ! -e {root}/bgpid ]; do sleep 0.01; done; echo started"
)


def _background_pids(w: World) -> list[int]:
    """Live (not zombie) host pids of the background child, found by its command line (the pid
    it reports is the one of its own PID namespace when sandboxed)."""
    marker = f"{w.root}/go".encode()
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                cmdline = f.read()
            with open(f"/proc/{entry}/stat") as f:
                state = f.read().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if cmdline.startswith(b"sh\0-c\0echo $$") and marker in cmdline and state not in "ZX":
            found.append(int(entry))
    return found


@ON_PIPES_AND_PTY
async def test_setsid_background_child_of_a_sandboxed_command_dies_with_it(
    tty: bool, world: World, client: RawClient
) -> None:
    # The child holds the command's output open, so `closed` can only follow `exited` because
    # the server killed it; it would otherwise wait for the go-file forever.
    r = await run_in_root(client, world, _BACKGROUND, tty=tty)
    assert (r.exit_code, r.output.strip()) == (0, b"started")
    assert (world.root / "bgpid").exists()
    await wait_until(lambda: not _background_pids(world), timeout=TIMEOUT)
    (world.root / "go").touch()
    assert not (world.root / "late").exists()
    assert _verdicts(r) == [False] * 3


@ON_PIPES_AND_PTY
async def test_setsid_background_child_of_an_unsandboxed_command_outlives_it(
    tty: bool, world: World, client: RawClient
) -> None:
    process_id = f"bg-{next(_ids)}"
    params = start_params(
        process_id, ["sh", "-c", world.fmt(_BACKGROUND)], cwd=f"file://{world.root}", tty=tty
    )
    params["sandbox"] = None
    await client.call("process/start", params)
    exited = await client.next_notification("process/exited", process_id, timeout=TIMEOUT)
    assert exited["params"]["exitCode"] == 0
    assert _background_pids(world)  # the check above can see a survivor
    (world.root / "go").touch()
    await wait_until(lambda: (world.root / "late").exists(), timeout=TIMEOUT)
    await client.collect(process_id, timeout=TIMEOUT)  # it closes once the child is done


@pytest.mark.parametrize(
    ("op", "target", "intent"), FS_PARAMS, ids=["-".join(p) for p in FS_PARAMS]
)
async def test_sandboxed_fs_method_cannot_write_outside_the_writable_roots(
    op: str, target: str, intent: str, world: World, client: RawClient
) -> None:
    prepare_fs_world(world)
    base = world.fmt(FS_TARGETS.get(target, "{root}"))
    before = tree(world.root.parent)
    with pytest.raises(RawRpcError) as raised:
        await FS_OPS[op](client, world, base, fs_intent(intent, world))
    assert (raised.value.code, raised.value.message) == (
        -32603,
        "Read-only file system (os error 30)",
    )
    await wait_until(lambda: no_placeholders(world.root), timeout=TIMEOUT)
    assert tree(world.root.parent) == before


@pytest.mark.parametrize(("op", "target"), [(op, t) for op in FS_OPS for t in FS_TARGETS])
async def test_same_fs_method_without_a_sandbox_does_write_there(
    op: str, target: str, world: World, client: RawClient
) -> None:
    prepare_fs_world(world)
    base = world.fmt(FS_TARGETS[target])
    before = tree(world.root.parent)
    await FS_OPS[op](client, world, base, None)
    assert tree(world.root.parent) != before


@pytest.mark.parametrize("op", list(FS_OPS))
async def test_workspace_write_fs_method_still_writes_inside_its_root(
    op: str, world: World, client: RawClient
) -> None:
    prepare_fs_world(world)
    outside_before = tree(world.outside)
    before = tree(world.root)
    await FS_OPS[op](client, world, str(world.root), workspace_write(world.root))
    await wait_until(lambda: no_placeholders(world.root), timeout=TIMEOUT)
    assert tree(world.root) != before
    assert tree(world.outside) == outside_before


async def test_without_cgroups_a_sandboxed_command_still_takes_its_background_child_along(
    world: World,
) -> None:
    async with ServerProcess("--no-cgroups") as server:
        c = await RawClient.connect(server.url)
        await c.handshake()
        try:
            r = await run_in_root(c, world, _BACKGROUND)
        finally:
            await c.aclose()
    assert (r.sandbox_type, r.exit_code, r.output.strip()) == ("linuxSeccomp", 0, b"started")
    assert not _background_pids(world)
    await wait_until(lambda: no_placeholders(world.root), timeout=TIMEOUT)


async def test_typing_into_the_terminal_with_tiocsti_is_refused_in_the_sandbox(
    world: World, client: RawClient
) -> None:
    command = world.fmt(
        "{py} -c 'import fcntl, termios; fcntl.ioctl(0, termios.TIOCSTI, b\"x\")' && echo typed"
    )
    sandboxed = await run(client, world, command, sandbox=workspace_write(world.root), tty=True)
    assert sandboxed.exit_code != 0
    assert b"Operation not permitted" in sandboxed.output
    assert _verdicts(sandboxed) == [True] * 3
    # The control: the same command on the same kind of terminal, unsandboxed (as root).
    plain = await run(client, world, command, sandbox=None, tty=True)
    assert (plain.exit_code, b"typed" in plain.output) == (0, True), plain.output
