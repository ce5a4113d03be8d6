"""Error codes of the protocol (docs/protocol.md §1)."""

from __future__ import annotations

import enum

__all__ = ["ErrorCode"]


class ErrorCode(enum.IntEnum):
    """JSON-RPC error codes used by exec-server."""

    INVALID_REQUEST = -32600
    """Invalid request, protocol state, unknown process/session, duplicate id."""
    METHOD_NOT_FOUND = -32601
    INVALID_PARAMS = -32602
    """Params that fail to decode or fail a semantic check."""
    INTERNAL_ERROR = -32603
    """OS, spawn and internal failures."""
    NOT_FOUND = -32004
    """Filesystem not-found and unknown file handle."""
    SERVER_DRAINING = -32010
    """The server is draining (shutting down): it creates no new session. Retryable, on
    another server or after a restart; resuming an existing session still works."""
    QUOTA_EXCEEDED = -32011
    """A quota refused the request (the message names the limit and its flag); retryable
    once what holds the quota is gone."""
