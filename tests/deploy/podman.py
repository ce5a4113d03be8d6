"""The container image under podman, for the container test: build it when it is missing or
stale, start containers the way docs/deploy.md does, and remove them.

:func:`ensure_image` runs ``scripts/container-build --if-stale`` under a file lock, so pytest
workers never build at the same time. :meth:`Container.run` runs ``podman run -d`` with the
options this host needs (see :func:`host_options`) under a unique name; :meth:`Container.remove`
removes the container and its anonymous volumes whatever state it is in. Needs root (the token
directory is given to the image's user, 10001) and podman.
"""

from __future__ import annotations

import asyncio
import fcntl
import json
import os
import resource
import secrets
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from tests.support import http_request

__all__ = [
    "SERVER_UID",
    "Container",
    "ensure_image",
    "host_options",
    "podman",
    "podman_unavailable",
    "token_directory",
]

ROOT = Path(__file__).resolve().parents[2]
SERVER_UID = 10001
"""The image's user (deploy/container/Containerfile)."""
PORT = 8765
"""Where the image's server listens inside the container."""
PODMAN_NPROC = 32768
"""The RLIMIT_NPROC podman 4.3 gives itself, so the most it can pass on (see host_options)."""


def podman(*args: str, timeout: float = 60) -> str:
    """Run ``podman ARGS``; returns its stdout, stripped.

    Raises:
        AssertionError: podman failed (its stderr is in the message).
    """
    done = subprocess.run(["podman", *args], capture_output=True, text=True, timeout=timeout)
    if done.returncode != 0:
        raise AssertionError(f"podman {' '.join(args)}: exit {done.returncode}: {done.stderr}")
    return done.stdout.strip()


def _hybrid_cgroups() -> bool:
    """cgroup v1 controllers next to (or instead of) the unified hierarchy."""
    return not Path("/sys/fs/cgroup/cgroup.controllers").exists()


def podman_unavailable() -> str | None:
    """Why the container test cannot run here, or None when it can."""
    if os.geteuid() != 0:
        return "the container test gives the token to uid 10001 and runs rootful podman: needs root"
    if shutil.which("podman") is None:
        return "the container test needs podman (Debian: apt-get install podman runc)"
    if _hybrid_cgroups() and shutil.which("runc") is None:
        return (
            "this host has hybrid cgroups, which podman's default runtime crun refuses "
            "('cgroups in hybrid mode not supported'), and runc is not installed"
        )
    return None


def host_options() -> list[str]:
    """The ``podman run`` options this host needs (docs/deploy.md, Container).

    - ``--runtime runc`` where cgroups are hybrid: crun refuses to start containers there.
    - ``--ulimit nofile=N:N --ulimit nproc=M:M`` at or below the limits podman itself runs
      with: its defaults for the container (1048576 each) are above them, and where the host
      withholds CAP_SYS_RESOURCE the runtime cannot raise a hard limit (``error setting rlimit
      type 6: operation not permitted``). podman 4.3 sets its own RLIMIT_NPROC to 32768
      (``setrlimit(RLIMIT_NPROC, {32768, 32768})`` under strace) before it starts the runtime.
    """
    options = ["--runtime", "runc"] if _hybrid_cgroups() else []
    for name, limit, cap in (
        ("nofile", resource.RLIMIT_NOFILE, 1 << 20),
        ("nproc", resource.RLIMIT_NPROC, PODMAN_NPROC),
    ):
        hard = resource.getrlimit(limit)[1]
        n = cap if hard == resource.RLIM_INFINITY else min(hard, cap)
        options += ["--ulimit", f"{name}={n}:{n}"]
    return options


def ensure_image() -> tuple[str, float, bool]:
    """The image built from this working tree: built now when missing or stale.

    Returns:
        (image name, seconds spent, whether it was built now).
    """
    lock = Path(tempfile.gettempdir()) / "exec-server-container-build.lock"
    with lock.open("w") as held:
        fcntl.flock(held, fcntl.LOCK_EX)  # one build at a time across pytest workers
        started = time.monotonic()
        done = subprocess.run(
            [str(ROOT / "scripts" / "container-build"), "--if-stale"],
            capture_output=True,
            text=True,
            timeout=1200,
        )
        spent = time.monotonic() - started
    if done.returncode != 0:
        raise AssertionError(f"scripts/container-build failed:\n{done.stderr[-6000:]}")
    built = "is up to date with the working tree" not in done.stderr
    return done.stdout.strip().splitlines()[-1], spent, built


def token_directory(parent: Path, token: str) -> Path:
    """A directory holding ``token`` as the file ``token``, readable by the image's user only
    (directory 0500, file 0400, both owned by 10001), as docs/deploy.md makes it."""
    directory = parent / "secrets"
    directory.mkdir()
    (directory / "token").write_text(token + "\n")
    for path, mode in ((directory / "token", 0o400), (directory, 0o500)):
        os.chown(path, SERVER_UID, SERVER_UID)
        path.chmod(mode)
    return directory


@dataclass
class Container:
    """One container: a unique name, the token; the published URL once :meth:`run` ran.
    Whoever makes one removes it (:meth:`remove`), also when :meth:`run` raised."""

    token: str
    name: str = field(default_factory=lambda: f"exec-server-test-{secrets.token_hex(4)}")
    url: str = ""

    def run(
        self,
        image: str,
        token_dir: Path,
        *,
        options: tuple[str, ...] = (),
        command: tuple[str, ...] = (),
    ) -> None:
        """``podman run -d`` as docs/deploy.md does it: read-only root, a tmpfs ``/tmp``, the
        token directory mounted read-only, the port published on 127.0.0.1 (podman picks the
        host port).

        Args:
            options: more ``podman run`` options (e.g. ``--security-opt``).
            command: the server's arguments instead of the image's CMD.
        """
        podman(
            "run", "--detach", "--name", self.name, *host_options(),
            "--publish", f"127.0.0.1::{PORT}", "--read-only", "--tmpfs", "/tmp",
            "--volume", f"{token_dir}:/run/secrets/exec-server:ro", *options,
            image, *command,
        )  # fmt: skip
        host, port = podman("port", self.name, str(PORT)).rsplit(":", 1)
        self.url = f"ws://{host}:{port}"

    def logs(self) -> str:
        """The server's log (the container's stdout and stderr)."""
        done = subprocess.run(
            ["podman", "logs", self.name], capture_output=True, text=True, timeout=60
        )
        return done.stdout + done.stderr

    def state(self) -> dict[str, object]:
        """``State`` of ``podman inspect`` (Running, ExitCode, ...)."""
        state: dict[str, object] = json.loads(
            podman("inspect", "--format", "{{json .State}}", self.name)
        )
        return state

    async def wait_ready(self, *, timeout: float = 60) -> None:
        """Wait until ``/readyz`` answers 200 through the published port.

        Raises:
            AssertionError: the container stopped first (its log is in the message).
        """
        async with asyncio.timeout(timeout):
            while True:
                try:
                    status, _ = await http_request(self.url, b"GET /readyz HTTP/1.1\r\n\r\n")
                except (OSError, IndexError):  # not listening yet: refused, reset or empty
                    status = 0
                if status == 200:
                    return
                if not self.state()["Running"]:
                    raise AssertionError(f"{self.name} stopped:\n{self.logs()[-4000:]}")
                await asyncio.sleep(0.05)  # the server's start has no event we could wait on

    def remove(self) -> None:
        """Remove the container (killed if it runs) and its anonymous volumes."""
        subprocess.run(
            ["podman", "rm", "--force", "--volumes", "--time", "0", self.name],
            capture_output=True,
            timeout=60,
        )
