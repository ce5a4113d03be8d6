"""Checks and texts shared by the file-system RPCs (docs/protocol.md §9).

The blocking operations raise an :class:`OSError` (the service wraps it in
:class:`~exec_server.exceptions.FsOsError`) or an :class:`~exec_server.exceptions.FsRefused` /
:class:`~exec_server.exceptions.FsFailed`; all of them pickle, so they survive the trip back
from the sandboxed fs worker a server that is not root uses. Their wire codes and texts are
in :mod:`exec_server.wire_errors`.
"""

from __future__ import annotations

import binascii
import os

from exec_server_protocol import InvalidPathUriError, NonLocalHostError, parse_path_uri

from ..exceptions import InvalidArgument, NonLocalPath

__all__ = ["decode_base64", "display_path", "os_error_text", "parse_fs_path"]

_B64_ALPHABET = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/")


def os_error_text(exc: OSError) -> str:
    """The OS error in the reference's form: ``"No such file or directory (os error 2)"``."""
    if exc.errno is None:
        return exc.strerror or type(exc).__name__
    return f"{os.strerror(exc.errno)} (os error {exc.errno})"


def parse_fs_path(uri: str) -> str:
    """Parse the PathUri of an fs method.

    Raises:
        NonLocalPath: a non-local host.
        InvalidArgument: anything else that is not an acceptable PathUri.
    """
    try:
        return parse_path_uri(uri)
    except NonLocalHostError:
        raise NonLocalPath(uri) from None
    except InvalidPathUriError as exc:
        raise InvalidArgument(str(exc)) from None


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
