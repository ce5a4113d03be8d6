"""Starting a child: its pipes or pty, the join of its cgroup leaf, its open-file limit, and the
``Popen`` call.

:func:`start_child` returns the child and the parent's ends of its descriptors (non-blocking);
what happens to them next (output pumps, stdin queue, exit watch) is
:class:`~.process.ManagedProcess`'s.
"""

from __future__ import annotations

import contextlib
import copy
import fcntl
import functools
import os
import platform
import resource
import struct
import subprocess
import termios
from collections.abc import Callable
from dataclasses import dataclass

from . import spawn_helper as _helper
from .env import resolve_executable

__all__ = ["Child", "SpawnSpec", "child_fd_limit", "start_child"]

PIPE_SIZE = 1 << 20
"""Pipe capacity asked for: the child can run ahead while the connection is busy."""
F_SETPIPE_SZ = 1031


def _set_ctty() -> None:
    fcntl.ioctl(0, termios.TIOCSCTTY, 0)


def child_fd_limit(soft: int) -> tuple[int, int]:
    """RLIMIT_NOFILE ``(soft, hard)`` for a child: ``soft`` and the server's hard limit now
    (which someone may have lowered below ``soft`` since the start)."""
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    return (soft if hard == resource.RLIM_INFINITY else min(soft, hard), hard)


def _prepared(
    spec: SpawnSpec, leaf: str | None, preexec_fn: Callable[[], None] | None
) -> tuple[SpawnSpec, Callable[[], None] | None]:
    """``spec`` changed so that the child enters ``leaf`` (when given) and gets the open-file
    limit ``spec.fd_limit`` (when set) before it execs the command.

    The server never enters a command's cgroup itself, nor lowers its own limit: on x86-64 a
    generated helper (the sandbox's, with only these records in its script; made once when it
    only sets the limit) does it and execs the command, which keeps the vfork path; elsewhere
    a ``preexec_fn`` does it. A child that needs a ``preexec_fn`` anyway (a pty's) and joins
    no leaf gets the limit there: it forks already, and the helper would add an exec.
    """
    assert spec.executable is not None
    limit = child_fd_limit(spec.fd_limit) if spec.fd_limit is not None else None
    helper_fd: int | None = None
    if leaf is not None or preexec_fn is None:
        # Once the helper runs, a failing exec is only an exit status: find those errors now.
        resolve_executable(spec.executable, cwd=spec.cwd)
        if platform.machine() == _helper.HELPER_ARCH:
            with contextlib.suppress(OSError):  # no memfd or no /proc/self/fd (old gVisor)
                if leaf is not None:
                    helper_fd = _joining_helper(leaf, limit)
                else:
                    assert limit is not None
                    helper_fd = _limit_helper(*limit)
    if helper_fd is None:

        def prepare() -> None:
            if leaf is not None:
                with open(os.path.join(leaf, "cgroup.procs"), "wb", buffering=0) as file:
                    file.write(b"0")
            if limit is not None:
                resource.setrlimit(resource.RLIMIT_NOFILE, limit)
            if preexec_fn is not None:
                preexec_fn()

        return spec, prepare
    prepared = copy.copy(spec)
    prepared.argv = ["exec-server-spawn", spec.executable, *spec.argv]
    prepared.executable = f"/proc/self/fd/{helper_fd}"
    prepared.pass_fds = (*spec.pass_fds, helper_fd)
    prepared.joins_leaf = leaf is not None
    prepared.fd_limit = None
    if leaf is not None:
        prepared.helper_fds = (helper_fd,)
    return prepared, preexec_fn


def _new_helper(records: Callable[[_helper.Script], None]) -> int:
    """A helper whose script is ``records``, then the close of its own descriptor; returns that
    (read-only) descriptor. Raises OSError: no memfd, or no /proc/self/fd to reopen it."""
    helper = _helper.HelperFile()
    script = _helper.Script((helper.fd,))
    records(script)
    script.call("close", helper.fd)
    helper.write(script)
    return helper.fd


def _joining_helper(leaf: str, limit: tuple[int, int] | None) -> int:
    """A helper that enters ``leaf`` and sets ``limit``; the caller closes it after the spawn."""

    def records(script: _helper.Script) -> None:
        script.join_cgroup(leaf)
        if limit is not None:
            script.set_fd_limit(*limit)

    return _new_helper(records)


@functools.cache
def _limit_helper(soft: int, hard: int) -> int:
    """A helper that only sets the open-file limit: the same for every spawn, so it is made once
    and kept open (building one per spawn cost 0.1-0.2 ms, its exec nothing measurable)."""
    return _new_helper(lambda script: script.set_fd_limit(soft, hard))


class SpawnSpec:
    """Everything needed to start the child, already resolved."""

    __slots__ = (
        "argv",
        "cleanup",
        "cols",
        "cwd",
        "env",
        "executable",
        "fd_limit",
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
        fd_limit: int | None = None,
    ) -> None:
        self.argv = argv
        self.cleanup = cleanup
        self.joins_leaf = joins_leaf
        """The executable (the sandbox helper) enters the cgroup leaf itself."""
        self.fd_limit = fd_limit
        """RLIMIT_NOFILE soft limit the command starts with (the hard limit stays the
        server's); None: the server's own, or the executable (the sandbox helper) sets it."""
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
    """Start the child described by ``spec`` (entering ``leaf``, a cgroup, when given, and with
    the open-file limit ``spec.fd_limit``, when set).

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
        if spec.joins_leaf:
            leaf = None
        if leaf is not None or spec.fd_limit is not None:
            spec, preexec_fn = _prepared(spec, leaf, preexec_fn)
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
