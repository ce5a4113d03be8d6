"""The command line: help, bad arguments and a busy port end with a clear message, no traceback."""

from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path

import pytest
from exec_server.testing import RawClient, ServerProcess

EXEC = [sys.executable, "-m", "exec_server"]


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*EXEC, *args], capture_output=True, text=True, timeout=30, check=False)


def test_help_documents_every_flag() -> None:
    out = run("--help").stdout
    for flag in (
        "--listen", "--log-level", "--session-ttl", "--retention-bytes", "--closed-retention",
        "--max-message-size", "--stop-grace", "--no-cgroups", "--ws-auth", "--ws-token-file",
        "--ws-token-sha256", "--ws-shared-secret-file", "--ws-issuer", "--ws-audience",
        "--ws-max-clock-skew-seconds", "--allow-unauthenticated", "--handshake-timeout",
        "--max-handshakes", "--max-handshakes-per-address", "--tls-cert", "--tls-key",
    ):  # fmt: skip
        assert flag in out, flag


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--listen", "http://x"], "--listen must be ws://IP:PORT, wss://IP:PORT or stdio"),
        (["--listen", "ws://127.0.0.1:99999"], "Port out of range"),
        (["--ws-auth", "capability-token"], "needs --ws-token-file or --ws-token-sha256"),
        (["--ws-auth", "capability-token", "--ws-token-file", "/nonexistent"], "cannot read"),
        (["--ws-auth", "capability-token", "--ws-token-sha256", "abc"], "64 hex digits"),
        (["--ws-auth", "signed-bearer-token"], "needs --ws-shared-secret-file"),
        (["--handshake-timeout", "0"], "--handshake-timeout must be positive"),
        (["--max-handshakes-per-address", "0"], "must be at least 1"),
        (["--tls-cert", "/nonexistent"], "--tls-cert and --tls-key go together"),
        (["--listen", "wss://127.0.0.1:0"], "needs --tls-cert and --tls-key"),
        (["--tls-cert", "/nonexistent", "--tls-key", "/nonexistent"], "cannot read /nonexistent"),
        (["--listen", "stdio", "--tls-cert", "/x", "--tls-key", "/x"], "not to stdio"),
    ],
)
def test_bad_arguments_exit_2_with_a_message(args: list[str], message: str) -> None:
    result = run(*args)
    assert result.returncode == 2
    assert message in result.stderr
    assert "Traceback" not in result.stderr


def test_a_busy_port_exits_1_with_a_message() -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = run("--listen", f"ws://127.0.0.1:{port}")
    assert result.returncode == 1
    assert "cannot listen on" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize("listen", ["ws://0.0.0.0:0", "ws://[::]:0", "ws://example.invalid:0"])
def test_a_non_loopback_listener_without_auth_refuses_to_start(listen: str) -> None:
    result = run("--listen", listen)
    assert result.returncode == 2
    assert "without authentication" in result.stderr
    assert "--ws-auth" in result.stderr and "--allow-unauthenticated" in result.stderr
    assert "Traceback" not in result.stderr


async def test_allow_unauthenticated_starts_a_non_loopback_listener_with_a_loud_warning() -> None:
    async with ServerProcess("--listen", "ws://0.0.0.0:0", "--allow-unauthenticated") as s:
        c = await RawClient.connect(s.url.replace("0.0.0.0", "127.0.0.1"))
        await c.handshake()
        await c.aclose()
    log = s.stderr.decode()
    assert "WARNING exec_server: UNAUTHENTICATED REMOTE EXECUTION" in log
    assert "--allow-unauthenticated" in log


async def test_a_loopback_or_authenticated_listener_starts_without_a_warning(
    tmp_path: Path,
) -> None:
    token = tmp_path / "token"
    token.write_text("t0ken\n")
    for args in (
        ("--listen", "ws://127.0.0.1:0"),
        ("--listen", "ws://localhost:0"),
        (
            "--listen",
            "ws://0.0.0.0:0",
            "--ws-auth",
            "capability-token",
            "--ws-token-file",
            str(token),
        ),
    ):
        async with ServerProcess(*args) as s:
            pass
        assert "WARNING" not in s.stderr.decode(), args
