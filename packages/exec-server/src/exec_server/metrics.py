"""The server's Prometheus metrics (``GET /metrics``), on the maintained ``prometheus_client``.

Names follow Codex's exec-server telemetry where it has one (``exec_server_connections_*``,
``exec_server_requests_total``, ``exec_server_request_duration_seconds``,
``exec_server_processes_*``, ``exec_server_process_duration_seconds``); the rest are ours, in
the same style. Labels take values from small fixed sets only — never an id, a command, a path
or a client-chosen string — so no peer can grow the number of series:

========================================  =========  ==========================================
family                                    labels     owner (the one place it changes)
========================================  =========  ==========================================
exec_server_connections_active            -          ``ClientConnection`` (server.py)
exec_server_connections_total             -          ``ClientConnection`` (server.py)
exec_server_requests_total                method,    ``ClientConnection`` answers (server.py)
                                          result
exec_server_request_duration_seconds      method     ``ClientConnection`` answers (server.py)
exec_server_received_bytes_total          -          ``ClientConnection.on_message`` (JSON-RPC
                                                     message bytes, WebSocket and stdio)
exec_server_sent_bytes_total              -          ``ClientConnection.send``
exec_server_processes_active              -          read at scrape from the process table
exec_server_processes_finished_total      result     :meth:`Metrics.process_finished`
exec_server_process_duration_seconds      result     :meth:`Metrics.process_finished`
exec_server_sessions_attached             -          read at scrape from the session registry
exec_server_sessions_detached             -          read at scrape from the session registry
exec_server_limits_hit_total              limit      :meth:`Metrics.limit_hit`, where each
                                                     limit refuses something
========================================  =========  ==========================================

``method`` is a method of the protocol registry, ``unknown`` or ``invalid`` (a frame that is no
request); ``result`` of a request is ``ok`` or the error's class (:func:`error_class`); a
process's ``result`` is ``exited``, ``signaled`` or ``failed_to_start``; ``limit`` is the name
of a flag or a fixed limit (:data:`LIMITS`).

One :data:`METRICS` per server process (the CLI runs one server); the modules that hit a limit
deep down (transport, fs) report to it without knowing the server.
"""

from __future__ import annotations

from collections.abc import Callable

from exec_server_protocol import METHODS, ErrorCode
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)

__all__ = ["LIMITS", "METRICS", "Metrics", "error_class", "method_label"]

LIMITS = frozenset(
    {
        "handshake_timeout",
        "max_handshakes",
        "max_handshakes_per_address",
        "requests_in_flight",
        "read_file_size",
        "read_directory_entries",
        # Quotas, named after their flags.
        "max_sessions",
        "max_processes",
        "max_processes_per_session",
        "max_retained_bytes",
        "max_session_retained_bytes",
        "max_fs_handles",
    }
)
"""Names :meth:`Metrics.limit_hit` accepts."""

_ERROR_CLASSES = {int(code): code.name.lower() for code in ErrorCode}
_DURATION_BUCKETS = (0.001, 0.005, 0.025, 0.1, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0)
_PROCESS_BUCKETS = (0.01, 0.1, 0.5, 1.0, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0, 3600.0)
PROCESS_RESULTS = ("exited", "signaled", "failed_to_start")


def error_class(code: int) -> str:
    """The ``result`` label of a request answered with ``code`` (``invalid_request``, ...;
    ``error`` for a code we never send)."""
    return _ERROR_CLASSES.get(code, "error")


def method_label(method: str | None) -> str:
    """The ``method`` label: the method when the registry knows it, else ``unknown``."""
    if method is None:
        return "invalid"
    return method if method in METHODS else "unknown"


class Metrics:
    """Every metric family of one server, in a registry of its own."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self._limits = set(LIMITS)
        self.connections_active = Gauge(
            "exec_server_connections_active", "Open client connections.", registry=r
        )
        self.connections = Counter(
            "exec_server_connections", "Accepted client connections.", registry=r
        )
        self.requests = Counter(
            "exec_server_requests",
            "Requests answered, by method and result (ok or the error's class).",
            ["method", "result"],
            registry=r,
        )
        self.request_duration = Histogram(
            "exec_server_request_duration_seconds",
            "Time from a request's arrival to its answer.",
            ["method"],
            buckets=_DURATION_BUCKETS,
            registry=r,
        )
        self.received_bytes = Counter(
            "exec_server_received_bytes",
            "JSON-RPC message bytes received from clients.",
            registry=r,
        )
        self.sent_bytes = Counter(
            "exec_server_sent_bytes", "JSON-RPC message bytes sent to clients.", registry=r
        )
        self.processes_active = Gauge(
            "exec_server_processes_active",
            "Processes started and not yet closed (or killed).",
            registry=r,
        )
        self.processes_finished = Counter(
            "exec_server_processes_finished",
            "Processes that exited, were killed by a signal, or failed to start.",
            ["result"],
            registry=r,
        )
        self.process_duration = Histogram(
            "exec_server_process_duration_seconds",
            "Wall time from spawn to exit (0 for a failed start).",
            ["result"],
            buckets=_PROCESS_BUCKETS,
            registry=r,
        )
        self.sessions_attached = Gauge(
            "exec_server_sessions_attached", "Sessions with a connection.", registry=r
        )
        self.sessions_detached = Gauge(
            "exec_server_sessions_detached",
            "Sessions without a connection, waiting for a resume or their expiry.",
            registry=r,
        )
        self.limits_hit = Counter(
            "exec_server_limits_hit",
            "Times a limit or quota refused something, by limit.",
            ["limit"],
            registry=r,
        )
        for limit in LIMITS:
            self.limits_hit.labels(limit)
        for result in PROCESS_RESULTS:
            self.processes_finished.labels(result)

    def limit_hit(self, name: str) -> None:
        """A limit refused something. Raises KeyError for an undeclared name (a bug)."""
        if name not in self._limits:
            raise KeyError(name)
        self.limits_hit.labels(name).inc()

    def process_finished(self, result: str, seconds: float) -> None:
        """A process exited (``exited``), was killed by a signal (``signaled``), or could not
        be started (``failed_to_start``, 0 seconds)."""
        self.processes_finished.labels(result).inc()
        self.process_duration.labels(result).observe(seconds)

    def request_answered(self, method: str, result: str, seconds: float) -> None:
        self.requests.labels(method, result).inc()
        self.request_duration.labels(method).observe(seconds)

    def observe_state(
        self,
        *,
        processes: Callable[[], int],
        attached: Callable[[], int],
        detached: Callable[[], int],
    ) -> None:
        """Read these gauges from the server's own state at each scrape."""
        self.processes_active.set_function(processes)
        self.sessions_attached.set_function(attached)
        self.sessions_detached.set_function(detached)

    def render(self) -> tuple[bytes, str]:
        """The exposition (Prometheus text format) and its content type."""
        return generate_latest(self.registry), CONTENT_TYPE_LATEST


METRICS = Metrics()
"""The metrics of the server in this process."""
