"""A child's end: reaping it through its pidfd, and its wait status in the protocol's terms
(docs/protocol.md §5: exit code n, or 128+N when killed by signal N)."""

from __future__ import annotations

import asyncio
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


class ExitWatch:
    """Reaps one child as soon as it ends (its pidfd becomes readable), without a task.

    Args:
        pid: the child.
        on_exit: called once with its :class:`ExitStatus`, after it was reaped.
    """

    __slots__ = ("_loop", "_on_exit", "_pid", "_pidfd", "_started")

    def __init__(self, pid: int, on_exit: Callable[[ExitStatus], None]) -> None:
        self._loop = asyncio.get_running_loop()
        self._pid = pid
        self._on_exit = on_exit
        self._started = time.monotonic()
        self._pidfd = os.pidfd_open(pid)
        self._loop.add_reader(self._pidfd, self._on_readable)

    @property
    def reaped(self) -> bool:
        return self._pidfd < 0

    def _on_readable(self) -> None:
        try:
            pid, status, rusage = os.wait4(self._pid, os.WNOHANG)
        except ChildProcessError:
            exit_status = ExitStatus(None)  # reaped elsewhere: its status is gone
        else:
            if pid == 0:
                return
            wall_ms = int((time.monotonic() - self._started) * 1000)
            exit_status = ExitStatus.from_wait(status, rusage, wall_ms)
        self._close()
        self._on_exit(exit_status)

    def _close(self) -> None:
        if self._pidfd >= 0:
            self._loop.remove_reader(self._pidfd)
            os.close(self._pidfd)
            self._pidfd = -1

    def forget(self, on_reaped: Callable[[], None] | None = None) -> None:
        """Stop reporting the exit; a child not reaped yet is still reaped when it ends (so no
        zombie is left), and then ``on_reaped`` is called — at once if it was reaped."""
        if self._pidfd < 0:
            if on_reaped is not None:
                on_reaped()
            return

        def reaped(_: ExitStatus) -> None:
            if on_reaped is not None:
                on_reaped()

        self._on_exit = reaped
