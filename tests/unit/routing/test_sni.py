"""
SNI host routing: broker names, the router that reads the server name, the
addresses each load-balancing mode hands out, and the certificate check.
"""

from __future__ import annotations

from functools import partial

from twisted.internet.defer import Deferred, succeed
from twisted.trial.unittest import SynchronousTestCase
from zope.interface.verify import verifyObject

from kgateway.cluster.roster import Member
from kgateway.interfaces import AdvertisedListener, BrokerInfo, IAddressPlanner
from kgateway.net import HostPort
from kgateway.routing.mapping import RackAwareMapper
from kgateway.routing.router import Accepted, IRouter, NoRoute, Route
from kgateway.routing.sni import (
    FixedSniMapper,
    SniNames,
    SniRouter,
    covers,
    sni_address,
    uncovered,
)
from tests.certificates import Authority
from tests.unit.routing.test_router import FakeDirectory

NAMES = SniNames()
BROKERS = [BrokerInfo(1, "k1", 9092, "r1"), BrokerInfo(2, "k2", 9093, "r2")]


class SniNamesTests(SynchronousTestCase):
    def test_host_for(self) -> None:
        self.assertEqual(NAMES.host_for(1, "gw.example.com"), "broker-1.gw.example.com")
        self.assertEqual(SniNames("kafka", ".").host_for(7, "gw"), "kafka.7.gw")
        self.assertEqual(SniNames("b", "").host_for(12, "gw"), "b12.gw")

    def test_broker_in(self) -> None:
        """A broker's name gives its id, whatever the case or a trailing dot."""
        for name, expected in (
            ("broker-1.gw.example.com", 1),
            ("BROKER-12.GW.example.com.", 12),
            ("broker-0.other.host", 0),
            ("broker-1", None),  # no suffix: not a name the node advertises
            ("broker-x.gw", None),
            ("broker-.gw", None),
            ("broker-١.gw", None),  # a non-ASCII digit
            ("gw.example.com", None),
            ("kafka-1.gw", None),
            ("", None),
            (None, None),
        ):
            self.assertEqual(NAMES.broker_in(name), expected, name)
        self.assertEqual(SniNames("kafka", ".").broker_in("kafka.3.gw"), 3)
        self.assertEqual(SniNames("b", "").broker_in("b3.gw"), 3)


def accepted(name: str | None) -> Accepted:
    return Accepted("10.0.0.7:50000", 6969, succeed(name))


K1 = HostPort("k1", 9092)
K2 = HostPort("k2", 9093)
BOOT1 = HostPort("boot1", 9092)
BOOT2 = HostPort("boot2", 9092)


class SniRouterTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.router = SniRouter(NAMES, FakeDirectory(BROKERS))

    def route(self, name: str | None) -> Route:
        return self.successResultOf(self.router.route(accepted(name)))

    def test_is_a_router(self) -> None:
        verifyObject(IRouter, self.router)

    def test_named_broker(self) -> None:
        """The server name chooses the broker, every time."""
        for _ in range(3):
            self.assertEqual(self.route("broker-2.gw.test"), Route(2, K2, (K1,)))
        self.assertEqual(self.route("broker-1.gw.test"), Route(1, K1, (K2,)))

    def test_bootstrap_in_turn(self) -> None:
        """The suffix itself, an unknown name, an unknown broker or no name: any live broker."""
        routes = [
            self.route(name) for name in ("gw.test", "other.example", "broker-9.gw.test", None)
        ]
        self.assertEqual(
            routes,
            [
                Route(1, K1, (K2,)),
                Route(2, K2, (K1,)),
                Route(1, K1, (K2,)),
                Route(2, K2, (K1,)),
            ],
        )

    def test_falls_back_on_the_other_brokers(self) -> None:
        """A named broker whose connection fails falls back on the others, as a port does
        (issue 16: a dead broker's name still bootstraps)."""
        router = SniRouter(NAMES, FakeDirectory([*BROKERS, BrokerInfo(3, "k3", 9094, "r3")]))
        route = self.successResultOf(router.route(accepted("broker-2.gw.test")))
        self.assertEqual(route.address, K2)
        self.assertEqual(set(route.fallbacks), {K1, HostPort("k3", 9094)})

    def test_waits_for_the_handshake(self) -> None:
        """The route comes once the server name is known."""
        name: Deferred[str | None] = Deferred()
        routed = self.router.route(Accepted("10.0.0.7:50000", 6969, name))
        self.assertNoResult(routed)
        name.callback("broker-1.gw.test")
        self.assertEqual(self.successResultOf(routed), Route(1, K1, (K2,)))

    def test_bootstrap_servers_before_brokers(self) -> None:
        router = SniRouter(NAMES, FakeDirectory([]))
        route = self.successResultOf(router.route(accepted("broker-3.gw")))
        self.assertEqual(route, Route(3, BOOT1, (BOOT2,)))
        route = self.successResultOf(router.route(accepted(None)))
        self.assertEqual(route, Route(-1, BOOT2, (BOOT1,)))

    def test_no_broker_at_all(self) -> None:
        class Empty(FakeDirectory):
            def bootstrap_addresses(self) -> list[HostPort]:
                return []

        router = SniRouter(NAMES, Empty([]))
        failure = self.failureResultOf(router.route(accepted("broker-1.gw")), NoRoute)
        self.assertIn("server name 'broker-1.gw': no broker is reachable", str(failure.value))


def sni_node(name: str, rack: str | None, port: int = 6969) -> Member:
    """A node whose SNI listener is advertised as C{name}.test at C{port}."""
    listener = AdvertisedListener("DEFAULT", f"{name}.test", port, 1)
    return Member(name, f"{name}.test", port, 1, 0, rack, listeners=(listener,))


class InternalLoadBalancingTests(SynchronousTestCase):
    """Each node's own host is the suffix; the rack-aware choice is the port routing's."""

    def setUp(self) -> None:
        self.roster = [sni_node("a", "r1"), sni_node("b", "r2"), sni_node("c", "r2", 443)]
        racks = {1: "r1", 2: "r2", 3: None}
        self.mapper = RackAwareMapper(
            lambda: self.roster, racks.get, "DEFAULT", partial(sni_address, NAMES)
        )

    def test_rack_first(self) -> None:
        self.assertEqual(self.mapper.candidates(1), [HostPort("broker-1.a.test", 6969)])
        self.assertEqual(
            self.mapper.candidates(2),
            [HostPort("broker-2.b.test", 6969), HostPort("broker-2.c.test", 443)],
        )
        # Any broker id, however high: one port serves them all.
        self.assertEqual(len(self.mapper.candidates(1000)), 3)

    def test_stable_for_one_client(self) -> None:
        first = self.mapper.mapping("10.0.0.1|app").address_for(2)
        for _ in range(5):
            self.assertEqual(self.mapper.mapping("10.0.0.1|app").address_for(2), first)
        spread = {self.mapper.mapping(f"10.0.0.{n}|app").address_for(3) for n in range(40)}
        self.assertEqual(
            {each.host for each in spread if each},
            {
                "broker-3.a.test",
                "broker-3.b.test",
                "broker-3.c.test",
            },
        )

    def test_node_without_the_listener(self) -> None:
        other = Member(
            "d",
            "d.test",
            7000,
            3,
            0,
            "r1",
            listeners=(AdvertisedListener("OTHER", "d.test", 7000, 3),),
        )
        self.assertIsNone(sni_address(NAMES, other, "DEFAULT", 1))


class ExternalLoadBalancingTests(SynchronousTestCase):
    def test_load_balancer_suffix(self) -> None:
        mapper = FixedSniMapper(NAMES, "kafka.example.com", 443)
        verifyObject(IAddressPlanner, mapper)
        for client in (None, "10.0.0.1|a", "10.0.0.2|b"):
            self.assertEqual(
                mapper.mapping(client).address_for(5), HostPort("broker-5.kafka.example.com", 443)
            )
        self.assertEqual(mapper.candidates(0), [HostPort("broker-0.kafka.example.com", 443)])


class CertificateTests(SynchronousTestCase):
    def test_covers(self) -> None:
        self.assertTrue(covers(["*.gw.test"], "broker-1.gw.test"))
        self.assertTrue(covers(["broker-1.gw.test"], "BROKER-1.gw.test."))
        self.assertFalse(covers(["*.gw.test"], "gw.test"))
        self.assertFalse(covers(["*.test"], "broker-1.gw.test"))  # one label only
        self.assertFalse(covers(["broker-2.gw.test"], "broker-1.gw.test"))
        self.assertFalse(covers([], "broker-1.gw.test"))

    def test_uncovered(self) -> None:
        authority = Authority()
        wildcard = authority.issue("gw", ("*.gw.test",)).certificate
        self.assertIsNone(uncovered(wildcard, NAMES, "gw.test", [1, 2]))
        one = authority.issue("gw", ("broker-2.gw.test", "127.0.0.1")).certificate
        self.assertIsNone(uncovered(one, NAMES, "gw.test", [1, 2]))
        other = authority.issue("gw", ("localhost", "127.0.0.1")).certificate
        why = uncovered(other, NAMES, "gw.test", [1, 2])
        assert why is not None
        self.assertIn("(localhost) cover none of the names it advertises", why)
        self.assertIn("broker-1.gw.test", why)
        self.assertIn("add *.gw.test", why)
        self.assertNotIn("\n", why)
        # Without a subjectAltName, the CN counts (as old clients read it).
        bare = authority.issue("broker-1.gw.test", ()).certificate
        self.assertIsNone(uncovered(bare, NAMES, "gw.test", [1]))


class AdminApiMappingTests(SynchronousTestCase):
    def test_member_of_an_sni_address(self) -> None:
        """/api/v1/mapping names the node behind each broker name (status._member_at)."""
        from kgateway.api.status import _member_at

        roster = [sni_node("a", "r1"), sni_node("b", "r2", 443)]
        found = _member_at(roster, 3, HostPort("broker-3.b.test", 443), "DEFAULT")
        self.assertEqual(found, roster[1])
        self.assertIsNone(_member_at(roster, 3, HostPort("broker-3.b.test", 6969), "DEFAULT"))
        self.assertIsNone(_member_at(roster, 3, HostPort("broker-3.c.test", 443), "DEFAULT"))
