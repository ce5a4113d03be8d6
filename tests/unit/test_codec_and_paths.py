"""The protocol codec and PathUri, without a server."""

from __future__ import annotations

import msgspec
import pytest
from exec_server_protocol import (
    MAX_JSON_DEPTH,
    IncomingNotification,
    IncomingRequest,
    IncomingResponse,
    InvalidMessage,
    InvalidPathUriError,
    NonLocalHostError,
    ParamsError,
    decode_message,
    decode_params,
    encode_error,
    encode_notification,
    encode_result,
    format_path_uri,
    json_depth_exceeds,
    parse_path_uri,
)
from exec_server_protocol.process import ReadParams, StartParams, WriteParams
from exec_server_protocol.session import InitializeParams


@pytest.mark.parametrize(
    ("frame", "kind"),
    [
        (b'{"id":1,"method":"m"}', IncomingRequest),
        (b'{"id":"","method":"m","jsonrpc":"2.0"}', IncomingRequest),
        (b'{"method":"m","params":null}', IncomingNotification),
        (b'{"id":1,"result":{}}', IncomingResponse),
        (b'{"id":1,"error":{"code":1,"message":"x"}}', IncomingResponse),
        (b'{"id":1}', InvalidMessage),
        (b"{}", InvalidMessage),
        (b"[1]", InvalidMessage),
        (b"1", InvalidMessage),
        (b"nope", InvalidMessage),
        (b'{"id":1.0,"method":"m"}', InvalidMessage),
        (b'{"id":null,"method":"m"}', InvalidMessage),
        (b'{"id":false,"method":"m"}', InvalidMessage),
        (b'{"id":1,"method":5}', InvalidMessage),
    ],
)
def test_frames_are_classified(frame: bytes, kind: type) -> None:
    assert isinstance(decode_message(frame), kind)


@pytest.mark.parametrize("depth", [MAX_JSON_DEPTH + 1, 1000, 100_000])
def test_frames_nested_beyond_the_limit_are_invalid_messages_not_recursion_errors(
    depth: int,
) -> None:
    frame = b'{"id":1,"method":"m","params":' + b"[" * depth + b"]" * depth + b"}"
    msg = decode_message(frame)
    assert isinstance(msg, InvalidMessage)
    assert msg.detail == "JSON is nested more than 128 levels deep"


def test_json_depth_counts_brackets_outside_strings_only() -> None:
    assert not json_depth_exceeds(b"[" * 128 + b"]" * 128)
    assert json_depth_exceeds(b"[" * 129 + b"]" * 129)
    assert json_depth_exceeds("[" * 129 + "]" * 129)
    assert not json_depth_exceeds(b'["' + b"[{" * 1000 + b'\\", "\\"]"]')
    assert json_depth_exceeds(b'[{"a":"]]]\\"]]"' + b",[" * 200 + b"]" * 200 + b"}]")
    assert not json_depth_exceeds(b"[]" * 10_000)


def test_strings_that_are_not_utf8_are_invalid_messages_or_invalid_requests() -> None:
    msg = decode_message(b'{"id":1,"method":"\xff"}')
    assert isinstance(msg, InvalidMessage)
    assert msg.detail == "a string is not valid UTF-8 (byte 0xff: invalid start byte)"
    with pytest.raises(ParamsError) as err:
        decode_params(msgspec.Raw(b'{"clientName":"a\xc3("}'), InitializeParams)
    assert err.value.code == -32600 and err.value.bare


def test_encoded_messages_have_no_jsonrpc_field() -> None:
    assert encode_result(1, {}) == b'{"id":1,"result":{}}'
    assert encode_error("a", -32600, "x") == b'{"id":"a","error":{"code":-32600,"message":"x"}}'
    assert encode_notification("m", {"a": 1}) == b'{"method":"m","params":{"a":1}}'


def test_params_decode_with_defaults_and_ignore_unknown_fields() -> None:
    raw = msgspec.Raw(
        b'{"processId":"p","argv":["a"],"cwd":"file:///","env":{},"tty":true,"metadata":{"x":1}}'
    )
    p = decode_params(raw, StartParams)
    assert (p.process_id, p.tty, p.pipe_stdin, p.arg0, p.sandbox) == ("p", True, False, None, None)


@pytest.mark.parametrize("raw", [b"", b"null"])
def test_omitted_or_null_params_decode_as_an_empty_object(raw: bytes) -> None:
    with pytest.raises(ParamsError, match="clientName"):
        decode_params(msgspec.Raw(raw), InitializeParams)


def test_params_errors_name_the_field() -> None:
    with pytest.raises(ParamsError, match=r"\$\.afterSeq"):
        decode_params(msgspec.Raw(b'{"processId":"p","afterSeq":-1}'), ReadParams)
    with pytest.raises(ParamsError, match="writeId"):
        decode_params(msgspec.Raw(b'{"processId":"p","chunk":""}'), WriteParams)


@pytest.mark.parametrize(
    ("uri", "path"),
    [
        ("file:///tmp", "/tmp"),
        ("file://localhost/tmp", "/tmp"),
        ("FILE://LOCALHOST/tmp", "/tmp"),
        ("file:/tmp", "/tmp"),
        ("file:", "/"),
        ("file:///", "/"),
        ("file://", "/"),
        ("file:///a/./b/../c/", "/a/c"),
        ("file:///../..", "/"),
        ("file:///x%20y/%C3%A9", "/x y/é"),
        ("file:///caf%E9", "/caf\udce9"),
    ],
)
def test_accepted_uris_parse_to_normalised_paths(uri: str, path: str) -> None:
    assert parse_path_uri(uri) == path


@pytest.mark.parametrize(
    "uri",
    [
        "",
        "tmp",
        "/tmp",
        "C:/x",
        "http://x/y",
        "file:///a?b",
        "file:///a#b",
        "file:///a%00b",
        "file://u@localhost/x",
        "file://localhost:1/x",
        "file:relative",
    ],
)
def test_rejected_uris_raise(uri: str) -> None:
    with pytest.raises(InvalidPathUriError):
        parse_path_uri(uri)


def test_a_non_local_host_is_its_own_error() -> None:
    with pytest.raises(NonLocalHostError):
        parse_path_uri("file://server/x")


@pytest.mark.parametrize("path", ["/", "/tmp", "/a b/é", "/caf\udce9", "/100%/#?"])
def test_format_then_parse_round_trips(path: str) -> None:
    uri = format_path_uri(path)
    assert uri.startswith("file:///")
    assert " " not in uri and "#" not in uri and "?" not in uri
    assert parse_path_uri(uri) == path


def test_format_rejects_relative_paths() -> None:
    with pytest.raises(InvalidPathUriError):
        format_path_uri("relative")
