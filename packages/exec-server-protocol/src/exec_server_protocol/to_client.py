"""The server -> client direction of the codec: results, errors and notifications a server
encodes, and their decoding in a client (docs/protocol.md §1, §5).

``process/output`` has a fast path besides the typed :func:`encode_notification`: a frame is
the per-process prefix built once by :func:`output_prefix`, then the parts
:func:`output_frame` lays around an already base64-encoded chunk, so streaming allocates no
struct and copies no chunk to build a frame (the transport joins the parts as it writes
them). It produces exactly the bytes the typed encoder produces for
:class:`~exec_server_protocol.process.ProcessOutputNotification`; a test compares the two.
"""

from __future__ import annotations

from typing import Any, Final, TypeVar, get_args

import msgspec
from msgspec import UNSET, UnsetType

from .ids import ProcessId, RequestId
from .jsonrpc import ErrorObject, encode_json, typed_decoder
from .process import StreamName

__all__ = [
    "OutputFrame",
    "ServerMessage",
    "decode_notification",
    "decode_result",
    "decode_server_message",
    "encode_error",
    "encode_notification",
    "encode_result",
    "output_frame",
    "output_prefix",
]

T = TypeVar("T")

# ---------------------------------------------------------------------------- encoding


class _ResultOut(msgspec.Struct):
    id: RequestId
    result: Any


class _ErrorOut(msgspec.Struct):
    id: RequestId
    error: ErrorObject


class _NotificationOut(msgspec.Struct):
    method: str
    params: Any


def encode_result(request_id: RequestId, result: Any) -> bytes:
    """Encode ``{"id", "result"}``."""
    return encode_json(_ResultOut(request_id, result))


def encode_error(
    request_id: RequestId, code: int, message: str, data: Any | UnsetType = UNSET
) -> bytes:
    """Encode ``{"id", "error": {"code", "message"}}`` (and ``data`` when given)."""
    return encode_json(_ErrorOut(request_id, ErrorObject(int(code), message, data)))


def encode_notification(method: str, params: Any) -> bytes:
    """Encode ``{"method", "params"}``."""
    return encode_json(_NotificationOut(method, params))


OutputFrame = tuple[bytes, bytes, bytes, bytes, bytes]
"""A ``process/output`` frame as the parts it concatenates to: the process's prefix, the seq,
the stream part, the base64 chunk and the closing part."""

_STREAM_PARTS: Final[dict[str, bytes]] = {
    name: b',"stream":"' + name.encode() + b'","chunk":"' for name in get_args(StreamName)
}
_OUTPUT_END: Final = b'"}}'


def output_prefix(process_id: ProcessId | str) -> bytes:
    """The first part of every ``process/output`` frame of ``process_id``: build it once per
    process, then pass it to :func:`output_frame` for each chunk."""
    return (
        b'{"method":"process/output","params":{"processId":' + encode_json(process_id) + b',"seq":'
    )


def output_frame(prefix: bytes, seq: int, stream: StreamName | str, b64: bytes) -> OutputFrame:
    """The parts of one ``process/output`` frame.

    Args:
        prefix: :func:`output_prefix` of the process.
        seq: the chunk's seq.
        stream: ``"stdout"``, ``"stderr"`` or ``"pty"``.
        b64: the chunk, base64-encoded (padded, standard alphabet: nothing in it needs JSON
            escaping).
    """
    return (prefix, str(seq).encode(), _STREAM_PARTS[stream], b64, _OUTPUT_END)


# ---------------------------------------------------------------------------- decoding


class ServerMessage(msgspec.Struct):
    """One frame from the server: a response (``id`` with ``result`` or ``error``) or a
    notification (``method`` without ``id``); ``params`` and ``result`` are kept raw, to be
    decoded with the method's type."""

    id: int | str | UnsetType | None = UNSET
    method: str | UnsetType = UNSET
    params: msgspec.Raw = msgspec.Raw(b"")
    result: msgspec.Raw = msgspec.Raw(b"")
    error: ErrorObject | UnsetType = UNSET


_server_message_decoder: Final = msgspec.json.Decoder(ServerMessage)


def decode_server_message(frame: bytes | str) -> ServerMessage:
    """Decode the envelope of one frame from the server.

    Raises:
        msgspec.DecodeError: not a JSON object of that shape.
    """
    return _server_message_decoder.decode(frame)


def decode_result(raw: bytes | msgspec.Raw, result_type: type[T]) -> T:
    """Decode a response's raw ``result`` as ``result_type`` (from the method registry).

    Raises:
        msgspec.DecodeError: it does not match the type.
    """
    return typed_decoder(result_type).decode(raw)


def decode_notification(raw: bytes | msgspec.Raw, params_type: type[T]) -> T:
    """Decode a notification's raw ``params`` as ``params_type`` (from the registry's
    notifications).

    Raises:
        msgspec.DecodeError: they do not match the type.
    """
    return typed_decoder(params_type).decode(raw)
