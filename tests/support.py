"""Helpers shared by the tests."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import os
import select
import signal
import ssl
import subprocess
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ENV = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LANG": "C.UTF-8"}


def start_params(process_id: str, argv: list[str], **extra: Any) -> dict[str, Any]:
    """process/start params with the defaults tests use (cwd /tmp, a minimal env)."""
    params: dict[str, Any] = {
        "processId": process_id,
        "argv": argv,
        "cwd": "file:///tmp",
        "env": dict(ENV),
        "tty": False,
    }
    params.update(extra)
    return params


async def wait_until(predicate: Callable[[], bool], *, timeout: float = 10.0) -> None:
    """Wait until ``predicate()`` is true, for state only the OS can tell (files, /proc).

    Polls every 10 ms under a deadline; nothing the test controls is waited on this way.
    """
    async with asyncio.timeout(timeout):
        while not predicate():  # noqa: ASYNC110 - OS state has no event to wait on
            await asyncio.sleep(0.01)


def process_running(marker: str) -> bool:
    """Whether a process whose command line contains ``marker`` runs on this host (the test
    runner itself excluded)."""
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                cmdline = f.read().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if marker in cmdline and "pytest" not in cmdline:
            return True
    return False


async def http_request(url: str, request: bytes) -> tuple[int, bytes]:
    """Send a raw HTTP ``request`` to the server at ``url`` (ws://host:port); returns the
    status code and the body once the server closed the connection."""
    host, port = url.removeprefix("ws://").rsplit(":", 1)
    reader, writer = await asyncio.open_connection(host, int(port))
    writer.write(request)
    await writer.drain()
    async with asyncio.timeout(10):
        data = await reader.read()
    writer.close()
    head, _, body = data.partition(b"\r\n\r\n")
    return int(head.split()[1]), body


def jwt(secret: bytes, claims: dict[str, object], alg: str = "HS256") -> str:
    """A JWT with ``claims`` signed with ``secret`` (HS256; any other ``alg`` gets no
    signature)."""

    def b64(data: bytes) -> str:
        return base64.urlsafe_b64encode(data).rstrip(b"=").decode()

    header = b64(json.dumps({"alg": alg, "typ": "JWT"}).encode())
    payload = b64(json.dumps(claims).encode())
    sig = hmac.new(secret, f"{header}.{payload}".encode(), hashlib.sha256).digest()
    return f"{header}.{payload}.{b64(sig) if alg == 'HS256' else ''}"


@dataclass(frozen=True)
class Certificate:
    """A throwaway self-signed server certificate for 127.0.0.1 and localhost."""

    cert_file: str
    key_file: str
    pem: bytes
    der: bytes
    key_pem: bytes

    def install(self, cert_file: Path, key_file: Path) -> None:
        """Write this certificate and its key over ``cert_file`` and ``key_file``."""
        cert_file.write_bytes(self.pem)
        key_file.write_bytes(self.key_pem)

    def client_context(self) -> ssl.SSLContext:
        """A client context that trusts this certificate only (host name checked)."""
        return ssl.create_default_context(cadata=self.pem.decode())


def self_signed_certificate(directory: Path, name: str) -> Certificate:
    """Make a fresh EC key and a one-day self-signed certificate, written as
    ``directory/name.crt`` and ``directory/name.key`` (PEM)."""
    import datetime
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"exec-server test {name}")])
    now = datetime.datetime.now(datetime.UTC)
    public = key.public_key()
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(public)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(public), critical=False)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .sign(key, hashes.SHA256())
    )
    pem = cert.public_bytes(serialization.Encoding.PEM)
    cert_file, key_file = directory / f"{name}.crt", directory / f"{name}.key"
    key_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    cert_file.write_bytes(pem)
    key_file.write_bytes(key_pem)
    der = cert.public_bytes(serialization.Encoding.DER)
    return Certificate(str(cert_file), str(key_file), pem, der, key_pem)


async def wait_metric(url: str, sample: bytes, *, headers: bytes = b"") -> None:
    """Wait until a scrape of the server's /metrics has the line ``sample`` (server state that
    no event of ours reports, such as a session detached after its connection closed)."""

    async def shown() -> bool:
        _, body = await http_request(url, b"GET /metrics HTTP/1.1\r\n" + headers + b"\r\n")
        return sample in body.splitlines()

    async with asyncio.timeout(10):
        while not await shown():  # noqa: ASYNC110 - the server's state has no event we can await
            await asyncio.sleep(0.01)


# A parent that starts: a plain background child, a setsid'd grandchild and a double-forked
# daemon (its intermediate exits at once); each writes its pid to a file and sleeps.
TREE = """
sleep 300 & echo $! > {d}/plain
setsid sh -c 'echo $$ > {d}/setsid; exec sleep 300' &
sh -c 'setsid sh -c "echo \\$\\$ > {d}/daemon; exec sleep 300" & exit 0'
echo ready
wait
"""


class BackgroundServer:
    """A real server in a child process, started without an event loop, so that one server can
    serve every test of a module (pytest-asyncio gives each test its own loop). A thread keeps
    reading its log into ``stderr``. Same ``url``/``pid``/``stderr`` as ``ServerProcess``."""

    def __init__(self, *args: str) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "exec_server", *args],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        self.stderr = bytearray()
        self._reader = threading.Thread(target=self._drain, daemon=True)
        self._reader.start()
        assert self.proc.stdout is not None
        ready, _, _ = select.select([self.proc.stdout], [], [], 30)
        line = self.proc.stdout.readline() if ready else b""
        if not line:
            self.stop()
            raise RuntimeError(f"server did not start: {self.stderr.decode(errors='replace')}")
        self.url = line.decode().strip()

    @property
    def pid(self) -> int:
        return self.proc.pid

    def _drain(self) -> None:
        assert self.proc.stderr is not None
        while chunk := self.proc.stderr.read1(65536):
            self.stderr += chunk

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._reader.join(5)
