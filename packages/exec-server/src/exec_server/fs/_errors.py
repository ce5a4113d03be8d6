"""Errors of the file-system RPCs, in the reference's codes and texts (docs/protocol.md §9).

The blocking operations raise either an :class:`OSError` (translated by :func:`os_error_to_rpc`)
or an :class:`FsFailure` (a refusal with its JSON-RPC code already chosen).  Both pickle, so they
survive the trip back from a sandboxed child.

Reference mapping (codex 0.169.0, Rust ``io::ErrorKind``): ``ENOENT`` → -32004;
``EACCES``/``EPERM``/``EINVAL`` → -32600; anything else → -32603.  The message is always the OS
text in Rust's form, ``"Permission denied (os error 13)"``.
"""

from __future__ import annotations

import binascii
import errno as errno_mod
import os

from exec_server_protocol import ErrorCode, InvalidPathUriError, NonLocalHostError, parse_path_uri

from ..exceptions import RpcError, internal_error, invalid_params, invalid_request

__all__ = [
    "FsFailure",
    "FsLimitExceeded",
    "decode_base64",
    "display_path",
    "os_error_text",
    "os_error_to_rpc",
    "parse_fs_path",
]

_INVALID_REQUEST_ERRNOS = frozenset({errno_mod.EACCES, errno_mod.EPERM, errno_mod.EINVAL})
_B64_ALPHABET = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/")


class FsFailure(Exception):
    """A refusal of a file-system operation with its JSON-RPC code (picklable)."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(code, message)
        self.code = int(code)
        self.message = message

    def to_rpc(self) -> RpcError:
        return RpcError(self.code, self.message)


class FsLimitExceeded(FsFailure):
    """A refusal by one of the fixed fs limits; ``limit`` names it for the metrics."""

    def __init__(self, code: int, message: str, limit: str) -> None:
        Exception.__init__(self, code, message, limit)  # args rebuild it when unpickled
        self.code = int(code)
        self.message = message
        self.limit = limit

    def to_rpc(self) -> RpcError:
        # Imported here: sandboxed fs workers load this module but never translate errors.
        from ..metrics import METRICS

        METRICS.limit_hit(self.limit)
        return super().to_rpc()


def os_error_text(exc: OSError) -> str:
    """The OS error in the reference's form: ``"No such file or directory (os error 2)"``."""
    if exc.errno is None:
        return exc.strerror or type(exc).__name__
    return f"{os.strerror(exc.errno)} (os error {exc.errno})"


def os_error_to_rpc(exc: OSError) -> RpcError:
    """Translate an OS error into the wire error the reference sends for it."""
    if exc.errno is None:
        # Not a real OS error (an OSError raised by Python code); never leak its text.
        return internal_error("file-system operation failed")
    text = os_error_text(exc)
    if exc.errno == errno_mod.ENOENT:
        return RpcError(ErrorCode.NOT_FOUND, text)
    if exc.errno in _INVALID_REQUEST_ERRNOS:
        return invalid_request(text)
    return internal_error(text)


def parse_fs_path(uri: str) -> str:
    """Parse the PathUri of an fs method.

    Raises:
        RpcError: -32600 for a non-local host (the reference's text), -32602 for anything else
            that is not an acceptable PathUri.
    """
    try:
        return parse_path_uri(uri)
    except NonLocalHostError:
        raise invalid_request(f"'{uri}' is invalid on 'linux'") from None
    except InvalidPathUriError as exc:
        raise invalid_params(str(exc)) from None


def display_path(path: str) -> str:
    """A native path for a human-readable message (non-UTF-8 bytes become U+FFFD)."""
    return os.fsencode(path).decode("utf-8", "replace")


def decode_base64(data: str) -> bytes:
    """Decode strict standard base64 (padding required), as the reference does.

    Raises:
        ValueError: with the reference's wording, e.g. ``"Invalid symbol 33, offset 0."``.
    """
    try:
        return binascii.a2b_base64(data, strict_mode=True)
    except (binascii.Error, ValueError):
        pass
    for offset, ch in enumerate(data):
        if ch not in _B64_ALPHABET and ch != "=":
            raise ValueError(f"Invalid symbol {ord(ch) if ord(ch) < 256 else 0}, offset {offset}.")
    stripped = data.rstrip("=")
    if "=" in stripped:
        offset = stripped.index("=")
        raise ValueError(f"Invalid symbol {ord('=')}, offset {offset}.")
    if len(data) % 4:
        raise ValueError("Invalid input length.")
    raise ValueError("Invalid padding")
