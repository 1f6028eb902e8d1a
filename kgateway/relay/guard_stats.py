"""
What the relay's limits count, and how C{/metrics} shows it.

The counters are plain integers bumped on the data path (as in
L{kgateway.metrics.TrafficStats}); L{GuardCollector} reads them, and the
node's memory budget, when C{/metrics} is scraped.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from kgateway.relay.budget import MemoryBudget


@dataclass(slots=True)
class GuardStats:
    """What the relay's limits did, counted."""

    #: Connections closed after GATEWAY_CONNECTIONS_MAX_IDLE_MS with nothing in flight.
    closed_idle: int = 0
    #: Connections closed because a request frame did not arrive within its deadline.
    frames_timed_out: int = 0
    #: Connections closed for a frame that could not be cut (its length, or over the limit).
    #: Versions above the offered one are kgateway_request_errors_total's unsupported_version.
    refused_frames: int = 0
    #: Streamed responses whose leader hints were rewritten in place (same length).
    leader_hints_streamed: int = 0
    #: Leader hints left out of streamed responses (gateway addresses did not fit).
    leader_hints_left_out: int = 0


def _counter(name: str, documentation: str, value: float) -> CounterMetricFamily:
    return CounterMetricFamily(f"kgateway_{name}", documentation, value=value)


def _gauge(name: str, documentation: str, value: float) -> GaugeMetricFamily:
    return GaugeMetricFamily(f"kgateway_{name}", documentation, value=value)


class GuardCollector(Collector):
    """The relay's limits as Prometheus families (prefix C{kgateway_})."""

    def __init__(self, stats: GuardStats, budget: MemoryBudget) -> None:
        self.stats = stats
        self.budget = budget

    def collect(self) -> Iterator[Metric]:
        """Every family of the limits."""
        stats, budget = self.stats, self.budget
        yield _gauge(
            "buffered_bytes", "Bytes the client connections hold now, all told", budget.total
        )
        yield _gauge(
            "buffered_bytes_limit", "The memory budget (GATEWAY_MAX_BUFFERED_BYTES)", budget.limit
        )
        yield _gauge("buffered_bytes_peak", "The most bytes held at once", budget.peak)
        yield _gauge(
            "connections_paused_for_memory",
            "Connections not read from now because the node is over its memory budget",
            budget.paused_connections,
        )
        yield _counter(
            "memory_pauses", "Times a connection was paused for the memory budget", budget.pauses
        )
        yield _counter(
            "connections_closed_idle",
            "Connections closed after GATEWAY_CONNECTIONS_MAX_IDLE_MS with nothing in flight",
            stats.closed_idle,
        )
        yield _counter(
            "request_frames_timed_out",
            "Connections closed because a request frame was not whole within "
            "GATEWAY_REQUEST_RECEIVE_TIMEOUT_MS",
            stats.frames_timed_out,
        )
        yield _counter(
            "bad_frames",
            "Connections closed, after the earlier answers, for a frame that could not be cut "
            "(a negative length, or over the frame limit)",
            stats.refused_frames,
        )
        yield _counter(
            "streamed_leader_hints",
            "Responses passed on as they arrived whose KIP-951 leader hints were rewritten "
            "in place, to the same length",
            stats.leader_hints_streamed,
        )
        yield _counter(
            "leader_hints_left_out",
            "KIP-951 leader hints left out of streamed responses to keep their length",
            stats.leader_hints_left_out,
        )
