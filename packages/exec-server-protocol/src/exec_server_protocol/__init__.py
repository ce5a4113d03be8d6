"""Typed wire messages of the exec-server protocol (the Codex ``exec-server`` JSON-RPC API).

Pure data plus one codec, one module per direction (:mod:`.to_server`, :mod:`.to_client`),
and the error codes, close codes and error texts both sides use (:mod:`.errors`): this
package depends on ``msgspec`` only.
"""

from . import errors, fs, process, sandbox, session, to_client, to_server
from ._base import EmptyParams, EmptyResult, Params, Result, WireStruct
from .errors import CloseCode, ErrorCode
from .ids import HandleId, ProcessId, RequestId, Seq, SessionId, WriteId
from .jsonrpc import (
    MAX_JSON_DEPTH,
    ErrorObject,
    ParamsError,
    decode_json,
    encode_json,
    json_depth_exceeds,
)
from .path_uri import (
    InvalidPathUriError,
    NonLocalHostError,
    PathUri,
    format_path_uri,
    parse_path_uri,
)
from .registry import METHODS, NOTIFICATIONS, MethodSpec, json_schema
from .to_client import (
    ServerMessage,
    decode_notification,
    decode_result,
    decode_server_message,
    encode_error,
    encode_notification,
    encode_result,
    output_frame,
    output_prefix,
)
from .to_server import (
    INITIALIZED,
    IncomingNotification,
    IncomingRequest,
    IncomingResponse,
    InvalidMessage,
    decode_message,
    decode_params,
    encode_client_notification,
    encode_request,
)

__all__ = [
    "INITIALIZED",
    "MAX_JSON_DEPTH",
    "METHODS",
    "NOTIFICATIONS",
    "CloseCode",
    "EmptyParams",
    "EmptyResult",
    "ErrorCode",
    "ErrorObject",
    "HandleId",
    "IncomingNotification",
    "IncomingRequest",
    "IncomingResponse",
    "InvalidMessage",
    "InvalidPathUriError",
    "MethodSpec",
    "NonLocalHostError",
    "Params",
    "ParamsError",
    "PathUri",
    "ProcessId",
    "RequestId",
    "Result",
    "Seq",
    "ServerMessage",
    "SessionId",
    "WireStruct",
    "WriteId",
    "decode_json",
    "decode_message",
    "decode_notification",
    "decode_params",
    "decode_result",
    "decode_server_message",
    "encode_client_notification",
    "encode_error",
    "encode_json",
    "encode_notification",
    "encode_request",
    "encode_result",
    "errors",
    "format_path_uri",
    "fs",
    "json_depth_exceeds",
    "json_schema",
    "output_frame",
    "output_prefix",
    "parse_path_uri",
    "process",
    "sandbox",
    "session",
    "to_client",
    "to_server",
]
