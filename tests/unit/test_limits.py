"""Handshake accounting and rate-limited logs, without an event loop."""

from __future__ import annotations

import logging

import pytest
from exec_server.transport._limits import HandshakeTracker, RateLimitedLog


def test_a_rate_limited_log_holds_lines_back_and_then_says_how_many(
    caplog: pytest.LogCaptureFixture,
) -> None:
    now = [0.0]
    limited = RateLimitedLog(logging.getLogger("t"), interval=5.0, clock=lambda: now[0])
    with caplog.at_level(logging.INFO, logger="t"):
        assert limited(logging.WARNING, "k", "failed: %s", "x")
        now[0] = 4.9
        assert not limited(logging.WARNING, "k", "failed: %s", "x")
        assert not limited(logging.WARNING, "k", "failed: %s", "x")
        assert limited(logging.WARNING, "other", "another key")
        now[0] = 5.0
        assert limited(logging.WARNING, "k", "failed: %s", "y")
    assert [r.getMessage() for r in caplog.records] == [
        "failed: x",
        "another key",
        "failed: y (2 more since the last report)",
    ]


def test_handshakes_are_capped_per_address_and_in_all_and_released() -> None:
    tracker = HandshakeTracker(max_total=3, max_per_address=2)
    assert tracker.try_enter("a") and tracker.try_enter("a")
    assert not tracker.try_enter("a")
    assert tracker.try_enter("b")
    assert not tracker.try_enter("c")  # the total
    tracker.leave("a")
    assert tracker.try_enter("c")
    for address in ("a", "b", "c"):
        tracker.leave(address)
    assert tracker.total == 0
    assert tracker.try_enter("a") and tracker.try_enter("a")
