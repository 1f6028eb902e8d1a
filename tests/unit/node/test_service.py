"""
GatewayNode on a MemoryReactorClock, built from its real parts with fakes
handed in for the directory's fetch, the broker connector, the gateway group,
the license reader and the interceptor store.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from twisted.application.service import Service
from twisted.internet.defer import Deferred, fail, succeed
from twisted.internet.error import CannotListenError, ConnectionRefusedError
from twisted.internet.protocol import Factory, Protocol
from twisted.trial.unittest import SynchronousTestCase
from zope.interface import implementer

from kgateway.api.status import NodeStatus
from kgateway.cluster.brokers import BrokerDirectory
from kgateway.cluster.link import KafkaLink
from kgateway.cluster.roster import Member
from kgateway.config import Settings
from kgateway.interfaces import BrokerInfo, IMembership, RosterState
from kgateway.net import HostPort
from kgateway.node.parts import NodeParts, build_parts
from kgateway.node.service import GatewayNode
from kgateway.relay.client_protocol import ClientConnectionFactory
from kgateway.routing.ports import PortPlan
from kgateway.routing.router import Accepted, Route
from tests.unit.node.reactors import NodeMemoryReactor
from tests.unit.relay.fakes import (
    ClientSide,
    FakeBrokers,
    catch_logs,
    list_offsets_request,
    list_offsets_response,
)

BOOTSTRAP = (HostPort("boot1", 9092), HostPort("boot2", 9092))


class StoppablePort:
    """A listening port that records being stopped."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.stopped = False

    def stopListening(self) -> Deferred[None]:
        self.stopped = True
        return succeed(None)


class RecordingReactor(NodeMemoryReactor):
    """MemoryReactorClock whose ports record stopListening."""

    def __init__(self) -> None:
        super().__init__()
        self.ports: list[StoppablePort] = []

    def listenTCP(self, port: int, factory: Any, backlog: int = 50, interface: str = "") -> Any:
        super().listenTCP(port, factory, backlog, interface)
        self.ports.append(StoppablePort(port))
        return self.ports[-1]


class FakeFetch:
    """The directory's fetch: answers with C{brokers}, or refuses while it is None."""

    def __init__(self, brokers: list[BrokerInfo] | None) -> None:
        self.brokers = brokers

    def __call__(self, link: Any, endpoint: HostPort) -> Any:
        if self.brokers is None:
            return fail(ConnectionRefusedError(str(endpoint)))
        return succeed(list(self.brokers))


def never_connect(endpoint: HostPort, factory: Factory) -> Deferred[Protocol]:
    raise AssertionError("the node's own connections are faked part by part")


def fake_directory(settings: Settings, reactor: Any, fetch: FakeFetch) -> BrokerDirectory:
    """A real directory whose fetch is the test's."""
    link = KafkaLink(settings.bootstrap_servers, never_connect, reactor)
    return BrokerDirectory(link, settings.metadata_refresh_seconds, fetch=fetch)


def make_node(
    brokers: list[BrokerInfo] | None, reactor: RecordingReactor | None = None, **overrides: Any
) -> tuple[GatewayNode, RecordingReactor, FakeFetch, FakeBrokers]:
    values: dict[str, Any] = {"bind_host": "127.0.0.2", "advertised_host": "gw.example"}
    settings = Settings(bootstrap_servers=BOOTSTRAP, port_start=7000, **{**values, **overrides})
    reactor = reactor if reactor is not None else RecordingReactor()
    fetch = FakeFetch(brokers)
    upstream = FakeBrokers()
    parts: NodeParts = replace(
        build_parts(settings, reactor),
        directory=fake_directory(settings, reactor, fetch),
        connect=upstream.connect,
        membership=lambda listeners, low: FakeMembership(
            PortPlan(listeners[0].port_start, listeners[0].port_count, low), settings
        ),
        license=Service(),
        interceptor_store=FakeStore(),  # type: ignore[arg-type]
    )
    return GatewayNode(settings, parts, reactor), reactor, fetch, upstream


def routed_broker(node: GatewayNode, port: int) -> int:
    """The broker id the node's router gives a connection on C{port}."""
    assert node.factory is not None
    routes: list[Route] = []
    node.factory.router.route(Accepted("10.0.0.7:50000", port)).addCallback(routes.append)
    return int(routes[0].broker_id)


class FakeStore(Service):
    """Stands in for the interceptor store: loaded when the test says (at once by default)."""

    #: Shared by the class so a test can hold the next node's store back.
    hold = False

    def __init__(self) -> None:
        self.waiting: Deferred[None] = Deferred()
        self.is_loaded = not FakeStore.hold
        if self.is_loaded:
            self.waiting.callback(None)

    def loaded(self) -> Deferred[None]:
        return self.waiting

    def finish_loading(self) -> None:
        self.is_loaded = True
        self.waiting.callback(None)


@implementer(IMembership)
class FakeMembership:
    """Stands in for the gateway group: this node alone, started and stopped on request."""

    def __init__(self, plan: PortPlan, settings: Settings) -> None:
        self.myself = Member(
            "me", settings.advertised_host, plan.start, plan.count, plan.min_broker_id
        )
        self.roster = [self.myself]
        self.rebalances = 0
        self.started = False
        self.stopped = False
        self.is_member = True
        self.leaving: Deferred[None] | None = None
        self.state = RosterState("group", None)

    def start(self) -> None:
        self.started = True

    def stop(self) -> Any:
        self.stopped = True
        return self.leaving if self.leaving is not None else succeed(None)


class GatewayNodeTests(SynchronousTestCase):
    def test_listens_once_brokers_known_with_default_count(self) -> None:
        node, reactor, fetch, _ = make_node(None)
        node.startService()
        self.addCleanup(node.stopService)
        self.assertEqual(reactor.tcpServers, [])
        self.assertNoResult(node.listening)

        fetch.brokers = [BrokerInfo(1, "k1", 9092), BrokerInfo(4, "k4", 9092)]
        reactor.advance(node.settings.metadata_refresh_seconds)
        self.successResultOf(node.listening)
        # Highest id 4 - min 0 + 3 = 7 ports.
        self.assertEqual([s[0] for s in reactor.tcpServers], list(range(7000, 7007)))
        self.assertEqual({s[3] for s in reactor.tcpServers}, {"127.0.0.2"})
        # One listener: every port has the node's one factory, whose router
        # sends each port's connections to the port's broker id.
        factories = {s[1] for s in reactor.tcpServers}
        self.assertEqual(factories, {node.factory})
        self.assertIsInstance(node.factory, ClientConnectionFactory)
        self.assertEqual(
            [routed_broker(node, port) for port in range(7000, 7007)], list(range(0, 7))
        )
        planner = node.planner()
        assert planner is not None
        self.assertEqual(planner.mapping().address_for(4), HostPort("gw.example", 7004))

    def test_count_and_min_broker_id(self) -> None:
        node, reactor, _, _ = make_node(
            [BrokerInfo(101, "k", 1), BrokerInfo(103, "k", 1)], min_broker_id=100
        )
        node.startService()
        self.addCleanup(node.stopService)
        self.assertEqual([s[0] for s in reactor.tcpServers], list(range(7000, 7006)))
        self.assertEqual(routed_broker(node, 7001), 101)

    def test_explicit_count(self) -> None:
        node, reactor, _, _ = make_node([BrokerInfo(1, "k", 1)], port_count=2)
        node.startService()
        self.addCleanup(node.stopService)
        self.assertEqual([s[0] for s in reactor.tcpServers], [7000, 7001])

    def test_broker_outside_range_logged_with_fix(self) -> None:
        logs = catch_logs(self)
        node, reactor, _, _ = make_node(
            [BrokerInfo(1, "k", 1), BrokerInfo(5, "k", 1)], port_count=3
        )
        node.startService()
        self.addCleanup(node.stopService)
        self.assertEqual(len(reactor.tcpServers), 3)
        [line] = [line for line in logs() if "Broker 5 is outside the port range" in line]
        self.assertIn("7000-7002", line)
        self.assertIn("set GATEWAY_PORT_COUNT to 6 or more", line)

    def test_stop_stops_listening_and_drains(self) -> None:
        node, reactor, _, upstream = make_node([BrokerInfo(0, "k0", 9092)])
        node.startService()
        busy = ClientSide(node.factory, gateway_port=7000)
        busy.send(list_offsets_request(1))
        idle = ClientSide(node.factory, port=50001, gateway_port=7000)

        stopped = node.stopService()
        self.assertTrue(all(port.stopped for port in reactor.ports))
        self.assertEqual(len(reactor.ports), 3)
        self.assertFalse(idle.open)  # nothing in flight: closed at once
        self.assertTrue(busy.open)  # waits for its answer
        self.assertNoResult(stopped)  # shutdown waits for the drain

        upstream.opened[0].answer(list_offsets_response(1))
        self.assertEqual(busy.responses(), [list_offsets_response(1)])
        self.assertFalse(busy.open)
        self.successResultOf(stopped)
        self.assertFalse(node.directory.running)

    def test_stop_gives_up_on_a_drain_that_never_ends(self) -> None:
        logs = catch_logs(self)
        node, reactor, _, _ = make_node([BrokerInfo(0, "k0", 9092)])
        node.startService()
        busy = ClientSide(node.factory, gateway_port=7000)
        busy.send(list_offsets_request(1))
        stopped = node.stopService()
        self.assertNoResult(stopped)
        reactor.advance(node.drain_timeout_seconds)
        self.successResultOf(stopped)
        self.assertTrue(any("still draining" in line for line in logs()), logs())

    def test_stop_before_brokers_known(self) -> None:
        node, reactor, _, _ = make_node(None)
        node.startService()
        self.successResultOf(node.stopService())
        self.assertEqual(reactor.tcpServers, [])

    def test_connection_relayed_to_its_broker(self) -> None:
        node, _, _, upstream = make_node([BrokerInfo(0, "k0", 9092), BrokerInfo(1, "k1", 9093)])
        node.startService()
        self.addCleanup(node.stopService)
        ClientSide(node.factory, gateway_port=7001)
        self.assertEqual([side.endpoint for side in upstream.opened], [HostPort("k1", 9093)])


class ListeningTests(SynchronousTestCase):
    """The Kafka ports go through server endpoint strings."""

    def test_a_port_it_cannot_get_stops_the_node(self) -> None:
        class Busy(RecordingReactor):
            def listenTCP(self, port: int, *args: Any, **kwargs: Any) -> Any:
                if port == 7001:
                    raise CannotListenError("127.0.0.2", port, OSError(98, "in use"))
                return super().listenTCP(port, *args, **kwargs)

        logs = catch_logs(self)
        node, _, _, _ = make_node([BrokerInfo(0, "k0", 9092)], reactor=Busy())
        stopped: list[bool] = []
        node.reactor.stop = lambda: stopped.append(True)  # type: ignore[method-assign]
        node.startService()
        self.addCleanup(node.stopService)
        node.reactor.advance(0)  # type: ignore[attr-defined]
        self.assertEqual(stopped, [True])
        self.assertNoResult(node.listening)
        self.assertFalse(node.membership.started)  # type: ignore[union-attr]
        [line] = [line for line in logs() if "Cannot listen" in line]
        self.assertIn("Cannot listen on 127.0.0.2:7001", line)
        self.assertIn("check GATEWAY_PORT_START and GATEWAY_PORT_COUNT", line)

    def test_an_ipv6_bind_host(self) -> None:
        node, reactor, _, _ = make_node([BrokerInfo(0, "k0", 9092)], bind_host="::1")
        node.startService()
        self.addCleanup(node.stopService)
        self.assertEqual(
            {(port, host) for port, _, _, host in reactor.tcpServers},
            {(7000, "::1"), (7001, "::1"), (7002, "::1")},
        )

    def test_stop_while_reading_the_interceptors(self) -> None:
        """A node stopped before it read its interceptors neither complains nor listens later."""
        FakeStore.hold = True
        self.addCleanup(setattr, FakeStore, "hold", False)
        logs = catch_logs(self)
        node, reactor, _, _ = make_node([BrokerInfo(0, "k0", 9092)])
        node.startService()
        self.successResultOf(node.stopService())
        reactor.advance(node.interceptors_load_timeout_seconds)
        self.assertEqual(reactor.tcpServers, [])
        self.assertFalse(any("Cannot read the interceptors topic" in line for line in logs()))


class InterceptorLoadingTests(SynchronousTestCase):
    """A node takes no client connection before it has read the cluster's interceptors."""

    def setUp(self) -> None:
        FakeStore.hold = True
        self.addCleanup(setattr, FakeStore, "hold", False)

    def start(self) -> tuple[Any, Any]:
        node, reactor, fetch, _ = make_node(None)
        fetch.brokers = [BrokerInfo(1, "k1", 9092)]
        node.startService()
        self.addCleanup(node.stopService)
        return node, reactor

    def test_listens_after_the_interceptors_are_read(self) -> None:
        node, reactor = self.start()
        self.assertEqual(reactor.tcpServers, [])
        self.assertIn(
            "has not read the interceptors topic _kgateway_gateway_interceptors yet",
            NodeStatus(node.settings, node).readiness(),
        )
        node.parts.interceptor_store.finish_loading()
        self.successResultOf(node.listening)
        self.assertNotEqual(reactor.tcpServers, [])
        self.assertFalse(
            any("interceptors" in reason for reason in NodeStatus(node.settings, node).readiness())
        )

    def test_listens_anyway_when_the_topic_cannot_be_read(self) -> None:
        logs = catch_logs(self)
        node, reactor = self.start()
        reactor.advance(node.interceptors_load_timeout_seconds)
        self.successResultOf(node.listening)
        self.assertNotEqual(reactor.tcpServers, [])
        self.assertTrue(any("Cannot read the interceptors topic" in line for line in logs()))


class ClusterModeTests(SynchronousTestCase):
    """The node with its gateway group: which mapping it hands out, and how it stops."""

    def test_internal_load_balancing_hands_out_roster_members(self) -> None:
        node, _, _, _ = make_node([BrokerInfo(1, "k1", 9092, "a")], min_broker_id=1)
        node.startService()
        self.addCleanup(node.stopService)
        membership = node.membership
        assert membership is not None
        self.assertTrue(membership.started)  # type: ignore[attr-defined]
        membership.roster = [
            Member("other", "gw-b.example", 8000, 3, 1, rack="a"),
        ]
        planner = node.planner()
        assert planner is not None
        self.assertEqual(planner.mapping().address_for(1), HostPort("gw-b.example", 8000))

    def test_external_load_balancing_hands_out_the_advertised_host(self) -> None:
        node, _, _, _ = make_node(
            [BrokerInfo(1, "k1", 9092, "a")], min_broker_id=1, internal_load_balancing=False
        )
        node.startService()
        self.addCleanup(node.stopService)
        planner = node.planner()
        assert planner is not None
        self.assertEqual(planner.mapping().address_for(1), HostPort("gw.example", 7000))
        self.assertEqual(planner.mapping().address_for(2), HostPort("gw.example", 7001))

    def test_stop_leaves_the_group_before_it_stops_listening(self) -> None:
        node, reactor, _, _ = make_node([BrokerInfo(0, "k0", 9092)])
        node.startService()
        membership = node.membership
        assert membership is not None
        membership.leaving = Deferred()  # type: ignore[attr-defined]
        stopped = node.stopService()
        self.assertTrue(membership.stopped)  # type: ignore[attr-defined]
        self.assertFalse(any(port.stopped for port in reactor.ports))
        membership.leaving.callback(None)  # type: ignore[attr-defined]
        self.assertTrue(all(port.stopped for port in reactor.ports))
        self.successResultOf(stopped)

    def test_stop_closes_connections_broker_by_broker(self) -> None:
        node, reactor, _, upstream = make_node(
            [BrokerInfo(0, "k0", 9092), BrokerInfo(1, "k1", 9093)],
            shutdown_delay_between_brokers_seconds=2.0,
        )
        node.startService()
        first = ClientSide(node.factory, gateway_port=7000)
        second = ClientSide(node.factory, port=50001, gateway_port=7001)
        stopped = node.stopService()
        self.assertFalse(first.open)
        self.assertTrue(second.open)
        reactor.advance(1.9)
        self.assertTrue(second.open)
        reactor.advance(0.1)
        self.assertFalse(second.open)
        self.successResultOf(stopped)
