"""
A node with several listeners: each its own ports, factory and planner, so a
Metadata answer on a listener carries that listener's addresses; TLS in
front of an SSL listener; overlapping plans refused when the brokers are known.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from kafka.protocol.metadata import MetadataResponse
from twisted.application.internet import TimerService
from twisted.application.service import Service
from twisted.internet.defer import succeed
from twisted.protocols.tls import TLSMemoryBIOFactory
from twisted.trial.unittest import SynchronousTestCase
from zope.interface import implementer

from kgateway.cluster.roster import Member
from kgateway.config import Settings
from kgateway.interfaces import AdvertisedListener, BrokerInfo, IMembership, RosterState
from kgateway.listener import Listener
from kgateway.net import HostPort
from kgateway.node.parts import NodeParts, build_parts
from kgateway.node.service import GatewayNode
from kgateway.protocol.codec import decode_response
from kgateway.security.server_config import ServerTls, StoreFile
from tests.certificates import Authority, write_pem_key_store
from tests.unit.node.test_service import (
    BOOTSTRAP,
    FakeFetch,
    FakeStore,
    RecordingReactor,
    fake_directory,
)
from tests.unit.relay.fakes import (
    ClientSide,
    FakeBrokers,
    catch_logs,
    metadata_request,
    metadata_response,
)

INTERNAL = Listener("INTERNAL", 7000, 4, "PLAINTEXT", "gw-a.internal", "10.0.0.1")
EXTERNAL = Listener("EXTERNAL", 9000, 4, "SASL_PLAINTEXT", "kafka.example.com", "0.0.0.0")
BROKERS = [BrokerInfo(1, "k1.kafka", 9092, "a"), BrokerInfo(2, "k2.kafka", 9092, "b")]
#: Another node of the cluster, describing the same two listeners.
PEER = Member(
    "gw-b.internal:7000#b",
    "gw-b.internal",
    7000,
    4,
    0,
    "b",
    listeners=(
        AdvertisedListener("INTERNAL", "gw-b.internal", 7000, 4),
        AdvertisedListener("EXTERNAL", "kafka-b.example.com", 9000, 4),
    ),
)


@implementer(IMembership)
class ListenerMembership:
    """The gateway group: this node (as it describes itself) and C{others}."""

    def __init__(
        self, listeners: Sequence[AdvertisedListener], low: int, others: Sequence[Member]
    ) -> None:
        first = listeners[0]
        self.myself = Member(
            "me",
            first.host,
            first.port_start,
            first.port_count,
            low,
            "a",
            listeners=tuple(listeners),
        )
        self.roster = [self.myself, *others]
        self.rebalances = 0
        self.is_member = True
        self.state = RosterState("group", None)

    def start(self) -> None:
        pass

    def stop(self) -> Any:
        return succeed(None)


def make_node(
    case: SynchronousTestCase, *listeners: Listener, others: Sequence[Member] = (), **more: Any
) -> tuple[GatewayNode, RecordingReactor, FakeBrokers]:
    """A node with these listeners, started, the brokers known."""
    settings = Settings(bootstrap_servers=BOOTSTRAP, listeners=listeners, **more)
    reactor = RecordingReactor()
    upstream = FakeBrokers()
    parts: NodeParts = replace(
        build_parts(settings, reactor),
        directory=fake_directory(settings, reactor, FakeFetch(BROKERS)),
        connect=upstream.connect,
        membership=lambda advertised, low: ListenerMembership(advertised, low, others),
        license=Service(),
        interceptor_store=FakeStore(),  # type: ignore[arg-type]
    )
    node = GatewayNode(settings, parts, reactor)
    node.startService()
    case.addCleanup(node.stopService)
    return node, reactor, upstream


def advertised(node: GatewayNode, listener: str, port: int) -> list[tuple[int, str, int]]:
    """What a Metadata answer says, to a client on C{listener}'s C{port}."""
    upstream_before = len(node.parts.connect.__self__.opened)  # type: ignore[attr-defined]
    client = ClientSide(node.factories[listener], gateway_port=port)
    client.send(metadata_request(7))
    broker = node.parts.connect.__self__.opened[upstream_before]  # type: ignore[attr-defined]
    broker.answer(metadata_response(7, [(b.node_id, b.host, b.port) for b in BROKERS]))
    [frame] = client.responses()
    message = decode_response(MetadataResponse, frame, 12)
    return [(b.node_id, b.host, b.port) for b in message.brokers]


class ListenerTests(SynchronousTestCase):
    def test_each_listener_its_ports_and_bind_address(self) -> None:
        node, reactor, _ = make_node(self, INTERNAL, EXTERNAL)
        self.successResultOf(node.listening)
        self.assertEqual(
            [(s[0], s[3]) for s in reactor.tcpServers],
            [(p, "10.0.0.1") for p in range(7000, 7004)]
            + [(p, "0.0.0.0") for p in range(9000, 9004)],
        )
        self.assertEqual({s[0]: s[1] for s in reactor.tcpServers}[9001], node.factories["EXTERNAL"])
        self.assertIs(node.factory, node.factories["INTERNAL"])
        me = node.myself()
        assert me is not None
        self.assertEqual(
            (me.host, me.port_start, me.listeners),
            (
                "gw-a.internal",
                7000,
                (
                    AdvertisedListener("INTERNAL", "gw-a.internal", 7000, 4),
                    AdvertisedListener("EXTERNAL", "kafka.example.com", 9000, 4),
                ),
            ),
        )

    def test_metadata_on_a_listener_advertises_that_listener(self) -> None:
        node, _, _ = make_node(self, INTERNAL, EXTERNAL)
        self.assertEqual(
            advertised(node, "EXTERNAL", 9001),
            [(1, "kafka.example.com", 9001), (2, "kafka.example.com", 9002)],
        )
        self.assertEqual(
            advertised(node, "INTERNAL", 7001),
            [(1, "gw-a.internal", 7001), (2, "gw-a.internal", 7002)],
        )

    def test_internal_load_balancing_maps_to_the_peers_same_listener(self) -> None:
        """Broker 2 (rack b) goes to the peer in rack b, at its port on the same listener."""
        node, _, _ = make_node(self, INTERNAL, EXTERNAL, others=[PEER])
        self.assertEqual(
            advertised(node, "EXTERNAL", 9001),
            [(1, "kafka.example.com", 9001), (2, "kafka-b.example.com", 9002)],
        )
        self.assertEqual(
            advertised(node, "INTERNAL", 7001),
            [(1, "gw-a.internal", 7001), (2, "gw-b.internal", 7002)],
        )

    def test_an_older_peer_serves_only_default(self) -> None:
        """A member that describes no listeners has one, DEFAULT: no EXTERNAL candidate."""
        old = Member("old:7000#o", "old.internal", 7000, 4, 0, "b")
        node, _, _ = make_node(self, INTERNAL, EXTERNAL, others=[old])
        planner = node.planner("EXTERNAL")
        assert planner is not None
        self.assertEqual(planner.candidates(2), [HostPort("kafka.example.com", 9002)])
        default = Listener("DEFAULT", 7000, 4, "PLAINTEXT", "new.internal", "0.0.0.0")
        single, _, _ = make_node(self, default, others=[old])
        planner = single.planner()
        assert planner is not None
        # Broker 2 is in rack b, where only the old node is.
        self.assertEqual(planner.candidates(2), [HostPort("old.internal", 7002)])

    def test_external_load_balancing_per_listener(self) -> None:
        node, _, _ = make_node(self, INTERNAL, EXTERNAL, internal_load_balancing=False)
        planners = [node.planner(name) for name in ("INTERNAL", "EXTERNAL")]
        self.assertEqual(
            [p.mapping().address_for(3) for p in planners if p is not None],
            [HostPort("gw-a.internal", 7003), HostPort("kafka.example.com", 9003)],
        )
        self.assertIsNone(node.planner("NOPE"))

    def test_connections_say_their_listener(self) -> None:
        node, _, _ = make_node(self, INTERNAL, EXTERNAL)
        advertised(node, "EXTERNAL", 9002)
        [view] = node.connections()
        self.assertEqual((view.listener, view.port, view.broker_id), ("EXTERNAL", 9002, 2))

    def test_plans_that_overlap_once_counted_stop_the_node(self) -> None:
        """INTERNAL's count comes from the brokers (ids up to 2: 5 ports) and reaches 7004."""
        logs = catch_logs(self)
        node, reactor, _ = make_node(
            self, replace(INTERNAL, port_count=None), replace(EXTERNAL, port_start=7004)
        )
        reactor.advance(0)
        self.assertEqual(reactor.tcpServers, [])
        self.assertTrue(reactor.hasStopped)
        [line] = [line for line in logs() if "Cannot listen" in line]
        self.assertIn(
            "GATEWAY_LISTENER_EXTERNAL_PORTS (7004-7007) overlaps GATEWAY_LISTENER_INTERNAL_PORTS "
            "(7000-7004)",
            line,
        )


class TlsListenerTests(SynchronousTestCase):
    def test_an_ssl_listener_listens_behind_tls_and_renews(self) -> None:
        directory = Path(self.mktemp())
        directory.mkdir()
        authority = Authority()
        store = write_pem_key_store(directory / "gw.pem", authority.issue("gw"), authority)
        secure = replace(EXTERNAL, security_protocol="SSL")
        node, reactor, _ = make_node(
            self,
            INTERNAL,
            secure,
            server_tls=ServerTls(StoreFile(str(store), "PEM"), update_interval_seconds=30),
        )
        factories = {s[0]: s[1] for s in reactor.tcpServers}
        self.assertIs(factories[7001], node.factories["INTERNAL"])
        self.assertIsInstance(factories[9001], TLSMemoryBIOFactory)
        wrapped = factories[9001].wrappedFactory  # type: ignore[attr-defined]
        self.assertIs(wrapped.wrapped, node.factories["EXTERNAL"])
        [renewal] = [s for s in node if isinstance(s, TimerService)]
        self.assertEqual(renewal.step, 30)
        contexts = node.parts.server_tls
        assert contexts is not None
        write_pem_key_store(store, authority.issue("gw-renewed"), authority)
        reactor.advance(30)
        self.assertEqual(contexts.renewals, 1)
