"""Sans-I/O cores: output ring, env policy, session registry, RPC peer — no event loop."""

from __future__ import annotations

import pytest
from exec_server import rpc
from exec_server.processes.env import build_env
from exec_server.processes.ring import OutputRing
from exec_server.rpc import Dispatch, HandshakeState, Ignored, Reply, RpcPeer
from exec_server.sessions import (
    IllegalTransition,
    Session,
    SessionRegistry,
    SessionState,
    UnknownSession,
)
from exec_server_protocol.process import EnvPolicy

# ------------------------------------------------------------------ OutputRing


def test_ring_numbers_output_and_events_from_one_counter() -> None:
    ring = OutputRing(100)
    assert ring.append("stdout", b"a") == 1
    assert ring.append("stderr", b"b") == 2
    assert ring.next() == 3
    assert ring.next_seq == 4


def test_ring_evicts_oldest_whole_chunks_and_keeps_the_newest() -> None:
    ring = OutputRing(10)
    for i in range(5):
        ring.append("stdout", bytes([65 + i]) * 4)
    assert [c.seq for c in ring.read(0, None).chunks] == [4, 5]
    assert ring.retained_from_seq == 4
    ring.append("stdout", b"x" * 50)
    assert [c.seq for c in ring.read(0, None).chunks] == [6]
    assert ring.retained_from_seq == 6


def test_ring_read_after_seq_skips_event_seqs() -> None:
    ring = OutputRing(100)
    ring.append("stdout", b"a")
    ring.next()
    ring.append("stdout", b"b")
    assert [c.seq for c in ring.read(1, None).chunks] == [3]
    assert [c.seq for c in ring.read(2, None).chunks] == [3]
    assert ring.read(3, None).chunks == []
    assert ring.read(99, None).next_seq == 4


def test_ring_max_bytes_lets_one_chunk_through_and_never_splits() -> None:
    ring = OutputRing(100)
    for data in (b"aaa", b"bb", b"c"):
        ring.append("stdout", data)
    cut = ring.read(0, 0)
    assert [c.data for c in cut.chunks] == [b"aaa"]
    assert cut.next_seq == 2
    cut = ring.read(0, 5)
    assert [c.data for c in cut.chunks] == [b"aaa", b"bb"]
    assert cut.next_seq == 3
    whole = ring.read(0, 6)
    assert len(whole.chunks) == 3
    assert whole.next_seq == 4


def test_ring_tail_returns_the_last_bytes() -> None:
    ring = OutputRing(100)
    for data in (b"hello ", b"wor", b"ld"):
        ring.append("stdout", data)
    assert ring.tail(4) == b"orld"
    assert ring.all_output() == b"hello world"


# ------------------------------------------------------------------ env policy

SERVER_ENV = {
    "HOME": "/root",
    "PATH": "/bin",
    "USER": "u",
    "AWS_SECRET_ACCESS_KEY": "s",
    "GITHUB_TOKEN": "t",
    "api_key": "k",
    "EDITOR": "vi",
    "LC_ALL": "C",
}


def test_without_policy_the_env_is_exactly_the_request_env() -> None:
    assert build_env({"A": "1"}, None, SERVER_ENV) == {"A": "1"}


def test_inherit_all_drops_key_secret_and_token_names_case_insensitively() -> None:
    env = build_env({}, EnvPolicy(inherit="all"), SERVER_ENV)
    assert set(env) == {"HOME", "PATH", "USER", "EDITOR", "LC_ALL"}
    env = build_env({}, EnvPolicy(inherit="all", ignore_default_excludes=True), SERVER_ENV)
    assert set(env) == set(SERVER_ENV)


def test_inherit_core_none_exclude_include_only_set_then_env() -> None:
    assert set(build_env({}, EnvPolicy(inherit="core"), SERVER_ENV)) == {"HOME", "PATH", "USER"}
    assert build_env({}, EnvPolicy(inherit="none"), SERVER_ENV) == {}
    env = build_env({}, EnvPolicy(inherit="all", exclude=["lc_*", "ed?tor"]), SERVER_ENV)
    assert set(env) == {"HOME", "PATH", "USER"}
    env = build_env({}, EnvPolicy(inherit="all", include_only=["p*", "HOME"]), SERVER_ENV)
    assert set(env) == {"HOME", "PATH"}
    policy = EnvPolicy(inherit="core", set={"X": "set", "HOME": "set"})
    env = build_env({"X": "env"}, policy, SERVER_ENV)
    assert env["X"] == "env"
    assert env["HOME"] == "set"


# ------------------------------------------------------------------ sessions


def test_sessions_detach_resume_and_expire_by_deadline() -> None:
    reg: SessionRegistry[Session[str]] = SessionRegistry(ttl=10)
    rec = reg.create(lambda sid: Session(sid, "c1"))
    assert rec.state is SessionState.ATTACHED
    assert reg.detach(rec.id, "c1", now=100) is rec
    assert rec.state is SessionState.DETACHED
    assert reg.next_deadline() == 110
    assert reg.due(109.9) == []
    resumed, previous = reg.resume(rec.id, "c2", now=105)
    assert (resumed, previous) == (rec, None)
    assert rec.state is SessionState.ATTACHED
    assert rec.deadline is None
    reg.detach(rec.id, "c2", now=200)
    assert reg.due(210) == [rec]
    reg.expire(rec)
    assert rec.state is SessionState.EXPIRED
    with pytest.raises(UnknownSession):
        reg.get(rec.id)


def test_resume_of_an_attached_session_is_a_takeover() -> None:
    reg: SessionRegistry[Session[str]] = SessionRegistry(ttl=10)
    rec = reg.create(lambda sid: Session(sid, "old"))
    _, previous = reg.resume(rec.id, "new", now=0)
    assert previous == "old"
    # The old connection's later disconnect must not detach the session.
    assert reg.detach(rec.id, "old", now=1) is None
    assert rec.state is SessionState.ATTACHED


def test_expiry_wins_at_the_deadline_boundary() -> None:
    reg: SessionRegistry[Session[str]] = SessionRegistry(ttl=10)
    rec = reg.create(lambda sid: Session(sid, "c"))
    reg.detach(rec.id, "c", now=0)
    with pytest.raises(UnknownSession):
        reg.resume(rec.id, "d", now=10)
    assert rec.id not in reg


def test_each_detach_starts_a_new_ttl_window() -> None:
    reg: SessionRegistry[Session[str]] = SessionRegistry(ttl=10)
    rec = reg.create(lambda sid: Session(sid, "a"))
    reg.detach(rec.id, "a", now=0)
    reg.resume(rec.id, "b", now=9)
    reg.detach(rec.id, "b", now=9)
    assert rec.deadline == 19


def test_unknown_ids_and_illegal_transitions_raise() -> None:
    reg: SessionRegistry[Session[str]] = SessionRegistry(ttl=10)
    with pytest.raises(UnknownSession):
        reg.resume("nope", "c", now=0)
    rec = reg.create(lambda sid: Session(sid, "c"))
    with pytest.raises(IllegalTransition):
        reg.expire(rec)  # attached sessions do not expire
    reg.close(rec)
    with pytest.raises(IllegalTransition):
        reg.close(rec)


def test_session_ids_are_random_uuid4() -> None:
    reg: SessionRegistry[Session[str]] = SessionRegistry(ttl=1)
    ids = {reg.create(lambda sid: Session(sid, "c")).id for _ in range(50)}
    assert len(ids) == 50
    assert all(i[14] == "4" for i in ids)


# ------------------------------------------------------------------ RPC peer


def test_peer_checks_method_then_params_then_handshake() -> None:
    peer = RpcPeer()
    unknown = peer.receive(b'{"id":1,"method":"no/such"}')
    assert isinstance(unknown, Reply)
    assert b"-32601" in unknown.frame
    bad = peer.receive(b'{"id":2,"method":"process/read","params":{"processId":1}}')
    assert isinstance(bad, Reply)
    assert b"-32602" in bad.frame
    early = peer.receive(b'{"id":3,"method":"process/read","params":{"processId":"p"}}')
    assert isinstance(early, Reply)
    assert b"client must call initialize before using exec methods" in early.frame


def test_peer_handshake_transitions() -> None:
    peer = RpcPeer()
    assert isinstance(peer.receive(b'{"method":"initialized"}'), Ignored)
    assert peer.state is HandshakeState.NEW
    init = peer.receive(b'{"id":1,"method":"initialize","params":{"clientName":"c"}}')
    assert isinstance(init, Dispatch)
    peer.succeeded(init)
    again = peer.receive(b'{"id":2,"method":"initialize","params":{"clientName":"c"}}')
    assert isinstance(again, Reply)
    assert b"only be sent once" in again.frame
    assert isinstance(peer.receive(b'{"method":"initialized","params":{}}'), Ignored)
    assert peer.state is HandshakeState.READY
    ok = peer.receive(b'{"id":3,"method":"environment/info"}')
    assert isinstance(ok, Dispatch)
    with pytest.raises(rpc.IllegalTransition):
        peer.succeeded(init)  # initialize cannot succeed twice


def test_peer_answers_garbage_on_id_minus_one() -> None:
    reply = RpcPeer().receive(b"[]")
    assert isinstance(reply, Reply)
    assert reply.frame.startswith(b'{"id":-1,"error":{"code":-32600')
