"""Typed wire messages of the exec-server protocol (the Codex ``exec-server`` JSON-RPC API).

Pure data plus one codec: this package depends on ``msgspec`` only.
"""

from . import fs, process, sandbox, session
from ._base import EmptyParams, EmptyResult, Params, Result, WireStruct
from .ids import HandleId, ProcessId, RequestId, Seq, SessionId, WriteId
from .jsonrpc import (
    MAX_JSON_DEPTH,
    ErrorCode,
    ErrorObject,
    IncomingNotification,
    IncomingRequest,
    IncomingResponse,
    InvalidMessage,
    ParamsError,
    decode_message,
    decode_params,
    encode_error,
    encode_notification,
    encode_result,
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

__all__ = [
    "MAX_JSON_DEPTH",
    "METHODS",
    "NOTIFICATIONS",
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
    "SessionId",
    "WireStruct",
    "WriteId",
    "decode_message",
    "decode_params",
    "encode_error",
    "encode_notification",
    "encode_result",
    "format_path_uri",
    "fs",
    "json_depth_exceeds",
    "json_schema",
    "parse_path_uri",
    "process",
    "sandbox",
    "session",
]
