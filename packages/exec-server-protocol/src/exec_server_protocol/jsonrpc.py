"""JSON-RPC 2.0 envelopes, error codes and the one codec of the protocol (docs/protocol.md §1).

What we send never carries a ``"jsonrpc"`` field; on input it is accepted and ignored.
Decoding is two-stage: the envelope is decoded with ``params``/``result``/``error`` kept raw,
then :func:`decode_params` decodes ``params`` with the method's type from the registry, so a
frame is parsed once and a bad ``params`` is told apart from a bad frame.

Hostile input is refused, never raised: JSON nested deeper than :data:`MAX_JSON_DEPTH` and
strings that are not UTF-8 are reported like any other malformed frame (-32600), so the
connection carries on.
"""

from __future__ import annotations

import contextvars
import enum
import itertools
import operator
import re
from dataclasses import dataclass
from typing import Any, Final, TypeVar

import msgspec
from msgspec import UNSET, UnsetType

from .ids import RequestId
from .path_uri import InvalidPathUriError, PathUri, decode_path_uri

__all__ = [
    "EMPTY_PARAMS_METHODS",
    "MAX_JSON_DEPTH",
    "ErrorCode",
    "ErrorObject",
    "IncomingNotification",
    "IncomingRequest",
    "IncomingResponse",
    "InvalidMessage",
    "ParamsError",
    "decode_message",
    "decode_params",
    "encode_error",
    "encode_notification",
    "encode_result",
    "json_depth_exceeds",
]

T = TypeVar("T")


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


class ErrorObject(msgspec.Struct):
    code: int
    message: str
    data: Any | UnsetType = UNSET
    """**[ours]** structured detail, e.g. ``{"reason": "programNotFound", "path": "..."}`` on a
    refused ``process/start``; omitted when there is none (the reference never sends it)."""


class _Envelope(msgspec.Struct):
    id: int | str | UnsetType = UNSET
    method: str | UnsetType = UNSET
    params: msgspec.Raw = msgspec.Raw(b"")
    result: msgspec.Raw = msgspec.Raw(b"")
    error: msgspec.Raw = msgspec.Raw(b"")


class _ResultOut(msgspec.Struct):
    id: RequestId
    result: Any


class _ErrorOut(msgspec.Struct):
    id: RequestId
    error: ErrorObject


class _NotificationOut(msgspec.Struct):
    method: str
    params: Any


@dataclass(frozen=True, slots=True)
class IncomingRequest:
    id: RequestId
    method: str
    params: msgspec.Raw


@dataclass(frozen=True, slots=True)
class IncomingNotification:
    method: str
    params: msgspec.Raw


@dataclass(frozen=True, slots=True)
class IncomingResponse:
    """A response sent by the peer (we send no requests, so it is ignored)."""

    id: RequestId
    is_error: bool


@dataclass(frozen=True, slots=True)
class InvalidMessage:
    """A frame that is not a single JSON-RPC object; answer with :attr:`error` on id -1."""

    detail: str

    @property
    def error(self) -> ErrorObject:
        return ErrorObject(
            int(ErrorCode.INVALID_REQUEST), f"failed to parse JSON-RPC message: {self.detail}"
        )


Incoming = IncomingRequest | IncomingNotification | IncomingResponse | InvalidMessage

_envelope_decoder: Final = msgspec.json.Decoder(_Envelope)
_encoder: Final = msgspec.json.Encoder()
_decoders: dict[type[Any], msgspec.json.Decoder[Any]] = {}

EMPTY_PARAMS_METHODS: Final = frozenset({b"", b"null"})

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


def _too_deep() -> str:
    return f"JSON is nested more than {MAX_JSON_DEPTH} levels deep"


def _not_utf8(exc: UnicodeDecodeError) -> str:
    bad = exc.object[exc.start : exc.start + 1].hex()
    return f"a string is not valid UTF-8 (byte 0x{bad}: {exc.reason})"


def decode_message(frame: bytes | str) -> Incoming:
    """Classify one inbound frame.

    Never raises: anything that is not a single JSON-RPC object becomes :class:`InvalidMessage`,
    including JSON nested more than :data:`MAX_JSON_DEPTH` deep and strings that are not UTF-8.
    """
    if json_depth_exceeds(frame):
        return InvalidMessage(_too_deep())
    try:
        env = _envelope_decoder.decode(frame)
    except msgspec.DecodeError as exc:
        return InvalidMessage(str(exc))
    except UnicodeDecodeError as exc:  # msgspec validates the strings it decodes
        return InvalidMessage(_not_utf8(exc))
    except RecursionError:  # pragma: no cover - json_depth_exceeds refuses such frames first
        return InvalidMessage(_too_deep())
    if not isinstance(env.method, UnsetType):
        if isinstance(env.id, UnsetType):
            return IncomingNotification(env.method, env.params)
        return IncomingRequest(env.id, env.method, env.params)
    if not isinstance(env.id, UnsetType) and (env.result or env.error):
        return IncomingResponse(env.id, bool(env.error))
    return InvalidMessage("message has neither `method` nor `result`/`error`")


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


_hook_error: contextvars.ContextVar[str | None] = contextvars.ContextVar("hook_error", default=None)


def _dec_hook(tp: type[Any], obj: Any) -> Any:
    if tp is PathUri:
        try:
            return decode_path_uri(obj)
        except InvalidPathUriError as exc:
            _hook_error.set(str(exc))  # sent alone, as the reference does
            raise
    raise NotImplementedError(f"unsupported type {tp!r}")


def decode_params(raw: msgspec.Raw, params_type: type[T]) -> T:
    """Decode raw ``params`` into ``params_type``.

    Omitted or ``null`` params decode as ``{}``, so methods without required params accept
    all three forms and methods with required params report the missing field.

    Raises:
        ParamsError: the params do not match the type (-32602), or hold a string that is not
            UTF-8 (-32600, with the malformed-frame wording).
    """
    decoder = _decoders.get(params_type)
    if decoder is None:
        decoder = _decoders[params_type] = msgspec.json.Decoder(params_type, dec_hook=_dec_hook)
    data = bytes(raw) if raw else b"{}"
    if data == b"null":
        data = b"{}"
    _hook_error.set(None)
    try:
        return decoder.decode(data)  # type: ignore[no-any-return]  # Decoder[Any] by cache
    except msgspec.DecodeError as exc:
        # A bad PathUri is reported with its own message alone, as the reference does.
        raise ParamsError(
            _hook_error.get() or str(exc), bare=_hook_error.get() is not None
        ) from exc
    except UnicodeDecodeError as exc:
        raise ParamsError(
            f"failed to parse JSON-RPC message: {_not_utf8(exc)}",
            bare=True,
            code=ErrorCode.INVALID_REQUEST,
        ) from None
    except RecursionError:  # pragma: no cover - decode_message refused the frame already
        raise ParamsError(_too_deep()) from None


def encode_result(request_id: RequestId, result: Any) -> bytes:
    """Encode ``{"id", "result"}``."""
    return _encoder.encode(_ResultOut(request_id, result))


def encode_error(
    request_id: RequestId, code: int, message: str, data: Any | UnsetType = UNSET
) -> bytes:
    """Encode ``{"id", "error": {"code", "message"}}`` (and ``data`` when given)."""
    return _encoder.encode(_ErrorOut(request_id, ErrorObject(int(code), message, data)))


def encode_notification(method: str, params: Any) -> bytes:
    """Encode ``{"method", "params"}``."""
    return _encoder.encode(_NotificationOut(method, params))
