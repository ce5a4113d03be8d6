"""The container image under podman (issue 13, acceptance 2), started the way docs/deploy.md
starts it: read-only root, a tmpfs /tmp, the token in a mounted directory, the port published
on 127.0.0.1, the server as uid 10001 under tini.

The image is built first when it is missing or older than the working tree
(``scripts/container-build --if-stale``: about 15-35 s with the base image present, about a
minute from nothing). Marker ``container``; needs root and podman, else it skips and says why.
Timings (build, SIGTERM -> exit) are printed: ``pytest tests/deploy/test_container.py -s``.

What a sandboxed command gets inside depends on the runtime's seccomp profile:

- podman's default profile allows ``unshare``/``clone`` of namespaces (Docker's refuses them
  without CAP_SYS_ADMIN), so the server, as uid 10001, makes a user namespace and the sandbox
  runs: mount and PID namespaces, seccomp, Landlock where the kernel has it, the host's /proc
  read-only (podman masks parts of /proc, and the kernel then refuses a fresh /proc mount);
- a profile refusing user namespaces (as Docker's default and containerd's RuntimeDefault do
  for a container without CAP_SYS_ADMIN) gets the sandboxed start refused with the message,
  unless the server runs with ``--isolation external``.
"""

from __future__ import annotations

import asyncio
import json
import secrets
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest
from exec_server.client import ConnectionLost, RemoteError, SandboxDenied, connect, sandbox
from exec_server_protocol.jsonrpc import ErrorCode

from tests.deploy.podman import (
    SERVER_UID,
    Container,
    ensure_image,
    podman,
    podman_unavailable,
    token_directory,
)
from tests.support import http_request

_WHY_NOT = podman_unavailable()
pytestmark = [
    pytest.mark.container,
    pytest.mark.skipif(_WHY_NOT is not None, reason=_WHY_NOT or ""),
    # The first test may build the image; every wait inside has its own bound.
    pytest.mark.timeout(1500),
]

SERVE = (  # the image's CMD (deploy/container/Containerfile)
    "--listen", "ws://0.0.0.0:8765", "--ws-auth", "capability-token",
    "--ws-token-file", "/run/secrets/exec-server/token",
)  # fmt: skip
STOP_TIME = 40
"""``podman stop --time``: SIGKILL after this; the image's drain timeout is the default 30 s."""
CLONE_NEWUSER = 0x10000000
REFUSED = (
    "sandbox unavailable on this host: missing user namespaces (the kernel refused to create "
    "them: exec-server: sandbox setup failed)"
)
WRITE_AND_READ = "grep ^ID= /etc/os-release; echo x > /workspace/written"

Serve = Callable[..., Awaitable[Container]]


@pytest.fixture(scope="module")
def image() -> str:
    name, spent, built = ensure_image()
    print(f"\ncontainer image {name}: {'built' if built else 'up to date'} in {spent:.1f} s")
    return name


@pytest.fixture
async def serve(image: str, tmp_path: Path) -> AsyncIterator[Serve]:
    """Start a container of the image (``options`` for podman, ``command`` instead of the
    CMD) and wait for ``/readyz``; every one is removed afterwards, whatever happened. The
    test fails if a server logged a traceback."""
    token = secrets.token_urlsafe(24)
    token_dir = token_directory(tmp_path, token)
    made: list[Container] = []

    async def run(*, options: tuple[str, ...] = (), command: tuple[str, ...] = ()) -> Container:
        container = Container(token)
        made.append(container)
        container.run(image, token_dir, options=options, command=command)
        await container.wait_ready()
        return container

    logs: list[str] = []
    try:
        yield run
    finally:
        for container in made:
            logs.append(container.logs())
            container.remove()
    for container, log in zip(made, logs, strict=True):
        print(f"---- {container.name} ----\n{log[-6000:]}")  # shown when a test fails
        assert "Traceback" not in log, log[-4000:]


def refusing_user_namespaces(directory: Path) -> tuple[str, ...]:
    """``podman run`` options for a seccomp profile that refuses new user namespaces the way
    Docker's default profile does for a container without CAP_SYS_ADMIN: ``unshare`` and
    ``clone`` with CLONE_NEWUSER answer EPERM, ``clone3`` (whose flags seccomp cannot see)
    ENOSYS, so C libraries fall back to ``clone``. Everything else is allowed."""
    newuser = [
        {"index": 0, "value": CLONE_NEWUSER, "valueTwo": CLONE_NEWUSER, "op": "SCMP_CMP_MASKED_EQ"}
    ]
    profile = {
        "defaultAction": "SCMP_ACT_ALLOW",
        "syscalls": [
            {"names": ["unshare", "clone"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1,
             "args": newuser},
            {"names": ["clone3"], "action": "SCMP_ACT_ERRNO", "errnoRet": 38},
        ],
    }  # fmt: skip
    path = directory / "seccomp-no-userns.json"
    path.write_text(json.dumps(profile))
    return ("--security-opt", f"seccomp={path}")


async def test_the_image_serves_the_client_with_the_token_as_uid_10001_on_a_read_only_root(
    serve: Serve,
) -> None:
    container = await serve()
    config = podman("inspect", "--format", "{{.Config.User}} {{.HostConfig.ReadonlyRootfs}}",
                    container.name)  # fmt: skip
    with pytest.raises(ConnectionLost, match="refused the connection: HTTP 401"):
        await connect(container.url, token="not-" + container.token)
    async with connect(container.url, token=container.token) as client:
        done = await client.run(["sh", "-c", "id -u; echo out; echo err >&2; exit 3"])
        init = await client.run(["cat", "/proc/1/comm"])
        root = await client.run(["sh", "-c", "touch /opt/exec-server/x 2>&1; echo $?"])
    assert config == "10001:10001 true"
    assert (done.returncode, done.stdout, done.stderr) == (3, b"%d\nout\n" % SERVER_UID, b"err\n")
    assert init.stdout == b"tini\n"  # PID 1, which passes SIGTERM on to the server
    assert root.stdout.endswith(b"Read-only file system\n1\n")
    assert podman("healthcheck", "run", container.name) == ""  # exit 0: healthy


async def test_under_podmans_default_seccomp_profile_a_read_only_intent_runs_sandboxed(
    serve: Serve,
) -> None:
    container = await serve()
    async with connect(container.url, token=container.token) as client:
        proc = await client.start(
            ["sh", "-c", WRITE_AND_READ], cwd="/workspace", sandbox=sandbox.read_only("/workspace")
        )
        out, err = await proc.stdout.read(), await proc.stderr.read()
        with pytest.raises(SandboxDenied) as denied:
            await proc.wait()
        left = await client.run(["test", "-e", "/workspace/written"])
        plain = await client.run(
            ["sh", "-c", "echo x > /workspace/plain && cat plain"], cwd="/workspace"
        )
    assert proc.sandbox_type == "linuxSeccomp"
    assert out == b"ID=debian\n"  # reading works
    assert err == b"sh: 1: cannot create /workspace/written: Read-only file system\n"
    assert denied.value.exit_code == 2
    assert left.returncode == 1  # nothing was written
    assert (plain.returncode, plain.stdout) == (0, b"x\n")  # the workspace itself is writable
    assert (
        "sandbox layers: user, mount and PID namespaces, the host's /proc (read-only), seccomp"
        in container.logs()
    )


async def test_where_the_runtime_refuses_user_namespaces_a_sandboxed_start_is_refused(
    serve: Serve, tmp_path: Path
) -> None:
    container = await serve(options=refusing_user_namespaces(tmp_path))
    async with connect(container.url, token=container.token) as client:
        with pytest.raises(RemoteError) as refused:
            await client.run(
                ["sh", "-c", WRITE_AND_READ],
                cwd="/workspace",
                sandbox=sandbox.read_only("/workspace"),
            )
        left = await client.run(["test", "-e", "/workspace/written"])
        plain = await client.run(["echo", "plain"])
    assert refused.value.code == ErrorCode.INTERNAL_ERROR
    assert refused.value.message == REFUSED
    assert f"INFO exec_server.server: {REFUSED}\n" in container.logs()  # said at start too
    assert left.returncode == 1  # nothing ran
    assert (plain.returncode, plain.stdout) == (0, b"plain\n")


async def test_with_isolation_external_that_intent_runs_under_the_container_only_and_says_so(
    serve: Serve, tmp_path: Path
) -> None:
    container = await serve(
        options=refusing_user_namespaces(tmp_path), command=(*SERVE, "--isolation", "external")
    )
    async with connect(container.url, token=container.token) as client:
        info = await client.environment()
        proc = await client.start(
            ["sh", "-c", WRITE_AND_READ + "; cat written"],
            cwd="/workspace",
            sandbox=sandbox.read_only("/workspace"),
        )
        out, err = await proc.stdout.read(), await proc.stderr.read()
        returncode = await proc.wait()
    assert (info.isolation, info.capabilities["externalIsolation"]) == ("external", True)
    assert (proc.sandbox_type, returncode, out, err) == ("none", 0, b"ID=debian\nx\n", b"")
    assert (
        "WARNING exec_server.server: --isolation external: a sandboxed command or file operation "
        "that this host cannot sandbox runs under the executor's outside isolation (its container "
        "or pod) only; what it can sandbox still is. Here: " + REFUSED + "; --isolation external: "
        "such commands run under the executor's outside isolation only\n"
    ) in container.logs()


async def test_sigterm_through_tini_drains_a_running_command_and_the_container_exits_0(
    serve: Serve,
) -> None:
    container = await serve()  # the image's CMD: --drain-timeout is the default 30 s
    async with connect(container.url, token=container.token) as client:
        proc = await client.start(
            ["sh", "-c", "echo started; read word; echo done $word"], pipe_stdin=True
        )
        assert await proc.stdout.readuntil(b"started\n") == b"started\n"
        sigterm = time.monotonic()
        stop = await asyncio.create_subprocess_exec(
            "podman", "stop", "--time", str(STOP_TIME), container.name,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip

        async def draining() -> bool:
            status, body = await http_request(container.url, b"GET /readyz HTTP/1.1\r\n\r\n")
            return (status, body) == (503, b"draining\n")

        async with asyncio.timeout(15):
            while not await draining():  # noqa: ASYNC110 - the drain has no event of ours
                await asyncio.sleep(0.01)
        with pytest.raises(RemoteError) as refused:
            await connect(container.url, token=container.token)
        # The drain refuses new sessions only; this session's starts still run (server.py).
        late = await client.run(["echo", "late"])
        await proc.write(b"now\n", close_stdin=True)
        rest = await proc.stdout.read()
        returncode = await proc.wait()
        finished = time.monotonic()
    async with asyncio.timeout(STOP_TIME + 10):
        _, stop_err = await stop.communicate()
    exited = time.monotonic()
    print(
        f"\nSIGTERM -> container exit: {exited - sigterm:.2f} s, of which the command's end "
        f"-> exit {exited - finished:.2f} s (drain timeout 30 s, podman stop --time {STOP_TIME})"
    )
    assert stop.returncode == 0, stop_err
    assert refused.value.code == ErrorCode.SERVER_DRAINING
    assert (late.returncode, late.stdout) == (0, b"late\n")
    assert (returncode, rest) == (0, b"done now\n")
    state = container.state()
    # Exit code 0 from the server: podman did not have to SIGKILL it (that would be 137).
    assert (state["Running"], state["ExitCode"]) == (False, 0)
    log = container.logs()
    assert "drained: every process has finished and been read" in log
    assert "drain cut short" not in log
