"""Wire errors turned into the exceptions a Python programmer already catches.

A file-system error is raised as the built-in :class:`OSError` subclass its OS error names
(:class:`FileNotFoundError`, :class:`PermissionError`, :class:`IsADirectoryError`, ...), with
``errno``, ``strerror`` and ``filename`` (the native path the caller gave), and it is also a
:class:`~exec_server.exceptions.RemoteError` (``code``, ``message``: the wire error as sent)::

    RemoteError
    └── RemoteOSError (OSError)         an fs or spawn error that carries an OS error
        ├── RemoteFileNotFoundError     (FileNotFoundError)
        │   ├── ProgramNotFound         process/start: argv[0] was not found
        │   └── CwdNotFound             process/start: the working directory does not exist
        ├── RemotePermissionError       (PermissionError; also a write refused by a sandbox:
        │                                "Read-only file system" on the wire)
        ├── RemoteIsADirectoryError     (IsADirectoryError)
        ├── RemoteNotADirectoryError    (NotADirectoryError)
        └── RemoteFileExistsError       (FileExistsError)

The server answers with the reference's codes and texts (``-32004 No such file or directory
(os error 2)``); the OS error number is read from that text.
"""

from __future__ import annotations

import errno as errno_mod
import os
import re
from typing import Any

from exec_server_protocol import ErrorCode

from ..exceptions import RemoteError

__all__ = [
    "CwdNotFound",
    "ProgramNotFound",
    "RemoteFileExistsError",
    "RemoteFileNotFoundError",
    "RemoteIsADirectoryError",
    "RemoteNotADirectoryError",
    "RemoteOSError",
    "RemotePermissionError",
    "translate_fs_error",
    "translate_start_error",
]

_OS_ERROR = re.compile(r"\(os error (\d+)\)\s*$")


class RemoteOSError(OSError, RemoteError):
    """An OS error on the server. ``errno``/``strerror``/``filename`` as for :class:`OSError`;
    ``code``/``message`` as for :class:`RemoteError`."""

    def __new__(cls, code: int, message: str, errno: int, filename: str | None) -> RemoteOSError:
        return OSError.__new__(cls, errno, os.strerror(errno), filename)

    def __init__(self, code: int, message: str, errno: int, filename: str | None) -> None:
        OSError.__init__(self, errno, os.strerror(errno), filename)
        self.code = int(code)
        self.message = message

    def __reduce__(self) -> Any:
        return (type(self), (self.code, self.message, self.errno, self.filename))


class RemoteFileNotFoundError(RemoteOSError, FileNotFoundError):
    """The path does not exist on the server."""


class RemotePermissionError(RemoteOSError, PermissionError):
    """The server refused access (also: a write refused by the request's sandbox)."""


class RemoteIsADirectoryError(RemoteOSError, IsADirectoryError):
    """A file operation on a directory."""


class RemoteNotADirectoryError(RemoteOSError, NotADirectoryError):
    """A directory operation on something that is not one (or a path through a file)."""


class RemoteFileExistsError(RemoteOSError, FileExistsError):
    """The path exists already."""


class ProgramNotFound(RemoteFileNotFoundError):
    """``process/start``: the program (``argv[0]``, in :attr:`filename`) was not found."""


class CwdNotFound(RemoteFileNotFoundError):
    """``process/start``: the working directory (in :attr:`filename`) does not exist."""


_BY_ERRNO: dict[int, type[RemoteOSError]] = {
    errno_mod.ENOENT: RemoteFileNotFoundError,
    errno_mod.EACCES: RemotePermissionError,
    errno_mod.EPERM: RemotePermissionError,
    errno_mod.EROFS: RemotePermissionError,
    errno_mod.EISDIR: RemoteIsADirectoryError,
    errno_mod.ENOTDIR: RemoteNotADirectoryError,
    errno_mod.EEXIST: RemoteFileExistsError,
}


def _errno_of(exc: RemoteError) -> int | None:
    m = _OS_ERROR.search(exc.message)
    if m is not None:
        return int(m.group(1))
    if exc.code == ErrorCode.NOT_FOUND:
        return errno_mod.ENOENT
    if exc.code == ErrorCode.INVALID_REQUEST and exc.message.endswith("is not a file"):
        return errno_mod.EISDIR  # fs/readFile of a directory: "path `/x` is not a file"
    return None


def translate_fs_error(exc: RemoteError, path: str | None) -> RemoteError:
    """The exception to raise for ``exc``, the answer to an fs request about ``path``.

    An error that names no OS error (bad params, a quota, ...) is returned unchanged.
    """
    number = _errno_of(exc)
    if number is None:
        return exc
    cls = _BY_ERRNO.get(number, RemoteOSError)
    return cls(exc.code, exc.message, number, path)


def translate_start_error(
    exc: RemoteError, argv0: str, cwd: str, reason: str | None
) -> RemoteError:
    """The exception to raise for a refused ``process/start``.

    Args:
        exc: the server's answer.
        argv0: the program asked for.
        cwd: the working directory asked for (native path).
        reason: what was missing: the ``reason`` of the error's ``data`` ([ours]:
            ``programNotFound``, ``cwdNotFound``, ``cwdNotADirectory``,
            ``programNotExecutable``), or what the client found out by itself against a
            server that sends none.
    """
    number = _errno_of(exc) if exc.code == ErrorCode.INTERNAL_ERROR else None
    if number is None:
        return exc
    if reason == "cwdNotFound":
        return CwdNotFound(exc.code, exc.message, number, cwd)
    if reason == "cwdNotADirectory":
        return RemoteNotADirectoryError(exc.code, exc.message, number, cwd)
    if number == errno_mod.ENOENT:
        return ProgramNotFound(exc.code, exc.message, number, argv0)
    return _BY_ERRNO.get(number, RemoteOSError)(exc.code, exc.message, number, argv0)
