"""GET /metrics: Prometheus text, authenticated like the WebSocket, one value per event."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import signal
from pathlib import Path

import pytest
from exec_server.testing import RawClient, RawRpcError, ServerProcess, capability_token_args
from prometheus_client.parser import text_string_to_metric_families

from tests.support import http_request, start_params, wait_metric

TOKEN = "metrics-s3cret"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
ALLOWED_LABELS = {"method", "result", "limit", "le"}

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


async def scrape(url: str, *, token: str | None = TOKEN) -> tuple[int, bytes]:
    auth = f"Authorization: Bearer {token}\r\n" if token else ""
    return await http_request(url, f"GET /metrics HTTP/1.1\r\nHost: x\r\n{auth}\r\n".encode())


async def samples(url: str) -> Samples:
    """Every sample of a scrape, parsed with the Prometheus client's own text parser."""
    status, body = await scrape(url)
    assert status == 200, body
    out: Samples = {}
    for family in text_string_to_metric_families(body.decode()):
        for s in family.samples:
            assert set(s.labels) <= ALLOWED_LABELS, s  # no ids, commands or paths as labels
            out[(s.name, frozenset(s.labels.items()))] = s.value
    return out


def value(found: Samples, name: str, **labels: str) -> float:
    return found.get((name, frozenset(labels.items())), 0.0)


async def idle_connection(url: str) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """A TCP connection that sends nothing (the writer must be kept: dropping it closes)."""
    host, port = url.removeprefix("ws://").rsplit(":", 1)
    return await asyncio.open_connection(host, int(port))


async def closed_by_server(conn: tuple[asyncio.StreamReader, asyncio.StreamWriter]) -> None:
    """Wait until the server closed (or reset: a refusal at accept) the connection."""
    reader, writer = conn
    async with asyncio.timeout(10):
        with contextlib.suppress(ConnectionResetError):
            assert await reader.read() == b""
    writer.close()


async def test_metrics_count_connections_requests_processes_sessions_limits_and_the_drain(
    tmp_path: Path,
) -> None:
    args = capability_token_args(tmp_path, TOKEN)
    limits = ("--handshake-timeout", "1", "--max-handshakes-per-address", "2")
    async with ServerProcess(*args, *limits, "--drain-timeout", "30") as s:
        assert (await scrape(s.url, token=None))[0] == 401
        assert (await scrape(s.url, token="wrong"))[0] == 401
        status, body = await scrape(s.url)
        assert status == 200 and b"# TYPE exec_server_requests_total counter" in body
        before = await samples(s.url)
        assert value(before, "exec_server_connections_total") == 0
        assert value(before, "exec_server_limits_hit_total", limit="max_handshakes") == 0

        c = await RawClient.connect(s.url, additional_headers=AUTH)
        await c.handshake()
        # One process exits, one is killed by a signal, one cannot start, two keep running.
        await c.call("process/start", start_params("ok", ["sh", "-c", "echo hi"]))
        await c.call("process/start", start_params("sig", ["sh", "-c", "kill -TERM $$"]))
        with pytest.raises(RawRpcError) as failed:
            await c.call("process/start", start_params("bad", ["/nonexistent/program"]))
        assert failed.value.code == -32603
        go = tmp_path / "go"
        wait_for_go = f"while [ ! -e {go} ]; do sleep 0.01; done; echo go"
        await c.call("process/start", start_params("waiter", ["sh", "-c", wait_for_go]))
        await c.call(
            "process/start",
            start_params("job", ["sh", "-c", "read x; echo got $x"], pipeStdin=True),
        )
        assert (await c.collect("ok"))["exit"]["exitCode"] == 0
        assert (await c.collect("sig"))["exit"]["signal"] == "SIGTERM"
        with pytest.raises(RawRpcError):
            await c.call("no/such/method")
        sparse = tmp_path / "sparse"
        with sparse.open("wb") as f:
            f.truncate((512 << 20) + 1)  # no blocks allocated: nothing is really read
        with pytest.raises(RawRpcError):
            await c.call("fs/readFile", {"path": sparse.as_uri()})

        # 128 long polls fill the in-flight cap; the next request is not even read until they
        # end, so the process they wait on is released through a file, not its stdin.
        poll = {"processId": "waiter", "afterSeq": 0, "waitMs": 20_000}
        polls = [await c.send_request("process/read", poll) for _ in range(128)]
        info = await c.send_request("environment/info")

        # Released only once the server holds all 128: a poll it read after the release would
        # be answered at once, and the cap never reached.
        async def cap_reached() -> bool:
            found = await samples(s.url)
            return value(found, "exec_server_limits_hit_total", limit="requests_in_flight") >= 1

        async with asyncio.timeout(30):
            while not await cap_reached():  # noqa: ASYNC110 - server state seen via /metrics
                await asyncio.sleep(0.01)
        go.touch()
        async with asyncio.timeout(30):
            answers = await asyncio.gather(*polls, info)
        assert all("result" in a for a in answers)
        assert (await c.collect("waiter"))["stdout"] == b"go\n"

        # Handshake caps: two stalled connections from this address, a third is refused at
        # accept; the two are closed at the deadline.
        stalled = [await idle_connection(s.url) for _ in range(2)]
        await closed_by_server(await idle_connection(s.url))
        for conn in stalled:
            await closed_by_server(conn)

        found = await samples(s.url)
        assert value(found, "exec_server_connections_total") == 1
        assert value(found, "exec_server_connections_active") == 1
        assert value(found, "exec_server_sessions_attached") == 1
        assert value(found, "exec_server_sessions_detached") == 0
        assert value(found, "exec_server_requests_total", method="initialize", result="ok") == 1
        start = "process/start"
        assert value(found, "exec_server_requests_total", method=start, result="ok") == 4
        assert (
            value(found, "exec_server_requests_total", method=start, result="internal_error") == 1
        )
        assert (
            value(found, "exec_server_requests_total", method="unknown", result="method_not_found")
            == 1
        )
        assert (
            value(
                found, "exec_server_requests_total", method="fs/readFile", result="invalid_request"
            )
            == 1
        )
        assert value(found, "exec_server_request_duration_seconds_count", method=start) == 5
        assert (
            value(found, "exec_server_request_duration_seconds_count", method="process/read") == 128
        )
        assert value(found, "exec_server_processes_active") == 1  # "job"
        for result in ("exited", "signaled", "failed_to_start"):
            assert value(found, "exec_server_processes_finished_total", result=result) == (
                2 if result == "exited" else 1  # "ok" and "waiter" exited
            ), result
        assert value(found, "exec_server_process_duration_seconds_count", result="exited") == 2
        assert value(found, "exec_server_process_duration_seconds_count", result="signaled") == 1
        assert value(found, "exec_server_received_bytes_total") > 0
        assert value(found, "exec_server_sent_bytes_total") > value(
            before, "exec_server_sent_bytes_total"
        )
        hits = {
            "requests_in_flight": 1,
            "read_file_size": 1,
            "max_handshakes_per_address": 1,
            "handshake_timeout": 2,
            "max_handshakes": 0,
            "read_directory_entries": 0,
        }
        for limit, count in hits.items():
            assert value(found, "exec_server_limits_hit_total", limit=limit) == count, limit

        # Detach, drain, resume: the drain's refusals and the session states show.
        session = c.session_id
        await c.aclose()
        auth = f"Authorization: Bearer {TOKEN}\r\n".encode()
        await wait_metric(s.url, b"exec_server_sessions_detached 1.0", headers=auth)
        s.proc.send_signal(signal.SIGTERM)  # type: ignore[union-attr]  # started above
        async with asyncio.timeout(10):
            while (await http_request(s.url, b"GET /readyz HTTP/1.1\r\n\r\n"))[0] != 503:  # noqa: ASYNC110 - no event to await in another process
                await asyncio.sleep(0.01)
        newcomer = await RawClient.connect(s.url, additional_headers=AUTH)
        with pytest.raises(RawRpcError):
            await newcomer.handshake()
        await newcomer.aclose()
        draining = await samples(s.url)
        assert session is not None and session.encode() not in (await scrape(s.url))[1]
        assert value(draining, "exec_server_sessions_attached") == 0
        assert value(draining, "exec_server_sessions_detached") == 1
        assert value(draining, "exec_server_connections_total") == 2
        assert (
            value(
                draining,
                "exec_server_requests_total",
                method="initialize",
                result="server_draining",
            )
            == 1
        )

        again = await RawClient.connect(s.url, additional_headers=AUTH)
        await again.handshake(resume=session)
        assert value(await samples(s.url), "exec_server_sessions_attached") == 1
        chunk = base64.b64encode(b"1\n").decode()
        await again.call("process/write", {"processId": "job", "chunk": chunk, "writeId": "w"})
        # Attached again, the end arrives as notifications: then the server is drained.
        assert (await again.collect("job"))["exit"]["exitCode"] == 0
        assert s.proc is not None
        async with asyncio.timeout(20):
            assert await s.proc.wait() == 0
    log = s.stderr.decode(errors="replace")
    assert "Traceback" not in log, log[-4000:]
    assert "Warning:" not in log, log[-4000:]
