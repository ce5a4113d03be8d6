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

Ends and output sizes are read from the session's outgoing notifications (:meth:`observe`):
the process table offers no exit hook, and this costs one dictionary lookup per output frame.
It relies on the table's output frames being the protocol's fast path (``output_frame``):
the per-process ``output_prefix`` as first part and the base64 chunk as fourth part, and on
``process/exited`` being one frame; a test checks both.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Any

import orjson
from exec_server_protocol import output_prefix
from exec_server_protocol.process import StartParams, StartResult

from .auth import Principal
from .processes import ProcessTable
from .wire_errors import wire_error

__all__ = ["ProcessAudit"]

log = logging.getLogger("exec_server.audit")

_EXITED = b'{"method":"process/exited",'


def _b64_size(b64: bytes) -> int:
    """Decoded size of padded base64."""
    return len(b64) // 4 * 3 - (b64[-2:].count(b"=") if b64 else 0)


@dataclass
class _Running:
    process_id: str
    prefix: bytes
    started: float
    output_bytes: int = 0


class ProcessAudit:
    """The audit trail of one session's processes.

    Args:
        session_id: the session (logged through the formatter, which shows only a prefix).
        principal: who owns the session.
    """

    def __init__(self, session_id: str, principal: Principal) -> None:
        self._session_id = session_id
        self._principal = str(principal)
        self._by_prefix: dict[bytes, _Running] = {}
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
        running = _Running(p.process_id, output_prefix(p.process_id), time.monotonic())
        self._by_prefix[running.prefix] = running
        self._by_id[p.process_id] = running
        return result

    def observe(self, parts: tuple[bytes, ...]) -> None:
        """Look at one outgoing frame (as its parts): count output, log exits."""
        running = self._by_prefix.get(parts[0])
        if running is not None:
            if len(parts) > 3:
                running.output_bytes += _b64_size(parts[3])
        elif parts[0].startswith(_EXITED):
            params = orjson.loads(b"".join(parts))["params"]
            running = self._forget(params["processId"])
            if running is not None:
                self._log_end(running, "exited", params.get("exitCode"), params.get("signal"))

    def session_closed(self) -> None:
        """The session ended: log the processes that were killed with it."""
        for process_id in list(self._by_id):
            running = self._forget(process_id)
            if running is not None:
                self._log_end(running, "killed with the session", None, None)

    def _forget(self, process_id: str) -> _Running | None:
        running = self._by_id.pop(process_id, None)
        if running is not None:
            self._by_prefix.pop(running.prefix, None)
        return running

    def _log_end(
        self, running: _Running, outcome: str, exit_code: int | None, signal: str | None
    ) -> None:
        extra: dict[str, Any] = {
            "session_id": self._session_id,
            "principal": self._principal,
            "process_id": running.process_id,
            "outcome": outcome,
            "duration_ms": int((time.monotonic() - running.started) * 1000),
            "output_bytes": running.output_bytes,
        }
        if exit_code is not None:
            extra["exit_code"] = exit_code
        if signal is not None:
            extra["signal"] = signal
        log.info("process end", extra=extra)
