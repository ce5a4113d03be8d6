"""Envelope, handshake and HTTP behaviour (docs/protocol.md §1, §2 basics, §10)."""

from __future__ import annotations

import asyncio
import hashlib
import socket
import time
from pathlib import Path

import pytest
from exec_server.testing import RawClient, ServerProcess, capability_token_args
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from tests.support import http_request, jwt, start_params


async def test_readyz_answers_200_with_an_empty_body_for_get_and_head(
    server: ServerProcess,
) -> None:
    assert await http_request(server.url, b"GET /readyz HTTP/1.1\r\nHost: x\r\n\r\n") == (200, b"")
    assert await http_request(server.url, b"HEAD /readyz HTTP/1.1\r\nHost: x\r\n\r\n") == (200, b"")


async def test_livez_answers_200_without_auth_beside_readyz(tmp_path: Path) -> None:
    async with ServerProcess(*capability_token_args(tmp_path, "s3cret")) as s:
        for path in (b"/livez", b"/readyz"):
            get = await http_request(s.url, b"GET " + path + b" HTTP/1.1\r\nHost: x\r\n\r\n")
            head = await http_request(s.url, b"HEAD " + path + b" HTTP/1.1\r\nHost: x\r\n\r\n")
            assert get == head == (200, b"")


async def test_other_paths_are_404_and_any_origin_is_403(server: ServerProcess) -> None:
    assert (await http_request(server.url, b"GET /other HTTP/1.1\r\nHost: x\r\n\r\n"))[0] == 404
    status, _ = await http_request(
        server.url, b"GET /readyz HTTP/1.1\r\nHost: x\r\nOrigin: http://evil\r\n\r\n"
    )
    assert status == 403
    with pytest.raises(InvalidStatus) as err:
        await connect(server.url, origin="http://localhost")  # type: ignore[arg-type]
    assert err.value.response.status_code == 403
    with pytest.raises(InvalidStatus) as err:
        await connect(server.url + "/ws")
    assert err.value.response.status_code == 404


async def test_accepted_sockets_have_tcp_nodelay(server: ServerProcess) -> None:
    # The server's side cannot be read from here; its effect can: many tiny request/response
    # round trips on one connection never stall for a delayed ACK. Instead of timing, check the
    # option on the accepted socket through /proc's view of the server's fds.
    c = await RawClient.connect(server.url)
    await c.handshake()
    sock = c.ws.transport.get_extra_info("socket")
    local = sock.getsockname()
    import psutil

    proc = psutil.Process(server.pid)
    conns = [
        cn for cn in proc.net_connections(kind="tcp") if cn.raddr and cn.raddr.port == local[1]
    ]
    assert conns, "the server's end of our connection was not found"
    fd = conns[0].fd
    dup = socket.socket(fileno=_pidfd_getfd(server.pid, fd))
    try:
        assert dup.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) == 1
    finally:
        dup.close()
    await c.aclose()


def _pidfd_getfd(pid: int, fd: int) -> int:
    import ctypes
    import os

    pidfd = os.pidfd_open(pid)
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        sys_pidfd_getfd = 438
        new = libc.syscall(sys_pidfd_getfd, pidfd, fd, 0)
        if new < 0:
            raise OSError(ctypes.get_errno(), "pidfd_getfd")
        return int(new)
    finally:
        os.close(pidfd)


@pytest.mark.parametrize(
    "frame",
    [
        "{not json",
        "[1,2]",
        "[]",
        '[{"id":1,"method":"environment/info"}]',
        "42",
        '"str"',
        "null",
        '{"id":1}',
        "{}",
        '{"id":1.5,"method":"environment/info"}',
        '{"id":2.0,"method":"environment/info"}',
        '{"id":null,"method":"environment/info"}',
        '{"id":true,"method":"environment/info"}',
        '{"id":{"a":1},"method":"environment/info"}',
        '{"id":4,"method":5}',
    ],
)
async def test_frames_that_are_not_one_json_rpc_object_get_minus_one_and_the_connection_stays(
    client: RawClient, frame: str
) -> None:
    await client.send_raw(frame)
    err = await client.next_unmatched(timeout=10)
    assert err["id"] == -1
    assert err["error"]["code"] == -32600
    assert err["error"]["message"].startswith("failed to parse")
    assert (await client.call("environment/info"))["platformOs"] == "linux"


async def test_binary_frames_carrying_json_are_read_like_text(client: RawClient) -> None:
    await client.ws.send(b'{"id":"bin","method":"environment/info"}')
    resp = await client.next_unmatched(timeout=10)
    assert resp["id"] == "bin" and "result" in resp


@pytest.mark.parametrize(
    "request_id", ["", "abc", -7, 9223372036854775807, -9223372036854775808, 0]
)
async def test_ids_are_echoed_unchanged(client: RawClient, request_id: object) -> None:
    resp = await client.request_raw("environment/info", id=request_id)
    assert resp["id"] == request_id
    assert "jsonrpc" not in resp


async def test_empty_params_accept_omitted_null_and_empty_object(client: RawClient) -> None:
    for params in (None, {}):
        assert (await client.call("environment/info", params))["platformOs"] == "linux"
    resp = await client.request_raw("environment/info")
    assert "result" in resp
    await client.send_raw('{"id":"n","method":"environment/info","params":null}')


async def test_stray_notifications_and_client_responses_are_ignored(client: RawClient) -> None:
    await client.notify("foo/bar", {})
    await client.send_raw('{"id":99,"result":{}}')
    await client.send_raw('{"id":98,"error":{"code":1,"message":"x"}}')
    assert (await client.call("environment/info"))["platformOs"] == "linux"


async def test_environment_info_describes_the_host(client: RawClient) -> None:
    info = await client.call("environment/info")
    assert info["platformOs"] == "linux"
    assert info["cwd"].startswith("file:///")
    assert info["userHomeDir"].startswith("file:///")
    assert info["tempDir"].startswith("file:///")
    assert info["temporaryDirectories"] == []
    assert Path(info["shell"]["path"]).name == info["shell"]["name"]
    assert all(isinstance(v, bool) for v in info["capabilities"].values())
    assert info["capabilities"]["networkProxyLaunch"] is False
    init_again = await RawClient.connect(_url(client))
    result = await init_again.handshake()
    assert result["environmentInfo"] == info
    await init_again.aclose()


def _url(client: RawClient) -> str:
    host, port = client.ws.remote_address[:2]
    return f"ws://{host}:{port}"


async def test_an_oversized_frame_closes_the_connection_with_1009() -> None:
    async with ServerProcess("--max-message-size", "100000") as s:
        c = await RawClient.connect(s.url)
        await c.handshake()
        await c.send_raw(
            '{"id":1,"method":"environment/info","params":{"pad":"' + "x" * 200_000 + '"}}'
        )
        async with asyncio.timeout(10):
            await c.closed
        assert c.ws.close_code == 1009
        # The server keeps serving others.
        d = await RawClient.connect(s.url)
        await d.handshake()
        await d.aclose()


async def test_a_frame_just_under_the_limit_is_processed() -> None:
    async with ServerProcess("--max-message-size", "100000") as s:
        c = await RawClient.connect(s.url)
        await c.handshake()
        resp = await c.request_raw("no/such", {"pad": "x" * 90_000})
        assert resp["error"]["code"] == -32601
        await c.aclose()


async def test_requests_on_one_connection_run_concurrently(client: RawClient) -> None:
    await client.call("process/start", start_params("slow", ["sleep", "30"]))
    long_poll = asyncio.ensure_future(
        client.call("process/read", {"processId": "slow", "waitMs": 20_000})
    )
    for _ in range(5):
        assert (await client.call("environment/info"))["platformOs"] == "linux"
    assert not long_poll.done()
    await client.call("process/terminate", {"processId": "slow"})
    result = await asyncio.wait_for(long_poll, 10)
    assert result["exited"] is True


def _secret_file(tmp_path: Path, secret: str) -> str:
    path = tmp_path / "secret"
    path.write_text(secret + "\n")
    return str(path)


async def test_capability_token_guards_the_upgrade_but_not_readyz(tmp_path: Path) -> None:
    async with ServerProcess(*capability_token_args(tmp_path, "s3cret")) as s:
        assert (await http_request(s.url, b"GET /readyz HTTP/1.1\r\nHost: x\r\n\r\n"))[0] == 200
        with pytest.raises(InvalidStatus) as err:
            await connect(s.url)
        assert err.value.response.status_code == 401
        with pytest.raises(InvalidStatus):
            await connect(s.url, additional_headers={"Authorization": "Bearer wrong"})
        c = await RawClient.connect(s.url, additional_headers={"Authorization": "Bearer s3cret"})
        await c.handshake()
        await c.aclose()
    digest = hashlib.sha256(b"other").hexdigest()
    async with ServerProcess("--ws-auth", "capability-token", "--ws-token-sha256", digest) as s:
        c = await RawClient.connect(s.url, additional_headers={"Authorization": "Bearer other"})
        await c.aclose()


async def test_signed_bearer_tokens_need_a_valid_signature_exp_issuer_and_audience(
    tmp_path: Path,
) -> None:
    secret_file = _secret_file(tmp_path, "shared")
    args = (
        "--ws-auth",
        "signed-bearer-token",
        "--ws-shared-secret-file",
        secret_file,
        "--ws-issuer",
        "me",
        "--ws-audience",
        "exec",
    )
    async with ServerProcess(*args) as s:
        good = {"exp": time.time() + 60, "iss": "me", "aud": "exec"}
        c = await RawClient.connect(
            s.url, additional_headers={"Authorization": "Bearer " + jwt(b"shared", good)}
        )
        await c.aclose()
        for token in (
            jwt(b"other", good),
            jwt(b"shared", {"iss": "me", "aud": "exec"}),
            jwt(b"shared", {**good, "exp": time.time() - 3600}),
            jwt(b"shared", {**good, "iss": "you"}),
            jwt(b"shared", {**good, "aud": "x"}),
            jwt(b"shared", good, alg="none"),
            "garbage",
        ):
            with pytest.raises(InvalidStatus) as err:
                await connect(s.url, additional_headers={"Authorization": "Bearer " + token})
            assert err.value.response.status_code == 401


async def test_server_keeps_running_after_a_client_vanishes_mid_request(
    server: ServerProcess,
) -> None:
    c = await RawClient.connect(server.url)
    await c.handshake()
    await c.send_raw('{"id":1,"method":"process/read","params":{"processId":"x","waitMs":1000}}')
    c.ws.transport.abort()
    async with asyncio.timeout(10):
        await c.closed
    d = await RawClient.connect(server.url)
    await d.handshake()
    await d.aclose()
