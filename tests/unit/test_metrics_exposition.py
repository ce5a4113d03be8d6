"""GET /metrics writes what prometheus_client's own metrics would, and imports it only then."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Sequence

from exec_server.metrics import DURATION_BUCKETS, LIMITS, PROCESS_BUCKETS, PROCESS_RESULTS, Metrics
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)


class _Reference:
    """The families as prometheus_client's own objects, registered in the exposition's order."""

    def __init__(self) -> None:
        r = self.registry = CollectorRegistry()

        def counter(name: str, documentation: str, *labels: str) -> Counter:
            return Counter(name, documentation, labels, registry=r)

        def gauge(name: str, documentation: str) -> Gauge:
            return Gauge(name, documentation, registry=r)

        def histogram(
            name: str, documentation: str, label: str, buckets: Sequence[float]
        ) -> Histogram:
            return Histogram(name, documentation, [label], buckets=buckets, registry=r)

        self.connections_active = gauge(
            "exec_server_connections_active", "Open client connections."
        )
        self.connections = counter("exec_server_connections", "Accepted client connections.")
        self.requests = counter(
            "exec_server_requests",
            "Requests answered, by method and result (ok or the error's class).",
            "method",
            "result",
        )
        self.request_duration = histogram(
            "exec_server_request_duration_seconds",
            "Time from a request's arrival to its answer.",
            "method",
            DURATION_BUCKETS,
        )
        self.received_bytes = counter(
            "exec_server_received_bytes", "JSON-RPC message bytes received from clients."
        )
        self.sent_bytes = counter(
            "exec_server_sent_bytes", "JSON-RPC message bytes sent to clients."
        )
        self.processes_active = gauge(
            "exec_server_processes_active", "Processes started and not yet closed (or killed)."
        )
        self.processes_finished = counter(
            "exec_server_processes_finished",
            "Processes that exited, were killed by a signal, or failed to start.",
            "result",
        )
        self.process_duration = histogram(
            "exec_server_process_duration_seconds",
            "Wall time from spawn to exit (0 for a failed start).",
            "result",
            PROCESS_BUCKETS,
        )
        self.sessions_attached = gauge(
            "exec_server_sessions_attached", "Sessions with a connection."
        )
        self.sessions_detached = gauge(
            "exec_server_sessions_detached",
            "Sessions without a connection, waiting for a resume or their expiry.",
        )
        self.limits_hit = counter(
            "exec_server_limits_hit", "Times a limit or quota refused something, by limit.", "limit"
        )
        for limit in LIMITS:
            self.limits_hit.labels(limit)
        for result in PROCESS_RESULTS:
            self.processes_finished.labels(result)


def _without_times(text: bytes) -> str:
    return re.sub(r"(_created(\{[^}]*\})?) \S+", r"\1 T", text.decode())


def test_the_exposition_is_what_prometheus_clients_own_metrics_write_for_the_same_events() -> None:
    ours = Metrics()
    theirs = _Reference()
    assert _without_times(ours.render()[0]) == _without_times(generate_latest(theirs.registry))

    ours.connections += 2
    ours.connections_active += 2
    ours.connections_active -= 1
    ours.received_bytes += 1234
    ours.sent_bytes += 5678
    theirs.connections.inc(2)
    theirs.connections_active.inc(2)
    theirs.connections_active.dec()
    theirs.received_bytes.inc(1234)
    theirs.sent_bytes.inc(5678)
    # Values on, between and past the bucket bounds.
    answered = [
        ("initialize", "ok", 0.0004),
        ("process/start", "ok", 0.005),
        ("process/start", "internal_error", 0.2),
        ("unknown", "method_not_found", 0.0),
        ("process/read", "ok", 301.5),
        ("initialize", "ok", 0.001),
    ]
    for method, result, seconds in answered:
        ours.request_answered(method, result, seconds)
        theirs.requests.labels(method, result).inc()
        theirs.request_duration.labels(method).observe(seconds)
    for result, seconds in [("signaled", 0.01), ("exited", 4000.0), ("exited", 2.25)]:
        ours.process_finished(result, seconds)
        theirs.processes_finished.labels(result).inc()
        theirs.process_duration.labels(result).observe(seconds)
    for limit in ("requests_in_flight", "max_sessions", "requests_in_flight"):
        ours.limit_hit(limit)
        theirs.limits_hit.labels(limit).inc()
    ours.observe_state(processes=lambda: 3, attached=lambda: 1, detached=lambda: 2)
    theirs.processes_active.set(3)
    theirs.sessions_attached.set(1)
    theirs.sessions_detached.set(2)

    body, content_type = ours.render()
    assert _without_times(body) == _without_times(generate_latest(theirs.registry))
    assert b'exec_server_requests_created{method="initialize",result="ok"} 1.' in body
    assert content_type == CONTENT_TYPE_LATEST


def test_the_server_imports_prometheus_client_at_the_first_scrape_not_at_start() -> None:
    code = (
        "import sys, exec_server._entry, exec_server.cli, exec_server.server;"
        "from exec_server.metrics import METRICS;"
        "print('prometheus_client' in sys.modules);"
        "METRICS.render();"
        "print('prometheus_client' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "True"]


def test_prometheus_clients_switch_turns_the_created_series_off_as_for_its_own_metrics() -> None:
    code = (
        "from exec_server.metrics import Metrics; m = Metrics();"
        "m.request_answered('x', 'ok', 1.0); m.process_finished('exited', 1.0);"
        "print(m.render()[0].decode())"
    )
    env = {**os.environ, "PROMETHEUS_DISABLE_CREATED_SERIES": "True"}
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env
    )
    assert "exec_server_requests_total" in out.stdout
    assert "_created" not in out.stdout
