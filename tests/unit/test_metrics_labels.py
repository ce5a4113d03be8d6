"""Metric labels come from fixed sets, whatever a peer sends."""

from __future__ import annotations

import pytest
from exec_server.metrics import Metrics, error_class, method_label
from exec_server_protocol import ErrorCode


def test_a_method_outside_the_registry_is_labelled_unknown_so_peers_cannot_add_series() -> None:
    assert method_label("process/start") == "process/start"
    assert method_label("x" * 100) == "unknown"
    assert method_label(None) == "invalid"


def test_errors_are_labelled_by_code_class() -> None:
    assert error_class(ErrorCode.INVALID_PARAMS) == "invalid_params"
    assert error_class(ErrorCode.SERVER_DRAINING) == "server_draining"
    assert error_class(-31999) == "error"


def test_an_undeclared_limit_is_a_bug_not_a_new_series() -> None:
    m = Metrics()
    m.limit_hit("max_handshakes")
    with pytest.raises(KeyError):
        m.limit_hit("anything a caller invents")
    assert m.limits_hit.values[("max_handshakes",)] == 1
