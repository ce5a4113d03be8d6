"""The shared codec: the ``process/output`` fast path against the typed encoder, requests
encoded by a client, and the error texts both sides use."""

from __future__ import annotations

import os
from typing import get_args

import msgspec
import pybase64
import pytest
from exec_server_protocol import (
    INITIALIZED,
    CloseCode,
    ErrorCode,
    IncomingNotification,
    IncomingRequest,
    decode_message,
    encode_notification,
    encode_request,
    errors,
    output_frame,
    output_prefix,
)
from exec_server_protocol.process import ProcessOutputNotification, StreamName

ODD_PROCESS_IDS = [
    "",
    "p-1",
    'quote"d',
    "back\\slash",
    "new\nline\ttab\r\x00\x01\x1f\x7f",
    "ünïcödé-ß-中文",
    "\u2028\u2029",
    "emoji-\U0001f600",
    "</script>",
    "/slashes/",
]


@pytest.mark.parametrize("stream", get_args(StreamName))
@pytest.mark.parametrize("process_id", ODD_PROCESS_IDS)
def test_the_output_fast_path_produces_exactly_the_typed_encoders_bytes(
    stream: StreamName, process_id: str
) -> None:
    prefix = output_prefix(process_id)
    for seq, data in [(1, b""), (2, b"x"), (99, os.urandom(1000)), (2**40, os.urandom(64 << 10))]:
        b64 = pybase64.b64encode(data)
        typed = encode_notification(
            "process/output",
            ProcessOutputNotification(
                process_id=process_id, seq=seq, stream=stream, chunk=b64.decode()
            ),
        )
        assert b"".join(output_frame(prefix, seq, stream, b64)) == typed


def test_the_fast_path_covers_every_stream_name() -> None:
    prefix = output_prefix("p")
    for stream in get_args(StreamName):
        output_frame(prefix, 1, stream, b"")  # a missing stream part would raise KeyError


@pytest.mark.parametrize("method", ["process/start", 'we"ird\\method\n', "ünï"])
def test_a_client_request_decodes_on_the_server_with_its_method_intact(method: str) -> None:
    frame = encode_request(7, method, msgspec.Raw(b'{"a":1}'))
    msg = decode_message(frame)
    assert isinstance(msg, IncomingRequest)
    assert (msg.id, msg.method, bytes(msg.params)) == (7, method, b'{"a":1}')


def test_a_client_request_keeps_the_byte_layout_clients_sent_before() -> None:
    frame = encode_request(12, "process/read", msgspec.Raw(b'{"processId":"p"}'))
    assert frame == b'{"id":12,"method":"process/read","params":{"processId":"p"}}'
    assert encode_request("s", "environment/info", None) == (
        b'{"id":"s","method":"environment/info","params":null}'
    )


def test_the_initialized_notification_is_what_clients_sent_before() -> None:
    assert INITIALIZED == b'{"method":"initialized","params":{}}'
    msg = decode_message(INITIALIZED)
    assert isinstance(msg, IncomingNotification) and msg.method == "initialized"


def test_the_error_texts_are_the_references_and_clients_recognise_them() -> None:
    # The reference's words (docs/reference-notes.md): a client recognises either server.
    assert errors.unknown_session("s-1") == "unknown session id s-1"
    assert errors.unknown_process("p") == "unknown process id p"
    assert errors.process_exists("p") == "process p already exists"
    invalid = ErrorCode.INVALID_REQUEST
    assert errors.is_unknown_session(invalid, errors.unknown_session("s-1"))
    assert errors.is_unknown_process(invalid, errors.unknown_process("p"))
    assert errors.is_process_exists(invalid, errors.process_exists("p"), "p")
    assert errors.is_session_taken_over(errors.SESSION_TAKEN_OVER)


def test_error_texts_are_not_recognised_under_another_code_or_process() -> None:
    assert not errors.is_unknown_session(ErrorCode.INTERNAL_ERROR, errors.unknown_session("s"))
    assert not errors.is_unknown_process(ErrorCode.INVALID_PARAMS, errors.unknown_process("p"))
    assert not errors.is_process_exists(ErrorCode.INVALID_REQUEST, errors.process_exists("p"), "q")
    assert not errors.is_session_taken_over("unknown session id s")


def test_the_takeover_close_code_is_4000() -> None:
    assert CloseCode.SESSION_TAKEN_OVER == 4000
    assert errors.SESSION_TAKEN_OVER_REASON == "session resumed by another connection"
