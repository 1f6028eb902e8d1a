"""
The port router: which broker a connection on each port goes to.
"""

from __future__ import annotations

from twisted.internet.testing import MemoryReactorClock
from twisted.trial.unittest import SynchronousTestCase
from zope.interface import implementer
from zope.interface.verify import verifyObject

from kgateway.cluster.brokers import BrokerDirectory
from kgateway.cluster.link import KafkaLink
from kgateway.interfaces import BrokerInfo, IBrokerDirectory
from kgateway.net import HostPort
from kgateway.routing.ports import PortPlan
from kgateway.routing.router import Accepted, IRouter, NoRoute, PortRouter, Route
from tests.unit.relay.fakes import FakeBrokers

BOOTSTRAP = (HostPort("boot1", 9092), HostPort("boot2", 9092))
PLAN = PortPlan(start=7000, count=10, min_broker_id=0)


@implementer(IBrokerDirectory)
class FakeDirectory:
    """A directory that knows C{brokers}, and the two bootstrap servers."""

    def __init__(self, brokers: list[BrokerInfo]) -> None:
        self._brokers = {b.node_id: b for b in brokers}

    def broker(self, node_id: int) -> BrokerInfo | None:
        return self._brokers.get(node_id)

    def brokers(self) -> dict[int, BrokerInfo]:
        return dict(self._brokers)

    def bootstrap_addresses(self) -> list[HostPort]:
        return list(BOOTSTRAP)


def on_port(port: int | None) -> Accepted:
    return Accepted("10.0.0.7:50000", port)


class PortRouterTests(SynchronousTestCase):
    def route(self, router: PortRouter, port: int | None) -> Route:
        return self.successResultOf(router.route(on_port(port)))

    def no_route(self, router: PortRouter, port: int | None) -> str:
        return str(self.failureResultOf(router.route(on_port(port)), NoRoute).value)

    def test_is_a_router(self) -> None:
        verifyObject(IRouter, PortRouter(PLAN, FakeDirectory([])))

    def test_known_broker(self) -> None:
        """A port goes to its broker, every time."""
        router = PortRouter(PLAN, FakeDirectory([BrokerInfo(2, "k2", 9094)]))
        self.assertEqual(self.route(router, 7002), Route(2, HostPort("k2", 9094)))
        self.assertEqual(self.route(router, 7002), Route(2, HostPort("k2", 9094)))

    def test_min_broker_id(self) -> None:
        router = PortRouter(PortPlan(7000, 5, 100), FakeDirectory([BrokerInfo(101, "k", 1)]))
        self.assertEqual(self.route(router, 7001), Route(101, HostPort("k", 1)))

    def test_unknown_broker_goes_to_any_live_broker(self) -> None:
        """A port whose broker does not exist bootstraps: the live brokers in turn, by id."""
        router = PortRouter(PLAN, FakeDirectory([BrokerInfo(3, "k3", 1), BrokerInfo(1, "k1", 1)]))
        self.assertEqual(
            [self.route(router, 7009) for _ in range(4)],
            [
                Route(9, HostPort("k1", 1), (HostPort("k3", 1),)),
                Route(9, HostPort("k3", 1), (HostPort("k1", 1),)),
            ]
            * 2,
        )

    def test_known_broker_falls_back_on_the_others(self) -> None:
        """
        Issue 16: a port's broker may be down while the metadata still lists
        it, so its route names the other brokers to relay to instead, in
        turn (so the clients of a dead broker's port are spread), each once.
        """
        router = PortRouter(
            PLAN,
            FakeDirectory([BrokerInfo(1, "k1", 1), BrokerInfo(2, "k2", 2), BrokerInfo(3, "k3", 3)]),
        )
        routes = [self.route(router, 7001) for _ in range(3)]
        self.assertEqual({route.address for route in routes}, {HostPort("k1", 1)})
        self.assertEqual(
            [route.fallbacks for route in routes],
            [
                (HostPort("k2", 2), HostPort("k3", 3)),
                (HostPort("k3", 3), HostPort("k2", 2)),
                (HostPort("k2", 2), HostPort("k3", 3)),
            ],
        )

    def test_fallbacks_in_order_then_none(self) -> None:
        route = Route(1, HostPort("k1", 1), (HostPort("k2", 2), HostPort("k3", 3)))
        second = route.next_fallback()
        self.assertEqual(second, Route(1, HostPort("k2", 2), (HostPort("k3", 3),)))
        assert second is not None
        third = second.next_fallback()
        self.assertEqual(third, Route(1, HostPort("k3", 3)))
        assert third is not None
        self.assertIsNone(third.next_fallback())

    def test_no_fallback_repeats_an_address(self) -> None:
        """Two broker ids at one address (a broker re-registered): the address is tried once."""
        router = PortRouter(
            PLAN,
            FakeDirectory([BrokerInfo(1, "k1", 1), BrokerInfo(2, "k2", 2), BrokerInfo(4, "k2", 2)]),
        )
        self.assertEqual(
            self.route(router, 7001), Route(1, HostPort("k1", 1), (HostPort("k2", 2),))
        )

    def test_no_brokers_known_falls_back_to_bootstrap(self) -> None:
        router = PortRouter(PLAN, FakeDirectory([]))
        routes = [self.route(router, 7000) for _ in range(3)]
        self.assertEqual([r.address for r in routes], [BOOTSTRAP[0], BOOTSTRAP[1], BOOTSTRAP[0]])
        self.assertEqual(
            [r.fallbacks for r in routes], [(BOOTSTRAP[1],), (BOOTSTRAP[0],), (BOOTSTRAP[1],)]
        )

    def test_no_broker_at_all_is_no_route(self) -> None:
        """Nothing to connect to: NoRoute, saying which port and why."""

        class Empty(FakeDirectory):
            def bootstrap_addresses(self) -> list[HostPort]:
                return []

        router = PortRouter(PLAN, Empty([]))
        self.assertEqual(
            self.no_route(router, 7001), "on the port for broker 1: no broker is reachable"
        )

    def test_port_off_the_plan_is_no_route(self) -> None:
        router = PortRouter(PLAN, FakeDirectory([BrokerInfo(0, "k0", 1)]))
        self.assertEqual(
            self.no_route(router, 6999), "on port 6999, which is not one of the node's ports"
        )
        self.assertIn("on port None", self.no_route(router, None))

    def test_with_a_real_directory(self) -> None:
        directory = BrokerDirectory(
            KafkaLink((HostPort("boot", 1),), FakeBrokers().connect, MemoryReactorClock())
        )
        router = PortRouter(PLAN, directory)
        self.assertEqual(self.route(router, 7005), Route(5, HostPort("boot", 1)))


class AcceptedTests(SynchronousTestCase):
    def test_server_name_without_tls(self) -> None:
        """A connection without TLS names no server, and says so at once."""
        self.assertIsNone(self.successResultOf(on_port(7000).server_name))
