"""The server-wide process settings every session's :class:`~.table.ProcessTable` shares.

A module of its own so the server can make them at start without importing the process
machinery (that comes with the first session).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .process import ManagedProcess
    from .table import ProcessTable
    from .tree import CgroupManager

__all__ = ["ProcessConfig"]


class ProcessConfig:
    """Server-wide process settings shared by every session (the server's configuration has
    the defaults)."""

    def __init__(
        self,
        *,
        retention_bytes: int,
        closed_retention_s: float,
        cgroups: CgroupManager | None,
        max_processes: int,
        max_processes_per_session: int,
        max_retained_bytes: int,
        max_session_retained_bytes: int,
        child_fd_limit: int | None = None,
    ) -> None:
        self.child_fd_limit = child_fd_limit
        """RLIMIT_NOFILE soft limit every command starts with; None: the server's own."""
        self.max_processes = max_processes
        self.max_processes_per_session = max_processes_per_session
        self.max_retained_bytes = max_retained_bytes
        self.max_session_retained_bytes = max_session_retained_bytes
        self.retained = 0
        """Output bytes retained by every process of the server."""
        self.closed_retained: dict[ManagedProcess, ProcessTable] = {}
        """Closed processes that still retain output, oldest close first."""
        self.retention_bytes = retention_bytes
        self.closed_retention_s = closed_retention_s
        self.cgroups = cgroups
        self.live_pids: set[int] = set()
        """Pids reaped by their ManagedProcess (the orphan reaper leaves them alone)."""
        self.on_settled: Callable[[], None] | None = None
        """Called when a table may have become :attr:`ProcessTable.settled` (a process closed,
        its end was read, or it was forgotten); the server's drain waits on it."""
