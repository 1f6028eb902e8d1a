"""
The node's Prometheus metrics (prefix C{kgateway_}).

The data path only bumps plain integers in one L{TrafficStats} per node: no
locks, no label lookups, byte counts added once per batch of frames.  When
C{/metrics} is scraped, L{GatewayCollector} turns those counters and a
snapshot of the node's live state (connections, in-flight requests, members)
into Prometheus families, in whatever C{CollectorRegistry} it was given.

The gateway does not decode response bodies, so Kafka error codes inside
them are not counted; C{kgateway_request_errors_total} counts what the
gateway itself saw go wrong with a request (see L{ErrorReason}).

Series are bounded: an API key gets series of its own only when Kafka names
it (kafka-python's C{ApiKey}) or the gateway reviewed it; any other key a
client sends (a fuzzer may send all 32,768) is counted under
C{api_key="unknown", api="unknown"}.  So a scrape costs the same whatever
clients sent.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

from kafka.protocol.api_key import ApiKey
from prometheus_client import CollectorRegistry
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

from kgateway.protocol.versions import REVIEWED

if TYPE_CHECKING:
    from kgateway.interceptors.registry import InterceptorSet

#: Upper bounds of the request latency histogram, in seconds (Fetch long-polls
#: for up to C{fetch.max.wait.ms}, 500 ms by default).
LATENCY_BUCKETS: tuple[float, ...] = (
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
    30.0,
)


class ErrorReason:
    """Why a request counts as an error (the C{reason} label)."""

    #: Above the version the gateway offers: answered UNSUPPORTED_VERSION by the gateway.
    UNSUPPORTED_VERSION = "unsupported_version"
    #: The broker's response could not be rewritten (the connection was closed).
    REWRITE_FAILED = "rewrite_failed"
    #: The connection closed before the response reached the client.
    UNANSWERED = "unanswered"


#: The API keys that get series of their own: the ones Kafka names and the reviewed ones.
KNOWN_API_KEYS: frozenset[int] = frozenset(int(key) for key in ApiKey) | frozenset(REVIEWED)

#: Where the requests of every other API key are counted (labelled C{unknown}).
UNKNOWN_API_KEY = -1


@dataclass(slots=True)
class ApiTraffic:
    """The counters of one API key."""

    api_key: int
    requests: int = 0
    rewritten: int = 0
    errors: dict[str, int] = field(default_factory=dict)
    #: Latency observations per bucket (not cumulative); the last is +Inf.
    buckets: list[int] = field(default_factory=lambda: [0] * (len(LATENCY_BUCKETS) + 1))
    latency_sum: float = 0.0

    def error(self, reason: str) -> None:
        """Count one failed request."""
        self.errors[reason] = self.errors.get(reason, 0) + 1


class Request(Protocol):
    """What the counters read of a request (the relay's in-flight entries are ones)."""

    @property
    def api_key(self) -> int:
        """The request's API key."""

    @property
    def sent_at(self) -> float:
        """When it arrived, in the relay's monotonic seconds."""


class TrafficStats:
    """What the data path counts; plain integers, read only when metrics are scraped."""

    def __init__(self) -> None:
        self.apis: dict[int, ApiTraffic] = {}
        self.bytes_from_client = 0
        self.bytes_to_client = 0
        #: Request bytes the gateway answered itself instead of forwarding.
        self.bytes_answered_locally = 0
        self.bytes_from_broker = 0
        self.client_connections_opened = 0
        self.broker_connections_open = 0
        self.broker_connections_opened = 0
        self.upstream_connection_failures = 0

    def api(self, api_key: int) -> ApiTraffic:
        """The counters of C{api_key}, made on first use; an unknown key's are shared."""
        traffic = self.apis.get(api_key)
        if traffic is None:
            if api_key not in KNOWN_API_KEYS:
                api_key = UNKNOWN_API_KEY
                traffic = self.apis.get(api_key)
                if traffic is not None:
                    return traffic
            traffic = self.apis[api_key] = ApiTraffic(api_key)
        return traffic

    @property
    def bytes_to_broker(self) -> int:
        """Request bytes forwarded to brokers."""
        return self.bytes_from_client - self.bytes_answered_locally

    def delivered(self, done: Sequence[Request], now: float) -> None:
        """Responses went to the client: observe each request's latency."""
        apis, bounds = self.apis, LATENCY_BUCKETS
        for pending in done:
            traffic = apis.get(pending.api_key) or self.api(pending.api_key)
            elapsed = now - pending.sent_at
            traffic.buckets[bisect_left(bounds, elapsed)] += 1
            traffic.latency_sum += elapsed

    def unanswered(self, pending: Iterable[Request]) -> None:
        """A connection closed with these requests still waiting."""
        for request in pending:
            self.api(request.api_key).error(ErrorReason.UNANSWERED)


@dataclass(frozen=True)
class NodeSnapshot:
    """The node's live state at scrape time."""

    client_connections: int = 0
    in_flight: int = 0
    members: int = 0
    rebalances: int = 0
    brokers: int = 0


def api_name(api_key: int) -> str:
    """The API's name for a label, e.g. C{Produce}."""
    review = REVIEWED.get(api_key)
    if review is not None:
        return review.name
    if api_key in KNOWN_API_KEYS:
        return str(ApiKey(api_key).name)
    return "unknown" if api_key == UNKNOWN_API_KEY else f"ApiKey{api_key}"


def _api_labels(api_key: int) -> list[str]:
    if api_key == UNKNOWN_API_KEY:
        return ["unknown", "unknown"]
    return [str(api_key), api_name(api_key)]


class GatewayCollector(Collector):
    """Turns a node's counters and live state into Prometheus families at scrape time."""

    def __init__(self, stats: TrafficStats, snapshot: Callable[[], NodeSnapshot]) -> None:
        self.stats = stats
        self.snapshot = snapshot

    def collect(self) -> Iterator[Metric]:
        """Every C{kgateway_} family."""
        stats, now = self.stats, self.snapshot()
        yield _gauge("client_connections", "Client connections open now", now.client_connections)
        yield _counter(
            "client_connections_accepted",
            "Client connections accepted",
            stats.client_connections_opened,
        )
        yield _gauge(
            "broker_connections",
            "Upstream connections to brokers open now",
            stats.broker_connections_open,
        )
        yield _counter(
            "broker_connections_opened",
            "Upstream connections to brokers made",
            stats.broker_connections_opened,
        )
        yield _counter(
            "upstream_connection_failures",
            "Upstream connections to brokers that could not be made",
            stats.upstream_connection_failures,
        )
        traffic = CounterMetricFamily(
            "kgateway_bytes", "Kafka protocol bytes by direction", labels=["direction"]
        )
        traffic.add_metric(["from_client"], stats.bytes_from_client)
        traffic.add_metric(["to_broker"], stats.bytes_to_broker)
        traffic.add_metric(["from_broker"], stats.bytes_from_broker)
        traffic.add_metric(["to_client"], stats.bytes_to_client)
        yield traffic
        yield _gauge(
            "requests_in_flight", "Requests awaiting their response to the client", now.in_flight
        )
        yield _gauge("cluster_members", "Live members of this node's gateway cluster", now.members)
        yield _counter(
            "rebalances", "Gateway group rebalances this node took part in", now.rebalances
        )
        yield _gauge("brokers", "Kafka brokers this node knows", now.brokers)
        yield from self._per_api()

    def _per_api(self) -> Iterator[Metric]:
        labels = ["api_key", "api"]
        requests = CounterMetricFamily(
            "kgateway_requests", "Requests from clients by API", labels=labels
        )
        errors = CounterMetricFamily(
            "kgateway_request_errors",
            "Requests the gateway saw fail, by API and reason",
            labels=[*labels, "reason"],
        )
        rewritten = CounterMetricFamily(
            "kgateway_rewritten_responses",
            "Responses whose broker addresses the gateway rewrote",
            labels=labels,
        )
        latency = HistogramMetricFamily(
            "kgateway_request_latency_seconds",
            "From a request's arrival to its response's delivery to the client",
            labels=labels,
        )
        bounds = [repr(b) for b in LATENCY_BUCKETS] + ["+Inf"]
        for api_key, traffic in sorted(self.stats.apis.items()):
            values = _api_labels(api_key)
            requests.add_metric(values, traffic.requests)
            if traffic.rewritten:
                rewritten.add_metric(values, traffic.rewritten)
            for reason, count in sorted(traffic.errors.items()):
                errors.add_metric([*values, reason], count)
            cumulative, running = [], 0
            for bound, count in zip(bounds, traffic.buckets, strict=True):
                running += count
                cumulative.append((bound, running))
            if running:
                latency.add_metric(values, cumulative, sum_value=traffic.latency_sum)
        yield from (requests, errors, rewritten, latency)


def _gauge(name: str, documentation: str, value: float) -> GaugeMetricFamily:
    return GaugeMetricFamily(f"kgateway_{name}", documentation, value=value)


def _counter(name: str, documentation: str, value: float) -> CounterMetricFamily:
    return CounterMetricFamily(f"kgateway_{name}", documentation, value=value)


class InterceptorCollector(Collector):
    """The interceptors running on the node and the decisions they reported."""

    def __init__(self, interceptors: InterceptorSet) -> None:
        self._interceptors = interceptors

    def collect(self) -> Iterator[Metric]:
        yield _gauge("interceptors", "Interceptors running on this node", len(self._interceptors))
        yield _gauge(
            "interceptors_failed",
            "Configured interceptors this node cannot run (see GET /api/v1/interceptors)",
            len(self._interceptors.failed),
        )
        decisions = CounterMetricFamily(
            "kgateway_interceptor_decisions",
            "Policy decisions interceptors reported (allowed, denied, changed, throttled, ...)",
            labels=["interceptor", "plugin", "decision"],
        )
        for (name, plugin, decision), count in sorted(self._interceptors.decisions.items()):
            decisions.add_metric([name, plugin, decision], count)
        yield decisions


def node_registry(
    stats: TrafficStats,
    snapshot: Callable[[], NodeSnapshot],
    registry: CollectorRegistry | None = None,
) -> CollectorRegistry:
    """
    Register the node's collector in C{registry}; without one, a fresh registry
    that also has the process, platform and garbage-collector metrics.
    """
    if registry is None:
        from prometheus_client import GC_COLLECTOR, PLATFORM_COLLECTOR, PROCESS_COLLECTOR

        registry = CollectorRegistry()
        for standard in (PROCESS_COLLECTOR, PLATFORM_COLLECTOR, GC_COLLECTOR):
            registry.register(standard)
    registry.register(GatewayCollector(stats, snapshot))
    return registry
