"""Identifier types of the exec-server protocol.

They are `NewType`s over the wire types, so they cost nothing at run time and keep a
process id from being passed where a write id belongs.
"""

from __future__ import annotations

from typing import NewType

ProcessId = NewType("ProcessId", str)
"""Client-chosen id of a process, unique within its session."""

SessionId = NewType("SessionId", str)
"""Server-chosen random UUID v4 of a session; a bearer secret."""

WriteId = NewType("WriteId", str)
"""Client-chosen id of one `process/write`, used to make retries idempotent."""

HandleId = NewType("HandleId", str)
"""Client-chosen id of an open file handle (`fs/open`)."""

Seq = NewType("Seq", int)
"""Per-process event sequence number, starting at 1."""

RequestId = int | str
"""A JSON-RPC request id: an integer or a string (also empty)."""

__all__ = ["HandleId", "ProcessId", "RequestId", "Seq", "SessionId", "WriteId"]
