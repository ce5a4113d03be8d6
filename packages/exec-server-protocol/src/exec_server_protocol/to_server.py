"""The client -> server direction of the codec: requests and notifications a client encodes,
and their decoding on the server (docs/protocol.md §1).

Decoding is two-stage: the envelope is decoded with ``params``/``result``/``error`` kept raw,
then :func:`decode_params` decodes ``params`` with the method's type from the registry, so a
frame is parsed once and a bad ``params`` is told apart from a bad frame.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final, TypeVar

import msgspec
from msgspec import UNSET, UnsetType

from ._base import EmptyParams
from .ids import RequestId
from .jsonrpc import (
    ErrorCode,
    ErrorObject,
    ParamsError,
    encode_json,
    hook_error,
    json_depth_exceeds,
    not_utf8,
    too_deep,
    typed_decoder,
)

__all__ = [
    "INITIALIZED",
    "Incoming",
    "IncomingNotification",
    "IncomingRequest",
    "IncomingResponse",
    "InvalidMessage",
    "decode_message",
    "decode_params",
    "encode_client_notification",
    "encode_request",
]

T = TypeVar("T")

# ---------------------------------------------------------------------------- encoding


class _RequestOut(msgspec.Struct):
    id: RequestId
    method: str
    params: Any


class _NotificationOut(msgspec.Struct):
    method: str
    params: Any


def encode_request(request_id: RequestId, method: str, params: Any) -> bytes:
    """Encode ``{"id", "method", "params"}``.

    ``params`` is a params struct (or any JSON value), or :class:`msgspec.Raw` holding params
    encoded earlier (a request re-sent under a new id is not encoded again).
    """
    return encode_json(_RequestOut(request_id, method, params))


def encode_client_notification(method: str, params: Any) -> bytes:
    """Encode ``{"method", "params"}`` (``initialized`` is the only one a client sends)."""
    return encode_json(_NotificationOut(method, params))


INITIALIZED: Final = encode_client_notification("initialized", EmptyParams())
"""The ``initialized`` notification that completes the handshake."""

# ---------------------------------------------------------------------------- decoding


class _Envelope(msgspec.Struct):
    id: int | str | UnsetType = UNSET
    method: str | UnsetType = UNSET
    params: msgspec.Raw = msgspec.Raw(b"")
    result: msgspec.Raw = msgspec.Raw(b"")
    error: msgspec.Raw = msgspec.Raw(b"")


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


def decode_message(frame: bytes | str) -> Incoming:
    """Classify one inbound frame.

    Never raises: anything that is not a single JSON-RPC object becomes :class:`InvalidMessage`,
    including JSON nested more than :data:`MAX_JSON_DEPTH` deep and strings that are not UTF-8.
    """
    if json_depth_exceeds(frame):
        return InvalidMessage(too_deep())
    try:
        env = _envelope_decoder.decode(frame)
    except msgspec.DecodeError as exc:
        return InvalidMessage(str(exc))
    except UnicodeDecodeError as exc:  # msgspec validates the strings it decodes
        return InvalidMessage(not_utf8(exc))
    except RecursionError:  # pragma: no cover - json_depth_exceeds refuses such frames first
        return InvalidMessage(too_deep())
    if not isinstance(env.method, UnsetType):
        if isinstance(env.id, UnsetType):
            return IncomingNotification(env.method, env.params)
        return IncomingRequest(env.id, env.method, env.params)
    if not isinstance(env.id, UnsetType) and (env.result or env.error):
        return IncomingResponse(env.id, bool(env.error))
    return InvalidMessage("message has neither `method` nor `result`/`error`")


def decode_params(raw: msgspec.Raw, params_type: type[T]) -> T:
    """Decode raw ``params`` into ``params_type``.

    Omitted or ``null`` params decode as ``{}``, so methods without required params accept
    all three forms and methods with required params report the missing field.

    Raises:
        ParamsError: the params do not match the type (-32602), or hold a string that is not
            UTF-8 (-32600, with the malformed-frame wording).
    """
    decoder = typed_decoder(params_type)
    data = bytes(raw) if raw else b"{}"
    if data == b"null":
        data = b"{}"
    hook_error.set(None)
    try:
        return decoder.decode(data)
    except msgspec.DecodeError as exc:
        # A bad PathUri is reported with its own message alone, as the reference does.
        raise ParamsError(hook_error.get() or str(exc), bare=hook_error.get() is not None) from exc
    except UnicodeDecodeError as exc:
        raise ParamsError(
            f"failed to parse JSON-RPC message: {not_utf8(exc)}",
            bare=True,
            code=ErrorCode.INVALID_REQUEST,
        ) from None
    except RecursionError:  # pragma: no cover - decode_message refused the frame already
        raise ParamsError(too_deep()) from None
