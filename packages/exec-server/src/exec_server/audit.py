"""The audit trail: one line per process start (or refused start) and one per process end, on
the ``exec_server.audit`` logger, so an operator can route them apart from the rest.

A start line holds the session (its id, cut by the log formatter), the principal's label (see
:class:`~exec_server.auth.Principal`: no token, no token hash beyond 8 hex digits), the process
id, ``argv[0]``, the cwd URI, whether the command is sandboxed, and the outcome: ``started`` or
the refusal's message (what the client was answered; an unexpected error is ``internal
error``). An end line holds the exit code and the signal (if one killed it), the duration and
the bytes of output until the exit, or the outcome ``killed with the session`` for a process
still running when its session ended. Never logged: environment values, arguments past
``argv[0]``, stdin, output, tokens. Client-supplied strings are escaped by the log formatter.

The process table tells the audit of each exit (:meth:`ProcessAudit.process_exited`), with
the output the process wrote by then.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Any

from exec_server_protocol.process import StartParams, StartResult

from .auth import Principal
from .processes import ManagedProcess, ProcessTable
from .wire_errors import wire_error

__all__ = ["ProcessAudit"]

log = logging.getLogger("exec_server.audit")


@dataclass
class _Running:
    proc: ManagedProcess
    started: float


class ProcessAudit:
    """The audit trail of one session's processes.

    Args:
        session_id: the session (logged through the formatter, which shows only a prefix).
        principal: who owns the session.
    """

    def __init__(self, session_id: str, principal: Principal) -> None:
        self._session_id = session_id
        self._principal = str(principal)
        self._by_id: dict[str, _Running] = {}

    def start(self, table: ProcessTable, p: StartParams) -> StartResult:
        """``table.start(p)``, with its start line.

        Raises:
            Whatever ``table.start`` raises, after logging the refusal.
        """
        extra: dict[str, Any] = {
            "session_id": self._session_id,
            "principal": self._principal,
            "process_id": p.process_id,
            "argv0": p.argv[0] if p.argv else "",
            "cwd": p.cwd,
        }
        try:
            result = table.start(p)
        except Exception as exc:
            extra["sandboxed"] = "yes" if p.sandbox is not None else "no"
            known = wire_error(exc)
            extra["outcome"] = known.message if known is not None else "internal error"
            if known is not None and known.data is not None and "reason" in known.data:
                # The path is in argv0= or cwd= already.
                extra["outcome"] += f" ({known.data['reason']})"
            log.info("process start refused", extra=extra)
            raise
        extra["sandboxed"] = "no" if result.sandbox_type == "none" else "yes"
        extra["outcome"] = "started"
        log.info("process start", extra=extra)
        self._by_id[p.process_id] = _Running(table.require(p.process_id), time.monotonic())
        return result

    def process_exited(self, proc: ManagedProcess) -> None:
        """``proc`` exited: its end line."""
        running = self._by_id.pop(proc.process_id, None)
        if running is not None:
            self._log_end(running, "exited", proc.exit_code, proc.signal_name)

    def session_closed(self) -> None:
        """The session ended: log the processes that were killed with it."""
        for running in self._by_id.values():
            self._log_end(running, "killed with the session", None, None)
        self._by_id.clear()

    def _log_end(
        self, running: _Running, outcome: str, exit_code: int | None, signal: str | None
    ) -> None:
        extra: dict[str, Any] = {
            "session_id": self._session_id,
            "principal": self._principal,
            "process_id": running.proc.process_id,
            "outcome": outcome,
            "duration_ms": int((time.monotonic() - running.started) * 1000),
            "output_bytes": running.proc.output_bytes,
        }
        if exit_code is not None:
            extra["exit_code"] = exit_code
        if signal is not None:
            extra["signal"] = signal
        log.info("process end", extra=extra)
