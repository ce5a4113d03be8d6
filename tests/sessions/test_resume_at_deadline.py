"""A resume that arrives after a detached session's deadline, before the expiry timer ran
(a busy server), must still end the session's processes: the id is unknown *and* the tree dies.
In-process server, driven through its message handler."""

from __future__ import annotations

import time
from pathlib import Path

import orjson
from exec_server.server import Server, ServerConfig

from tests.support import start_params, wait_until


class Sink:
    def __init__(self) -> None:
        self.frames: list[dict[str, object]] = []
        self.closed = False

    def send(self, frame: bytes) -> None:
        self.frames.append(orjson.loads(frame))

    def close(self, code: int = 1000, reason: str = "") -> None:
        self.closed = True


def request(conn: object, rid: int, method: str, params: object) -> dict[str, object]:
    sink = conn.sink  # type: ignore[attr-defined]  # a ClientConnection over our Sink
    conn.on_message(orjson.dumps({"id": rid, "method": method, "params": params}))  # type: ignore[attr-defined]  # see above
    return next(f for f in reversed(sink.frames) if f.get("id") == rid)


async def test_a_resume_after_the_deadline_kills_the_expired_sessions_processes() -> None:
    server = Server(ServerConfig(session_ttl=60, use_cgroups=False))
    try:
        a = server.connection_for(Sink())
        sid = request(a, 1, "initialize", {"clientName": "t"})["result"]["sessionId"]  # type: ignore[index]
        a.on_message(b'{"method":"initialized"}')
        assert "result" in request(a, 2, "process/start", start_params("s", ["sleep", "300"]))
        pid = server.sessions.get(sid).processes.get("s").pid  # type: ignore[union-attr]
        a.on_close()
        # A busy server: the deadline has passed, the expiry timer has not run yet.
        server.sessions.get(sid).deadline = time.monotonic() - 1

        b = server.connection_for(Sink())
        answer = request(b, 1, "initialize", {"clientName": "t", "resumeSessionId": sid})
        assert answer["error"] == {"code": -32600, "message": f"unknown session id {sid}"}
        assert sid not in server.sessions
        await wait_until(lambda: not Path(f"/proc/{pid}").exists())
    finally:
        await server.aclose()
