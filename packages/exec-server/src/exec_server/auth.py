"""WebSocket upgrade authentication (PROTOCOL.md §10).

* capability-token: the bearer token must equal a configured secret (given as a file or as the
  hex SHA-256 of the token); compared in constant time on the SHA-256 digests.
* signed-bearer-token: an HS256 JWT signed with a shared secret; ``exp`` required, ``alg:none``
  and every other algorithm rejected, optional ``iss``/``aud`` checks, bounded clock skew.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from dataclasses import dataclass

__all__ = ["CapabilityToken", "SignedBearerToken", "read_secret_file"]


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
        try:
            header_b64, payload_b64, sig_b64 = token.split(".")
            header = json.loads(_b64url(header_b64))
            claims = json.loads(_b64url(payload_b64))
            signature = _b64url(sig_b64)
        except (ValueError, UnicodeDecodeError):
            return "malformed bearer token"
        if not isinstance(header, dict) or header.get("alg") != "HS256":
            return "unsupported token algorithm"
        expected = hmac.new(
            self.secret, f"{header_b64}.{payload_b64}".encode(), hashlib.sha256
        ).digest()
        if not hmac.compare_digest(expected, signature):
            return "invalid token signature"
        if not isinstance(claims, dict):
            return "malformed token claims"
        now = time.time()
        exp = claims.get("exp")
        if not isinstance(exp, int | float) or isinstance(exp, bool):
            return "token has no exp claim"
        if now > exp + self.max_clock_skew_s:
            return "token expired"
        nbf = claims.get("nbf")
        if isinstance(nbf, int | float) and now + self.max_clock_skew_s < nbf:
            return "token not yet valid"
        if self.issuer is not None and claims.get("iss") != self.issuer:
            return "token issuer mismatch"
        if self.audience is not None:
            aud = claims.get("aud")
            auds = aud if isinstance(aud, list) else [aud]
            if self.audience not in auds:
                return "token audience mismatch"
        return None
