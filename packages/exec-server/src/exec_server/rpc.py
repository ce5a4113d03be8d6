"""The JSON-RPC peer without I/O: frame classification, the handshake state machine, and the
one place where exceptions become wire errors.

Order of checks for a request (docs/protocol.md §1, §2): unknown method (-32601, also before
``initialize``), then params decoding (-32602), then the handshake state (-32600).

Handshake states and transitions, all in :data:`_TRANSITIONS` (an event the table does not
list for a state raises :class:`IllegalTransition`)::

    NEW --initialize answered with a result--> INITIALIZED --"initialized"--> READY
    NEW, READY --"initialized"--> unchanged (the notification is ignored)

``initialize`` is accepted only in NEW; a failed ``initialize`` leaves the peer in NEW. Which
requests each state accepts is :meth:`RpcPeer._handshake_problem` (anything refused is answered
with -32600). The connection reports each request's outcome with :meth:`RpcPeer.succeeded`:
the peer, not the handler, moves the handshake on.
"""

from __future__ import annotations

import enum
import logging
from dataclasses import dataclass
from typing import Any

from exec_server_protocol import (
    METHODS,
    ErrorCode,
    IncomingNotification,
    IncomingRequest,
    IncomingResponse,
    InvalidMessage,
    MethodSpec,
    ParamsError,
    RequestId,
    decode_message,
    decode_params,
    encode_error,
)

from ._fsm import IllegalTransition, TransitionTable
from .wire_errors import wire_error

__all__ = [
    "Dispatch",
    "HandshakeState",
    "Ignored",
    "IllegalTransition",
    "Reply",
    "RpcPeer",
    "error_code",
    "error_frame",
]

log = logging.getLogger("exec_server.rpc")


class HandshakeState(enum.Enum):
    NEW = "new"
    INITIALIZED = "initialized"
    READY = "ready"


class HandshakeEvent(enum.Enum):
    INITIALIZE_SUCCEEDED = "initialize succeeded"
    INITIALIZED = "initialized notification"


_NEW, _INITIALIZED, _READY = HandshakeState.NEW, HandshakeState.INITIALIZED, HandshakeState.READY
_TRANSITIONS: TransitionTable[HandshakeState, HandshakeEvent] = TransitionTable(
    {
        _NEW: {HandshakeEvent.INITIALIZE_SUCCEEDED: _INITIALIZED, HandshakeEvent.INITIALIZED: _NEW},
        _INITIALIZED: {HandshakeEvent.INITIALIZED: _READY},
        _READY: {HandshakeEvent.INITIALIZED: _READY},
    }
)


@dataclass(frozen=True, slots=True)
class Dispatch:
    """A valid request to run."""

    request_id: RequestId
    spec: MethodSpec
    params: Any


@dataclass(frozen=True, slots=True)
class Reply:
    """Answer at once with this frame (an error)."""

    frame: bytes
    method: str | None = None
    """The request's method (None: the frame was no request)."""
    code: int = ErrorCode.INVALID_REQUEST
    """The error's code."""


@dataclass(frozen=True, slots=True)
class Ignored:
    """Nothing to do (a notification or a client-sent response)."""

    what: str


def error_code(exc: BaseException) -> int:
    """The code :func:`error_frame` answers ``exc`` with."""
    known = wire_error(exc)
    return ErrorCode.INTERNAL_ERROR if known is None else known.code


def error_frame(request_id: RequestId, exc: BaseException) -> bytes:
    """The one place an exception becomes a wire error.

    An exception of :data:`~exec_server.wire_errors.WIRE_ERRORS` is sent as that table says;
    anything else is logged here with its traceback and answered with a generic -32603, never
    with internal details.
    """
    known = wire_error(exc)
    if known is not None:
        if known.data is not None:
            return encode_error(request_id, known.code, known.message, known.data)
        return encode_error(request_id, known.code, known.message)
    log.error("internal error answering request %r", request_id, exc_info=exc)
    return encode_error(request_id, ErrorCode.INTERNAL_ERROR, "internal error")


class RpcPeer:
    """One connection's protocol state."""

    def __init__(self, methods: dict[str, MethodSpec] = METHODS) -> None:
        self._methods = methods
        self.state = HandshakeState.NEW

    def receive(self, frame: bytes | str) -> Dispatch | Reply | Ignored:
        msg = decode_message(frame)
        if isinstance(msg, IncomingRequest):
            return self._request(msg)
        if isinstance(msg, IncomingNotification):
            if msg.method == "initialized":
                self._apply(HandshakeEvent.INITIALIZED)
                return Ignored("initialized")
            log.info("ignoring notification %r from client", msg.method)
            return Ignored(msg.method)
        if isinstance(msg, IncomingResponse):
            log.info("ignoring response to id %r from client", msg.id)
            return Ignored("response")
        assert isinstance(msg, InvalidMessage)
        err = msg.error
        return Reply(encode_error(-1, err.code, err.message), None, err.code)

    def _request(self, msg: IncomingRequest) -> Dispatch | Reply:
        spec = self._methods.get(msg.method)
        if spec is None:
            return Reply(
                encode_error(
                    msg.id,
                    ErrorCode.METHOD_NOT_FOUND,
                    f"exec-server does not implement `{msg.method}`",
                ),
                msg.method,
                ErrorCode.METHOD_NOT_FOUND,
            )
        try:
            params = decode_params(msg.params, spec.params)
        except ParamsError as exc:
            text = str(exc) if exc.bare else f"invalid params: {exc}"
            return Reply(encode_error(msg.id, exc.code, text), msg.method, exc.code)
        problem = self._handshake_problem(spec)
        if problem is not None:
            return Reply(
                encode_error(msg.id, ErrorCode.INVALID_REQUEST, problem),
                msg.method,
                ErrorCode.INVALID_REQUEST,
            )
        return Dispatch(msg.id, spec, params)

    def _handshake_problem(self, spec: MethodSpec) -> str | None:
        if spec.family == "initialize":
            if self.state is not HandshakeState.NEW:
                return "initialize may only be sent once per connection"
            return None
        if self.state is HandshakeState.NEW:
            return f"client must call initialize before using {spec.family} methods"
        if self.state is HandshakeState.INITIALIZED:
            return f"client must send initialized before using {spec.family} methods"
        return None

    def succeeded(self, d: Dispatch) -> None:
        """The request ``d`` was answered with a result: apply the transition it causes (a
        successful ``initialize``), before the next frame is received."""
        if d.spec.family == "initialize":
            self._apply(HandshakeEvent.INITIALIZE_SUCCEEDED)

    def _apply(self, event: HandshakeEvent) -> None:
        self.state = _TRANSITIONS.next(self.state, event, what="handshake: ")
