"""The sandbox spawned directly, without the server in between: a real child under the real
kernel features. The escape cases themselves run through the server in every host
configuration (``test_server_escapes``); this module checks the properties of one spawn (what the
child inherits, its namespaces, privileges) and the fs-method sandbox.
"""

from __future__ import annotations

import asyncio
import errno
import os
import subprocess
from typing import Any

import pytest
from escape_cases import (
    TIMEOUT,
    WRITE_INSIDE_COMMAND,
    World,
    no_placeholders,
    wait_for,
)
from exec_server.sandbox import prepare_spawn, run_fs_sandboxed
from sandbox_intents import decode, read_only, workspace_write

pytestmark = pytest.mark.usefixtures("kernel_features")


def run(
    intent: Any, command: str, w: World, *, extra_fds: tuple[int, ...] = ()
) -> tuple[int, bytes]:
    """Spawn ``sh -c command`` the way the server does; returns (exit code, stdout+stderr)."""
    plan = prepare_spawn(
        intent, argv=["sh", "-c", command], cwd=str(w.root), env=dict(os.environ), arg0=None
    )
    try:
        proc = subprocess.run(
            plan.argv,
            executable=plan.executable,
            env=plan.env,
            cwd=w.root,
            pass_fds=plan.pass_fds + extra_fds,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            start_new_session=True,
            timeout=TIMEOUT,
            check=False,
        )
    finally:
        if plan.release is not None:
            plan.release()
    w.extra["last_rc"] = proc.returncode
    return proc.returncode, proc.stdout + proc.stderr


def test_workspace_write_command_still_writes_inside_its_root(world: World) -> None:
    command = WRITE_INSIDE_COMMAND
    code, output = run(decode(workspace_write(world.root)), world.fmt(command), world)
    assert code == 0, output
    assert output == b"original"
    assert (world.root / "d" / "moved").read_text() == "x\n"
    assert (world.root / "d" / "sub" / ".git" / "config").read_text() == "y\n"


def test_creating_missing_git_fails_like_the_reference(world: World) -> None:
    (world.root / ".git" / "config").unlink()
    (world.root / ".git").rmdir()
    code, output = run(decode(workspace_write(world.root)), world.fmt("mkdir {root}/.git"), world)
    assert code == 1
    assert b"File exists" in output
    assert wait_for(lambda: not (world.root / ".git").exists()), "placeholder left"


def test_sandboxed_child_inherits_no_descriptor_beyond_stdio(world: World) -> None:
    leaked = os.open(os.devnull, os.O_RDONLY)
    try:
        sandboxed = run(decode(read_only()), "ls /proc/self/fd", world, extra_fds=(leaked,))
        plain = run(None, "ls /proc/self/fd", world, extra_fds=(leaked,))
    finally:
        os.close(leaked)
    assert str(leaked).encode() not in sandboxed[1].split()
    assert str(leaked).encode() in plain[1].split()


def test_sandboxed_child_runs_without_capabilities_and_with_no_new_privs(
    world: World,
) -> None:
    code, output = run(
        decode(read_only()), "grep -E '^(CapEff|NoNewPrivs|Seccomp):' /proc/self/status", world
    )
    assert code == 0, output
    fields = dict(line.split(b":\t") for line in output.splitlines())
    assert fields[b"CapEff"] == b"0000000000000000"
    assert fields[b"NoNewPrivs"] == b"1"
    assert fields[b"Seccomp"] == b"2"


def test_sandboxed_command_is_pid_2_of_its_own_namespace_with_its_own_proc(world: World) -> None:
    code, output = run(decode(read_only()), "echo $$; ls /proc | grep -c '^[0-9]'", world)
    assert code == 0, output
    pid, visible = output.split()
    # PID 1 is the namespace's init, the command PID 2 (its shell); /proc shows the namespace
    # only: init, the shell, ls and grep.
    assert pid == b"2"
    assert int(visible) <= 4


def test_sandboxed_command_exit_status_and_signal_reach_the_spawner(world: World) -> None:
    assert run(decode(read_only()), "exit 7", world)[0] == 7
    assert run(decode(read_only()), "kill -TERM $$", world)[0] == -15
    assert run(decode(read_only()), "kill -SEGV $$", world)[0] == -11


# -- fs methods --------------------------------------------------------------------------------


def _write(path: str) -> None:
    with open(path, "w") as file:
        file.write("x")


def _snapshot(path: str) -> str | None:
    return _read(path) if os.path.exists(path) else None


def _read(path: str) -> str:
    with open(path) as file:
        return file.read()


@pytest.mark.parametrize(
    "target",
    ["{out}/f", "{root}/link/f", "{root}/.git/config"],
    ids=["outside", "through a symlink", "into .git"],
)
async def test_fs_method_cannot_write_outside_the_roots_and_gets_read_only_file_system(
    world: World, target: str
) -> None:
    path = world.fmt(target)
    before = _snapshot(path)
    async with asyncio.timeout(TIMEOUT):
        with pytest.raises(OSError, match="Read-only file system") as raised:
            await run_fs_sandboxed(decode(workspace_write(world.root)), _write, path)
    assert raised.value.errno == errno.EROFS
    assert _snapshot(path) == before


async def test_fs_method_denied_read_stays_permission_denied(world: World) -> None:
    secret = world.outside / "secret"
    secret.write_text("s")
    only_root = {
        "permissions": {
            "type": "managed",
            "network": "restricted",
            "file_system": {
                "type": "restricted",
                "entries": [
                    {"path": {"type": "path", "path": f"file://{world.root}"}, "access": "write"}
                ],
            },
        },
        "windowsSandboxLevel": "disabled",
    }
    async with asyncio.timeout(TIMEOUT):
        with pytest.raises(PermissionError) as raised:
            await run_fs_sandboxed(decode(only_root), _read, str(secret))
        with pytest.raises(OSError, match="Read-only file system"):
            await run_fs_sandboxed(decode(only_root), _write, str(secret))
    assert raised.value.errno == errno.EACCES
    assert secret.read_text() == "s"


async def test_fs_method_writes_inside_and_reads_protected_paths(world: World) -> None:
    intent = decode(workspace_write(world.root))
    async with asyncio.timeout(TIMEOUT):
        await run_fs_sandboxed(intent, _write, str(world.root / "inside"))
        assert (
            await run_fs_sandboxed(intent, _read, str(world.root / ".git" / "config")) == "original"
        )
    assert (world.root / "inside").read_text() == "x"
    assert wait_for(lambda: no_placeholders(world.root)), "placeholder left"


async def test_fs_method_without_sandbox_does_escape(world: World) -> None:
    disabled = decode({"permissions": {"type": "disabled"}, "windowsSandboxLevel": "disabled"})
    async with asyncio.timeout(TIMEOUT):
        await run_fs_sandboxed(disabled, _write, str(world.outside / "f"))
    assert (world.outside / "f").exists()
