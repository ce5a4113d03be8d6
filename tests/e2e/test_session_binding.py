"""Issue 12: a session belongs to the principal that created it. Resuming another principal's
session is refused exactly like resuming an unknown id, attached or not, and the full session
id never reaches the log."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import time
import uuid
from pathlib import Path

import pytest
from exec_server.testing import RawClient, RawRpcError, ServerProcess, capability_token_args

from tests.support import jwt, start_params


def _secret_file(tmp_path: Path, name: str, secret: str) -> str:
    path = tmp_path / name
    path.write_text(secret + "\n")
    return str(path)


async def _connect(url: str, token: str) -> RawClient:
    return await RawClient.connect(url, additional_headers={"Authorization": "Bearer " + token})


async def _refusal(client: RawClient, session_id: str) -> tuple[int, str]:
    """Code and message of a refused resume of ``session_id``, the id masked."""
    with pytest.raises(RawRpcError) as err:
        await client.handshake(resume=session_id)
    return err.value.code, err.value.message.replace(session_id, "<id>")


async def test_bob_cannot_resume_alices_session_attached_or_detached(tmp_path: Path) -> None:
    secret = b"shared-secret"
    args = ("--ws-auth", "signed-bearer-token", "--ws-shared-secret-file")
    async with ServerProcess(*args, _secret_file(tmp_path, "secret", secret.decode())) as s:

        def token(sub: str) -> str:
            return jwt(secret, {"sub": sub, "exp": time.time() + 600 + len(sub)})

        alice = await _connect(s.url, token("alice"))
        sid = (await alice.handshake())["sessionId"]
        await alice.call("process/start", start_params("cat", ["cat"], pipeStdin=True))
        bob = await _connect(s.url, token("bob"))
        unknown = await _refusal(bob, str(uuid.uuid4()))
        assert unknown[1] == "unknown session id <id>"
        # While alice is attached: no takeover, the same answer as for an id that never was.
        assert await _refusal(bob, sid) == unknown
        chunk = base64.b64encode(b"still mine\n").decode()
        await alice.call("process/write", {"processId": "cat", "chunk": chunk, "writeId": "1"})
        out = await alice.next_notification("process/output", "cat")
        assert base64.b64decode(out["params"]["chunk"]) == b"still mine\n"
        assert not alice.closed.done()
        await alice.aclose()
        # Detached: still refused for bob, and his refusals left it alive for alice, who
        # resumes with a fresh token for the same subject.
        assert await _refusal(bob, sid) == unknown
        alice2 = await _connect(s.url, jwt(secret, {"sub": "alice", "exp": time.time() + 900}))
        assert (await alice2.handshake(resume=sid))["sessionId"] == sid
        read = await alice2.call("process/read", {"processId": "cat", "afterSeq": 0})
        assert base64.b64decode(read["chunks"][0]["chunk"]) == b"still mine\n"
        # Bob's failed resumes did not use up his handshake: he gets a session of his own.
        assert (await bob.handshake())["sessionId"] != sid
        await alice2.aclose()
        await bob.aclose()
    log = s.stderr.decode(errors="replace")
    assert "Traceback" not in log, log[-4000:]
    assert "session resume refused: created by another principal" in log
    assert "principal=sub:bob" in log
    assert sid not in log


async def test_a_capability_token_principal_is_stable_across_reconnects(tmp_path: Path) -> None:
    token = "capability-s3cret"
    digest = hashlib.sha256(token.encode()).hexdigest()
    async with ServerProcess(*capability_token_args(tmp_path, token)) as s:
        first = await _connect(s.url, token)
        sid = (await first.handshake())["sessionId"]
        await first.call("process/start", start_params("cat", ["cat"], pipeStdin=True))
        await first.aclose()
        again = await _connect(s.url, token)
        assert (await again.handshake(resume=sid))["sessionId"] == sid
        assert (await again.call("process/read", {"processId": "cat"}))["exited"] is False
        # A takeover by the same principal still works.
        third = await _connect(s.url, token)
        assert (await third.handshake(resume=sid))["sessionId"] == sid
        async with asyncio.timeout(10):
            await again.closed
        await third.aclose()
    log = s.stderr.decode(errors="replace")
    assert "Traceback" not in log, log[-4000:]
    assert f"principal=token:{digest[:8]}" in log
    assert token not in log and digest not in log and sid not in log
