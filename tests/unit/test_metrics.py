"""
Known traffic through a client leg, then a scrape: every request, byte,
connection, latency and error is counted where the metrics say.
"""

from __future__ import annotations

import struct
from typing import Any

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from kgateway.metrics import (
    KNOWN_API_KEYS,
    LATENCY_BUCKETS,
    UNKNOWN_API_KEY,
    GatewayCollector,
    NodeSnapshot,
    TrafficStats,
    api_name,
    node_registry,
)
from kgateway.relay.client_protocol import ClientConnectionFactory
from kgateway.routing.mapping import FixedHostMapper
from kgateway.routing.ports import PortPlan
from tests.unit.relay.fakes import (
    ClientSide,
    FakeBrokers,
    FixedRouter,
    list_offsets_request,
    list_offsets_response,
    metadata_request,
    metadata_response,
    produce_request,
    produce_response,
    raw_request,
)

#: ApiVersions above the offered version: the gateway answers it UNSUPPORTED_VERSION.
API_VERSIONS_V9 = raw_request(18, 9, 5)

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def scrape(registry: CollectorRegistry) -> Samples:
    """Every sample of the registry's text exposition, by name and labels."""
    text = generate_latest(registry).decode()
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def api(key: int, **more: str) -> tuple[tuple[str, str], ...]:
    return tuple(sorted({"api_key": str(key), "api": api_name(key), **more}.items()))


class TrafficTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.stats = TrafficStats()
        self.clock = Clock()
        self.brokers = FakeBrokers()
        self.factory = ClientConnectionFactory(
            FixedRouter(1),
            FixedHostMapper("gw.test", PortPlan(7000, 3, 0)),
            self.brokers.connect,
            stats=self.stats,
            now=self.clock.seconds,
        )
        self.snapshot = NodeSnapshot(client_connections=1, in_flight=2, members=3, rebalances=4)
        self.registry = CollectorRegistry()
        self.registry.register(GatewayCollector(self.stats, lambda: self.snapshot))

    def test_known_traffic_counted(self) -> None:
        client = ClientSide(self.factory)
        requests = [
            metadata_request(1),
            metadata_request(2),
            list_offsets_request(3),
            produce_request(4, acks=0),
            API_VERSIONS_V9,  # not offered: the gateway answers it
            list_offsets_request(6),
        ]
        client.send(*requests)
        [broker] = self.brokers.opened
        self.clock.advance(0.003)
        responses = [
            metadata_response(1, [(1, "b1.kafka", 9092)]),
            metadata_response(2, [(1, "b1.kafka", 9092)]),
        ]
        broker.answer(*responses)
        self.clock.advance(0.5)
        broker.answer(list_offsets_response(3))
        client.transport.loseConnection()  # list offsets 6 is never answered

        samples = scrape(self.registry)
        self.assertEqual(samples[("kgateway_requests_total", api(3))], 2)
        self.assertEqual(samples[("kgateway_requests_total", api(2))], 2)
        self.assertEqual(samples[("kgateway_requests_total", api(0))], 1)
        self.assertEqual(samples[("kgateway_requests_total", api(18))], 1)
        self.assertEqual(samples[("kgateway_rewritten_responses_total", api(3))], 2)
        self.assertEqual(
            samples[("kgateway_request_errors_total", api(18, reason="unsupported_version"))], 1
        )
        self.assertEqual(samples[("kgateway_request_errors_total", api(2, reason="unanswered"))], 1)
        # Latency: two Metadata answers at 3 ms, a ListOffsets at 503 ms.
        self.assertEqual(samples[("kgateway_request_latency_seconds_count", api(3))], 2)
        self.assertAlmostEqual(samples[("kgateway_request_latency_seconds_sum", api(3))], 0.006)
        self.assertEqual(
            samples[("kgateway_request_latency_seconds_bucket", api(3, le="0.0025"))], 0
        )
        self.assertEqual(
            samples[("kgateway_request_latency_seconds_bucket", api(3, le="0.005"))], 2
        )
        self.assertEqual(samples[("kgateway_request_latency_seconds_bucket", api(2, le="0.5"))], 0)
        self.assertEqual(samples[("kgateway_request_latency_seconds_bucket", api(2, le="1.0"))], 1)
        self.assertEqual(samples[("kgateway_request_latency_seconds_bucket", api(2, le="+Inf"))], 1)
        # Answered at once by the gateway (delivered with the first responses).
        self.assertEqual(samples[("kgateway_request_latency_seconds_count", api(18))], 1)

        sent = sum(map(len, requests))
        by_direction = {
            direction: samples[("kgateway_bytes_total", (("direction", direction),))]
            for direction in ("from_client", "to_broker", "from_broker", "to_client")
        }
        self.assertEqual(
            by_direction,
            {
                "from_client": sent,
                "to_broker": sent - len(API_VERSIONS_V9),
                "from_broker": sum(map(len, responses)) + len(list_offsets_response(3)),
                "to_client": len(client.transport.value()),
            },
        )
        self.assertEqual(
            broker.transport.value(), b"".join(r for r in requests if r != API_VERSIONS_V9)
        )
        self.assertEqual(samples[("kgateway_client_connections_accepted_total", ())], 1)
        self.assertEqual(samples[("kgateway_broker_connections_opened_total", ())], 1)
        self.assertEqual(samples[("kgateway_broker_connections", ())], 0)  # closed with the client

    def test_only_changed_responses_count_as_rewritten(self) -> None:
        """A Produce response without leader hints goes back as it came: not rewritten."""
        client = ClientSide(self.factory)
        client.send(produce_request(1, acks=1), metadata_request(2))
        [broker] = self.brokers.opened
        broker.answer(produce_response(1), metadata_response(2, [(1, "b1.kafka", 9092)]))
        self.assertEqual(client.responses()[0], produce_response(1))
        samples = scrape(self.registry)
        self.assertNotIn(("kgateway_rewritten_responses_total", api(0)), samples)
        self.assertEqual(samples[("kgateway_rewritten_responses_total", api(3))], 1)

    def test_live_state_from_the_snapshot(self) -> None:
        samples = scrape(self.registry)
        self.assertEqual(samples[("kgateway_client_connections", ())], 1)
        self.assertEqual(samples[("kgateway_requests_in_flight", ())], 2)
        self.assertEqual(samples[("kgateway_cluster_members", ())], 3)
        self.assertEqual(samples[("kgateway_rebalances_total", ())], 4)
        self.assertEqual(samples[("kgateway_brokers", ())], 0)

    def test_broker_connection_open_while_relaying(self) -> None:
        ClientSide(self.factory)
        self.assertEqual(scrape(self.registry)[("kgateway_broker_connections", ())], 1)

    def test_upstream_failures(self) -> None:
        self.brokers.refuse = True
        client = ClientSide(self.factory)
        self.assertFalse(client.open)
        samples = scrape(self.registry)
        self.assertEqual(samples[("kgateway_upstream_connection_failures_total", ())], 1)
        self.assertEqual(samples[("kgateway_broker_connections_opened_total", ())], 0)

    def test_a_client_leaving_mid_connect_is_no_failure(self) -> None:
        self.brokers.delayed = True
        client = ClientSide(self.factory)
        client.transport.loseConnection()
        samples = scrape(self.registry)
        self.assertEqual(samples[("kgateway_upstream_connection_failures_total", ())], 0)

    def test_buckets(self) -> None:
        self.assertEqual(list(LATENCY_BUCKETS), sorted(LATENCY_BUCKETS))
        self.assertEqual(api_name(0), "Produce")
        self.assertEqual(api_name(999), "ApiKey999")


class RegistryTests(SynchronousTestCase):
    def test_default_registry_has_process_metrics_too(self) -> None:
        registry = node_registry(TrafficStats(), NodeSnapshot)
        names = {name for name, _ in scrape(registry)}
        self.assertIn("kgateway_client_connections", names)
        self.assertIn("python_info", names)

    def test_injected_registry_gets_only_the_gateway(self) -> None:
        registry = CollectorRegistry()
        self.assertIs(node_registry(TrafficStats(), NodeSnapshot, registry), registry)
        names = {name for name, _ in scrape(registry)}
        self.assertTrue(all(name.startswith("kgateway_") for name in names), names)


class NodeMetricsTests(SynchronousTestCase):
    """The node's own registry: its live connections and in-flight requests."""

    def test_node_snapshot(self) -> None:
        from tests.unit.api.fakes import make_api_node

        node_api = make_api_node(self)
        client = ClientSide(node_api.node.factory, gateway_port=7001)
        client.send(metadata_request(1), metadata_request(2))
        samples: Any = scrape(node_api.registry)
        self.assertEqual(samples[("kgateway_client_connections", ())], 1)
        self.assertEqual(samples[("kgateway_requests_in_flight", ())], 2)
        self.assertEqual(samples[("kgateway_requests_total", api(3))], 2)
        self.assertEqual(samples[("kgateway_cluster_members", ())], 2)


def header_only(api_key: int, correlation_id: int) -> bytes:
    """A request with a header (v1) and no body, as a fuzzer sends one per API key."""
    client_id = b"fuzz"
    body = struct.pack(">hhih", api_key, 0, correlation_id, len(client_id)) + client_id
    return struct.pack(">i", len(body)) + body


class SeriesBoundTests(SynchronousTestCase):
    """A client sending every API key makes a bounded number of series."""

    def test_unknown_keys_share_one_series(self) -> None:
        """All 32,768 keys: one series per key Kafka knows, plus one for the rest."""
        stats = TrafficStats()
        for key in range(32768):
            stats.api(key).requests += 1
        self.assertEqual(len(stats.apis), len(KNOWN_API_KEYS) + 1)
        registry = CollectorRegistry()
        registry.register(GatewayCollector(stats, NodeSnapshot))
        requests = {
            labels: value
            for (name, labels), value in scrape(registry).items()
            if name == "kgateway_requests_total"
        }
        self.assertEqual(len(requests), len(KNOWN_API_KEYS) + 1)
        unknown = (("api", "unknown"), ("api_key", "unknown"))
        self.assertEqual(requests[unknown], 32768 - len(KNOWN_API_KEYS))
        self.assertEqual(requests[api(4)], 1)
        self.assertEqual(api_name(4), "LeaderAndIsr")

    def test_known_keys(self) -> None:
        """Kafka's own keys (kafka-python's ApiKey) and the reviewed ones count apart."""
        self.assertIn(0, KNOWN_API_KEYS)
        self.assertIn(92, KNOWN_API_KEYS)
        self.assertNotIn(1000, KNOWN_API_KEYS)
        self.assertNotIn(UNKNOWN_API_KEY, KNOWN_API_KEYS)

    def test_through_the_relay(self) -> None:
        """Header-only requests of unknown keys, as they arrive: one unknown series."""
        stats = TrafficStats()
        brokers = FakeBrokers()
        factory = ClientConnectionFactory(
            FixedRouter(1),
            FixedHostMapper("gw.test", PortPlan(7000, 3, 0)),
            brokers.connect,
            stats=stats,
            now=Clock().seconds,
        )
        for key in (93, 1000, 32767):
            ClientSide(factory).send(header_only(key, key))
        self.assertEqual(set(stats.apis), {UNKNOWN_API_KEY})
        self.assertEqual(stats.apis[UNKNOWN_API_KEY].requests, 3)
