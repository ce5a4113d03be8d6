"""The server's Prometheus metrics (``GET /metrics``): counted here, shown by ``prometheus_client``.

Names follow Codex's exec-server telemetry where it has one (``exec_server_connections_*``,
``exec_server_requests_total``, ``exec_server_request_duration_seconds``,
``exec_server_processes_*``, ``exec_server_process_duration_seconds``); the rest are ours, in
the same style. Labels take values from small fixed sets only — never an id, a command, a path
or a client-chosen string — so no peer can grow the number of series:

========================================  =========  ==========================================
family                                    labels     owner (the one place it changes)
========================================  =========  ==========================================
exec_server_connections_active            -          ``ClientConnection`` (connection.py)
exec_server_connections_total             -          ``ClientConnection`` (connection.py)
exec_server_requests_total                method,    ``ClientConnection`` answers
                                          result     (connection.py)
exec_server_request_duration_seconds      method     ``ClientConnection`` answers
                                                     (connection.py)
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

Counting is plain ``int`` and ``dict`` arithmetic, done in the event loop's thread only (there
is no lock): the per-frame byte counters are an attribute increment. ``prometheus_client`` is
imported at the first scrape, by :meth:`Metrics.render` (:mod:`._exposition` turns these counts
into its metric families and it writes the text format, the same text its own ``Counter``,
``Gauge`` and ``Histogram`` would): an executor that is started often and scraped later, or
never, does not pay its import (about 20-40 ms and 2 MiB) before it is ready.
"""

from __future__ import annotations

import time
from bisect import bisect_left
from collections.abc import Callable, Iterable

from exec_server_protocol import METHODS, ErrorCode

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
DURATION_BUCKETS = (0.001, 0.005, 0.025, 0.1, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0)
PROCESS_BUCKETS = (0.01, 0.1, 0.5, 1.0, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0, 3600.0)
PROCESS_RESULTS = ("exited", "signaled", "failed_to_start")

Labels = tuple[str, ...]
"""The label values of one series, in the order of its family's label names."""


def error_class(code: int) -> str:
    """The ``result`` label of a request answered with ``code`` (``invalid_request``, ...;
    ``error`` for a code we never send)."""
    return _ERROR_CLASSES.get(code, "error")


def method_label(method: str | None) -> str:
    """The ``method`` label: the method when the registry knows it, else ``unknown``."""
    if method is None:
        return "invalid"
    return method if method in METHODS else "unknown"


class LabelledCounter:
    """A counter per label values, each with the time it was first counted (the ``_created``
    series), in that order."""

    __slots__ = ("created", "values")

    def __init__(self, initial: Iterable[Labels] = ()) -> None:
        self.values: dict[Labels, int] = {}
        self.created: dict[Labels, float] = {}
        for labels in initial:
            self.inc(labels, 0)

    def inc(self, labels: Labels, amount: int = 1) -> None:
        if labels in self.values:
            self.values[labels] += amount
        else:
            self.values[labels] = amount
            self.created[labels] = time.time()


class HistogramSeries:
    """One series of a histogram: observations per bucket (not cumulative; the last one is
    ``+Inf``), their sum, and the time of the first."""

    __slots__ = ("counts", "created", "sum")

    def __init__(self, buckets: int) -> None:
        self.counts = [0] * (buckets + 1)
        self.sum = 0.0
        self.created = time.time()


class LabelledHistogram:
    """A histogram per label values; an observation goes to the first bucket whose upper bound
    is at least its value (``le``)."""

    __slots__ = ("buckets", "series")

    def __init__(self, buckets: tuple[float, ...]) -> None:
        self.buckets = buckets
        self.series: dict[Labels, HistogramSeries] = {}

    def observe(self, labels: Labels, value: float) -> None:
        series = self.series.get(labels)
        if series is None:
            series = self.series[labels] = HistogramSeries(len(self.buckets))
        series.counts[bisect_left(self.buckets, value)] += 1
        series.sum += value


class Metrics:
    """Every metric family of one server. The unlabelled counts are attributes the server
    increments itself; the rest change through the methods."""

    def __init__(self) -> None:
        self.created = time.time()
        """When the unlabelled counters started (their ``_created`` series)."""
        self.connections_active = 0
        self.connections = 0
        self.received_bytes = 0
        self.sent_bytes = 0
        self.requests = LabelledCounter()
        self.request_duration = LabelledHistogram(DURATION_BUCKETS)
        self.processes_finished = LabelledCounter((result,) for result in PROCESS_RESULTS)
        self.process_duration = LabelledHistogram(PROCESS_BUCKETS)
        self.limits_hit = LabelledCounter((limit,) for limit in LIMITS)
        self.processes_active: Callable[[], int] = _none
        self.sessions_attached: Callable[[], int] = _none
        self.sessions_detached: Callable[[], int] = _none

    def limit_hit(self, name: str) -> None:
        """A limit refused something. Raises KeyError for an undeclared name (a bug)."""
        self.limits_hit.values[(name,)] += 1

    def process_finished(self, result: str, seconds: float) -> None:
        """A process exited (``exited``), was killed by a signal (``signaled``), or could not
        be started (``failed_to_start``, 0 seconds)."""
        self.processes_finished.inc((result,))
        self.process_duration.observe((result,), seconds)

    def request_answered(self, method: str, result: str, seconds: float) -> None:
        self.requests.inc((method, result))
        self.request_duration.observe((method,), seconds)

    def observe_state(
        self,
        *,
        processes: Callable[[], int],
        attached: Callable[[], int],
        detached: Callable[[], int],
    ) -> None:
        """Read these gauges from the server's own state at each scrape."""
        self.processes_active = processes
        self.sessions_attached = attached
        self.sessions_detached = detached

    def render(self) -> tuple[bytes, str]:
        """The exposition (Prometheus text format) and its content type."""
        from ._exposition import render  # prometheus_client: imported at the first scrape

        return render(self)


def _none() -> int:
    return 0


METRICS = Metrics()
"""The metrics of the server in this process."""
