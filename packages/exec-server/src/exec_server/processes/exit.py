"""A child's end: reaping it through its pidfd, and its wait status in the protocol's terms
(docs/protocol.md §5: exit code n, or 128+N when killed by signal N)."""

from __future__ import annotations

import asyncio
import errno
import os
import resource
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass

from exec_server_protocol.process import ResourceUsage

__all__ = ["SIGNALS", "ExitStatus", "ExitWatch"]

SIGNALS = {
    "interrupt": signal.SIGINT,
    "terminate": signal.SIGTERM,
    "kill": signal.SIGKILL,
    "hangup": signal.SIGHUP,
    "quit": signal.SIGQUIT,
    "user1": signal.SIGUSR1,
    "user2": signal.SIGUSR2,
}
"""``process/signal`` names."""


@dataclass(frozen=True, slots=True)
class ExitStatus:
    """How a child ended, as the protocol reports it."""

    code: int | None
    """The exit code (128+N when killed by signal N); None when the status was lost (the
    child was reaped by someone else: nothing may be invented in its place)."""
    signal_name: str | None = None
    resource_usage: ResourceUsage | None = None

    @classmethod
    def from_wait(cls, status: int, rusage: resource.struct_rusage, wall_ms: int) -> ExitStatus:
        code = os.waitstatus_to_exitcode(status)
        signal_name = None
        if code < 0:
            try:
                signal_name = signal.Signals(-code).name
            except ValueError:
                signal_name = f"SIG{-code}"
            code = 128 - code
        usage = ResourceUsage(
            wall_ms=wall_ms,
            user_cpu_ms=int(rusage.ru_utime * 1000),
            system_cpu_ms=int(rusage.ru_stime * 1000),
            max_rss_kb=int(rusage.ru_maxrss),
        )
        return cls(code, signal_name, usage)


POLL_FIRST_S = 0.001
POLL_MAX_S = 0.05
"""Without pidfds (kernels before 5.3, gVisor): the child is polled, first after 1 ms, then
twice as long each time up to 50 ms (a short command is seen ending quickly, a long one costs
twenty ``wait4`` calls a second)."""

_pidfds = [hasattr(os, "pidfd_open")]
"""Whether pidfds work here (cleared at the first ENOSYS, then every watch polls)."""


class ExitWatch:
    """Reaps one child as soon as it ends (its pidfd becomes readable), without a task; where
    the kernel has no pidfds, by polling (see :data:`POLL_MAX_S`).

    Args:
        pid: the child.
        on_exit: called once with its :class:`ExitStatus`, after it was reaped.
    """

    __slots__ = ("_done", "_loop", "_on_exit", "_pid", "_pidfd", "_poll", "_started")

    def __init__(self, pid: int, on_exit: Callable[[ExitStatus], None]) -> None:
        self._loop = asyncio.get_running_loop()
        self._pid = pid
        self._on_exit = on_exit
        self._started = time.monotonic()
        self._done = False
        self._pidfd = -1
        self._poll: asyncio.TimerHandle | None = None
        if _pidfds[0]:
            try:
                self._pidfd = os.pidfd_open(pid)
            except OSError as exc:
                if exc.errno != errno.ENOSYS:
                    raise
                _pidfds[0] = False
        if self._pidfd >= 0:
            self._loop.add_reader(self._pidfd, self._on_readable)
        else:
            self._poll = self._loop.call_later(POLL_FIRST_S, self._on_poll, POLL_FIRST_S)

    @property
    def reaped(self) -> bool:
        return self._done

    def _on_poll(self, interval: float) -> None:
        self._poll = None
        if not self._on_readable():
            interval = min(interval * 2, POLL_MAX_S)
            self._poll = self._loop.call_later(interval, self._on_poll, interval)

    def _on_readable(self) -> bool:
        """Reap the child if it ended; returns whether it did."""
        try:
            pid, status, rusage = os.wait4(self._pid, os.WNOHANG)
        except ChildProcessError:
            exit_status = ExitStatus(None)  # reaped elsewhere: its status is gone
        else:
            if pid == 0:
                return False
            wall_ms = int((time.monotonic() - self._started) * 1000)
            exit_status = ExitStatus.from_wait(status, rusage, wall_ms)
        self._close()
        self._on_exit(exit_status)
        return True

    def _close(self) -> None:
        self._done = True
        if self._poll is not None:
            self._poll.cancel()
            self._poll = None
        if self._pidfd >= 0:
            self._loop.remove_reader(self._pidfd)
            os.close(self._pidfd)
            self._pidfd = -1

    def forget(self, on_reaped: Callable[[], None] | None = None) -> None:
        """Stop reporting the exit; a child not reaped yet is still reaped when it ends (so no
        zombie is left), and then ``on_reaped`` is called — at once if it was reaped."""
        if self._done:
            if on_reaped is not None:
                on_reaped()
            return

        def reaped(_: ExitStatus) -> None:
            if on_reaped is not None:
                on_reaped()

        self._on_exit = reaped
