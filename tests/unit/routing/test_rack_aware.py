"""Tests for L{kgateway.routing.mapping.RackAwareMapper} and L{RosterMapping}."""

from __future__ import annotations

from typing import Any, cast

from twisted.logger import ILogObserver, LogLevel, formatEvent, globalLogPublisher
from twisted.trial.unittest import SynchronousTestCase
from zope.interface.verify import verifyObject

from kgateway.cluster.roster import Member
from kgateway.interfaces import IAddressMap, IAddressPlanner
from kgateway.net import HostPort
from kgateway.routing.mapping import RackAwareMapper, RosterMapping


def node(name: str, rack: str | None, port_start: int, count: int = 3, low: int = 1) -> Member:
    """A gateway node at host C{name}.test covering broker ids C{low}..C{low + count - 1}."""
    return Member(
        node_name=name,
        host=f"{name}.test",
        port_start=port_start,
        port_count=count,
        min_broker_id=low,
        rack=rack,
    )


A = node("a", "a", 19000)
B = node("b", "b", 29000)
C = node("c", "c", 39000)
A2 = node("a2", "a", 49000)


def at(member: Member, broker_id: int) -> HostPort:
    """Where C{member} serves C{broker_id}."""
    port = member.port_for(broker_id)
    assert port is not None
    return HostPort(member.host, port)


class RackAwareMapperTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.events: list[dict[str, Any]] = []
        observer = cast(ILogObserver, self.events.append)
        globalLogPublisher.addObserver(observer)
        self.addCleanup(globalLogPublisher.removeObserver, observer)
        self.roster: list[Member] = [A, B, C]
        self.racks: dict[int, str | None] = {1: "a", 2: "b", 3: "c"}
        self.mapper = RackAwareMapper(lambda: self.roster, self.racks.get)

    def errors(self) -> list[dict[str, Any]]:
        return [
            event
            for event in self.events
            if event.get("log_level") is LogLevel.error
            and event.get("log_namespace") == "kgateway.routing.mapping"
        ]

    def hosts_for(self, broker_id: int, mappings: int) -> list[str]:
        """The host chosen for a broker by each of C{mappings} successive mappings."""
        chosen = [self.mapper.mapping().address_for(broker_id) for _ in range(mappings)]
        return [endpoint.host for endpoint in chosen if endpoint is not None]

    def test_interfaces(self) -> None:
        self.assertTrue(verifyObject(IAddressPlanner, self.mapper))
        self.assertTrue(verifyObject(IAddressMap, self.mapper.mapping()))

    def test_one_node_per_rack_never_crosses_racks(self) -> None:
        """With a node in every broker's rack, each broker always goes to its rack's node."""
        for _ in range(12):
            mapping = self.mapper.mapping()
            self.assertEqual(
                [mapping.address_for(b) for b in (1, 2, 3)], [at(A, 1), at(B, 2), at(C, 3)]
            )
        self.assertEqual(self.errors(), [])

    def test_two_nodes_in_a_rack_alternate(self) -> None:
        """Successive mappings alternate between the two nodes of the broker's rack."""
        self.roster = [A, A2, B, C]
        hosts = self.hosts_for(1, 6)
        self.assertEqual(set(hosts), {"a.test", "a2.test"})
        self.assertEqual(hosts[0::2], [hosts[0]] * 3)
        self.assertEqual(hosts[1::2], [hosts[1]] * 3)
        self.assertNotEqual(hosts[0], hosts[1])
        # The other racks still have one node each.
        self.assertEqual(set(self.hosts_for(2, 4)), {"b.test"})

    def test_one_response_spreads_a_rack_over_its_nodes(self) -> None:
        """Two brokers of one rack go to different nodes of that rack within one response."""
        self.roster = [A, A2, B]
        self.racks[2] = "a"
        mapping = self.mapper.mapping()
        first, second = mapping.address_for(1), mapping.address_for(2)
        assert first is not None and second is not None
        self.assertEqual({first.host, second.host}, {"a.test", "a2.test"})

    def test_broker_in_a_rack_without_nodes_goes_round_robin(self) -> None:
        """A broker whose rack has no node is handed every node in turn."""
        self.racks[3] = "z"
        hosts = self.hosts_for(3, 6)
        self.assertEqual(sorted(hosts[:3]), ["a.test", "b.test", "c.test"])
        self.assertEqual(hosts[3:], hosts[:3])

    def test_broker_without_rack_goes_round_robin(self) -> None:
        self.racks[2] = None
        self.assertEqual(sorted(self.hosts_for(2, 3)), ["a.test", "b.test", "c.test"])

    def test_nodes_without_rack_serve_any_broker(self) -> None:
        """Nodes that name no rack share every broker, even one that names a rack."""
        self.roster = [node("x", None, 19000), node("y", None, 29000)]
        self.assertEqual(sorted(self.hosts_for(1, 2)), ["x.test", "y.test"])

    def test_rack_node_that_does_not_cover_the_broker_is_skipped(self) -> None:
        """The rack's node has no port for this broker: another node that has one is used."""
        self.roster = [node("a", "a", 19000, count=1), node("b", "b", 29000, count=5)]
        self.racks[4] = "a"
        self.assertEqual(self.hosts_for(4, 3), ["b.test"] * 3)
        self.assertEqual(self.errors(), [])

    def test_one_mapping_keeps_its_answer(self) -> None:
        """Within one response a broker has one address, however often it is asked."""
        self.racks[3] = "z"
        mapping = self.mapper.mapping()
        first = mapping.address_for(3)
        self.roster = [A]  # the roster changes while the response is being rewritten
        for _ in range(5):
            self.assertEqual(mapping.address_for(3), first)
        # The next mapping sees the new roster.
        self.assertEqual(self.mapper.mapping().address_for(3), at(A, 3))

    def test_mapping_takes_the_roster_once(self) -> None:
        """A mapping reads the roster when made, not for every broker."""
        calls = []

        def roster() -> list[Member]:
            calls.append(1)
            return [A, B, C]

        mapper = RackAwareMapper(roster, self.racks.get)
        mapping = mapper.mapping()
        for broker_id in (1, 2, 3, 1):
            mapping.address_for(broker_id)
        self.assertEqual(len(calls), 1)

    def test_broker_off_every_range_is_none_and_logged_once(self) -> None:
        for _ in range(3):
            mapping = self.mapper.mapping()
            self.assertIsNone(mapping.address_for(10))
            self.assertIsNone(mapping.address_for(10))
        self.assertIsNone(self.mapper.mapping().address_for(0))
        self.assertEqual([event["broker_id"] for event in self.errors()], [10, 0])
        text = formatEvent(self.errors()[0])
        self.assertIn("Broker 10 has no port on any gateway node", text)
        self.assertIn("GATEWAY_PORT_COUNT", text)


class RosterMappingTests(SynchronousTestCase):
    def test_chooses_once_per_broker(self) -> None:
        asked: list[int] = []

        def choose(broker_id: int) -> HostPort | None:
            asked.append(broker_id)
            return None if broker_id == 9 else HostPort("h", 1000 + broker_id + len(asked))

        mapping = RosterMapping(choose)
        self.assertTrue(verifyObject(IAddressMap, mapping))
        first = mapping.address_for(1)
        self.assertEqual([mapping.address_for(1) for _ in range(3)], [first] * 3)
        self.assertIsNone(mapping.address_for(9))
        self.assertIsNone(mapping.address_for(9))
        self.assertEqual(asked, [1, 9])


class CandidatesTests(SynchronousTestCase):
    """What the admin API shows: the candidates, without turning the round-robin."""

    def test_rack_first_then_everyone_and_no_turn(self) -> None:
        roster = [A2, C, A, B]
        mapper = RackAwareMapper(lambda: roster, {1: "a", 2: "b", 3: "z", 9: "a"}.get)
        self.assertEqual(mapper.candidates(1), [at(A, 1), at(A2, 1)])
        self.assertEqual(mapper.candidates(2), [at(B, 2)])
        # No node in rack z: every node, sorted by name.
        self.assertEqual(mapper.candidates(3), [at(A, 3), at(A2, 3), at(B, 3), at(C, 3)])
        self.assertEqual(mapper.candidates(9), [])
        # Asking did not move the round-robin: the first mapping starts where it would.
        fresh = RackAwareMapper(lambda: roster, {1: "a"}.get)
        self.assertEqual(mapper.mapping().address_for(1), fresh.mapping().address_for(1))


class ClientStickinessTests(SynchronousTestCase):
    """A client sees one address per broker; different clients are spread."""

    def setUp(self) -> None:
        self.roster: list[Member] = [A, A2, B]
        self.racks: dict[int, str | None] = {1: "a", 2: "b", 3: "c"}

    def mapper(self) -> RackAwareMapper:
        return RackAwareMapper(lambda: self.roster, self.racks.get)

    def test_same_client_same_answer_from_every_node(self) -> None:
        """Two nodes (two mappers), many requests: one client always gets the same addresses."""
        node_one, node_two = self.mapper(), self.mapper()
        client = "10.0.0.7|rdkafka"
        first = {b: node_one.mapping(client).address_for(b) for b in (1, 2, 3)}
        for mapper in (node_one, node_two) * 5:
            self.assertEqual({b: mapper.mapping(client).address_for(b) for b in (1, 2, 3)}, first)

    def test_different_clients_are_spread_over_the_rack(self) -> None:
        """Broker 1 (rack a, two nodes): clients land on both rack-a nodes, never elsewhere."""
        mapper = self.mapper()
        chosen = {mapper.mapping(f"10.0.0.{i}|app").address_for(1) for i in range(20)}
        self.assertEqual(chosen, {at(A, 1), at(A2, 1)})

    def test_stickiness_follows_the_roster(self) -> None:
        """When a node leaves, its clients move; the others keep their node."""
        mapper = self.mapper()
        clients = [f"10.0.0.{i}|app" for i in range(20)]
        before = {c: mapper.mapping(c).address_for(1) for c in clients}
        self.roster = [A, B]
        after = {c: mapper.mapping(c).address_for(1) for c in clients}
        self.assertEqual(set(after.values()), {at(A, 1)})
        for client in clients:
            if before[client] == at(A, 1):
                self.assertEqual(after[client], at(A, 1))

    def test_no_client_turns_round_robin(self) -> None:
        mapper = self.mapper()
        chosen = [mapper.mapping().address_for(1) for _ in range(4)]
        self.assertEqual(chosen[0::2], [chosen[0]] * 2)
        self.assertNotEqual(chosen[0], chosen[1])
