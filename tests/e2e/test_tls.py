"""Issue 12: native TLS. ``--tls-cert``/``--tls-key`` make the listener ``wss://``; the client
connects with its own ``ssl.SSLContext``; a clear-text client is refused; SIGHUP reloads the
certificate for new connections and keeps the old one when the new files are bad."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import ssl
import subprocess
import sys
from pathlib import Path

import pytest
from exec_server.client import ConnectionLost, SyncClient, connect
from exec_server.testing import RawClient, ServerProcess
from exec_server.transport import TlsCertificate
from websockets.exceptions import InvalidMessage

from tests.support import Certificate, self_signed_certificate, wait_until

# More than the socket takes at once, so replies also go through the transport's buffer.
BIG = [sys.executable, "-c", "import sys; sys.stdout.write('x' * 300_000)"]


def _log(s: ServerProcess) -> str:
    log = s.stderr.decode(errors="replace")
    assert "Traceback" not in log, log[-4000:]
    return log


async def _peer_certificate(url: str, context: ssl.SSLContext) -> bytes:
    """The certificate the server presents to a new TLS connection (DER)."""
    host, port = url.removeprefix("wss://").rsplit(":", 1)
    _, writer = await asyncio.open_connection(host, int(port), ssl=context)
    der = writer.get_extra_info("ssl_object").getpeercert(binary_form=True)
    writer.close()
    with contextlib.suppress(OSError):
        await writer.wait_closed()
    assert isinstance(der, bytes)
    return der


@pytest.fixture
def cert(tmp_path: Path) -> Certificate:
    return self_signed_certificate(tmp_path, "server")


async def test_the_clients_run_commands_over_wss_with_their_own_ssl_context(
    cert: Certificate,
) -> None:
    async with ServerProcess("--tls-cert", cert.cert_file, "--tls-key", cert.key_file) as s:
        assert s.url.startswith("wss://127.0.0.1:")
        async with connect(s.url, ssl=cert.client_context()) as client:
            proc = await client.start(BIG, cwd="/tmp")
            out = b"".join([e.data async for e in proc if hasattr(e, "data")])
            assert (await proc.wait(), out) == (0, b"x" * 300_000)

        def run_sync() -> subprocess.CompletedProcess[bytes]:
            with SyncClient.connect(s.url, ssl=cert.client_context()) as sync:
                return sync.run(["sh", "-c", "cat; exit 3"], cwd="/tmp", input=b"hi\n")

        done = await asyncio.to_thread(run_sync)
        assert (done.returncode, done.stdout) == (3, b"hi\n")
        raw = await RawClient.connect(s.url, ssl=cert.client_context())
        await raw.handshake()
        await raw.aclose()
    assert "listening on wss://127.0.0.1:" in _log(s)


async def test_a_clear_text_or_untrusting_client_is_refused_on_the_tls_port(
    cert: Certificate, tmp_path: Path
) -> None:
    async with ServerProcess("--tls-cert", cert.cert_file, "--tls-key", cert.key_file) as s:
        plain = s.url.replace("wss://", "ws://")
        with pytest.raises(ConnectionLost, match="cannot connect"):
            await connect(plain, connect_timeout=10)
        with pytest.raises(InvalidMessage):  # the server hung up without an HTTP answer
            await RawClient.connect(plain)
        # A client that does not trust the certificate (the system CAs) fails verification.
        with pytest.raises(ConnectionLost, match="CERTIFICATE_VERIFY_FAILED"):
            await connect(s.url, connect_timeout=10)
        # An ssl context is for wss:// only.
        with pytest.raises(ValueError, match="wss://"):
            await connect(plain, ssl=cert.client_context())
        # The server is unharmed.
        async with connect(s.url, ssl=cert.client_context()) as client:
            assert await (await client.start(["true"], cwd="/tmp")).wait() == 0
    _log(s)


async def test_sighup_reloads_the_certificate_for_new_connections_and_keeps_it_on_bad_files(
    tmp_path: Path,
) -> None:
    first = self_signed_certificate(tmp_path, "first")
    second = self_signed_certificate(tmp_path, "second")
    third = self_signed_certificate(tmp_path, "third")
    served_cert, served_key = tmp_path / "served.crt", tmp_path / "served.key"
    first.install(served_cert, served_key)
    trust_all = ssl.create_default_context(cadata=(first.pem + second.pem + third.pem).decode())
    async with ServerProcess("--tls-cert", str(served_cert), "--tls-key", str(served_key)) as s:
        assert await _peer_certificate(s.url, trust_all) == first.der
        async with connect(s.url, ssl=trust_all) as established:
            second.install(served_cert, served_key)
            os.kill(s.pid, signal.SIGHUP)
            await wait_until(lambda: b"TLS certificate reloaded" in s.stderr)
            assert await _peer_certificate(s.url, trust_all) == second.der
            # The connection made before the reload carries on.
            assert await (await established.start(["true"], cwd="/tmp")).wait() == 0

        # Half-rotated files (a certificate without its key), then a missing key: each
        # reload fails, is logged, and the second certificate stays.
        third.install(served_cert, tmp_path / "unused.key")
        os.kill(s.pid, signal.SIGHUP)
        await wait_until(lambda: s.stderr.count(b"TLS certificate reload failed") == 1)
        assert await _peer_certificate(s.url, trust_all) == second.der
        served_key.unlink()
        os.kill(s.pid, signal.SIGHUP)
        await wait_until(lambda: s.stderr.count(b"TLS certificate reload failed") == 2)
        assert await _peer_certificate(s.url, trust_all) == second.der
        async with connect(s.url, ssl=trust_all) as client:
            assert await (await client.start(["true"], cwd="/tmp")).wait() == 0
    log = _log(s)
    assert "keeping the previous one" in log and "cannot read" in log


def test_bad_certificate_files_are_refused_with_a_message_naming_them(tmp_path: Path) -> None:
    from cryptography.hazmat.primitives import serialization

    a = self_signed_certificate(tmp_path, "a")
    b = self_signed_certificate(tmp_path, "b")
    key = serialization.load_pem_private_key(a.key_pem, None)
    encrypted = tmp_path / "encrypted.key"
    encrypted.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.BestAvailableEncryption(b"pw"),
        )
    )
    for cert_file, key_file, message in (
        (a.cert_file, b.key_file, "KEY_VALUES_MISMATCH"),
        (a.cert_file, str(tmp_path / "missing.key"), "cannot read " + str(tmp_path)),
        (a.cert_file, str(encrypted), "encrypted private keys are not supported"),
        (a.key_file, a.key_file, "invalid TLS certificate"),
    ):
        with pytest.raises(ValueError, match=message):
            TlsCertificate(cert_file, key_file)
    assert TlsCertificate(a.cert_file, a.key_file).context is not None
