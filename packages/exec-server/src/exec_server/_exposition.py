"""``GET /metrics``: the counts of :class:`~.metrics.Metrics` as ``prometheus_client`` metric
families, in the text format it writes.

Imported by :meth:`.Metrics.render` at the first scrape, so that starting the server does not
import ``prometheus_client``. The families, their samples and the samples' order are those its
``Counter``, ``Gauge`` and ``Histogram`` (in one registry, in this order) would produce,
``_created`` series included unless ``PROMETHEUS_DISABLE_CREATED_SERIES`` is set (the switch
``prometheus_client`` reads for its own metrics).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import TYPE_CHECKING

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from prometheus_client.metrics_core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.samples import Sample
from prometheus_client.utils import floatToGoString

if TYPE_CHECKING:
    from .metrics import LabelledHistogram, Labels, Metrics

__all__ = ["render"]

_CREATED = os.environ.get("PROMETHEUS_DISABLE_CREATED_SERIES", "False").lower() not in (
    "true",
    "1",
    "t",
)


def render(metrics: Metrics) -> tuple[bytes, str]:
    """The exposition of ``metrics`` and its content type."""
    return generate_latest(_Families(metrics)), CONTENT_TYPE_LATEST


class _Families:
    """A ``prometheus_client`` collector of one scrape."""

    def __init__(self, metrics: Metrics) -> None:
        self.m = metrics

    def collect(self) -> Iterator[Metric]:
        m = self.m
        since: dict[Labels, float] = {(): m.created}
        yield _gauge(
            "exec_server_connections_active", "Open client connections.", m.connections_active
        )
        yield _counter(
            "exec_server_connections",
            "Accepted client connections.",
            (),
            {(): m.connections},
            since,
        )
        yield _counter(
            "exec_server_requests",
            "Requests answered, by method and result (ok or the error's class).",
            ("method", "result"),
            m.requests.values,
            m.requests.created,
        )
        yield _histogram(
            "exec_server_request_duration_seconds",
            "Time from a request's arrival to its answer.",
            "method",
            m.request_duration,
        )
        yield _counter(
            "exec_server_received_bytes",
            "JSON-RPC message bytes received from clients.",
            (),
            {(): m.received_bytes},
            since,
        )
        yield _counter(
            "exec_server_sent_bytes",
            "JSON-RPC message bytes sent to clients.",
            (),
            {(): m.sent_bytes},
            since,
        )
        yield _gauge(
            "exec_server_processes_active",
            "Processes started and not yet closed (or killed).",
            m.processes_active(),
        )
        yield _counter(
            "exec_server_processes_finished",
            "Processes that exited, were killed by a signal, or failed to start.",
            ("result",),
            m.processes_finished.values,
            m.processes_finished.created,
        )
        yield _histogram(
            "exec_server_process_duration_seconds",
            "Wall time from spawn to exit (0 for a failed start).",
            "result",
            m.process_duration,
        )
        yield _gauge(
            "exec_server_sessions_attached", "Sessions with a connection.", m.sessions_attached()
        )
        yield _gauge(
            "exec_server_sessions_detached",
            "Sessions without a connection, waiting for a resume or their expiry.",
            m.sessions_detached(),
        )
        yield _counter(
            "exec_server_limits_hit",
            "Times a limit or quota refused something, by limit.",
            ("limit",),
            m.limits_hit.values,
            m.limits_hit.created,
        )


def _gauge(name: str, documentation: str, value: float) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, documentation, float(value))


def _counter(
    name: str,
    documentation: str,
    labelnames: tuple[str, ...],
    values: dict[Labels, int],
    created: dict[Labels, float],
) -> CounterMetricFamily:
    family = CounterMetricFamily(name, documentation, labels=labelnames)
    for labels, value in values.items():
        family.add_metric(labels, float(value), created[labels] if _CREATED else None)
    return family


def _histogram(
    name: str, documentation: str, labelname: str, histogram: LabelledHistogram
) -> HistogramMetricFamily:
    family = HistogramMetricFamily(name, documentation, labels=(labelname,))
    # The ``le`` label as prometheus_client's Histogram writes it (its utils are untyped).
    le = [floatToGoString(b) for b in (*histogram.buckets, float("inf"))]  # type: ignore[no-untyped-call]
    for labels, series in histogram.series.items():
        cumulative = 0.0
        buckets = []
        for bound, count in zip(le, series.counts, strict=True):
            cumulative += count
            buckets.append((bound, cumulative))
        family.add_metric(labels, buckets, series.sum)
        if _CREATED:
            # The family has no argument for it; prometheus_client's own Histogram adds the
            # same sample after the sum.
            family.samples.append(Sample(name + "_created", {labelname: labels[0]}, series.created))
    return family
