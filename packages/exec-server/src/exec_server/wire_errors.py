"""The one table where exceptions become wire errors (docs/protocol.md §1, §2, §6, §9).

Domain code raises the exceptions of :mod:`exec_server.exceptions`, which carry facts (a
process id, an OS error, a limit); :data:`WIRE_ERRORS` turns each into the JSON-RPC ``(code,
message)`` the reference sends for it. The texts are part of the wire contract: clients match
some of them (the takeover, an unknown session), and the differential tests compare all of
them with the reference. The texts a client recognises are built by
:mod:`exec_server_protocol.errors`, which the client matches with, so both use one definition.
An exception the table does not know is a bug: the boundary
(:func:`exec_server.rpc.error_frame`) logs it and answers a generic internal error.
"""

from __future__ import annotations

import errno
import os
from collections.abc import Callable
from typing import Any, NamedTuple

from exec_server_protocol import ErrorCode
from exec_server_protocol.errors import (
    SESSION_TAKEN_OVER,
    process_exists,
    unknown_process,
    unknown_session,
)

from .exceptions import (
    BadRequest,
    ConfigReadFailed,
    Draining,
    DuplicateHandle,
    DuplicateProcess,
    FileChanged,
    FsClosed,
    FsFailed,
    FsLimitExceeded,
    FsOsError,
    FsRefused,
    InvalidArgument,
    NonLocalPath,
    NotATty,
    QuotaExceeded,
    RpcError,
    SandboxUnavailable,
    SessionTakenOver,
    SpawnFailed,
    UnknownHandle,
    UnknownProcess,
    UnknownSession,
)

__all__ = [
    "SERVER_DRAINING_MESSAGE",
    "WIRE_ERRORS",
    "WireError",
    "format_os_error",
    "limit_hit",
    "wire_error",
]

SERVER_DRAINING_MESSAGE = (
    "server is draining (shutting down): no new sessions; retry on another server or after its "
    "restart"
)


class WireError(NamedTuple):
    code: int
    message: str
    data: dict[str, Any] | None = None
    """**[ours]** structured detail sent as the error's ``data``."""


def format_os_error(exc: OSError) -> str:
    """OS error text in the reference's form: ``No such file or directory (os error 2)``."""
    if exc.errno is None:
        return str(exc)
    return f"{os.strerror(exc.errno)} (os error {exc.errno})"


_INVALID_REQUEST_ERRNOS = frozenset({errno.EACCES, errno.EPERM, errno.EINVAL})


def _fs_os_error(exc: FsOsError) -> WireError:
    """The reference's mapping (codex 0.169.0, Rust ``io::ErrorKind``): ``ENOENT`` → -32004;
    ``EACCES``/``EPERM``/``EINVAL`` → -32600; anything else → -32603, with the OS text in
    Rust's form."""
    error = exc.error
    if error.errno is None:
        # Not a real OS error (an OSError raised by Python code); never leak its text.
        return WireError(ErrorCode.INTERNAL_ERROR, "file-system operation failed")
    text = format_os_error(error)
    if error.errno == errno.ENOENT:
        return WireError(ErrorCode.NOT_FOUND, text)
    if error.errno in _INVALID_REQUEST_ERRNOS:
        return WireError(ErrorCode.INVALID_REQUEST, text)
    return WireError(ErrorCode.INTERNAL_ERROR, text)


_R = ErrorCode.INVALID_REQUEST
_P = ErrorCode.INVALID_PARAMS
_I = ErrorCode.INTERNAL_ERROR

WIRE_ERRORS: dict[type[BaseException], Callable[[Any], WireError]] = {
    RpcError: lambda e: WireError(e.code, e.message, e.data),
    # Refusals
    InvalidArgument: lambda e: WireError(_P, e.message),
    BadRequest: lambda e: WireError(_R, e.message),
    UnknownProcess: lambda e: WireError(_R, unknown_process(e.process_id)),
    DuplicateProcess: lambda e: WireError(_R, process_exists(e.process_id)),
    NotATty: lambda e: WireError(_R, f"process {e.process_id} is not a tty"),
    SessionTakenOver: lambda e: WireError(_R, SESSION_TAKEN_OVER),
    UnknownSession: lambda e: WireError(_R, unknown_session(e.session_id)),
    Draining: lambda e: WireError(ErrorCode.SERVER_DRAINING, SERVER_DRAINING_MESSAGE),
    QuotaExceeded: lambda e: WireError(
        ErrorCode.QUOTA_EXCEEDED, f"quota exceeded: {e.detail} ({e.flag})"
    ),
    NonLocalPath: lambda e: WireError(_R, f"'{e.uri}' is invalid on 'linux'"),
    UnknownHandle: lambda e: WireError(ErrorCode.NOT_FOUND, f"unknown file handle `{e.handle_id}`"),
    DuplicateHandle: lambda e: WireError(_R, f"file handle `{e.handle_id}` already exists"),
    FsClosed: lambda e: WireError(_R, "the session's file-system service is closed"),
    FsRefused: lambda e: WireError(_R, e.message),
    # Failures
    SandboxUnavailable: lambda e: WireError(_I, str(e)),
    SpawnFailed: lambda e: WireError(_I, format_os_error(e.error), e.data),
    FsOsError: _fs_os_error,
    FsFailed: lambda e: WireError(_I, e.message),
    FileChanged: lambda e: WireError(_I, "the file changed while it was being opened"),
    ConfigReadFailed: lambda e: WireError(_I, f"failed to read {e.file}: {e.error}"),
}
"""Exception class -> its wire error; a subclass not listed takes its nearest base's entry."""


def wire_error(exc: BaseException) -> WireError | None:
    """The wire error for ``exc``; None for an exception the table does not know (a bug: the
    caller answers a generic internal error and logs it)."""
    for cls in type(exc).__mro__:
        entry = WIRE_ERRORS.get(cls)
        if entry is not None:
            return entry(exc)
    return None


def limit_hit(exc: BaseException) -> str | None:
    """The metric name of the limit that refused the request (a quota or a fixed fs limit)."""
    if isinstance(exc, (QuotaExceeded, FsLimitExceeded, FsFailed)):
        return exc.limit
    return None
