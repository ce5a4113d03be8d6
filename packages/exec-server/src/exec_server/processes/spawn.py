"""Starting a child: its pipes or pty, the join of its cgroup leaf, and the ``Popen`` call.

:func:`start_child` returns the child and the parent's ends of its descriptors (non-blocking);
what happens to them next (output pumps, stdin queue, exit watch) is
:class:`~.process.ManagedProcess`'s.
"""

from __future__ import annotations

import contextlib
import copy
import fcntl
import os
import platform
import struct
import subprocess
import termios
from collections.abc import Callable
from dataclasses import dataclass

from . import spawn_helper as _helper
from .env import resolve_executable

__all__ = ["Child", "SpawnSpec", "start_child"]

PIPE_SIZE = 1 << 20
"""Pipe capacity asked for: the child can run ahead while the connection is busy."""
F_SETPIPE_SZ = 1031


def _set_ctty() -> None:
    fcntl.ioctl(0, termios.TIOCSCTTY, 0)


def _joining(
    spec: SpawnSpec, leaf: str, preexec_fn: Callable[[], None] | None
) -> tuple[SpawnSpec, Callable[[], None] | None]:
    """``spec`` changed so that the child enters ``leaf`` before it execs the command.

    The server never enters a command's cgroup itself: on x86-64 a generated helper (the
    sandbox's, with only the join in its script) writes to the leaf's ``cgroup.procs`` and
    execs the command, which keeps the vfork path; elsewhere a ``preexec_fn`` does it.
    """
    assert spec.executable is not None
    # Once the helper runs, a failing exec is only an exit status: find those errors now.
    resolve_executable(spec.executable, cwd=spec.cwd)
    helper: _helper.HelperFile | None = None
    if platform.machine() == _helper.HELPER_ARCH:
        with contextlib.suppress(OSError):  # no memfd or no /proc/self/fd (old gVisor)
            helper = _helper.HelperFile()
    if helper is None:

        def join() -> None:
            with open(os.path.join(leaf, "cgroup.procs"), "wb", buffering=0) as file:
                file.write(b"0")
            if preexec_fn is not None:
                preexec_fn()

        return spec, join
    script = _helper.Script((helper.fd,))
    script.join_cgroup(leaf)
    script.call("close", helper.fd)
    helper.write(script)
    joined = copy.copy(spec)
    joined.argv = ["exec-server-spawn", spec.executable, *spec.argv]
    joined.executable = f"/proc/self/fd/{helper.fd}"
    joined.pass_fds = (*spec.pass_fds, helper.fd)
    joined.joins_leaf = True
    joined.helper_fds = (helper.fd,)
    return joined, preexec_fn


class SpawnSpec:
    """Everything needed to start the child, already resolved."""

    __slots__ = (
        "argv",
        "cleanup",
        "cols",
        "cwd",
        "env",
        "executable",
        "helper_fds",
        "joins_leaf",
        "pass_fds",
        "pipe_stdin",
        "rows",
        "tty",
    )

    def __init__(
        self,
        *,
        argv: list[str],
        executable: str | None,
        cwd: str,
        env: dict[str, str],
        tty: bool,
        pipe_stdin: bool,
        rows: int = 24,
        cols: int = 80,
        pass_fds: tuple[int, ...] = (),
        cleanup: Callable[[], None] | None = None,
        joins_leaf: bool = False,
        helper_fds: tuple[int, ...] = (),
    ) -> None:
        self.argv = argv
        self.cleanup = cleanup
        self.joins_leaf = joins_leaf
        """The executable (the sandbox helper) enters the cgroup leaf itself."""
        self.helper_fds = helper_fds
        """Descriptors of the parent to close once the child started."""
        self.executable = executable
        self.cwd = cwd
        self.env = env
        self.tty = tty
        self.pipe_stdin = pipe_stdin
        self.rows = rows
        self.cols = cols
        self.pass_fds = pass_fds


@dataclass(slots=True)
class Child:
    """A started child and the parent's ends of its descriptors (all non-blocking)."""

    popen: subprocess.Popen[bytes]
    streams: dict[int, str]
    """Output descriptors and their stream names (``stdout``/``stderr``, or ``pty``)."""
    stdin_fd: int | None
    """Where stdin is written (a pty's master, also in :attr:`streams`); None: not piped."""


def start_child(spec: SpawnSpec, leaf: str | None) -> Child:
    """Start the child described by ``spec`` (entering ``leaf``, a cgroup, when given).

    Raises:
        OSError: missing program, bad cwd, ... (every descriptor opened here is closed again;
            ``spec.cleanup`` is the caller's to run).
    """
    child_fds: list[int] = []
    parent_fds: list[int] = []
    try:
        if spec.tty:
            master, slave = os.openpty()
            parent_fds.append(master)
            child_fds.append(slave)
            fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", spec.rows, spec.cols, 0, 0))
            stdin: int = slave
            stdout: int = slave
            stderr: int = slave
            preexec_fn: Callable[[], None] | None = _set_ctty
        else:
            out_r, out_w = os.pipe2(os.O_CLOEXEC)
            err_r, err_w = os.pipe2(os.O_CLOEXEC)
            parent_fds += [out_r, err_r]
            child_fds += [out_w, err_w]
            for fd in (out_r, err_r):
                # Capped by pipe-max-size or the per-user pipe quota: then keep 64 KiB.
                with contextlib.suppress(OSError):
                    fcntl.fcntl(fd, F_SETPIPE_SZ, PIPE_SIZE)
            if spec.pipe_stdin:
                in_r, in_w = os.pipe2(os.O_CLOEXEC)
                parent_fds.append(in_w)
                child_fds.append(in_r)
                stdin = in_r
            else:
                stdin = subprocess.DEVNULL
            stdout, stderr = out_w, err_w
            preexec_fn = None
        if leaf is not None and not spec.joins_leaf:
            spec, preexec_fn = _joining(spec, leaf, preexec_fn)
        try:
            popen = _popen(spec, stdin, stdout, stderr, preexec_fn)
        finally:
            for fd in spec.helper_fds:
                os.close(fd)
    except BaseException:
        for fd in parent_fds + child_fds:
            os.close(fd)
        raise
    for fd in child_fds:
        os.close(fd)
    for fd in parent_fds:
        os.set_blocking(fd, False)
    if spec.tty:
        return Child(popen, {parent_fds[0]: "pty"}, parent_fds[0])
    return Child(
        popen,
        {parent_fds[0]: "stdout", parent_fds[1]: "stderr"},
        parent_fds[2] if spec.pipe_stdin else None,
    )


def _popen(
    spec: SpawnSpec,
    stdin: int,
    stdout: int,
    stderr: int,
    preexec_fn: Callable[[], None] | None,
) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        spec.argv,
        executable=spec.executable,
        cwd=spec.cwd,
        env=spec.env,
        stdin=stdin,
        stdout=stdout,
        stderr=stderr,
        start_new_session=True,
        close_fds=True,
        pass_fds=spec.pass_fds,
        preexec_fn=preexec_fn,
    )
