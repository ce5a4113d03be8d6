"""The client's pure parts, without an event loop: seq reassembly, backoff, the request table
and the state machine."""

from __future__ import annotations

import base64
import random

import pytest
from exec_server.client._backoff import Backoff
from exec_server.client._calls import CallTable
from exec_server.client._events import ClosedEvent, ExitEvent, LostMarker, OutputEvent
from exec_server.client._reassembly import SeqReassembler
from exec_server.client._state import ClientEvent, ClientState, IllegalTransition, transition
from exec_server_protocol.process import OutputChunk, ReadResult


def out(seq: int, data: bytes = b"x") -> OutputEvent:
    return OutputEvent(seq, "stdout", data)


def read_result(
    chunks: list[int],
    next_seq: int,
    *,
    exited: bool = False,
    closed: bool = False,
    retained_from: int = 1,
    exit_code: int = 0,
) -> ReadResult:
    return ReadResult(
        chunks=[
            OutputChunk(seq=s, stream="stdout", chunk=base64.b64encode(b"c%d" % s).decode())
            for s in chunks
        ],
        next_seq=next_seq,
        exited=exited,
        exit_code=exit_code if exited else None,
        closed=closed,
        failure=None,
        sandbox_denied=False,
        retained_from_seq=retained_from,
    )


def seqs(events: list[object]) -> list[object]:
    return [
        ("lost", e.first_seq, e.retained_from_seq) if isinstance(e, LostMarker) else e.seq  # type: ignore[attr-defined]
        for e in events
    ]


# ---------------------------------------------------------------- reassembly


def test_pushes_in_order_are_released_at_once() -> None:
    r = SeqReassembler()
    assert seqs(r.push(out(1))) == [1]
    assert seqs(r.push(out(2))) == [2]
    assert r.delivered == 2 and not r.has_gap


def test_a_repeated_seq_is_released_once() -> None:
    r = SeqReassembler()
    r.push(out(1))
    assert r.push(out(1)) == []
    assert seqs(r.feed_read(0, read_result([1], 2))[0]) == []


def test_an_early_push_waits_for_the_gap_to_be_filled() -> None:
    r = SeqReassembler()
    assert r.push(out(3)) == []
    assert r.has_gap
    released, _ = r.feed_read(0, read_result([1, 2, 3], 4))
    assert seqs(released) == [1, 2, 3]
    assert not r.has_gap


def test_a_read_places_the_exit_and_close_events_in_its_seq_gaps() -> None:
    r = SeqReassembler()
    # seq 1 output, 2 exit, 3 output (a background child), 4 closed.
    released, complete = r.feed_read(0, read_result([1, 3], 5, exited=True, closed=True))
    assert complete
    assert [type(e) for e in released] == [OutputEvent, ExitEvent, OutputEvent, ClosedEvent]
    assert seqs(released) == [1, 2, 3, 4]
    assert r.exit_seq == 2 and r.closed


def test_trailing_gaps_are_the_exit_then_the_close() -> None:
    r = SeqReassembler()
    released, _ = r.feed_read(0, read_result([1], 4, exited=True, closed=True, exit_code=3))
    exit_event = released[1]
    assert isinstance(exit_event, ExitEvent) and exit_event.exit_code == 3
    assert seqs(released) == [1, 2, 3]


def test_an_exit_already_pushed_is_not_released_again_by_a_read() -> None:
    r = SeqReassembler()
    r.push(out(1))
    r.push(ExitEvent(2, 0))
    released, _ = r.feed_read(1, read_result([], 4, exited=True, closed=True))
    assert [type(e) for e in released] == [ClosedEvent]


def test_a_read_cut_by_max_bytes_is_not_complete() -> None:
    r = SeqReassembler()
    released, complete = r.feed_read(0, read_result([1, 2], 3, exited=True))
    assert seqs(released) == [1, 2] and not complete
    released, complete = r.feed_read(2, read_result([], 4, exited=True))
    assert seqs(released) == [3] and complete


def test_evicted_output_is_released_as_a_lost_marker_never_skipped() -> None:
    r = SeqReassembler()
    r.push(out(1))
    released, _ = r.feed_read(1, read_result([5, 6], 7, retained_from=5))
    assert seqs(released) == [("lost", 2, 5), 5, 6]


def test_an_exit_inside_the_evicted_range_follows_the_lost_marker() -> None:
    r = SeqReassembler()
    released, _ = r.feed_read(0, read_result([4], 6, exited=True, closed=True, retained_from=4))
    assert [type(e) for e in released] == [LostMarker, ExitEvent, OutputEvent, ClosedEvent]


def test_an_unexplained_gap_is_skipped_rather_than_waited_for() -> None:
    r = SeqReassembler()
    released, complete = r.feed_read(0, read_result([1, 3], 5))
    assert seqs(released) == [1, 3] and complete and not r.has_gap
    assert r.delivered == 4


def test_nothing_is_released_after_the_close() -> None:
    r = SeqReassembler()
    r.push(ClosedEvent(1))
    assert r.push(out(2)) == [] and r.closed


# ---------------------------------------------------------------- backoff


def test_backoff_starts_immediately_then_grows_to_its_cap() -> None:
    b = Backoff(initial=0.01, factor=2, maximum=0.05, jitter=0)
    assert [b.next_delay() for _ in range(6)] == [0.0, 0.01, 0.02, 0.04, 0.05, 0.05]
    b.reset()
    assert b.next_delay() == 0.0


def test_backoff_jitter_stays_in_bounds_and_is_deterministic_with_a_seed() -> None:
    a = Backoff(initial=1, maximum=1, jitter=0.5, rng=random.Random(1))
    b = Backoff(initial=1, maximum=1, jitter=0.5, rng=random.Random(1))
    da = [a.next_delay() for _ in range(50)][1:]
    assert da == [b.next_delay() for _ in range(50)][1:]
    assert all(0.5 <= d <= 1 for d in da)


def test_backoff_rejects_nonsense() -> None:
    with pytest.raises(ValueError, match="initial"):
        Backoff(initial=2, maximum=1)


# ---------------------------------------------------------------- calls


def test_calls_are_resent_in_call_order_with_fresh_ids_after_a_drop() -> None:
    t: CallTable[str] = CallTable()
    a = t.add("process/write", b"{}", "a", retry=True)
    b = t.add("fs/remove", b"{}", "b", retry=False)
    first = [t.send(a, 1), t.send(b, 1)]
    c = t.add("process/read", b"{}", "c", retry=True)  # queued while disconnected
    assert t.connection_lost(1) == [b]
    frames = t.flush(2)
    assert [f.split(b'"method":')[1][:14] for f in frames] == [b'"process/write', b'"process/read"']
    assert frames[0] not in first  # a new wire id
    assert t.resolve(a.wire_id) is a and a.attempts == 2
    assert t.resolve(a.wire_id) is None
    assert t.resolve("not-ours") is None
    assert t.drain() == [c]


def test_a_discarded_call_is_forgotten() -> None:
    t: CallTable[str] = CallTable()
    a = t.add("m", b"null", "a", retry=True)
    t.send(a, 1)
    t.discard(a)
    assert len(t) == 0 and t.connection_lost(1) == []


# ---------------------------------------------------------------- state


def test_client_state_transitions_follow_the_table() -> None:
    s = transition(ClientState.CONNECTED, ClientEvent.DROP)
    assert s is ClientState.RECOVERING
    assert transition(s, ClientEvent.RESUMED) is ClientState.CONNECTED
    assert transition(s, ClientEvent.GIVE_UP) is ClientState.FAILED
    with pytest.raises(IllegalTransition):
        transition(ClientState.FAILED, ClientEvent.RESUMED)
    with pytest.raises(IllegalTransition):
        transition(ClientState.CLOSED, ClientEvent.DROP)
