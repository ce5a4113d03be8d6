"""Hostile and malformed input is answered with its JSON-RPC error or HTTP status: never a
traceback in the server's log, never a dropped connection where the protocol allows keeping it,
never a forged log line (issue 12)."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import os
import re
import struct
import time
from pathlib import Path
from typing import Any

import orjson
import pytest
from exec_server.testing import RawClient, ServerProcess
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from tests.support import http_request, start_params, wait_until

UPGRADE = (
    b"GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
    b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
)


def client_frame(payload: bytes) -> bytes:
    """A masked, final text frame, as a client sends it."""
    mask = os.urandom(4)
    n = len(payload)
    if n < 126:
        header = bytes((0x81, 0x80 | n))
    elif n < 65536:
        header = struct.pack("!BBH", 0x81, 0x80 | 126, n)
    else:
        header = struct.pack("!BBQ", 0x81, 0x80 | 127, n)
    masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
    return header + mask + masked


def read_server_frame(data: bytes) -> tuple[bytes, bytes] | None:
    """(payload, rest) of the first unmasked server frame in ``data``, or None if incomplete."""
    if len(data) < 2:
        return None
    n, offset = data[1] & 0x7F, 2
    if n == 126:
        n, offset = struct.unpack("!H", data[2:4])[0], 4
    elif n == 127:
        n, offset = struct.unpack("!Q", data[2:10])[0], 10
    if len(data) < offset + n:
        return None
    return data[offset : offset + n], data[offset + n :]


def assert_clean_log(server: ServerProcess) -> None:
    log = server.stderr.decode(errors="replace")
    assert "Traceback" not in log, log[-4000:]


# ---------------------------------------------------------------------------- JSON-RPC frames


def nested_request(depth: int) -> bytes:
    """An environment/info request whose (ignored) params field nests ``depth`` levels in all:
    the envelope and params objects are two of them."""
    inner = depth - 2
    head = b'{"id":7,"method":"environment/info","params":{"x":'
    return head + b"[" * inner + b"]" * inner + b"}}"


async def test_a_request_nested_1000_deep_is_minus_32600_and_the_connection_keeps_working(
    client: RawClient,
) -> None:
    await client.send_raw(nested_request(1000))
    err = await client.next_unmatched(timeout=10)
    assert err == {
        "id": -1,
        "error": {
            "code": -32600,
            "message": "failed to parse JSON-RPC message: JSON is nested more than 128 levels deep",
        },
    }
    assert (await client.call("environment/info"))["platformOs"] == "linux"


async def test_json_depth_is_bounded_at_128_levels_whatever_the_brackets_in_strings(
    client: RawClient,
) -> None:
    await client.send_raw(nested_request(128))
    assert "result" in await client.next_unmatched(timeout=10)
    await client.send_raw(nested_request(129))
    assert (await client.next_unmatched(timeout=10))["error"]["code"] == -32600
    # 100,000 brackets inside a string are text, not nesting.
    resp = await client.request_raw("environment/info", {"x": "[" * 100_000})
    assert "result" in resp


async def test_invalid_utf8_in_a_params_string_is_minus_32600_on_the_request_id(
    client: RawClient,
) -> None:
    frame = (
        b'{"id":"u","method":"process/start","params":'
        + orjson.dumps(start_params("p", ["true"])).replace(b'"p"', b'"p\xff"', 1)
        + b"}"
    )
    for text in (True, False):  # a text frame (no UTF-8 check by the library) and a binary one
        await client.ws.send(frame, text=text)
        resp = await client.next_unmatched(timeout=10)
        assert resp["id"] == "u"
        assert resp["error"]["code"] == -32600
        assert resp["error"]["message"] == (
            "failed to parse JSON-RPC message: a string is not valid UTF-8 "
            "(byte 0xff: invalid start byte)"
        )
    assert (await client.call("environment/info"))["platformOs"] == "linux"


async def test_invalid_utf8_in_the_envelope_is_minus_32600_on_id_minus_one(
    client: RawClient,
) -> None:
    for frame in (b'{"id":1,"method":"environment/\xc3("}', b'{"id":"\xff","method":"x"}'):
        await client.ws.send(frame, text=True)
        err = await client.next_unmatched(timeout=10)
        assert err["id"] == -1
        assert err["error"]["code"] == -32600
        assert "not valid UTF-8" in err["error"]["message"]
    assert (await client.call("environment/info"))["platformOs"] == "linux"


async def test_a_frame_in_the_same_packet_as_the_upgrade_request_is_answered(
    server: ServerProcess,
) -> None:
    host, port = server.url.removeprefix("ws://").rsplit(":", 1)
    reader, writer = await asyncio.open_connection(host, int(port))
    init = orjson.dumps({"id": 1, "method": "initialize", "params": {"clientName": "eager"}})
    # One write, one segment on loopback: the frame is read together with the request.
    writer.write(UPGRADE + b"\r\n" + client_frame(init))
    data = b""
    async with asyncio.timeout(10):
        while b"\r\n\r\n" not in data:
            data += await reader.read(65536)
        head, _, rest = data.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 101")
        while (frame := read_server_frame(rest)) is None:
            rest += await reader.read(65536)
    reply = orjson.loads(frame[0])
    assert reply["id"] == 1 and "sessionId" in reply["result"]
    writer.close()


# ---------------------------------------------------------------------------- HTTP upgrade


async def test_two_authorization_headers_are_refused_with_400(server: ServerProcess) -> None:
    status, body = await http_request(
        server.url, UPGRADE + b"Authorization: Bearer a\r\nAuthorization: Bearer b\r\n\r\n"
    )
    assert (status, body) == (400, b"more than one Authorization header\n")


SECRET = b"a-shared-secret-of-32-bytes-or-more"


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def signed_token(claims: bytes | dict[str, Any], header: bytes = b'{"alg":"HS256"}') -> str:
    payload = claims if isinstance(claims, bytes) else json.dumps(claims).encode()
    signing_input = f"{b64url(header)}.{b64url(payload)}"
    sig = hmac.new(SECRET, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{b64url(sig)}"


@pytest.fixture
async def jwt_server(tmp_path: Path) -> Any:
    secret = tmp_path / "secret"
    secret.write_bytes(SECRET + b"\n")
    async with ServerProcess(
        "--ws-auth", "signed-bearer-token", "--ws-shared-secret-file", str(secret)
    ) as s:
        yield s
    assert_clean_log(s)


async def upgrade_status(url: str, token: str) -> int:
    try:
        ws = await connect(url, additional_headers={"Authorization": f"Bearer {token}"})
    except InvalidStatus as exc:
        return exc.response.status_code
    await ws.close()
    return 101


async def test_a_jwt_whose_header_nests_20000_deep_is_refused_with_401(
    jwt_server: ServerProcess,
) -> None:
    deep = b"[" * 20_000 + b"]" * 20_000
    # Unsigned (the signature is checked before any JSON is parsed) and validly signed (the
    # parse itself is depth-bounded; 2,000 levels keep the token under the length limit).
    unsigned = f"{b64url(deep)}.e30.{b64url(b'x' * 32)}"
    signed = signed_token({"exp": time.time() + 60}, header=b"[" * 2000 + b"]" * 2000)
    for token in (unsigned, signed):
        status, body = await http_request(
            jwt_server.url, UPGRADE + f"Authorization: Bearer {token}\r\n\r\n".encode()
        )
        assert status == 401, body
    assert await upgrade_status(jwt_server.url, signed_token({"exp": time.time() + 60})) == 101


async def test_jwt_numeric_claims_must_be_numbers_of_seconds_in_range(
    jwt_server: ServerProcess,
) -> None:
    soon = time.time() + 60
    refused: list[bytes | dict[str, Any]] = [
        {"exp": 1e308},  # would never expire
        b'{"exp":1' + b"0" * 400 + b"}",  # 10**400
        {"exp": "9999999999"},
        {"exp": True},
        {"exp": -1},
        {"exp": soon, "nbf": "2000-01-01"},  # a string nbf is refused, not ignored
        {"exp": soon, "nbf": 1e300},
        {"exp": soon, "iat": "yesterday"},
        {"exp": soon, "iat": 1e300},
    ]
    for claims in refused:
        assert await upgrade_status(jwt_server.url, signed_token(claims)) == 401, claims


async def test_a_jwt_with_integer_or_fractional_times_in_range_is_accepted(
    jwt_server: ServerProcess,
) -> None:
    now = time.time()
    for claims in (
        {"exp": int(now) + 60, "nbf": int(now) - 5, "iat": int(now)},
        {"exp": now + 60.5, "nbf": None},
    ):
        assert await upgrade_status(jwt_server.url, signed_token(claims)) == 101


# ---------------------------------------------------------------------------- logs


async def test_control_characters_from_clients_are_escaped_and_session_ids_shortened(
    server: ServerProcess,
) -> None:
    c = await RawClient.connect(server.url)
    await c.handshake(client_name="evil\n2026-01-01 00:00:00,000 INFO forged: line")
    session_id = c.session_id
    assert session_id is not None
    pid = "p\r\nINFO exec_server.server: forged"
    await c.call("process/start", start_params(pid, ["true"]))
    await c.collect(pid)
    await c.aclose()

    def log() -> str:
        return server.stderr.decode(errors="replace")

    await wait_until(lambda: "process exited" in log() and "session detached" in log())
    lines = log().splitlines()
    assert not [line for line in lines if "forged" in line and not re.match(r"\d{4}-", line)]
    assert not [line for line in lines if line.startswith("2026-01-01")]
    assert r"client=" + '"evil\\n2026-01-01 00:00:00,000 INFO forged: line"' in log()
    assert r'process_id="p\r\nINFO exec_server.server: forged"' in log()
    assert session_id not in log()
    assert f"session_id={session_id[:8]} " in log()
