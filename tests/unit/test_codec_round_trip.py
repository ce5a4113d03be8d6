"""Every message type of the registry survives the shared codec: encoded by one side, decoded
by the other, it is the value it was (client -> server for params, server -> client for
results and notifications)."""

from __future__ import annotations

from typing import Any

import msgspec
import msgspec.inspect as mi
import pytest
from exec_server_protocol import (
    METHODS,
    NOTIFICATIONS,
    ErrorCode,
    IncomingNotification,
    IncomingRequest,
    PathUri,
    decode_message,
    decode_notification,
    decode_params,
    decode_result,
    decode_server_message,
    encode_client_notification,
    encode_error,
    encode_notification,
    encode_request,
    encode_result,
)
from msgspec import UnsetType

CLIENT_NOTIFICATIONS = {"initialized"}
"""Notifications a client sends; the others are the server's."""


def sample(t: mi.Type, *, full: bool) -> Any:
    """A valid value of type ``t``: every optional field set (``full``) or only the required
    ones; unions take their last member (``full``) or their first one that is not None."""
    if isinstance(t, mi.StructType):
        kwargs = {f.name: sample(f.type, full=full) for f in t.fields if f.required or full}
        return t.cls(**kwargs)
    if isinstance(t, mi.UnionType):
        members = [m for m in t.types if not isinstance(m, mi.NoneType)]
        if [type(m) for m in members] == [mi.RawType]:
            return None  # msgspec decodes `Raw | None` from null only: see the xfail below
        return sample(members[-1] if full else members[0], full=full)
    if isinstance(t, mi.LiteralType):
        return t.values[-1] if full else t.values[0]
    if isinstance(t, mi.IntType):
        for bound in (t.ge, t.le):
            if bound is not None:
                return bound
        return -7 if full else 7
    if isinstance(t, mi.StrType):
        return 'odd "text"\\\n\u2028\U0001f600' if full else "x"
    if isinstance(t, mi.BoolType):
        return full
    if isinstance(t, mi.ListType):
        return [sample(t.item_type, full=full)] if full else []
    if isinstance(t, mi.DictType):
        return {"KEY": sample(t.value_type, full=full)} if full else {}
    if isinstance(t, mi.RawType):
        return msgspec.Raw(b'{"a":[1,2]}')
    if isinstance(t, mi.AnyType):
        return {"any": [1, "two", None]} if full else None
    if isinstance(t, mi.CustomType) and t.cls is PathUri:
        return PathUri("file:///tmp/a%20b/c")
    raise NotImplementedError(f"no sample for {t!r}: teach sample() the new type")


def samples(tp: type[Any]) -> list[Any]:
    info = mi.type_info(tp)
    return [sample(info, full=False), sample(info, full=True)]


PARAMS = [(name, spec.params) for name, spec in METHODS.items()]
RESULTS = [(name, spec.result) for name, spec in METHODS.items()]
SERVER_NOTES = [(n, tp) for n, tp in NOTIFICATIONS.items() if n not in CLIENT_NOTIFICATIONS]
CLIENT_NOTES = [(n, tp) for n, tp in NOTIFICATIONS.items() if n in CLIENT_NOTIFICATIONS]


@pytest.mark.parametrize(("method", "params_type"), PARAMS, ids=[m for m, _ in PARAMS])
def test_request_params_survive_client_to_server(method: str, params_type: type[Any]) -> None:
    for value in samples(params_type):
        msg = decode_message(encode_request(41, method, value))
        assert isinstance(msg, IncomingRequest)
        assert (msg.id, msg.method) == (41, method)
        assert decode_params(msg.params, params_type) == value


@pytest.mark.parametrize(("method", "result_type"), RESULTS, ids=[m for m, _ in RESULTS])
def test_results_survive_server_to_client(method: str, result_type: type[Any]) -> None:
    for value in samples(result_type):
        msg = decode_server_message(encode_result("r-1", value))
        assert msg.id == "r-1" and isinstance(msg.error, UnsetType)
        assert decode_result(msg.result, result_type) == value


@pytest.mark.parametrize(("method", "params_type"), SERVER_NOTES, ids=[n for n, _ in SERVER_NOTES])
def test_notifications_survive_server_to_client(method: str, params_type: type[Any]) -> None:
    for value in samples(params_type):
        msg = decode_server_message(encode_notification(method, value))
        assert msg.method == method and isinstance(msg.id, UnsetType)
        assert decode_notification(msg.params, params_type) == value


@pytest.mark.parametrize(("method", "params_type"), CLIENT_NOTES, ids=[n for n, _ in CLIENT_NOTES])
def test_notifications_survive_client_to_server(method: str, params_type: type[Any]) -> None:
    for value in samples(params_type):
        msg = decode_message(encode_client_notification(method, value))
        assert isinstance(msg, IncomingNotification) and msg.method == method
        assert decode_params(msg.params, params_type) == value


def test_errors_survive_server_to_client() -> None:
    for code in ErrorCode:
        msg = decode_server_message(encode_error(3, code, 'no "such" thing\n'))
        assert msg.id == 3 and not isinstance(msg.error, UnsetType)
        assert (msg.error.code, msg.error.message) == (code, 'no "such" thing\n')


def test_the_full_samples_set_every_field() -> None:
    # Guard against a sampler that leaves fields at their defaults and so proves nothing.
    value = samples(METHODS["process/start"].params)[1]
    assert value.pty_size is not None and value.sandbox is not None and value.arg0 is not None


def test_a_start_with_a_managed_network_object_decodes() -> None:
    params_type = METHODS["process/start"].params
    value = samples(params_type)[1]
    value.managed_network = {"allowedDomains": ["example.com"]}
    msg = decode_message(encode_request(1, "process/start", value))
    assert isinstance(msg, IncomingRequest)
    assert decode_params(msg.params, params_type) == value
