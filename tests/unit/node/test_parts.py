"""
build_parts: what a node with given settings is made of, and how the parts
share the node's one link to Kafka, on a MemoryReactorClock.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, cast

from prometheus_client import CollectorRegistry
from treq.testing import StubTreq
from twisted.internet.address import IPv4Address
from twisted.internet.protocol import Factory, Protocol
from twisted.internet.testing import StringTransport
from twisted.logger import ILogObserver, LogEvent, formatEvent, globalLogPublisher
from twisted.trial.unittest import SynchronousTestCase
from zope.interface import implementer

from kgateway.api.server import AdminApiService
from kgateway.cluster.topics import CompactedTopicReader
from kgateway.config import AdminUser, Settings
from kgateway.interfaces import (
    AdvertisedListener,
    BrokerInfo,
    ConnectionView,
    IAddressPlanner,
    INodeView,
    Member,
    RosterState,
)
from kgateway.net import HostPort
from kgateway.node.parts import build_parts
from tests.unit.node.reactors import NodeMemoryReactor
from tests.unit.relay.fakes import metadata_response
from tests.unit.security.certificates import CertificateAuthority

BOOT = (HostPort("10.0.0.1", 9092), HostPort("10.0.0.2", 9092))
USER = AdminUser("ops", "pw", admin=True)


def settings(**overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "bootstrap_servers": BOOT,
        "advertised_host": "gw.test",
        "port_start": 7000,
        "rack_id": "a",
        "cluster_id": "prod",
        "upstream_connect_timeout_seconds": 4.0,
        "metadata_refresh_seconds": 2.0,
        "admin_api_users": (USER,),
    }
    return Settings(**{**values, **overrides})


@implementer(INodeView)
class StoppingNode:
    """A node view of a node that is shutting down."""

    def stopping(self) -> bool:
        return True

    def accepting_clients(self) -> bool:
        return False

    def saturated(self) -> str | None:
        return None

    def interceptors_pending(self) -> bool:
        return False

    def brokers(self) -> dict[int, BrokerInfo]:
        return {}

    def myself(self) -> Member | None:
        return None

    def is_member(self) -> bool:
        return False

    def roster(self) -> list[Member]:
        return []

    def roster_state(self) -> RosterState | None:
        return None

    def planner(self, listener: str | None = None) -> IAddressPlanner | None:
        return None

    def connections(self) -> list[ConnectionView]:
        return []


class BuildPartsTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.reactor = NodeMemoryReactor()
        self.registry = CollectorRegistry()
        self.parts = build_parts(settings(), self.reactor, self.registry)

    def answer_metadata(self, brokers: list[tuple[int, str, int]]) -> None:
        """The first connection the reactor was asked for answers a Metadata request."""
        host, port, factory, _, _ = self.reactor.tcpClients[0]
        broker = factory.buildProtocol(IPv4Address("TCP", host, port))
        assert broker is not None
        broker.makeConnection(StringTransport())
        broker.dataReceived(metadata_response(1, brokers))

    def test_one_link_for_every_kafka_connection_of_the_node(self) -> None:
        """The readers, writers and license share the link: the bootstrap, one timeout."""
        kafka = self.parts.kafka
        self.assertEqual(kafka.bootstrap, BOOT)
        self.assertEqual(kafka.timeout_seconds, 4.0)
        self.assertIs(kafka.clock, self.reactor)
        license = self.parts.license
        assert isinstance(license, CompactedTopicReader)
        finders = [
            self.parts.interceptor_store.reader.finder,  # type: ignore[attr-defined]
            license.finder,
            *(writer.finder for writer in self.parts.writers),
        ]
        self.assertTrue(all(finder.link is kafka for finder in finders))
        self.assertEqual(self.parts.directory.bootstrap_addresses(), list(BOOT))

    def test_the_directory_asks_the_bootstrap_through_the_reactor(self) -> None:
        self.parts.directory.startService()
        self.addCleanup(self.parts.directory.stopService)
        # (MemoryReactor resolves every name to 127.0.0.1: the port says which.)
        self.assertEqual(
            [(port, timeout) for _, port, _, timeout, _ in self.reactor.tcpClients], [(9092, 4.0)]
        )

    def test_the_link_fails_over_to_the_brokers_the_directory_knows(self) -> None:
        """After the bootstrap servers, the node's own connections try every known broker."""
        self.parts.directory.startService()
        self.addCleanup(self.parts.directory.stopService)
        self.answer_metadata([(2, "10.0.1.2", 9092), (1, "10.0.1.1", 9093)])
        self.assertEqual(
            self.parts.kafka.addresses(),
            [*BOOT, HostPort("10.0.1.2", 9092), HostPort("10.0.1.1", 9093)],
        )
        # Topics it creates have as many replicas as there are brokers, up to 3.
        create = self.parts.writers[1].finder.create
        assert create is not None
        self.assertEqual(create.replication_factor(), 2)

    def test_the_relay_connects_through_the_reactor(self) -> None:
        self.parts.connect(HostPort("10.0.1.9", 9093), Factory.forProtocol(Protocol))
        self.assertEqual([client[1] for client in self.reactor.tcpClients], [9093])

    def test_the_topics_it_creates(self) -> None:
        """The interceptors topic is created compacted; interceptors' own topics are not."""
        configurations, interceptor_records = self.parts.writers
        self.assertIsNone(configurations.finder.create)  # the reader creates it
        reader = self.parts.interceptor_store.reader
        assert isinstance(reader, CompactedTopicReader)
        self.assertEqual(reader.topic, "_kgateway_prod_interceptors")
        self.assertEqual(reader.interval_seconds, 0.5)
        create = reader.finder.create
        assert create is not None
        self.assertEqual(
            (create.what, create.compacted),
            ("interceptors topic", True),
        )
        create = interceptor_records.finder.create
        assert create is not None
        self.assertEqual((create.what, create.compacted), ("interceptor topic", False))
        self.assertEqual(create.replication_factor(), 1)  # no broker known yet

    def test_the_license_reader(self) -> None:
        license = self.parts.license
        assert isinstance(license, CompactedTopicReader)
        self.assertEqual((license.topic, license.interval_seconds), ("_kgateway_prod_license", 5.0))
        self.assertIsNone(license.finder.create)  # membership creates it

    def test_membership_describes_this_node_with_its_port_plan(self) -> None:
        internal = AdvertisedListener("INTERNAL", "gw.test", 7000, 4)
        external = AdvertisedListener("EXTERNAL", "gw.example.com", 9000, 4)
        membership = self.parts.membership([internal, external], 1)
        me = membership.myself
        # The first listener's host and ports are the member's own (an older node reads them).
        self.assertEqual(
            (me.host, me.port_start, me.port_count, me.min_broker_id, me.rack),
            ("gw.test", 7000, 4, 1, "a"),
        )
        self.assertEqual(me.listeners, (internal, external))
        self.assertTrue(me.node_name.startswith("gw.test:7000#"))
        self.assertEqual(membership.roster, [me])
        self.assertFalse(membership.is_member)

    def test_the_admin_api_reads_the_node_it_is_given(self) -> None:
        factory = self.parts.admin_api
        assert factory is not None
        api = factory(StoppingNode(), lambda: None, lambda code, what: None)
        self.assertIsInstance(api, AdminApiService)
        # (StubTreq sets treq's functions on itself at run time, unseen by mypy.)
        http: Any = StubTreq(api.site.resource)
        ready = self.successResultOf(http.get("http://gw.test:8888/health/ready"))
        self.assertEqual(ready.code, 503)
        self.assertIn(b"the node is shutting down", self.successResultOf(ready.content()))
        metrics = self.successResultOf(
            http.get("http://gw.test:8888/metrics", auth=(USER.username, USER.password))
        )
        self.assertIn(b"kgateway_interceptors ", self.successResultOf(metrics.content()))

    def test_no_admin_api_without_users(self) -> None:
        self.assertIsNone(build_parts(settings(admin_api_users=()), self.reactor).admin_api)

    def test_a_registry_of_its_own_has_the_process_metrics(self) -> None:
        registry = build_parts(settings(), self.reactor).registry
        self.assertIsNot(registry, self.registry)
        names = {family.name for family in registry.collect()}
        self.assertIn("python_info", names)
        self.assertIs(self.parts.registry, self.registry)


class BrokerSecurityPartsTests(SynchronousTestCase):
    """issue 13: the broker side's TLS and login reach the link and the relay's connector."""

    def test_tls_and_login(self) -> None:
        folder = Path(self.mktemp())
        folder.mkdir()
        ca = CertificateAuthority.make().write_pem(folder / "ca.pem")
        loaded = Settings.load(
            {
                "KAFKA_BOOTSTRAP_SERVERS": "127.0.0.1:9093",
                "KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
                "GATEWAY_SECURITY_PROTOCOL": "SASL_PLAINTEXT",
                "KAFKA_SSL_TRUSTSTORE_LOCATION": str(ca),
                "KAFKA_SASL_MECHANISM": "PLAIN",
                "KAFKA_SASL_JAAS_CONFIG": "org.apache.kafka.common.security.plain."
                'PlainLoginModule required username="gw" password="pw";',
                "KAFKA_SSL_KEYSTORE_CERTIFICATE_CHAIN": "-----BEGIN ...",
                "GATEWAY_ADMIN_API_USERS": '[{"username": "ops", "password": "pw"}]',
            },
            {},
        )
        events: list[LogEvent] = []
        observer = cast(ILogObserver, events.append)
        globalLogPublisher.addObserver(observer)
        self.addCleanup(globalLogPublisher.removeObserver, observer)
        reactor = NodeMemoryReactor()
        parts = build_parts(loaded, reactor, CollectorRegistry())
        self.assertIs(parts.kafka.tls, loaded.broker_security.tls)
        assert parts.kafka.login is not None
        self.assertEqual(parts.kafka.login.settings, loaded.broker_security.sasl)
        self.assertIn(
            "KAFKA_SSL_KEYSTORE_CERTIFICATE_CHAIN (ssl.keystore.certificate.chain) is not a "
            "setting kgateway reads; it is ignored",
            [formatEvent(e) for e in events],
        )
        # The relay's connector: its first bytes on the wire are a TLS ClientHello.
        parts.connect(HostPort("127.0.0.1", 9093), Factory.forProtocol(Protocol))
        host, port, factory, _, _ = reactor.tcpClients[-1]
        wire = StringTransport()
        protocol = factory.buildProtocol(IPv4Address("TCP", host, port))
        assert protocol is not None
        protocol.makeConnection(wire)
        self.assertEqual(wire.value()[:1], b"\x16")  # a TLS handshake record
