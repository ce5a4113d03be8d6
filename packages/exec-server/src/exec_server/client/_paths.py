"""Native paths to the `file:` URIs of the wire (docs/protocol.md §7), and back."""

from __future__ import annotations

import os
from typing import Union

from exec_server_protocol import InvalidPathUriError, PathUri, format_path_uri, parse_path_uri

__all__ = ["Argv", "RemotePath", "argv_list", "native", "to_uri"]

Argv = list[str] | tuple[str, ...]


def argv_list(argv: Argv | str | bytes) -> list[str]:
    """``argv`` as a list; a str (which would be split into characters) is a TypeError."""
    if isinstance(argv, (str, bytes)):
        raise TypeError(
            "argv must be a list of strings, not a string (e.g. ['sh', '-c', 'echo hi'])"
        )
    return list(argv)


"""A command: a list (or tuple) of strings. Not any ``Sequence[str]``: a ``str`` is one, and
``"echo hi"`` would run a program named ``e``."""

RemotePath = Union[str, "os.PathLike[str]"]
"""A path on the server: a native absolute path (``str`` or :class:`pathlib.Path`) or a
``file:`` URI."""


def to_uri(path: RemotePath) -> PathUri:
    """The wire form of ``path``.

    Raises:
        TypeError: not a str or path-like object (bytes included).
        ValueError: a relative path (the client does not know which directory it would be
            relative to), or a malformed ``file:`` URI.
    """
    text = os.fspath(path)
    if not isinstance(text, str):
        raise TypeError(f"expected a str or os.PathLike[str] path, got {type(path).__name__}")
    if text[:5].lower() == "file:":
        try:
            parse_path_uri(text)
        except InvalidPathUriError as exc:
            raise ValueError(f"bad file: URI {text!r}: {exc}") from None
        return PathUri(text)
    if not text.startswith("/"):
        raise ValueError(f"path must be absolute on the server: {text!r}")
    return PathUri(format_path_uri(text))


def native(path: RemotePath) -> str:
    """``path`` as a native absolute path (for messages and ``OSError.filename``)."""
    text = os.fspath(path)
    if isinstance(text, str) and text[:5].lower() == "file:":
        try:
            return parse_path_uri(text)
        except InvalidPathUriError:
            return text
    return str(text)
