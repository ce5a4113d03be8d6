"""What a :class:`~exec_server.client.Process` yields, in seq order, exactly once."""

from __future__ import annotations

from dataclasses import dataclass

from exec_server_protocol.process import ResourceUsage, StreamName

__all__ = ["ClosedEvent", "Event", "ExitEvent", "LostMarker", "OutputEvent"]


@dataclass(frozen=True, slots=True)
class OutputEvent:
    """A chunk of the process's output."""

    seq: int
    stream: StreamName
    data: bytes


@dataclass(frozen=True, slots=True)
class ExitEvent:
    """The process exited (output of background children may still follow)."""

    seq: int
    exit_code: int
    sandbox_denied: bool = False
    signal: str | None = None
    resource_usage: ResourceUsage | None = None


@dataclass(frozen=True, slots=True)
class ClosedEvent:
    """The last event: the exit is known and every output stream reached EOF."""

    seq: int


@dataclass(frozen=True, slots=True)
class LostMarker:
    """Seqs ``first_seq``..``retained_from_seq - 1`` were evicted before they were read
    (turned into :class:`~exec_server.exceptions.OutputLost` for the caller)."""

    first_seq: int
    retained_from_seq: int


Event = OutputEvent | ExitEvent
"""What iterating a process yields."""
