"""WebSocket upgrade authentication (docs/protocol.md §10).

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

Each accepted upgrade has a :class:`Principal`, the identity sessions are bound to: the
token's SHA-256 in capability-token mode (never the token), ``sub`` plus the configured
``iss`` / ``aud`` for signed tokens (a ``sub`` that is not a string is refused: ``123`` and
``"123"`` must not be one caller), and :data:`ANONYMOUS` without authentication.
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
    "ANONYMOUS",
    "MAX_NUMERIC_DATE",
    "MAX_TOKEN_LENGTH",
    "CapabilityToken",
    "Principal",
    "SignedBearerToken",
    "read_secret_file",
]

MAX_TOKEN_LENGTH = 16 * 1024
"""Longest bearer token accepted; real JWTs are well under 2 KiB."""

MAX_NUMERIC_DATE = 253_402_300_799
"""9999-12-31T23:59:59Z: the largest ``exp``/``nbf``/``iat`` accepted."""


PRINCIPAL_LABEL_LENGTH = 64
"""Longest ``sub`` shown by :meth:`Principal.__str__` (logs); equality uses all of it."""


@dataclass(frozen=True)
class Principal:
    """Who authenticated a connection; a session belongs to the principal that created it.

    Attributes:
        kind: ``"anonymous"``, ``"token"`` (capability token) or ``"jwt"`` (signed token).
        subject: the hex SHA-256 of the capability token, the ``sub`` claim (``""`` when the
            token has none), or ``""`` for anonymous.
        issuer, audience: the ``iss`` / ``aud`` the server requires of signed tokens, if any.

    Two principals are the same caller exactly when they compare equal. ``str()`` is a short
    label for logs that holds no secret (8 hex digits of a token's hash, a truncated ``sub``).
    """

    kind: str
    subject: str = ""
    issuer: str | None = None
    audience: str | None = None

    def __str__(self) -> str:
        if self.kind == "token":
            return "token:" + self.subject[:8]
        if self.kind == "jwt":
            return "sub:" + self.subject[:PRINCIPAL_LABEL_LENGTH]
        return self.kind


ANONYMOUS = Principal("anonymous")
"""The one principal of a server without authentication (and of stdio)."""


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

    def principal(self, authorization: str | None) -> Principal:
        """The principal of a header this authenticator accepted: the token's SHA-256 (the
        configured digest, since the tokens matched)."""
        return Principal("token", self.sha256.hex())


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
        checked = self._check(authorization)
        return checked if isinstance(checked, str) else None

    def principal(self, authorization: str | None) -> Principal:
        """The principal of a header this authenticator accepted: ``sub`` and the configured
        ``iss`` / ``aud``.

        Only the signature is checked again, not the times: a token accepted a moment ago
        has the same principal even if it expired since.

        Raises:
            ValueError: the header does not carry a token signed with our secret (a bug in
                the caller).
        """
        claims = self._signed_claims(authorization)
        if isinstance(claims, str):
            raise ValueError(claims)
        sub = claims.get("sub")
        return Principal("jwt", sub if isinstance(sub, str) else "", self.issuer, self.audience)

    def _check(self, authorization: str | None) -> dict[str, Any] | str:
        """The token's claims, or why it is refused."""
        claims = self._signed_claims(authorization)
        if isinstance(claims, str):
            return claims
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
        if not isinstance(claims.get("sub", ""), str):
            return "token sub claim is not a string"
        return claims

    def _signed_claims(self, authorization: str | None) -> dict[str, Any] | str:
        """The claims of a token signed with our secret (nothing else checked), or why not."""
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
        return claims
