"""The one exception tree of exec-server, named for what the caller does next::

    ExecServerError
    ├── RpcError(code, message)      a JSON-RPC error as a peer sent it
    │   └── RemoteError              (client) the server answered a request with this error
    ├── Refused                      (server) the request cannot be done as asked: tell the peer
    │   ├── InvalidArgument          a param fails a semantic check
    │   ├── BadRequest               a request the reference refuses as invalid (its own text)
    │   ├── UnknownProcess           no process of the session has this id
    │   ├── DuplicateProcess         the session has a process with this id already
    │   ├── NotATty                  a tty-only request for a process without a terminal
    │   ├── SessionTakenOver         another connection resumed this connection's session
    │   ├── UnknownSession           no live session of the caller has this id
    │   │   └── NotOwner             it exists but another principal created it
    │   ├── Draining                 the server is shutting down: no new session
    │   ├── QuotaExceeded(limit, ..) a quota refused the request (counted by limit)
    │   ├── NonLocalPath             a PathUri naming another host
    │   ├── UnknownHandle            no open file handle has this id
    │   ├── DuplicateHandle          an open (or opening) file handle has this id
    │   ├── FsClosed                 the session's file service is closed (session gone)
    │   └── FsRefused                an fs operation the reference refuses (picklable)
    │       └── FsLimitExceeded      ... because of a fixed fs limit (counted by limit)
    ├── OperationFailed              (server) a valid request whose work failed
    │   ├── SandboxUnavailable       the host cannot enforce the requested sandbox: refuse,
    │   │                            never run unsandboxed
    │   ├── SpawnFailed              the command could not be started (its OS error)
    │   ├── FsOsError                an fs operation's OS error
    │   ├── FsFailed                 an fs operation that failed past a limit (picklable)
    │   ├── FileChanged              the file changed while it was being opened
    │   └── ConfigReadFailed         the environment config file could not be read
    ├── ConnectionLost               (client) the connection dropped and could not be recovered
    │   └── SessionLost              (client) the session is gone: expired, unknown, taken over
    ├── OutputLost                   (client) output was evicted before it could be read
    ├── StdinClosed                  (client) a write to a process whose stdin is closed
    └── SandboxDenied                (client) the command probably failed because of the sandbox

Server-side exceptions carry facts, not wire text: each becomes a JSON-RPC error (code and
message) in one table, :mod:`exec_server.wire_errors`. Third-party exceptions are translated at
the boundary (``raise ... from exc``).
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "BadRequest",
    "ConfigReadFailed",
    "ConnectionLost",
    "Draining",
    "DuplicateHandle",
    "DuplicateProcess",
    "ExecServerError",
    "FileChanged",
    "FsClosed",
    "FsFailed",
    "FsLimitExceeded",
    "FsOsError",
    "FsRefused",
    "InvalidArgument",
    "NonLocalPath",
    "NotATty",
    "NotOwner",
    "OperationFailed",
    "OutputLost",
    "QuotaExceeded",
    "Refused",
    "RemoteError",
    "RpcError",
    "SandboxDenied",
    "SandboxUnavailable",
    "SessionLost",
    "SessionTakenOver",
    "SpawnFailed",
    "StdinClosed",
    "UnknownHandle",
    "UnknownProcess",
    "UnknownSession",
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


class RemoteError(RpcError):
    """The server answered a request with an error."""


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


# ---------------------------------------------------------------------- server: refusals


class Refused(ExecServerError):
    """The server refuses the request as asked; the peer is told why (see
    :mod:`exec_server.wire_errors`)."""


class _Said(Refused):
    """A refusal whose text is the site's own (``message``)."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class _ProcessRefused(Refused):
    """A refusal about one process (``process_id``)."""

    def __init__(self, process_id: str) -> None:
        super().__init__(process_id)
        self.process_id = process_id


class _HandleRefused(Refused):
    """A refusal about one file handle (``handle_id``)."""

    def __init__(self, handle_id: str) -> None:
        super().__init__(handle_id)
        self.handle_id = handle_id


class InvalidArgument(_Said):
    """A param fails a semantic check; ``message`` says which and why."""


class BadRequest(_Said):
    """A request the reference refuses as invalid (a value past one of its fixed limits, a
    malformed ``dataBase64``, ...); ``message`` is the reference's text."""


class UnknownProcess(_ProcessRefused):
    """No process of the session has this id."""


class DuplicateProcess(_ProcessRefused):
    """The session has a process with this id already."""


class NotATty(_ProcessRefused):
    """A request only a tty process takes (``process/resize``)."""


class SessionTakenOver(Refused):
    """Another connection resumed this connection's session."""


class UnknownSession(Refused, LookupError):
    """No live session has this id (never existed, or expired)."""

    def __init__(self, session_id: str) -> None:
        super().__init__(session_id)
        self.session_id = session_id


class NotOwner(UnknownSession):
    """The session exists but belongs to another owner: to that caller it is unknown."""


class Draining(Refused):
    """The server is draining (shutting down): it creates no new session."""


class QuotaExceeded(Refused):
    """A quota refused the request; the message names the limit and its flag.

    Attributes:
        flag: the quota's flag and value (``--max-sessions 256``).
        detail: what holds the quota.
        limit: the quota's metric name (its flag without the dashes: ``max_sessions``).
    """

    def __init__(self, flag: str, detail: str) -> None:
        super().__init__(flag, detail)
        self.flag = flag
        self.detail = detail
        self.limit = flag.split()[0].lstrip("-").replace("-", "_")


class NonLocalPath(Refused):
    """A PathUri of an fs method names another host."""

    def __init__(self, uri: str) -> None:
        super().__init__(uri)
        self.uri = uri


class UnknownHandle(_HandleRefused):
    """No open file handle has this id."""


class DuplicateHandle(_HandleRefused):
    """An open (or opening) file handle has this id."""


class FsClosed(Refused):
    """The session's file-system service is closed (the session ended)."""


class FsRefused(_Said):
    """An fs operation the reference refuses, with its text. Raised by the blocking
    operations, so it pickles (a sandboxed fs worker sends it back)."""


class _AtLimit(Exception):
    """An fs operation stopped by one of its fixed limits, with its text; ``limit`` names
    the limit for the metrics. Picklable: its args rebuild it."""

    def __init__(self, message: str, limit: str) -> None:
        Exception.__init__(self, message, limit)
        self.message = message
        self.limit = limit


class FsLimitExceeded(_AtLimit, FsRefused):
    """An fs operation refused by a fixed limit."""


# ---------------------------------------------------------------------- server: failures


class OperationFailed(ExecServerError):
    """A valid request whose work failed (see :mod:`exec_server.wire_errors`)."""


class SandboxUnavailable(OperationFailed):
    """The requested sandbox cannot be enforced on this host (the message says what is
    missing)."""


class _OsFailure(OperationFailed):
    """The work failed with an OS error (``error``)."""

    def __init__(self, error: OSError) -> None:
        super().__init__(error)
        self.error = error


class SpawnFailed(_OsFailure):
    """The command could not be started (or its program not found).

    Attributes:
        data: **[ours]** what was missing, sent as the error's ``data`` (None: omitted).
    """

    def __init__(self, error: OSError, data: dict[str, str] | None = None) -> None:
        super().__init__(error)
        self.data = data


class FsOsError(_OsFailure):
    """An fs operation's OS error."""


class FsFailed(_AtLimit, OperationFailed):
    """An fs operation that failed past one of its fixed limits (the reference answers it as
    an internal error)."""


class FileChanged(OperationFailed):
    """The file changed while it was being opened (a sandboxed ``fs/open``)."""


class ConfigReadFailed(OperationFailed):
    """The environment config file could not be read (or parsed); ``error`` says why."""

    def __init__(self, file: str, error: Exception) -> None:
        super().__init__(file, error)
        self.file = file
        self.error = error
