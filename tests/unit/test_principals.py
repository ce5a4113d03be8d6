"""Issue 12: who a connection is (auth principals) and sessions bound to it, without I/O."""

from __future__ import annotations

import time

import pytest
from exec_server.auth import ANONYMOUS, CapabilityToken, Principal, SignedBearerToken
from exec_server.sessions import NotOwner, Session, SessionRegistry, SessionState, UnknownSession

from tests.support import jwt


def test_a_resume_by_another_owner_is_unknown_and_leaves_the_session_as_it_was() -> None:
    reg: SessionRegistry[Session[str]] = SessionRegistry(ttl=10)
    rec = reg.create(lambda sid: Session(sid, "alice-conn", owner="alice"))
    with pytest.raises(NotOwner) as err:
        reg.resume(rec.id, "bob-conn", now=0, owner="bob")
    assert isinstance(err.value, UnknownSession)  # callers that only know this answer alike
    assert (rec.state, rec.connection) == (SessionState.ATTACHED, "alice-conn")  # no takeover
    reg.detach(rec.id, "alice-conn", now=1)
    with pytest.raises(NotOwner):
        reg.resume(rec.id, "bob-conn", now=2, owner="bob")
    assert (rec.state, rec.deadline) == (SessionState.DETACHED, 11)  # the TTL window stands
    resumed, _ = reg.resume(rec.id, "alice-conn-2", now=3, owner="alice")
    assert resumed is rec
    _, previous = reg.resume(rec.id, "alice-conn-3", now=4, owner="alice")
    assert previous == "alice-conn-2"  # takeover by the same owner still works


def test_capability_token_principals_are_stable_distinct_and_hold_no_secret() -> None:
    a, b = CapabilityToken.from_token(b"token-a"), CapabilityToken.from_token(b"token-b")
    pa = a.principal("Bearer token-a")
    assert pa == a.principal("Bearer token-a")
    assert pa != b.principal("Bearer token-b")
    assert pa != ANONYMOUS
    for text in (str(pa), repr(pa)):
        assert "token-a" not in text
    assert str(pa) == "token:" + a.sha256.hex()[:8]


def test_signed_token_principal_is_sub_with_the_configured_issuer_and_audience() -> None:
    auth = SignedBearerToken(b"s", issuer="me", audience="exec")
    base = {"exp": time.time() + 60, "iss": "me", "aud": ["exec", "other"]}
    alice = "Bearer " + jwt(b"s", {**base, "sub": "alice"})
    alice_later = "Bearer " + jwt(b"s", {**base, "sub": "alice", "exp": time.time() + 120})
    bob = "Bearer " + jwt(b"s", {**base, "sub": "bob"})
    assert auth(alice) is None
    assert auth.principal(alice) == Principal("jwt", "alice", "me", "exec")
    assert auth.principal(alice) == auth.principal(alice_later)  # a fresh token, same caller
    assert auth.principal(alice) != auth.principal(bob)
    assert str(auth.principal(alice)) == "sub:alice"
    nobody = "Bearer " + jwt(b"s", base)
    assert auth(nobody) is None
    assert auth.principal(nobody) == Principal("jwt", "", "me", "exec")
    with pytest.raises(ValueError, match="signature"):
        auth.principal("Bearer " + jwt(b"other", {**base, "sub": "alice"}))


def test_a_signed_token_whose_sub_is_not_a_string_is_refused() -> None:
    auth = SignedBearerToken(b"s")
    for sub in (123, ["alice"], {"a": 1}, True):
        token = jwt(b"s", {"exp": time.time() + 60, "sub": sub})
        assert auth("Bearer " + token) == "token sub claim is not a string"


def test_a_long_sub_is_cut_in_the_log_label_but_compared_in_full() -> None:
    long_a, long_b = "a" * 100, "a" * 99 + "b"
    assert str(Principal("jwt", long_a)) == "sub:" + "a" * 64
    assert Principal("jwt", long_a) != Principal("jwt", long_b)
