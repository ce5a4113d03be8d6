"""One supervised child process: spawn (pipes or pty), output pumps, exit, stdin, signals.

Lifecycle, in seq order: output chunks (``process/output``), then ``process/exited`` once the
exit status is known *and* what the process's own pipes already hold has been read, then
``process/closed`` once every output stream reached EOF. Readers are plain ``add_reader``
callbacks on non-blocking fds and the exit is watched through a pidfd, so nothing here needs a
task per process. Output frames take the protocol's fast path (``output_frame``: a prefix
built once per process around the pybase64 chunk); everything else uses the protocol structs.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import enum
import errno
import fcntl
import logging
import os
import platform
import signal
import struct
import subprocess
import termios
import time
from collections import deque
from collections.abc import Callable
from typing import Any, Protocol

import pybase64
from exec_server_protocol import (
    ProcessId,
    Seq,
    encode_notification,
    output_frame,
    output_prefix,
)
from exec_server_protocol.process import (
    OutputChunk,
    ProcessClosedNotification,
    ProcessExitedNotification,
    ReadResult,
    ResourceUsage,
)

from ..exceptions import invalid_request
from ..metrics import METRICS
from . import spawn_helper as _helper
from .env import resolve_program
from .ring import OutputRing
from .tree import CgroupManager, kill_descendants
from .writes import WriteLog

__all__ = ["Emit", "ManagedProcess", "SpawnSpec", "StdinState", "format_os_error"]

log = logging.getLogger("exec_server.process")

READ_SIZE = 64 << 10
"""Largest output chunk. Measured on loopback with a Python client (256 MiB stream): 64 KiB
chunks ran at ~1.45 GB/s with 0.16 s of server CPU per 256 MiB, 1 MiB chunks at ~0.6 GB/s with
twice the CPU: small frames stay in cache, go out in one socket write, and let the child, the
server and the client overlap."""
PIPE_SIZE = 1 << 20
"""Pipe capacity asked for: the child can run ahead while the connection is busy."""
# One read buffer for every pump: the loop runs one callback at a time and each read is
# encoded before the callback returns, so no chunk ever shares it with another.
_READ_BUFFER = bytearray(READ_SIZE)
_READ_VIEW = memoryview(_READ_BUFFER)
_READ_BUFFERS = [_READ_BUFFER]
F_SETPIPE_SZ = 1031
PTY_EOF_GRACE_S = 0.25
"""How long an exited tty process's pty may take to report EOF before `exited` is recorded
anyway (background children may hold the pty open)."""

SIGNALS = {
    "interrupt": signal.SIGINT,
    "terminate": signal.SIGTERM,
    "kill": signal.SIGKILL,
    "hangup": signal.SIGHUP,
    "quit": signal.SIGQUIT,
    "user1": signal.SIGUSR1,
    "user2": signal.SIGUSR2,
}


class Emit(Protocol):
    """Sends one notification, given as the parts it concatenates to."""

    def __call__(self, *parts: bytes) -> None: ...


class StdinState(enum.Enum):
    """The child's stdin as `process/write` sees it."""

    NONE = "none"
    """Not piped (stdin is /dev/null): writes are `stdinClosed`."""
    OPEN = "open"
    CLOSING = "closing"
    """A write with `closeStdin` is queued: later writes are `stdinClosed`."""
    CLOSED = "closed"
    """Closed by the client: writes are `stdinClosed`."""
    GONE = "gone"
    """No reader is left: writes are `accepted` and dropped."""


def format_os_error(exc: OSError) -> str:
    """OS error text in the reference's form: ``No such file or directory (os error 2)``."""
    if exc.errno is None:
        return str(exc)
    return f"{os.strerror(exc.errno)} (os error {exc.errno})"


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
    resolve_program(spec.executable, spec.cwd)
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


class ManagedProcess:
    """A child process and everything the protocol remembers about it.

    Args:
        process_id: the client's id.
        emit: sends a notification frame toward the session's connection (or drops it).
        retention_bytes: output retained for `process/read`.
        sandboxed: whether the denial heuristic applies.
        on_closed: called once after `process/closed` was emitted.
        on_retained: ``(process, delta)`` after output changed the bytes its ring retains.
        denial_check: ``(exit_code, output) -> bool``, the sandbox denial heuristic.
    """

    def __init__(
        self,
        process_id: str,
        *,
        emit: Emit,
        retention_bytes: int,
        sandboxed: bool = False,
        on_closed: Callable[[ManagedProcess], None] | None = None,
        denial_check: Callable[[int, bytes], bool] | None = None,
        session_id: str = "",
        on_retained: Callable[[ManagedProcess, int], None] | None = None,
    ) -> None:
        self.process_id = process_id
        self._emit = emit
        self._loop = asyncio.get_running_loop()
        self.ring = OutputRing(retention_bytes)
        self.sandboxed = sandboxed
        self._on_closed = on_closed
        self._on_retained = on_retained
        self._denial_check = denial_check
        self._session_id = session_id
        self._prefix = output_prefix(process_id)
        self.pid = 0
        self.tty = False
        self._popen: subprocess.Popen[bytes] | None = None
        self._pidfd = -1
        self._streams: dict[int, str] = {}  # open output fd -> stream name
        self._paused = False
        self._stdin_fd: int | None = None
        self._held_master = -1
        self._stdin = StdinState.NONE
        self._write_queue: deque[tuple[memoryview, bool, asyncio.Future[str]]] = deque()
        self._writer_armed = False
        self.writes = WriteLog()
        self._cgroups: CgroupManager | None = None
        self._leaf: str | None = None
        self._cleanup: Callable[[], None] | None = None
        self._started_at = 0.0
        self._exit_pending: tuple[int, Any] | None = None
        self._pty_timer: asyncio.TimerHandle | None = None
        self.exited = False
        self.exit_code: int | None = None
        self.exit_seq = 0
        self.signal_name: str | None = None
        self.resource_usage: ResourceUsage | None = None
        self.sandbox_denied = False
        self.closed = False
        self._changed: asyncio.Future[None] | None = None

    # ------------------------------------------------------------------ spawn

    def spawn(self, spec: SpawnSpec, cgroups: CgroupManager | None, leaf: str | None) -> None:
        """Start the child (in ``leaf``, a cgroup of ``cgroups``, when given). Raises OSError
        (missing program, bad cwd, ...); the caller discards ``leaf`` then."""
        self.tty = spec.tty
        self._cleanup = spec.cleanup
        self._cgroups = cgroups if leaf is not None else None
        child_fds: list[int] = []
        parent_fds: list[int] = []
        try:
            if spec.tty:
                master, slave = os.openpty()
                parent_fds.append(master)
                child_fds.append(slave)
                fcntl.ioctl(
                    slave, termios.TIOCSWINSZ, struct.pack("HHHH", spec.rows, spec.cols, 0, 0)
                )
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
                popen = self._popen_child(spec, stdin, stdout, stderr, preexec_fn)
            finally:
                for fd in spec.helper_fds:
                    os.close(fd)
        except BaseException:
            for fd in parent_fds + child_fds:
                os.close(fd)
            self._run_cleanup()
            raise
        for fd in child_fds:
            os.close(fd)
        self._popen = popen
        self._leaf = leaf
        self.pid = popen.pid
        self._started_at = time.monotonic()
        loop = self._loop
        if spec.tty:
            master = parent_fds[0]
            os.set_blocking(master, False)
            self._streams[master] = "pty"
            self._stdin_fd = master
            self._stdin = StdinState.OPEN
        else:
            os.set_blocking(parent_fds[0], False)
            os.set_blocking(parent_fds[1], False)
            self._streams[parent_fds[0]] = "stdout"
            self._streams[parent_fds[1]] = "stderr"
            if spec.pipe_stdin:
                self._stdin_fd = parent_fds[2]
                self._stdin = StdinState.OPEN
                os.set_blocking(self._stdin_fd, False)
        for fd, stream in self._streams.items():
            loop.add_reader(fd, self._on_readable, fd, stream)
        self._pidfd = os.pidfd_open(self.pid)
        loop.add_reader(self._pidfd, self._on_pidfd)

    @staticmethod
    def _popen_child(
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

    # ------------------------------------------------------------------ output

    def _on_readable(self, fd: int, stream: str) -> None:
        """Read once into the shared buffer and publish what came (EOF on an empty read)."""
        try:
            n = os.readv(fd, _READ_BUFFERS)
        except BlockingIOError:
            return
        except OSError as exc:
            if exc.errno != errno.EIO:  # EIO: the pty's other side is closed
                log.warning("read of %s %s failed: %s", self.process_id, stream, exc)
            n = 0
        if n:
            self._record_output(stream, pybase64.b64encode(_READ_VIEW[:n]), n)
        else:
            self._on_eof(fd)

    def _record_output(self, stream: str, b64: bytes, size: int) -> None:
        before = self.ring.size
        seq = self.ring.append_encoded(stream, b64, size)
        if self._on_retained is not None:
            self._on_retained(self, self.ring.size - before)
        self._emit(*output_frame(self._prefix, seq, stream, b64))
        self._wake()

    def _on_eof(self, fd: int) -> None:
        self._loop.remove_reader(fd)
        if fd == self._stdin_fd:
            # A pty: its master is also the stdin side, and nobody is left to read it.
            self._stdin_gone()
        del self._streams[fd]
        if self.tty and self._pidfd >= 0:
            # Every holder of the terminal closed it (GNU cat closes its stdio before it
            # exits), but the process still runs: closing the master now would hang the
            # terminal up and SIGHUP it on its way out. It is closed once the process is
            # reaped, as a terminal emulator or sshd does.
            self._held_master = fd
        else:
            os.close(fd)
        if not self._streams and self._exit_pending is not None:
            self._record_exit()
        self._maybe_close()

    def _drain(self) -> None:
        """Read what the pipes already hold (bounded by their capacity)."""
        for fd, stream in list(self._streams.items()):
            for _ in range(64):
                if fd not in self._streams:
                    break
                try:
                    n = os.readv(fd, _READ_BUFFERS)
                except BlockingIOError:
                    break
                except OSError:
                    n = 0
                if n:
                    self._record_output(stream, pybase64.b64encode(_READ_VIEW[:n]), n)
                else:
                    self._on_eof(fd)

    def pause_reading(self) -> None:
        """Stop reading output (the connection is congested)."""
        if not self._paused:
            self._paused = True
            for fd in self._streams:
                self._loop.remove_reader(fd)

    def resume_reading(self) -> None:
        if self._paused:
            self._paused = False
            for fd, stream in self._streams.items():
                self._loop.add_reader(fd, self._on_readable, fd, stream)

    # ------------------------------------------------------------------ exit

    def _on_pidfd(self) -> None:
        try:
            pid, status, rusage = os.wait4(self.pid, os.WNOHANG)
        except ChildProcessError:
            pid, status, rusage = self.pid, 0, None
        if pid == 0:
            return
        self._loop.remove_reader(self._pidfd)
        os.close(self._pidfd)
        self._pidfd = -1
        self._close_held_master()
        wall_ms = int((time.monotonic() - self._started_at) * 1000)
        code = os.waitstatus_to_exitcode(status)
        if self._popen is not None:
            self._popen.returncode = code  # so Popen.__del__ never reaps it again
        if code < 0:
            try:
                self.signal_name = signal.Signals(-code).name
            except ValueError:
                self.signal_name = f"SIG{-code}"
            code = 128 - code
        if rusage is not None:
            self.resource_usage = ResourceUsage(
                wall_ms=wall_ms,
                user_cpu_ms=int(rusage.ru_utime * 1000),
                system_cpu_ms=int(rusage.ru_stime * 1000),
                max_rss_kb=int(rusage.ru_maxrss),
            )
        self._exit_pending = (code, rusage)
        self._drain()
        if self.exited:
            return  # the drain saw EOF on every stream and recorded the exit
        if self.tty and self._streams:
            # The pty reports EOF once its buffered output is flushed to us.
            self._pty_timer = self._loop.call_later(PTY_EOF_GRACE_S, self._record_exit)
            return
        self._record_exit()

    def _record_exit(self) -> None:
        if self.exited or self._exit_pending is None:
            return
        if self._pty_timer is not None:
            self._pty_timer.cancel()
            self._pty_timer = None
        code = self._exit_pending[0]
        self.exited = True
        self.exit_code = code
        METRICS.process_finished(
            "signaled" if self.signal_name else "exited", time.monotonic() - self._started_at
        )
        if self.sandboxed and code != 0 and self._denial_check is not None:
            self.sandbox_denied = self._denial_check(code, self.ring.all_output())
        self.exit_seq = self.ring.next()
        self._emit(
            encode_notification(
                "process/exited",
                ProcessExitedNotification(
                    process_id=ProcessId(self.process_id),
                    seq=Seq(self.exit_seq),
                    exit_code=code,
                    sandbox_denied=self.sandbox_denied,
                    signal=self.signal_name,
                    resource_usage=self.resource_usage,
                ),
            )
        )
        log.info(
            "process exited",
            extra={
                "session_id": self._session_id,
                "process_id": self.process_id,
                "exit_code": code,
                "signal": self.signal_name,
            },
        )
        self._wake()
        self._maybe_close()

    def _maybe_close(self) -> None:
        if self.closed or not self.exited or self._streams:
            return
        self.closed = True
        seq = self.ring.next()
        self._emit(
            encode_notification(
                "process/closed",
                ProcessClosedNotification(process_id=ProcessId(self.process_id), seq=Seq(seq)),
            )
        )
        self._stdin_gone()
        # The leaf is kept while background children live in it (a terminate kills them).
        leaf, cgroups = self._leaf, self._cgroups
        if leaf is not None and cgroups is not None and cgroups.try_remove(leaf):
            self._leaf = None
        self._run_cleanup()  # a sandboxed tree died with its PID namespace
        self._wake()
        if self._on_closed is not None:
            self._on_closed(self)

    # ------------------------------------------------------------------ read

    def _wake(self) -> None:
        fut = self._changed
        if fut is not None:
            self._changed = None
            if not fut.done():
                fut.set_result(None)

    def changed(self) -> asyncio.Future[None]:
        """A future resolved at the next output, exit or close."""
        if self._changed is None:
            self._changed = self._loop.create_future()
        return self._changed

    def ready_for(self, after_seq: int) -> bool:
        """Whether a `process/read` after ``after_seq`` returns without waiting."""
        if self.closed or (self.exited and self.exit_seq > after_seq):
            return True
        return self.ring.next_seq > after_seq + 1 and bool(self.ring.read(after_seq, 1).chunks)

    def snapshot(self, after_seq: int, max_bytes: int | None) -> ReadResult:
        sl = self.ring.read(after_seq, max_bytes)
        return ReadResult(
            chunks=[
                OutputChunk(seq=c.seq, stream=c.stream, chunk=c.b64.decode("ascii"))  # type: ignore[arg-type]  # stream names come from our own table
                for c in sl.chunks
            ],
            next_seq=sl.next_seq,
            exited=self.exited,
            exit_code=self.exit_code,
            closed=self.closed,
            failure=None,
            sandbox_denied=self.sandbox_denied,
            retained_from_seq=self.ring.retained_from_seq,
            signal=self.signal_name,
            resource_usage=self.resource_usage,
        )

    # ------------------------------------------------------------------ stdin

    def write(self, data: bytes, write_id: str, close_stdin: bool) -> asyncio.Future[str] | str:
        """Queue ``data`` for the child's stdin; returns the status or a future of it.

        Writes are applied in the order of the calls. A repeated ``write_id`` returns the
        outcome of its first use and writes nothing. Once nobody can read stdin any more (the
        process and its children closed it, or the process is closed), writes are
        ``accepted`` and dropped; after the client closed stdin, or without a stdin pipe,
        they are ``stdinClosed``.
        """
        prior = self.writes.get(write_id)
        if prior is not None:
            return prior
        outcome: asyncio.Future[str] | str
        state = self._stdin
        if state is StdinState.GONE:
            outcome = "accepted"
        elif state is not StdinState.OPEN or self._stdin_fd is None:
            outcome = "stdinClosed"
        else:
            if self.tty and close_stdin:
                # A terminal has no separate stdin to close: send its end-of-file character.
                data = data + bytes([termios.tcgetattr(self._stdin_fd)[6][termios.VEOF][0]])
                close_stdin = False
            written = self._write_now(data) if not self._write_queue else 0
            if written == len(data) and not close_stdin:
                outcome = "accepted"  # the common case: no queue, no future
            elif written < 0:
                outcome = "accepted"  # the reader is gone: accepted and dropped
            else:
                fut: asyncio.Future[str] = self._loop.create_future()
                self._write_queue.append((memoryview(data)[written:], close_stdin, fut))
                if close_stdin:
                    self._stdin = StdinState.CLOSING
                outcome = fut
                self._pump_stdin()
        self.writes.record(write_id, outcome)
        return outcome

    def _write_now(self, data: bytes) -> int:
        """Write what the pipe takes without waiting: bytes written, or -1 when the reader is
        gone (stdin is then marked gone)."""
        if not data or self._stdin_fd is None:
            return 0
        try:
            return os.write(self._stdin_fd, data)
        except BlockingIOError:
            return 0
        except OSError:
            self._stdin_gone()
            return -1

    def _pump_stdin(self) -> None:
        queue = self._write_queue
        while queue:
            fd = self._stdin_fd
            if fd is None:
                self._resolve_pending_writes()
                return
            data, close_after, fut = queue[0]
            if data:
                try:
                    n = os.write(fd, data)
                except BlockingIOError:
                    n = 0
                except OSError:
                    # The reader is gone (EPIPE, or EIO on a closed pty): accepted and dropped.
                    self._stdin_gone()
                    return
                if n < len(data):
                    queue[0] = (data[n:], close_after, fut)
                    if not self._writer_armed:
                        self._writer_armed = True
                        self._loop.add_writer(fd, self._pump_stdin)
                    return
            queue.popleft()
            if not fut.done():
                fut.set_result("accepted")
            if close_after:
                self._release_stdin_fd()
                self._stdin = StdinState.CLOSED
        self._disarm_writer()

    def _disarm_writer(self) -> None:
        if self._writer_armed:
            self._writer_armed = False
            if self._stdin_fd is not None:
                self._loop.remove_writer(self._stdin_fd)

    def _resolve_pending_writes(self) -> None:
        while self._write_queue:
            _, _, fut = self._write_queue.popleft()
            if not fut.done():
                fut.set_result("accepted")

    def _release_stdin_fd(self) -> None:
        self._disarm_writer()
        fd, self._stdin_fd = self._stdin_fd, None
        if fd is not None and fd not in self._streams:  # a pty master stays open for reading
            os.close(fd)

    def _stdin_gone(self) -> None:
        """Nobody will read stdin again: pending and later writes are accepted and dropped."""
        if self._stdin is StdinState.NONE or self._stdin is StdinState.CLOSED:
            self._release_stdin_fd()
            return
        self._release_stdin_fd()
        self._stdin = StdinState.GONE
        self._resolve_pending_writes()

    # ------------------------------------------------------------------ control

    def send_signal(self, name: str) -> None:
        """Signal the process group (for a tty, the terminal's foreground group)."""
        if self.exited:
            return
        sig = SIGNALS[name]
        pgid = self.pid
        if self.tty and self._stdin_fd is not None:
            try:
                foreground = os.tcgetpgrp(self._stdin_fd)
            except OSError:
                foreground = 0
            # 0 means "no foreground group" (the pty is nobody's controlling terminal), and
            # killpg(0) would signal the server's own group: only a real group is used.
            if foreground > 0 and foreground != os.getpgrp():
                pgid = foreground
        try:
            os.killpg(pgid, sig)
        except ProcessLookupError:
            pass
        except PermissionError:
            os.kill(self.pid, sig)

    def kill_tree(self) -> None:
        """SIGKILL the process and every descendant, also those that left its group."""
        if self._leaf is not None and self._cgroups is not None:
            self._cgroups.kill(self._leaf)
            if not self.exited:
                # The child enters its leaf itself, just after the spawn: one that has not
                # yet got there (nor forked) is killed directly.
                with contextlib.suppress(OSError):
                    os.killpg(self.pid, signal.SIGKILL)
            return
        if not self.exited:
            kill_descendants(self.pid)
        with contextlib.suppress(OSError):
            os.killpg(self.pid, signal.SIGKILL)

    def signal_tree(self, sig: int) -> None:
        """Send ``sig`` to every process of the tree (its cgroup, else its process group)."""
        leaf = self._leaf
        if leaf is not None:
            members = CgroupManager.members(leaf)
            if not self.exited and self.pid not in members:
                members.append(self.pid)  # not in its leaf yet (it enters it itself)
            for pid in members:
                with contextlib.suppress(OSError):
                    os.kill(pid, sig)
            return
        with contextlib.suppress(OSError):
            os.killpg(self.pid, sig)

    def terminate(self) -> bool:
        """Kill the whole tree; returns whether the process itself was still running."""
        running = not self.exited
        self.kill_tree()
        return running

    def resize(self, rows: int, cols: int) -> None:
        if not self.tty:
            raise invalid_request(f"process {self.process_id} is not a tty")
        fd = next(iter(self._streams), None)
        if fd is None:
            return
        fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))

    def release(self) -> None:
        """Forget the process (retention expired or session gone): kill what is left of its
        tree and free every fd and the cgroup leaf."""
        self.kill_tree()
        loop = self._loop
        if self._pty_timer is not None:
            self._pty_timer.cancel()
        self._stdin_gone()  # first: a pty's stdin is one of the streams closed below
        for fd in list(self._streams):
            loop.remove_reader(fd)
            os.close(fd)
        self._streams.clear()
        if self._pidfd >= 0:
            loop.remove_reader(self._pidfd)
            os.close(self._pidfd)
            self._pidfd = -1
        self._close_held_master()
        if self._leaf is not None and self._cgroups is not None:
            self._cgroups.discard_leaf(self._leaf)
            self._leaf = None
        self._run_cleanup()
        self._wake()

    def _close_held_master(self) -> None:
        fd, self._held_master = self._held_master, -1
        if fd >= 0:
            os.close(fd)

    def _run_cleanup(self) -> None:
        cleanup, self._cleanup = self._cleanup, None
        if cleanup is not None:
            try:
                cleanup()
            except Exception:
                log.exception("sandbox cleanup of %s failed", self.process_id)

    def is_reaped(self) -> bool:
        return self._pidfd < 0
