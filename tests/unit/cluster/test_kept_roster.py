"""
Membership with direct peer checks (issues 12 and 16): a peer that does not
answer is left out at once, and a node out of contact with its group keeps
the last roster it received, minus the peers that do not answer, until the
group and every peer stayed silent for longer than the session timeout.

The fake group coordinator and fake peer ports share one fake clock.
"""

from __future__ import annotations

from typing import Any

from twisted.logger import ILogObserver, formatEvent, globalLogPublisher
from zope.interface import provider

from kgateway.cluster.link import KafkaLink
from kgateway.cluster.membership import GatewayMembership, MembershipCore
from kgateway.cluster.peer_checks import PeerChecks
from kgateway.cluster.roster import Member
from tests.unit.cluster.fake_peers import SILENT, FakePeers
from tests.unit.cluster.test_membership import (
    BOOTSTRAP,
    GROUP,
    HEARTBEAT,
    LICENSE,
    RETRY,
    TIMEOUT,
    MembershipTestCase,
    describe,
    joined,
)

SESSION_TIMEOUT = 10.0


class CheckedNode:
    """One gateway node's membership, checking its peers through the fake peer ports."""

    def __init__(self, case: KeptRosterTestCase, n: int) -> None:
        self.myself = describe(n)
        self.rosters: list[list[Member]] = []
        self.checks = PeerChecks(
            f"n{n}", case.clock, case.peers.connect, interval_seconds=0.25, timeout_seconds=0.75
        )
        self.core = MembershipCore(
            myself=self.myself,
            group_id=GROUP,
            license_topic=LICENSE,
            link=KafkaLink((BOOTSTRAP,), case.coordinator.connector(f"n{n}"), case.clock, TIMEOUT),
            replication_factor=lambda: 3,
            session_timeout_ms=int(SESSION_TIMEOUT * 1000),
            heartbeat_interval_ms=int(HEARTBEAT * 1000),
            retry_seconds=RETRY,
            on_roster=self.rosters.append,
            checks=self.checks,
        )
        self.membership = GatewayMembership(self.core)
        case.addCleanup(self.checks.stop)

    @property
    def roster(self) -> list[Member]:
        return self.membership.roster

    @property
    def source(self) -> str:
        return str(self.membership.state.source)


class KeptRosterTestCase(MembershipTestCase):
    def setUp(self) -> None:
        super().setUp()
        self.peers = FakePeers()
        self.events: list[tuple[str, str]] = []

        @provider(ILogObserver)
        def observer(event: dict[str, Any]) -> None:
            self.events.append((event["log_level"].name, formatEvent(event)))

        globalLogPublisher.addObserver(observer)
        self.addCleanup(globalLogPublisher.removeObserver, observer)

    def advance(self, seconds: float) -> None:
        """Move the clock in small steps; bytes move over both kinds of connection."""
        left = seconds
        while left > 1e-9:
            move = min(0.05, left)
            self.clock.advance(move)
            for _ in range(5):
                self.coordinator.flush()
                self.peers.flush()
            left -= move

    def checked(self, *ns: int) -> list[CheckedNode]:
        """Nodes C{ns} joined into one generation, each checking the others."""
        self.coordinator.expected = len(ns)
        nodes = [CheckedNode(self, n) for n in ns]
        for node in nodes:
            node.membership.start()
            self.coordinator.flush()
        self.advance(0.1)
        for node in nodes:
            self.assertEqual(len(node.roster), len(ns))
            self.assertEqual(node.source, "group")
        return nodes

    def lines(self, text: str) -> list[str]:
        return [line for line in self.logs() if text in line]

    def gateway_warnings(self) -> list[str]:
        """The warnings about the group (repeats are logged at debug level)."""
        return [
            line
            for level, line in self.events
            if level == "warn" and line.startswith(f"Gateway group {GROUP}:")
        ]


def names(roster: list[Member]) -> list[str]:
    return [m.node_name for m in roster]


class PeerDownTests(KeptRosterTestCase):
    def test_a_peer_that_stops_answering_is_left_out_at_once(self) -> None:
        """The group still lists it; the node's mappings leave it out, and take it back."""
        n1, _, _ = self.checked(1, 2, 3)
        everyone = joined((1, "member-1"), (2, "member-2"), (3, "member-3"))
        self.peers.kill("gw3.test")
        self.advance(0.5)
        self.assertEqual(n1.core.roster, everyone)  # the group's roster is unchanged
        self.assertEqual(names(n1.roster), ["n1", "n2"])
        self.assertEqual(names(n1.rosters[-1]), ["n1", "n2"])
        self.assertEqual(n1.source, "group")
        [peer] = [p for p in n1.membership.state.peers if p.node_name == "n3"]
        self.assertFalse(peer.up)
        self.assertEqual(peer.reason, "connection refused")

        self.peers.hosts.clear()
        self.advance(0.25)
        self.assertEqual(n1.roster, everyone)
        self.assertEqual(n1.rosters[-1], everyone)

    def test_a_stopped_peer_is_left_out_within_two_timeouts(self) -> None:
        """A peer that accepts but never answers (SIGSTOP): out after two 750 ms timeouts."""
        n1, _ = self.checked(1, 2)
        self.peers.hosts["gw2.test"] = SILENT
        self.advance(1.0)
        self.assertEqual(names(n1.roster), ["n1", "n2"])
        self.advance(1.0)
        self.assertEqual(names(n1.roster), ["n1"])
        [line] = self.lines("is down")
        self.assertIn("no answer within 750 ms", line)


class LostGroupTests(KeptRosterTestCase):
    def test_coordinator_lost_keeps_the_last_roster_and_rejoins(self) -> None:
        """Out of contact: the last roster, one line saying so; back: the group's, one line."""
        n1, _ = self.checked(1, 2)
        both = joined((1, "member-1"), (2, "member-2"))
        self.coordinator.drop("n1")
        self.assertEqual(n1.roster, both)
        self.assertEqual(n1.source, "last-known")
        self.assertEqual(n1.membership.state.out_since, self.clock.seconds())
        self.assertTrue(n1.membership.is_member)
        [warning] = self.gateway_warnings()
        self.assertEqual(
            warning,
            f"Gateway group {GROUP}: the connection to the group coordinator closed; "
            "rejoining (every 1.0s), and keeping the last roster it received (2 member(s), "
            "minus peers that do not answer) meanwhile; only this node if the group stays "
            "silent for over 10.0s and no peer answers",
        )

        self.advance(RETRY + 0.5)
        self.assertEqual(n1.source, "group")
        self.assertIsNone(n1.membership.state.out_since)
        self.assertEqual(names(n1.roster), ["n1", "n2"])
        [back] = self.lines("back in the group")
        self.assertIn("out of contact (on the last known roster meanwhile)", back)
        self.assertNotIn([n1.myself], n1.rosters[1:])  # alone only before it first joined

    def test_an_unreachable_coordinator_is_one_line_however_long(self) -> None:
        """Retries that fail the same way are not warned about again."""
        n1, _ = self.checked(1, 2)
        self.coordinator.refusing = {"n1"}
        self.coordinator.drop("n1")
        self.advance(5 * RETRY)
        self.assertEqual(n1.source, "last-known")
        warnings = self.gateway_warnings()
        # The closed connection, then the refused bootstrap: each said once.
        self.assertEqual(len(warnings), 2, warnings)
        self.assertIn("keeping the last roster", warnings[0])
        self.assertIn("no bootstrap server answered", warnings[1])
        self.assertIn("handing out the last known roster meanwhile", warnings[1])

    def test_peers_answering_keep_the_roster_past_the_session_timeout(self) -> None:
        """The group silent for longer than its session timeout, but the peer answers: kept."""
        n1, _ = self.checked(1, 2)
        self.coordinator.refusing = {"n1"}
        self.coordinator.drop("n1")
        self.advance(SESSION_TIMEOUT + 2 * RETRY)
        self.assertEqual(n1.source, "last-known")
        self.assertEqual(names(n1.roster), ["n1", "n2"])

    def test_a_down_peer_is_left_out_of_the_kept_roster(self) -> None:
        """While rejoining, a peer that stops answering is left out, and taken back."""
        n1, _, _ = self.checked(1, 2, 3)
        self.coordinator.refusing = {"n1"}
        self.coordinator.drop("n1")
        self.peers.kill("gw2.test")
        self.advance(0.5)
        self.assertEqual(n1.source, "last-known")
        self.assertEqual(names(n1.roster), ["n1", "n3"])
        self.peers.hosts.clear()
        self.advance(0.3)
        self.assertEqual(names(n1.roster), ["n1", "n2", "n3"])

    def test_alone_only_when_the_group_and_every_peer_stay_silent(self) -> None:
        """Peers down within the session timeout: out of the roster; after it: only itself."""
        n1, _ = self.checked(1, 2)
        self.coordinator.refusing = {"n1"}
        self.coordinator.drop("n1")
        self.peers.kill("gw2.test")
        self.advance(2.0)
        self.assertEqual(names(n1.roster), ["n1"])
        self.assertEqual(n1.source, "last-known")  # not yet: the group may still answer
        self.advance(SESSION_TIMEOUT)
        self.assertEqual(n1.source, "alone")
        self.assertEqual(n1.roster, [n1.myself])
        self.assertFalse(n1.membership.is_member)
        [line] = self.lines("no peer answers; handing out only this node")
        self.assertIn("nothing heard from the group for", line)
        # Alone, it checks no one.
        self.assertEqual(n1.membership.state.peers, ())

        self.coordinator.refusing = set()
        self.peers.hosts.clear()
        self.advance(RETRY + 0.5)
        self.assertEqual(n1.source, "group")
        [back] = self.lines("back in the group")
        self.assertIn("(on this node alone meanwhile)", back)

    def test_without_peers_out_of_contact_is_alone_at_once(self) -> None:
        """A node whose roster is itself alone has nothing to keep."""
        [n1] = self.checked(1)
        self.coordinator.drop("n1")
        self.assertEqual(n1.source, "alone")
        self.assertEqual(n1.roster, [n1.myself])
        [warning] = self.gateway_warnings()
        self.assertIn("handing out only this node meanwhile", warning)

    def test_a_rebalance_keeps_the_roster(self) -> None:
        """A rebalance (a node joins) changes nothing handed out until the new roster."""
        n1, n2 = self.checked(1, 2)
        self.coordinator.holding = {"JoinGroup"}
        n3: Any = CheckedNode(self, 3)
        n3.membership.start()
        self.advance(HEARTBEAT * 2)
        self.assertEqual(names(n1.roster), ["n1", "n2"])
        self.assertEqual(n1.source, "group")
        self.coordinator.release()
        self.advance(0.2)
        self.assertEqual(names(n1.roster), ["n1", "n2", "n3"])
        self.assertEqual(self.gateway_warnings(), [])


class UncheckedTests(KeptRosterTestCase):
    def test_without_checks_the_roster_is_kept_for_the_session_timeout(self) -> None:
        """No peer checks (a TLS first listener): kept until the session timeout, then alone."""
        n1, _ = self.stable(1, 2)
        self.coordinator.refusing = {"n1"}
        self.coordinator.drop("n1")
        self.assertEqual(names(n1.roster), ["n1", "n2"])
        self.assertEqual(n1.membership.state.source, "last-known")
        self.advance(SESSION_TIMEOUT - 1)
        self.assertEqual(names(n1.roster), ["n1", "n2"])
        self.advance(2 * RETRY)
        self.assertEqual(n1.membership.state.source, "alone")
        self.assertEqual(n1.roster, [n1.myself])
