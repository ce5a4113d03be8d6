"""Secrets (the bearer token, the session id) never reach exception messages or logs; a
malformed token is refused locally with a clear error."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import pytest
from exec_server.client import ConnectionLost, SessionLost, SyncClient, connect
from exec_server.testing import capability_token_args

from tests.support import BackgroundServer

TOKEN = "s3cr3t-token-0123456789abcdef"


@pytest.mark.parametrize(
    "bad", [TOKEN + "\n", " " + TOKEN, "zq1 zq2", "zqtök", "zq\x00zq", "\r\nX-Evil: 1", ""]
)
async def test_a_malformed_token_is_refused_locally_without_echoing_it(bad: str) -> None:
    with pytest.raises(ValueError, match="token") as caught:
        await connect("ws://127.0.0.1:9", token=bad)
    for part in bad.split():
        assert part not in str(caught.value)
    with pytest.raises(ValueError, match="token"):
        SyncClient.connect("ws://127.0.0.1:9", token=bad)


async def test_the_token_and_session_id_stay_out_of_logs_and_messages(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    server = BackgroundServer(*capability_token_args(tmp_path, TOKEN))
    caplog.set_level(logging.DEBUG)
    try:
        async with asyncio.timeout(30):
            with pytest.raises(ConnectionLost) as refused:
                await connect(server.url, token="wrong-" + TOKEN)
            assert TOKEN not in str(refused.value)
            client = await connect(server.url, token=TOKEN)
            session = client.session_id
            assert session[:8] in repr(client) and session not in repr(client)
            await client.aclose()
            other = await connect(server.url, token=TOKEN, reconnect_deadline=1)
            other.drop_connection()
            with pytest.raises(SessionLost) as lost:
                await connect(server.url, token=TOKEN, resume_session_id="0" * 36)
            assert "0" * 36 not in str(lost.value)
            await other.aclose()
    finally:
        server.stop()
    assert TOKEN not in caplog.text
    assert session not in caplog.text
