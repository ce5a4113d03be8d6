"""WebSocket upgrade authentication (PROTOCOL.md §10).

* capability-token: the bearer token must equal a configured secret (given as a file or as the
  hex SHA-256 of the token); compared in constant time on the SHA-256 digests.
* signed-bearer-token: an HS256 JWT signed with a shared secret; ``exp`` required, ``alg:none``
  and every other algorithm rejected, optional ``iss``/``aud`` checks, bounded clock skew.

Hostile tokens are refused (401) before any work that grows with their shape: a token is at
most :data:`MAX_TOKEN_LENGTH` characters, its signature is checked before its JSON is parsed,
and that JSON is parsed with the protocol's depth limit. The numeric claims ``exp``, ``nbf``
and ``iat`` must be JSON numbers between 0 and :data:`MAX_NUMERIC_DATE` when present (the
reference decodes them as i64): ``exp: 1e308`` would otherwise never expire, and a string
``nbf`` would be ignored instead of refused.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from dataclasses import dataclass
from typing import Any

import msgspec
from exec_server_protocol import json_depth_exceeds

__all__ = [
    "MAX_NUMERIC_DATE",
    "MAX_TOKEN_LENGTH",
    "CapabilityToken",
    "SignedBearerToken",
    "read_secret_file",
]

MAX_TOKEN_LENGTH = 16 * 1024
"""Longest bearer token accepted; real JWTs are well under 2 KiB."""

MAX_NUMERIC_DATE = 253_402_300_799
"""9999-12-31T23:59:59Z: the largest ``exp``/``nbf``/``iat`` accepted."""


def read_secret_file(path: str) -> bytes:
    """The file's content with one trailing newline (LF or CRLF) removed."""
    with open(path, "rb") as f:
        data = f.read()
    if data.endswith(b"\r\n"):
        return data[:-2]
    if data.endswith(b"\n"):
        return data[:-1]
    return data


def _bearer(authorization: str | None) -> str | None:
    if not authorization:
        return None
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()


@dataclass(frozen=True)
class CapabilityToken:
    sha256: bytes

    @classmethod
    def from_token(cls, token: bytes) -> CapabilityToken:
        return cls(hashlib.sha256(token).digest())

    @classmethod
    def from_hex(cls, hex_digest: str) -> CapabilityToken:
        try:
            digest = bytes.fromhex(hex_digest.strip())
        except ValueError:
            digest = b""
        if len(digest) != 32:
            raise ValueError("--ws-token-sha256 must be 64 hex digits")
        return cls(digest)

    def __call__(self, authorization: str | None) -> str | None:
        token = _bearer(authorization)
        if token is None:
            return "missing bearer token"
        if not hmac.compare_digest(hashlib.sha256(token.encode()).digest(), self.sha256):
            return "invalid bearer token"
        return None


def _b64url(data: str) -> bytes:
    return base64.urlsafe_b64decode(data + "=" * (-len(data) % 4))


def _json_segment(segment: str) -> Any:
    """Decode one base64url JSON part of a token.

    Raises:
        ValueError: bad base64, bad JSON, not UTF-8, or nested beyond the protocol's limit.
    """
    data = _b64url(segment)
    if json_depth_exceeds(data):
        raise ValueError("token JSON nested too deep")
    try:
        return msgspec.json.decode(data)
    except msgspec.DecodeError as exc:
        raise ValueError(str(exc)) from None


def _numeric_date_problem(claims: dict[str, Any], name: str) -> str | None:
    """Why claim ``name`` is not an acceptable NumericDate, or None (absent or null is fine)."""
    value = claims.get(name)
    if value is None:
        return None
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or not 0 <= value <= MAX_NUMERIC_DATE
    ):
        return f"token {name} claim is not a number of seconds between 0 and {MAX_NUMERIC_DATE}"
    return None


@dataclass(frozen=True)
class SignedBearerToken:
    secret: bytes
    issuer: str | None = None
    audience: str | None = None
    max_clock_skew_s: int = 30

    def __call__(self, authorization: str | None) -> str | None:
        token = _bearer(authorization)
        if token is None:
            return "missing bearer token"
        if len(token) > MAX_TOKEN_LENGTH:
            return "bearer token too long"
        try:
            header_b64, payload_b64, sig_b64 = token.split(".")
            signature = _b64url(sig_b64)
        except ValueError:
            return "malformed bearer token"
        # The signature covers the text of both parts: check it before parsing either, so an
        # unauthenticated peer never gets its JSON parsed.
        expected = hmac.new(
            self.secret, f"{header_b64}.{payload_b64}".encode(), hashlib.sha256
        ).digest()
        if not hmac.compare_digest(expected, signature):
            return "invalid token signature"
        try:
            header = _json_segment(header_b64)
            claims = _json_segment(payload_b64)
        except ValueError:
            return "malformed bearer token"
        if not isinstance(header, dict) or header.get("alg") != "HS256":
            return "unsupported token algorithm"
        if not isinstance(claims, dict):
            return "malformed token claims"
        for name in ("exp", "nbf", "iat"):
            problem = _numeric_date_problem(claims, name)
            if problem is not None:
                return problem
        now = time.time()
        exp = claims.get("exp")
        if exp is None:
            return "token has no exp claim"
        if now > exp + self.max_clock_skew_s:
            return "token expired"
        nbf = claims.get("nbf")
        if nbf is not None and now + self.max_clock_skew_s < nbf:
            return "token not yet valid"
        if self.issuer is not None and claims.get("iss") != self.issuer:
            return "token issuer mismatch"
        if self.audience is not None:
            aud = claims.get("aud")
            auds = aud if isinstance(aud, list) else [aud]
            if self.audience not in auds:
                return "token audience mismatch"
        return None
