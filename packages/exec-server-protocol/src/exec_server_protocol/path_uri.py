"""`file:` URIs, the only form of path on the wire (docs/protocol.md §7).

Accepted: ``file:///abs``, ``file://localhost/abs``, ``file:/abs``, any-case scheme, ``.`` and
``..`` segments (normalised), percent-escapes (decoded).  Rejected: native paths, relative
strings, the empty string, other schemes, query or fragment, user-info or port, an encoded NUL.
A host other than ``localhost`` is reported separately (:class:`NonLocalHostError`) because
callers answer it with different error codes. Messages are the reference's.

Paths are returned as ``str`` decoded with ``surrogateescape``, so non-UTF-8 file names survive a
round trip (:func:`format_path_uri` re-encodes them byte for byte).
"""

from __future__ import annotations

import contextlib
import posixpath
import re
from urllib.parse import quote, unquote_to_bytes

__all__ = [
    "InvalidPathUriError",
    "NonLocalHostError",
    "PathUri",
    "decode_path_uri",
    "format_path_uri",
    "parse_path_uri",
]

_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.\-]*):")
# Characters left unescaped in the canonical output form (RFC 3986 pchar minus a few).
_SAFE = "/-._~!$&'()*+,;=:@"


class InvalidPathUriError(ValueError):
    """The string is not an acceptable `file:` URI."""


class NonLocalHostError(InvalidPathUriError):
    """The URI names a host other than localhost (``file://server/x``)."""


def parse_path_uri(uri: str) -> str:
    """Parse a `file:` URI into a normalised absolute path.

    Args:
        uri: the wire string.

    Returns:
        The absolute, normalised path (``surrogateescape``-decoded).

    Raises:
        NonLocalHostError: the authority names another host.
        InvalidPathUriError: anything else that is not an acceptable `file:` URI.
    """
    if not uri:
        raise InvalidPathUriError("invalid URI: relative URL without a base")
    m = _SCHEME.match(uri)
    if m is None:
        raise InvalidPathUriError("invalid URI: relative URL without a base")
    scheme = m.group(1)
    if scheme.lower() != "file":
        raise InvalidPathUriError(f"unsupported path URI scheme `{scheme}`")
    rest = uri[m.end() :]
    if "#" in rest:
        raise InvalidPathUriError("fragments are not allowed in path URIs")
    if "?" in rest:
        raise InvalidPathUriError("query parameters are not allowed in path URIs")
    if rest.startswith("//"):
        authority, slash, path = rest[2:].partition("/")
        path = slash + path
        if "@" in authority or ":" in authority:
            raise InvalidPathUriError("invalid URI: invalid international domain name")
        if authority and authority.lower() != "localhost":
            raise NonLocalHostError(f"'{uri}' is invalid on 'linux'")
        if not path:
            path = "/"
    elif rest.startswith("/"):
        path = rest
    elif not rest:
        path = "/"  # `file:` alone names the root, as in the reference
    else:
        raise InvalidPathUriError("invalid URI: relative URL without a base")
    try:
        raw = unquote_to_bytes(path)
    except Exception as exc:  # pragma: no cover - unquote_to_bytes accepts any str
        raise InvalidPathUriError(f"invalid percent-escape in `{uri}`") from exc
    if b"\x00" in raw:
        raise InvalidPathUriError(f"'{uri}' is invalid on 'linux'")
    decoded = raw.decode("utf-8", "surrogateescape")
    normalised = posixpath.normpath(decoded)
    if normalised.startswith("//"):
        # POSIX keeps a leading double slash; we do not.
        normalised = "/" + normalised.lstrip("/")
    return normalised


def format_path_uri(path: str | bytes) -> str:
    """Format an absolute path as the canonical ``file:///...`` URI.

    Args:
        path: an absolute path (``str``, possibly with surrogate escapes, or ``bytes``).

    Returns:
        The canonical URI with spaces and non-ASCII bytes percent-encoded.

    Raises:
        InvalidPathUriError: the path is not absolute.
    """
    raw = path if isinstance(path, bytes) else path.encode("utf-8", "surrogateescape")
    if not raw.startswith(b"/"):
        raise InvalidPathUriError(f"path must be absolute: {path!r}")
    return "file://" + quote(raw, safe=_SAFE)


class PathUri(str):
    """A `file:` URI string from the wire, checked when the message is decoded.

    Decoding rejects what can never be a local path (with the reference's messages); a
    non-local host is let through so each method can answer it with its own error code.
    :func:`parse_path_uri` turns it into a path.
    """

    __slots__ = ()

    JSON_SCHEMA = {"type": "string", "format": "uri", "description": "a file: URI"}


def decode_path_uri(value: object) -> PathUri:
    """msgspec ``dec_hook`` body for :class:`PathUri`.

    Raises:
        TypeError: not a string.
        InvalidPathUriError: not an acceptable `file:` URI (a non-local host is accepted).
    """
    if not isinstance(value, str):
        raise TypeError("expected a string")
    with contextlib.suppress(NonLocalHostError):
        parse_path_uri(value)
    return PathUri(value)
