"""The one exception tree of exec-server, named for what the caller does next::

    ExecServerError
    ├── RpcError(code, message)      a JSON-RPC error: handlers raise it, it goes on the wire as is
    │   ├── QuotaExceeded(limit, ..) (server) a quota refused the request: -32011, counted by limit
    │   └── RemoteError              (client) the server answered a request with this error
    ├── SandboxUnavailable           the host cannot enforce the requested sandbox: refuse, never
    │                                run unsandboxed (server answers -32603)
    ├── ConnectionLost               (client) the connection dropped and could not be recovered
    │   └── SessionLost              (client) the session is gone: expired, unknown, taken over
    ├── OutputLost                   (client) output was evicted before it could be read
    ├── StdinClosed                  (client) a write to a process whose stdin is closed
    └── SandboxDenied                (client) the command probably failed because of the sandbox

Third-party exceptions are translated at the boundary (``raise ... from exc``).
"""

from __future__ import annotations

from typing import Any

from exec_server_protocol import ErrorCode

__all__ = [
    "ConnectionLost",
    "ExecServerError",
    "OutputLost",
    "QuotaExceeded",
    "RemoteError",
    "RpcError",
    "SandboxDenied",
    "SandboxUnavailable",
    "SessionLost",
    "StdinClosed",
    "internal_error",
    "invalid_params",
    "invalid_request",
    "not_found",
]


class ExecServerError(Exception):
    """Base of every exception exec-server raises on purpose."""


class RpcError(ExecServerError):
    """An error with a JSON-RPC code; its message is safe to send to the peer.

    Attributes:
        data: **[ours]** structured detail sent as the error's ``data`` (None: omitted).
    """

    def __init__(self, code: int, message: str, data: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.code = int(code)
        self.message = message
        self.data = data

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.code}, {self.message!r})"


class QuotaExceeded(RpcError):
    """A quota refused the request (-32011); the message names the limit and its flag.

    Attributes:
        limit: the quota's metric name (its flag without the dashes: ``max_sessions``).
    """

    def __init__(self, flag: str, message: str) -> None:
        super().__init__(ErrorCode.QUOTA_EXCEEDED, f"quota exceeded: {message} ({flag})")
        self.limit = flag.split()[0].lstrip("-").replace("-", "_")


class RemoteError(RpcError):
    """The server answered a request with an error."""


class SandboxUnavailable(ExecServerError):
    """The requested sandbox cannot be enforced on this host (the message says what is
    missing)."""


class ConnectionLost(ExecServerError):
    """The connection to the server dropped and could not be recovered."""


class SessionLost(ConnectionLost):
    """The server-side session is gone (expired, unknown or taken over)."""


class OutputLost(ExecServerError):
    """Output of a process was evicted from the server's retention before it was read.

    Attributes:
        process_id: the process.
        first_lost_seq: the first seq that could not be read.
        retained_from_seq: the oldest seq the server still had.
    """

    def __init__(self, process_id: str, first_lost_seq: int, retained_from_seq: int) -> None:
        super().__init__(
            f"process {process_id}: output seq {first_lost_seq}..{retained_from_seq - 1} "
            "was evicted before it could be read"
        )
        self.process_id = process_id
        self.first_lost_seq = first_lost_seq
        self.retained_from_seq = retained_from_seq


class StdinClosed(ExecServerError):
    """A write to a process that has no stdin pipe, whose stdin was closed, or that is gone."""


class SandboxDenied(ExecServerError):
    """The process probably failed because the sandbox blocked it.

    Attributes:
        exit_code: the process's exit code.
        output_tail: the last bytes of its output.
    """

    def __init__(self, exit_code: int, output_tail: bytes) -> None:
        super().__init__(f"command failed under the sandbox (exit code {exit_code})")
        self.exit_code = exit_code
        self.output_tail = output_tail


def invalid_request(message: str) -> RpcError:
    return RpcError(ErrorCode.INVALID_REQUEST, message)


def invalid_params(message: str) -> RpcError:
    return RpcError(ErrorCode.INVALID_PARAMS, message)


def internal_error(message: str) -> RpcError:
    return RpcError(ErrorCode.INTERNAL_ERROR, message)


def not_found(message: str) -> RpcError:
    return RpcError(ErrorCode.NOT_FOUND, message)
