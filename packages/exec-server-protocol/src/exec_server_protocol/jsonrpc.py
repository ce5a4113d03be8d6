"""What both directions of the codec share (docs/protocol.md §1): the JSON encoder, the typed
decoders, the error object and the nesting limit.

The codec itself is one module per direction: :mod:`.to_server` (what a client sends and a
server reads) and :mod:`.to_client` (what a server sends and a client reads). What we send
never carries a ``"jsonrpc"`` field; on input it is accepted and ignored.

Hostile input is refused, never raised: JSON nested deeper than :data:`MAX_JSON_DEPTH` and
strings that are not UTF-8 are reported like any other malformed frame (-32600), so the
connection carries on.
"""

from __future__ import annotations

import contextvars
import itertools
import operator
import re
from typing import Any, Final, TypeVar

import msgspec
from msgspec import UNSET, UnsetType

from .errors import ErrorCode
from .path_uri import InvalidPathUriError, PathUri, decode_path_uri

__all__ = [
    "MAX_JSON_DEPTH",
    "ErrorCode",
    "ErrorObject",
    "ParamsError",
    "decode_json",
    "decode_typed",
    "encode_json",
    "json_depth_exceeds",
]

T = TypeVar("T")


class ErrorObject(msgspec.Struct):
    code: int
    message: str
    data: Any | UnsetType = UNSET
    """**[ours]** structured detail, e.g. ``{"reason": "programNotFound", "path": "..."}`` on a
    refused ``process/start``; omitted when there is none (the reference never sends it)."""


MAX_JSON_DEPTH: Final = 128
"""Deepest nesting of arrays and objects accepted in a message: serde_json's default recursion
limit, which the reference's parser applies. Codex's deepest message (a sandbox permission
profile) nests about 8 levels. A fixed limit, checked before decoding, makes the outcome
independent of how deep the decoder's own stack happens to be (msgspec raises RecursionError
near Python's recursion limit, ~1,000 levels, minus the caller's depth)."""

_JSON_STRING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"')
_NOT_BRACKETS = bytes(b for b in range(256) if b not in b"[]{}")
# An opening bracket counts 2 and a closing one 0, so that after i brackets the running sum
# minus i is the nesting depth (see json_depth_exceeds).
_BRACKET_WEIGHTS = bytes.maketrans(b"[]{}", b"\x02\x00\x02\x00")


def json_depth_exceeds(data: bytes | str, limit: int = MAX_JSON_DEPTH) -> bool:
    """Whether the JSON text ``data`` nests arrays and objects more than ``limit`` deep.

    Brackets inside strings do not count. Text with no more than ``limit`` opening brackets
    in all is answered at C speed without a scan; otherwise strings are removed and the
    depth is computed over the remaining brackets with C-level iterators (about 45 ns a
    bracket). Malformed JSON is answered by its brackets alone; the decoder reports it.
    """
    if isinstance(data, str):
        if data.count("[") + data.count("{") <= limit:
            return False
        raw = data.encode("utf-8", "surrogatepass")
    else:
        if data.count(b"[") + data.count(b"{") <= limit:
            return False
        raw = data
    brackets = _JSON_STRING.sub(b"", raw).translate(_BRACKET_WEIGHTS, _NOT_BRACKETS)
    depths = map(operator.sub, itertools.accumulate(brackets), itertools.count(1))
    return max(depths, default=0) > limit


def too_deep() -> str:
    return f"JSON is nested more than {MAX_JSON_DEPTH} levels deep"


def not_utf8(exc: UnicodeDecodeError) -> str:
    bad = exc.object[exc.start : exc.start + 1].hex()
    return f"a string is not valid UTF-8 (byte 0x{bad}: {exc.reason})"


def _enc_hook(obj: Any) -> Any:
    if isinstance(obj, str):  # str subclasses such as PathUri
        return str(obj)
    raise NotImplementedError(f"cannot encode {type(obj).__name__}")


_encoder: Final = msgspec.json.Encoder(enc_hook=_enc_hook)
encode_json: Final = _encoder.encode
"""Any protocol value (structs, dicts, lists, PathUri, :class:`msgspec.Raw`) as JSON bytes."""

decode_json: Final = msgspec.json.decode
"""JSON bytes as plain Python values (for methods and notifications outside the registry)."""


class ParamsError(ValueError):
    """``params`` did not decode into the method's params type.

    ``bare`` marks a message meant to be sent as is (a PathUri error), without context.
    ``code`` is -32602, or -32600 when the text itself was unreadable (a string that is not
    UTF-8: the frame was malformed, whichever field it hit).
    """

    def __init__(
        self, message: str, *, bare: bool = False, code: int = ErrorCode.INVALID_PARAMS
    ) -> None:
        super().__init__(message)
        self.bare = bare
        self.code = int(code)


hook_error: contextvars.ContextVar[str | None] = contextvars.ContextVar("hook_error", default=None)
"""The message of the last PathUri that failed to decode (reported alone, as the reference
does)."""


def _dec_hook(tp: type[Any], obj: Any) -> Any:
    if tp is PathUri:
        try:
            return decode_path_uri(obj)
        except InvalidPathUriError as exc:
            hook_error.set(str(exc))
            raise
    raise NotImplementedError(f"unsupported type {tp!r}")


_decoders: dict[Any, msgspec.json.Decoder[Any]] = {}


def typed_decoder(tp: type[T]) -> msgspec.json.Decoder[T]:
    """The (cached) decoder of protocol type ``tp``: PathUri fields are checked."""
    decoder = _decoders.get(tp)
    if decoder is None:
        decoder = _decoders[tp] = msgspec.json.Decoder(tp, dec_hook=_dec_hook)
    return decoder


def decode_typed(data: bytes | msgspec.Raw, tp: type[T]) -> T:
    """Decode JSON ``data`` as protocol type ``tp``.

    Raises:
        msgspec.DecodeError: ``data`` is not JSON of that type.
    """
    return typed_decoder(tp).decode(data)
