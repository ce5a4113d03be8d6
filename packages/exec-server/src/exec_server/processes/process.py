"""One supervised child process and what the protocol remembers about it.

Lifecycle, in seq order: output chunks (``process/output``), then ``process/exited`` once the
exit status is known *and* what the process's own pipes already hold has been read, then
``process/closed`` once every output stream reached EOF. The concerns live in their own
modules, composed here: :mod:`.spawn` (pipes or pty, cgroup join, ``Popen``), :mod:`.output`
(pumps), :mod:`.stdin` (the write queue), :mod:`.exit` (reaping through a
pidfd) and :class:`~.tree.ProcessTree` (signals and kill of the whole tree).
"""

from __future__ import annotations

import asyncio
import fcntl
import logging
import os
import struct
import subprocess
import termios
import time
from collections.abc import Callable
from typing import Protocol

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

from ..exceptions import NotATty
from ..metrics import METRICS
from .exit import SIGNALS, ExitStatus, ExitWatch
from .output import OutputPumps
from .ring import OutputRing
from .spawn import SpawnSpec, start_child
from .stdin import StdinWriter
from .tree import CgroupManager, ProcessTree
from .writes import WriteOutcome

__all__ = ["EXIT_STATUS_LOST", "Emit", "ManagedProcess"]

log = logging.getLogger("exec_server.process")

PTY_EOF_GRACE_S = 0.25
"""How long an exited tty process's pty may take to report EOF before `exited` is recorded
anyway (background children may hold the pty open)."""
EXIT_STATUS_LOST = -1
"""The ``exitCode`` of a process whose wait status was lost (reaped by someone else; the read
result's ``failure`` says so): not a status a process can exit with, so no status is
invented."""


class Emit(Protocol):
    """Sends one notification, given as the parts it concatenates to."""

    def __call__(self, *parts: bytes) -> None: ...


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

    __slots__ = (
        "_changed",
        "_cleanup",
        "_denial_check",
        "_emit",
        "_exit_pending",
        "_exit_watch",
        "_held_master",
        "_loop",
        "_on_closed",
        "_on_exited",
        "_on_retained",
        "_popen",
        "_prefix",
        "_pty_timer",
        "_pumps",
        "_session_id",
        "_started_at",
        "_stdin",
        "_tree",
        "closed",
        "exit_code",
        "exit_seq",
        "exited",
        "failure",
        "output_bytes",
        "pid",
        "process_id",
        "resource_usage",
        "ring",
        "sandbox_denied",
        "sandboxed",
        "signal_name",
        "tty",
    )

    def __init__(
        self,
        process_id: str,
        *,
        emit: Emit,
        retention_bytes: int,
        sandboxed: bool = False,
        on_closed: Callable[[ManagedProcess], None] | None = None,
        on_exited: Callable[[ManagedProcess], None] | None = None,
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
        self._on_exited = on_exited
        self._on_retained = on_retained
        self._denial_check = denial_check
        self._session_id = session_id
        self._prefix = output_prefix(process_id)
        self.pid = 0
        self.tty = False
        self._popen: subprocess.Popen[bytes] | None = None
        self._pumps: OutputPumps | None = None
        self._stdin: StdinWriter | None = None
        self._exit_watch: ExitWatch | None = None
        self._tree: ProcessTree | None = None
        self._held_master = -1
        self._cleanup: Callable[[], None] | None = None
        self._started_at = 0.0
        self._exit_pending: ExitStatus | None = None
        self._pty_timer: asyncio.TimerHandle | None = None
        self.exited = False
        self.exit_code: int | None = None
        self.exit_seq = 0
        self.output_bytes = 0
        """Output read from the process (every stream), before and after its exit."""
        self.signal_name: str | None = None
        self.resource_usage: ResourceUsage | None = None
        self.failure: str | None = None
        self.sandbox_denied = False
        self.closed = False
        self._changed: asyncio.Future[None] | None = None

    # ------------------------------------------------------------------ spawn

    def spawn(
        self,
        spec: SpawnSpec,
        cgroups: CgroupManager | None,
        leaf: str | None,
        *,
        reading: bool = True,
    ) -> None:
        """Start the child (in ``leaf``, a cgroup of ``cgroups``, when given), its output
        pumped at once when ``reading`` (else from :meth:`resume_reading` on). Raises OSError
        (missing program, bad cwd, ...); the caller discards ``leaf`` then."""
        self.tty = spec.tty
        self._cleanup = spec.cleanup
        try:
            child = start_child(spec, leaf)
        except BaseException:
            self._run_cleanup()
            raise
        self._popen = child.popen
        self.pid = child.popen.pid
        self._started_at = time.monotonic()
        self._tree = ProcessTree(self.pid, cgroups, leaf)
        self._stdin = StdinWriter(child.stdin_fd, tty=spec.tty)
        self._pumps = OutputPumps(
            child.streams, on_output=self._record_output, on_eof=self._on_eof, name=self.process_id
        )
        if reading:
            self._pumps.resume()
        self._exit_watch = ExitWatch(self.pid, self._on_exit)

    # ------------------------------------------------------------------ output

    def _record_output(self, stream: str, b64: bytes, size: int) -> None:
        before = self.ring.size
        self.output_bytes += size
        seq = self.ring.append_encoded(stream, b64, size)
        if self._on_retained is not None:
            self._on_retained(self, self.ring.size - before)
        self._emit(*output_frame(self._prefix, seq, stream, b64))
        self._wake()

    def _on_eof(self, fd: int) -> None:
        stdin = self._stdin
        if stdin is not None and fd == stdin.fd:
            # A pty: its master is also the stdin side, and nobody is left to read it.
            stdin.gone()
        if self.tty and not self._reaped:
            # Every holder of the terminal closed it (GNU cat closes its stdio before it
            # exits), but the process still runs: closing the master now would hang the
            # terminal up and SIGHUP it on its way out. It is closed once the process is
            # reaped, as a terminal emulator or sshd does.
            self._held_master = fd
        else:
            os.close(fd)
        if not self._pumps and self._exit_pending is not None:
            self._record_exit()
        self._maybe_close()

    def pause_reading(self) -> None:
        """Stop reading output (the connection is congested). Whether reading is paused is
        the owner's to remember (:class:`~.table.ProcessTable`): this and
        :meth:`resume_reading` are called on its transitions only."""
        if self._pumps is not None:
            self._pumps.pause()

    def resume_reading(self) -> None:
        if self._pumps is not None:
            self._pumps.resume()

    # ------------------------------------------------------------------ exit

    @property
    def _reaped(self) -> bool:
        return self._exit_watch is None or self._exit_watch.reaped

    def _on_exit(self, status: ExitStatus) -> None:
        self._close_held_master()
        if self._popen is not None:
            # So Popen.__del__ never reaps it again.
            self._popen.returncode = EXIT_STATUS_LOST if status.code is None else status.code
        if status.code is None:
            log.error(
                "process %s was reaped by someone else: its exit status is lost",
                self.process_id,
            )
            self.failure = "exit status lost: the process was reaped by another waiter"
        self.signal_name = status.signal_name
        self.resource_usage = status.resource_usage
        self._exit_pending = status
        assert self._pumps is not None
        self._pumps.drain()
        if self.exited:
            return  # the drain saw EOF on every stream and recorded the exit
        if self.tty and self._pumps:
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
        status = self._exit_pending.code
        code = EXIT_STATUS_LOST if status is None else status
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
        if self._on_exited is not None:
            self._on_exited(self)
        self._wake()
        self._maybe_close()

    def _maybe_close(self) -> None:
        if self.closed or not self.exited or self._pumps:
            return
        self.closed = True
        seq = self.ring.next()
        self._emit(
            encode_notification(
                "process/closed",
                ProcessClosedNotification(process_id=ProcessId(self.process_id), seq=Seq(seq)),
            )
        )
        if self._stdin is not None:
            self._stdin.gone()
        # The leaf is kept while background children live in it (a terminate kills them).
        if self._tree is not None:
            self._tree.try_remove_leaf()
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
            failure=self.failure,
            sandbox_denied=self.sandbox_denied,
            retained_from_seq=self.ring.retained_from_seq,
            signal=self.signal_name,
            resource_usage=self.resource_usage,
        )

    # ------------------------------------------------------------------ stdin

    def write(self, data: bytes, write_id: str, close_stdin: bool) -> WriteOutcome:
        """Queue ``data`` for the child's stdin (see :meth:`.stdin.StdinWriter.write`)."""
        assert self._stdin is not None  # the table holds started processes only
        return self._stdin.write(data, write_id, close_stdin)

    # ------------------------------------------------------------------ control

    def send_signal(self, name: str) -> None:
        """Signal the process group (for a tty, the terminal's foreground group)."""
        if self.exited:
            return
        sig = SIGNALS[name]
        pgid = self.pid
        tty_fd = self._stdin.fd if self._stdin is not None else None
        if self.tty and tty_fd is not None:
            try:
                foreground = os.tcgetpgrp(tty_fd)
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
        if self._tree is not None:
            self._tree.kill(exited=self.exited)

    def signal_tree(self, sig: int) -> None:
        """Send ``sig`` to every process of the tree (its cgroup, else its process group)."""
        if self._tree is not None:
            self._tree.signal(sig, exited=self.exited)

    def terminate(self) -> bool:
        """Kill the whole tree; returns whether the process itself was still running."""
        running = not self.exited
        self.kill_tree()
        return running

    def resize(self, rows: int, cols: int) -> None:
        if not self.tty:
            raise NotATty(self.process_id)
        fd = self._pumps.first() if self._pumps is not None else None
        if fd is None:
            return
        fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))

    def release(self, on_reaped: Callable[[], None] | None = None) -> None:
        """Forget the process (retention expired or session gone): kill what is left of its
        tree and free every fd and the cgroup leaf. A process not reaped yet is reaped when
        its death is reported, without blocking; ``on_reaped`` is called then (at once if it
        was reaped)."""
        self.kill_tree()
        if self._pty_timer is not None:
            self._pty_timer.cancel()
        if self._stdin is not None:
            self._stdin.gone()  # first: a pty's stdin is the stream closed below
        if self._pumps is not None:
            self._pumps.close()
        self._close_held_master()
        if self._exit_watch is not None:
            popen = self._popen

            def reaped() -> None:
                if popen is not None and popen.returncode is None:
                    popen.returncode = EXIT_STATUS_LOST  # so Popen.__del__ never reaps it
                if on_reaped is not None:
                    on_reaped()

            self._exit_watch.forget(reaped)
        elif on_reaped is not None:
            on_reaped()
        if self._tree is not None:
            self._tree.discard_leaf()
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
