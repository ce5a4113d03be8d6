"""Error codes, close codes and the error texts a client recognises, defined once
(docs/protocol.md §1, §2, §4, §5).

The server builds these messages with the functions below and a client recognises them with
the matching ``is_*`` predicates, so the two cannot drift apart. The texts are the
reference's, word for word: a client of ours recognises them from either server.
"""

from __future__ import annotations

import enum
from typing import Final

__all__ = [
    "SESSION_TAKEN_OVER",
    "SESSION_TAKEN_OVER_REASON",
    "CloseCode",
    "ErrorCode",
    "is_process_exists",
    "is_session_taken_over",
    "is_unknown_process",
    "is_unknown_session",
    "process_exists",
    "unknown_process",
    "unknown_session",
]


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


class CloseCode(enum.IntEnum):
    """WebSocket close codes the server sends beyond the standard ones."""

    SESSION_TAKEN_OVER = 4000
    """Another connection resumed this connection's session (reason
    :data:`SESSION_TAKEN_OVER_REASON`)."""


SESSION_TAKEN_OVER: Final = "session has been resumed by another connection"
"""-32600 message of a request whose session another connection took over (e.g. a pending
long poll of the connection that lost it)."""

SESSION_TAKEN_OVER_REASON: Final = "session resumed by another connection"
"""Reason of the :attr:`CloseCode.SESSION_TAKEN_OVER` close frame."""

_UNKNOWN_SESSION: Final = "unknown session id "
_UNKNOWN_PROCESS: Final = "unknown process id "


def unknown_session(session_id: str) -> str:
    """-32600 message of ``initialize {resumeSessionId}`` naming no live session of the caller."""
    return _UNKNOWN_SESSION + session_id


def unknown_process(process_id: str) -> str:
    """-32600 message of a request naming a process the session does not have."""
    return _UNKNOWN_PROCESS + process_id


def process_exists(process_id: str) -> str:
    """-32600 message of a ``process/start`` reusing the id of a retained process."""
    return f"process {process_id} already exists"


def is_unknown_session(code: int, message: str) -> bool:
    """Whether an error is :func:`unknown_session`'s (of any session id)."""
    return code == ErrorCode.INVALID_REQUEST and message.startswith(_UNKNOWN_SESSION)


def is_unknown_process(code: int, message: str) -> bool:
    """Whether an error is :func:`unknown_process`'s (of any process id)."""
    return code == ErrorCode.INVALID_REQUEST and message.startswith(_UNKNOWN_PROCESS)


def is_process_exists(code: int, message: str, process_id: str) -> bool:
    """Whether an error is :func:`process_exists`'s for ``process_id``."""
    return code == ErrorCode.INVALID_REQUEST and message == process_exists(process_id)


def is_session_taken_over(message: str) -> bool:
    """Whether an error says the session was taken over (see :data:`SESSION_TAKEN_OVER`);
    told by the text alone, whatever the code (the reference answers -32010)."""
    return message == SESSION_TAKEN_OVER
