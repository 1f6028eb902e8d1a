"""
Gateway membership against a fake group coordinator that speaks the real
Kafka protocol, over in-memory connections, on a fake clock.

Each test asserts the exact requests the coordinator saw, as
(node, api, member id or key).
"""

from __future__ import annotations

from typing import Any

from kafka.protocol.consumer import ConsumerProtocolAssignment
from twisted.internet.defer import Deferred
from twisted.internet.protocol import Factory, Protocol
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from kgateway.cluster.link import KafkaLink
from kgateway.cluster.membership import GatewayMembership, MembershipCore
from kgateway.cluster.roster import Member
from kgateway.net import HostPort
from tests.unit.cluster.fake_coordinator import FakeGroupCoordinator
from tests.unit.relay.fakes import catch_logs

BOOTSTRAP = HostPort("bootstrap", 9092)
COORDINATOR = HostPort("coordinator", 9093)
GROUP = "kgateway-test"
LICENSE = "_kgateway_license"
HEARTBEAT = 0.25
RETRY = 1.0
TIMEOUT = 10.0
RACKS = {1: "a", 2: "b", 3: "c"}


def describe(n: int, member_id: str = "") -> Member:
    """Gateway node C{n} as it describes itself (and, joined, with its member id)."""
    return Member(
        node_name=f"n{n}",
        host=f"gw{n}.test",
        port_start=19000 + 100 * n,
        port_count=3,
        min_broker_id=1,
        rack=RACKS[n],
        joined_at=float(n),
        member_id=member_id,
    )


def joined(*ids: tuple[int, str]) -> list[Member]:
    """The roster of the given (node, member id) pairs."""
    return sorted(describe(n, member_id) for n, member_id in ids)


def finding(node: str, create: bool = True) -> list[tuple[str, str, str]]:
    """What a node sends from start until its first JoinGroup."""
    return [
        (node, "ApiVersions", ""),
        *([(node, "CreateTopics", LICENSE)] if create else []),
        (node, "FindCoordinator", GROUP),
        (node, "ApiVersions", ""),
    ]


class HeldConnector:
    """Wraps a connector; connection attempts wait until released."""

    def __init__(self, connect: Any) -> None:
        self.connect = connect
        self.attempts: list[tuple[HostPort, Factory, Deferred[Protocol]]] = []

    def __call__(self, endpoint: HostPort, factory: Factory) -> Deferred[Protocol]:
        attempt: Deferred[Protocol] = Deferred()
        self.attempts.append((endpoint, factory, attempt))
        return attempt

    def release(self) -> None:
        attempts, self.attempts = self.attempts, []
        for endpoint, factory, attempt in attempts:
            self.connect(endpoint, factory).chainDeferred(attempt)


class Node:
    """One gateway node's membership, and every roster it was handed."""

    def __init__(
        self, coordinator: FakeGroupCoordinator, clock: Clock, n: int, connect: Any = None
    ) -> None:
        self.myself = describe(n)
        self.rosters: list[list[Member]] = []
        self.core = MembershipCore(
            myself=self.myself,
            group_id=GROUP,
            license_topic=LICENSE,
            link=KafkaLink((BOOTSTRAP,), connect or coordinator.connector(f"n{n}"), clock, TIMEOUT),
            replication_factor=lambda: 3,
            heartbeat_interval_ms=int(HEARTBEAT * 1000),
            retry_seconds=RETRY,
            on_roster=self.rosters.append,
        )
        self.membership = GatewayMembership(self.core)

    @property
    def roster(self) -> list[Member]:
        return self.membership.roster


class MembershipTestCase(SynchronousTestCase):
    def setUp(self) -> None:
        self.clock = Clock()
        self.coordinator = FakeGroupCoordinator(COORDINATOR)
        self.logs = catch_logs(self)

    def node(self, n: int, connect: Any = None) -> Node:
        return Node(self.coordinator, self.clock, n, connect)

    def start(self, *nodes: Node) -> None:
        """Start the nodes one after the other, letting each get as far as it can."""
        for node in nodes:
            node.membership.start()
            self.coordinator.flush()

    def advance(self, seconds: float) -> None:
        self.clock.advance(seconds)
        self.coordinator.flush()

    def forget_seen(self) -> None:
        del self.coordinator.seen[:]

    def warnings(self) -> list[str]:
        return [line for line in self.logs() if "retrying in" in line]

    def open_connections(self, node: str) -> int:
        return sum(1 for s in self.coordinator.servers if s.node == node and not s.lost)

    def stable(self, *ns: int) -> list[Node]:
        """Nodes C{ns} joined into one generation."""
        self.coordinator.expected = len(ns)
        nodes = [self.node(n) for n in ns]
        self.start(*nodes)
        for node in nodes:
            self.assertEqual(len(node.roster), len(ns))
        return nodes


class JoinTests(MembershipTestCase):
    def test_one_node_joins(self) -> None:
        """A lone node joins (after MEMBER_ID_REQUIRED) and hands out itself, joined."""
        [n1] = [self.node(1)]
        self.assertEqual(n1.rosters, [[n1.myself]])
        self.start(n1)

        self.assertEqual(
            self.coordinator.seen,
            finding("n1")
            + [("n1", "JoinGroup", ""), ("n1", "JoinGroup", "member-1")]
            + [("n1", "SyncGroup", "member-1")],
        )
        self.assertEqual(self.coordinator.connections, [("n1", BOOTSTRAP), ("n1", COORDINATOR)])
        self.assertEqual(self.open_connections("n1"), 1)  # the bootstrap connection is closed
        self.assertEqual(n1.membership.member_id, "member-1")
        self.assertEqual(n1.roster, joined((1, "member-1")))
        self.assertEqual(n1.rosters, [[n1.myself], joined((1, "member-1"))])
        self.assertEqual(self.warnings(), [])

    def test_versions_and_subscription(self) -> None:
        """The group requests use the negotiated versions and describe the node."""
        self.start(self.node(1))
        versions = {type(r).__name__: r.API_VERSION for _, r in self.coordinator.requests}
        self.assertEqual(
            versions,
            {
                "ApiVersionsRequest": 3,
                "CreateTopicsRequest": 5,
                "FindCoordinatorRequest": 3,
                "JoinGroupRequest": 7,
                "SyncGroupRequest": 4,
            },
        )
        join = [r for _, r in self.coordinator.requests if type(r).__name__ == "JoinGroupRequest"]
        self.assertEqual(join[-1].protocol_type, "consumer")
        self.assertEqual([p.name for p in join[-1].protocols], ["kgateway-roster"])
        self.assertEqual(join[-1].group_id, GROUP)

    def test_three_nodes_share_one_roster(self) -> None:
        """Three nodes get the same full roster, with every member's host, ports and rack."""
        n1, n2, n3 = self.stable(1, 2, 3)

        self.assertEqual(
            self.coordinator.seen,
            finding("n1")
            + [("n1", "JoinGroup", ""), ("n1", "JoinGroup", "member-1")]
            + finding("n2")
            + [("n2", "JoinGroup", ""), ("n2", "JoinGroup", "member-2")]
            + finding("n3")
            + [("n3", "JoinGroup", ""), ("n3", "JoinGroup", "member-3")]
            + [("n1", "SyncGroup", "member-1")]
            + [("n2", "SyncGroup", "member-2")]
            + [("n3", "SyncGroup", "member-3")],
        )
        everyone = joined((1, "member-1"), (2, "member-2"), (3, "member-3"))
        for node in (n1, n2, n3):
            self.assertEqual(node.roster, everyone)
            self.assertEqual(node.rosters, [[node.myself], everyone])
        self.assertEqual(
            [(m.host, m.port_start, m.port_count, m.rack) for m in n2.roster],
            [("gw1.test", 19100, 3, "a"), ("gw2.test", 19200, 3, "b"), ("gw3.test", 19300, 3, "c")],
        )
        # The leader (n1) handed the license partition to one member only.
        self.assertEqual(self.coordinator.leader, "member-1")
        assert self.coordinator.assignments is not None
        owned = {
            member_id: [
                (tp.topic, tp.partitions)
                for tp in ConsumerProtocolAssignment.decode(data).assigned_partitions
            ]
            for member_id, data in self.coordinator.assignments.items()
        }
        self.assertEqual(owned, {"member-1": [(LICENSE, [0])], "member-2": [], "member-3": []})
        self.assertEqual(self.coordinator.assigned_roster("member-3"), everyone)

    def test_heartbeats_on_the_interval(self) -> None:
        """A stable node sends one heartbeat per interval."""
        self.stable(1)
        self.forget_seen()
        self.advance(HEARTBEAT - 0.01)
        self.assertEqual(self.coordinator.seen, [])
        self.advance(0.01)
        self.advance(HEARTBEAT)
        self.assertEqual(
            self.coordinator.seen,
            [("n1", "Heartbeat", "member-1"), ("n1", "Heartbeat", "member-1")],
        )

    def test_expired_member_joins_again_with_a_new_id(self) -> None:
        """A member the coordinator forgot (UNKNOWN_MEMBER_ID) joins again from scratch."""
        [n1] = self.stable(1)
        self.coordinator.expire("member-1")
        self.forget_seen()
        self.advance(HEARTBEAT)
        self.assertEqual(
            self.coordinator.seen,
            [
                ("n1", "Heartbeat", "member-1"),
                ("n1", "JoinGroup", ""),
                ("n1", "JoinGroup", "member-2"),
                ("n1", "SyncGroup", "member-2"),
            ],
        )
        self.assertEqual(n1.roster, joined((1, "member-2")))


class LeaveTests(MembershipTestCase):
    def test_stop_leaves_and_the_others_rebalance(self) -> None:
        """A stopping node leaves; the others learn on their next heartbeat and shrink."""
        n1, n2, n3 = self.stable(1, 2, 3)
        self.forget_seen()

        stopping = n3.membership.stop()
        self.coordinator.flush()
        self.assertIsNone(self.successResultOf(stopping))
        self.assertEqual(self.coordinator.seen, [("n3", "LeaveGroup", "member-3")])
        self.assertEqual(self.open_connections("n3"), 0)
        self.assertIn(f"Left gateway group {GROUP}", self.logs())

        self.advance(HEARTBEAT)
        self.assertEqual(
            self.coordinator.seen,
            [
                ("n3", "LeaveGroup", "member-3"),
                ("n1", "Heartbeat", "member-1"),
                ("n2", "Heartbeat", "member-2"),
                ("n1", "JoinGroup", "member-1"),
                ("n2", "JoinGroup", "member-2"),
                ("n1", "SyncGroup", "member-1"),
                ("n2", "SyncGroup", "member-2"),
            ],
        )
        smaller = joined((1, "member-1"), (2, "member-2"))
        self.assertEqual(n1.roster, smaller)
        self.assertEqual(n2.roster, smaller)
        self.assertEqual(n1.membership.rebalances, 1)
        self.assertEqual(self.coordinator.generation, 2)
        # The stopped node sends nothing more.
        self.advance(HEARTBEAT)
        self.assertNotIn("n3", {node for node, _, _ in self.coordinator.seen[7:]})

    def test_a_new_node_joins_a_stable_group(self) -> None:
        """A late node makes the group rebalance; everyone ends with the bigger roster."""
        n1, n2 = self.stable(1, 2)
        self.forget_seen()
        n3 = self.node(3)
        self.start(n3)
        self.advance(HEARTBEAT)
        self.assertEqual(
            self.coordinator.seen,
            finding("n3", create=True)
            + [("n3", "JoinGroup", ""), ("n3", "JoinGroup", "member-3")]
            + [
                ("n1", "Heartbeat", "member-1"),
                ("n2", "Heartbeat", "member-2"),
                ("n1", "JoinGroup", "member-1"),
                ("n2", "JoinGroup", "member-2"),
                # n3 heard first; as a follower it waits for the leader's assignments.
                ("n3", "SyncGroup", "member-3"),
                ("n1", "SyncGroup", "member-1"),
                ("n2", "SyncGroup", "member-2"),
            ],
        )
        everyone = joined((1, "member-1"), (2, "member-2"), (3, "member-3"))
        for node in (n1, n2, n3):
            self.assertEqual(node.roster, everyone)


class FailureTests(MembershipTestCase):
    def test_coordinator_connection_drop_backs_off_and_rejoins(self) -> None:
        """A dropped connection: the node hands out itself alone, then rejoins after the wait."""
        [n1] = self.stable(1)
        self.forget_seen()

        self.coordinator.drop("n1")
        self.assertEqual(n1.roster, [n1.myself])
        self.assertEqual(n1.rosters[-1], [n1.myself])
        self.assertEqual(
            self.warnings(),
            [
                f"Gateway group {GROUP}: the connection to the group coordinator closed; "
                "retrying in 1.0s, handing out only this node meanwhile"
            ],
        )
        # The heartbeat is off; only the retry is due.
        self.assertEqual([call.getTime() for call in self.clock.getDelayedCalls()], [RETRY])

        self.advance(RETRY - 0.001)
        self.assertEqual(self.coordinator.seen, [])
        self.advance(0.001)
        self.assertEqual(
            self.coordinator.seen,
            finding("n1", create=False)
            + [("n1", "JoinGroup", "member-1"), ("n1", "SyncGroup", "member-1")],
        )
        self.assertEqual(n1.roster, joined((1, "member-1")))
        self.assertEqual(
            [endpoint for _, endpoint in self.coordinator.connections],
            [BOOTSTRAP, COORDINATOR, BOOTSTRAP, COORDINATOR],
        )

    def test_drop_after_a_rebalance_is_noticed_at_once(self) -> None:
        """The coordinator connection is watched in every generation, not just the first."""
        n1, n2 = self.stable(1, 2)
        stopping = n2.membership.stop()
        self.coordinator.flush()
        self.successResultOf(stopping)
        self.advance(HEARTBEAT)
        self.assertEqual(n1.roster, joined((1, "member-1")))
        self.assertEqual(n1.membership.rebalances, 1)

        self.coordinator.drop("n1")
        self.assertEqual(n1.roster, [n1.myself])
        self.assertEqual(len(self.warnings()), 1)

    def test_drop_while_joining(self) -> None:
        """A connection lost while the join round is open: back off, then join again."""
        self.coordinator.expected = 2
        n1 = self.node(1)
        self.start(n1)
        self.coordinator.drop("n1")
        self.assertEqual(len(self.warnings()), 1)
        self.assertEqual(n1.roster, [n1.myself])
        self.forget_seen()
        self.coordinator.expected = 1
        self.advance(RETRY)
        self.assertEqual(
            self.coordinator.seen,
            finding("n1", create=False)
            + [("n1", "JoinGroup", "member-1"), ("n1", "SyncGroup", "member-1")],
        )
        self.assertEqual(n1.roster, joined((1, "member-1")))

    def test_heartbeat_timeout_backs_off(self) -> None:
        """A heartbeat that gets no answer within the request timeout counts as lost contact."""
        [n1] = self.stable(1)
        self.coordinator.holding = {"Heartbeat"}
        self.advance(HEARTBEAT)
        self.assertEqual(n1.roster, joined((1, "member-1")))
        self.advance(TIMEOUT)
        self.assertEqual(n1.roster, [n1.myself])
        self.assertEqual(len(self.warnings()), 1)
        self.assertEqual(self.open_connections("n1"), 0)

    def test_unreachable_bootstrap_retries(self) -> None:
        """A refused bootstrap connection is reported with the server, and retried."""
        self.coordinator.refusing = {"n1"}
        n1 = self.node(1)
        self.start(n1)
        [warning] = self.warnings()
        self.assertIn(
            "no bootstrap server answered: bootstrap:9092: Connection was refused", warning
        )
        self.assertEqual(n1.rosters, [[n1.myself]])

        self.coordinator.refusing = set()
        self.advance(RETRY)
        self.assertEqual(n1.roster, joined((1, "member-1")))
        self.assertEqual(
            self.coordinator.connections,
            [("n1", BOOTSTRAP), ("n1", BOOTSTRAP), ("n1", COORDINATOR)],
        )

    def test_find_coordinator_error(self) -> None:
        """A FindCoordinator error is reported with its code, and the lookup retried."""
        self.coordinator.find_coordinator_error = 15
        n1 = self.node(1)
        self.start(n1)
        self.assertEqual(self.coordinator.seen, finding("n1")[:3])
        [warning] = self.warnings()
        self.assertIn("FindCoordinator: error 15", warning)
        self.assertEqual(self.open_connections("n1"), 0)

        self.coordinator.find_coordinator_error = 0
        self.forget_seen()
        self.advance(RETRY)
        self.assertEqual(
            self.coordinator.seen,
            finding("n1", create=False)
            + [("n1", "JoinGroup", ""), ("n1", "JoinGroup", "member-1")]
            + [("n1", "SyncGroup", "member-1")],
        )


class LicenseTopicTests(MembershipTestCase):
    def creates(self) -> list[Any]:
        return [
            r for _, r in self.coordinator.requests if type(r).__name__ == "CreateTopicsRequest"
        ]

    def test_created_once_compacted_with_one_partition(self) -> None:
        """The license topic is created once per node: compacted, one partition."""
        [n1] = self.stable(1)
        self.coordinator.drop("n1")
        self.advance(RETRY)
        self.assertEqual(n1.roster, joined((1, "member-1")))

        [create] = self.creates()
        [topic] = create.topics
        self.assertEqual(topic.name, LICENSE)
        self.assertEqual(topic.num_partitions, 1)
        self.assertEqual(topic.replication_factor, 3)
        self.assertEqual(topic.assignments, [])
        self.assertEqual(
            [(c.name, c.value) for c in topic.configs], [("cleanup.policy", "compact")]
        )
        self.assertFalse(create.validate_only)
        self.assertIn(f"Created the license topic {LICENSE}", self.logs())

    def test_already_exists_is_fine(self) -> None:
        """TOPIC_ALREADY_EXISTS is the normal answer for every node but the first."""
        self.coordinator.topics = {LICENSE}
        n1 = self.node(1)
        self.start(n1)
        self.assertEqual(n1.roster, joined((1, "member-1")))
        self.assertEqual(len(self.creates()), 1)
        self.assertEqual(self.warnings(), [])
        self.assertNotIn(f"Created the license topic {LICENSE}", self.logs())

    def test_other_error_fails_clearly_and_is_retried(self) -> None:
        """Any other error names the topic and the error, and nothing joins until it is fixed."""
        self.coordinator.create_topics_error = 29
        n1 = self.node(1)
        self.start(n1)
        self.assertEqual(self.coordinator.seen, finding("n1")[:2])
        self.assertEqual(
            self.warnings(),
            [
                f"Gateway group {GROUP}: cannot create the license topic {LICENSE}: "
                "error 29 fake error 29; retrying in 1.0s, handing out only this node meanwhile"
            ],
        )
        self.assertEqual(n1.rosters, [[n1.myself]])
        self.assertEqual(self.open_connections("n1"), 0)

        self.advance(RETRY)
        self.assertEqual(len(self.creates()), 2)
        self.coordinator.create_topics_error = 0
        self.advance(RETRY)
        self.assertEqual(len(self.creates()), 3)
        self.assertEqual(n1.roster, joined((1, "member-1")))


class StopTests(MembershipTestCase):
    """stop() fires in every state, and answers that arrive afterwards change nothing."""

    def assertQuiet(self, node: Node, rosters: list[list[Member]]) -> None:
        """Nothing is due, nothing is open, nothing more was handed out, nothing happens later."""
        self.assertEqual(self.clock.getDelayedCalls(), [])
        self.assertEqual(self.open_connections(node.myself.node_name), 0)
        seen = len(self.coordinator.seen)
        connections = len(self.coordinator.connections)
        self.advance(60)
        self.assertEqual(len(self.coordinator.seen), seen)
        self.assertEqual(len(self.coordinator.connections), connections)
        self.assertEqual(node.rosters, rosters)

    def test_stop_when_idle(self) -> None:
        n1 = self.node(1)
        self.assertIsNone(self.successResultOf(n1.membership.stop()))
        n1.membership.start()  # too late: stopped is stopped
        self.coordinator.flush()
        self.assertEqual(self.coordinator.connections, [])
        self.assertQuiet(n1, [[n1.myself]])

    def test_stop_while_connecting_to_bootstrap(self) -> None:
        """A connection attempt that completes after stop is closed without a request."""
        held = HeldConnector(self.coordinator.connector("n1"))
        n1 = self.node(1, connect=held)
        self.start(n1)
        self.assertIsNone(self.successResultOf(n1.membership.stop()))
        held.release()
        self.coordinator.flush()
        self.assertEqual(self.coordinator.connections, [("n1", BOOTSTRAP)])
        self.assertNotIn(("n1", "CreateTopics", LICENSE), self.coordinator.seen)
        self.assertQuiet(n1, [[n1.myself]])
        self.assertEqual(self.warnings(), [])

    def test_stop_while_finding_the_coordinator(self) -> None:
        """A FindCoordinator answer after stop does not open a coordinator connection."""
        self.coordinator.holding = {"FindCoordinator"}
        n1 = self.node(1)
        self.start(n1)
        self.assertIsNone(self.successResultOf(n1.membership.stop()))
        self.coordinator.release()
        self.assertEqual(self.coordinator.seen, finding("n1")[:3])
        self.assertEqual(self.coordinator.connections, [("n1", BOOTSTRAP)])
        self.assertQuiet(n1, [[n1.myself]])

    def test_stop_while_joining(self) -> None:
        """Stop during an open join round: LeaveGroup, and the late join answer is ignored."""
        self.coordinator.expected = 2
        n1 = self.node(1)
        self.start(n1)
        self.forget_seen()
        stopping = n1.membership.stop()
        self.coordinator.flush()
        self.assertIsNone(self.successResultOf(stopping))
        self.assertEqual(self.coordinator.seen, [("n1", "LeaveGroup", "member-1")])
        self.assertQuiet(n1, [[n1.myself]])

    def test_stop_while_syncing_ignores_the_late_assignment(self) -> None:
        """A SyncGroup answer that arrives after stop does not change the roster."""
        self.coordinator.holding = {"SyncGroup", "LeaveGroup"}
        n1 = self.node(1)
        self.start(n1)
        self.forget_seen()
        stopping = n1.membership.stop()
        self.coordinator.flush()
        self.assertNoResult(stopping)
        self.assertEqual(self.coordinator.seen, [("n1", "LeaveGroup", "member-1")])

        self.coordinator.release()  # the roster first, then the leave answer
        self.assertIsNone(self.successResultOf(stopping))
        self.assertQuiet(n1, [[n1.myself]])

    def test_stop_while_stable_ignores_a_late_rebalance(self) -> None:
        """A REBALANCE_IN_PROGRESS heartbeat answer after stop does not make the node join."""
        [n1] = self.stable(1)
        rosters = list(n1.rosters)
        self.coordinator.holding = {"Heartbeat", "LeaveGroup"}
        self.advance(HEARTBEAT)  # the heartbeat is out
        n2 = self.node(2)
        self.start(n2)  # n2's join opens a rebalance
        self.forget_seen()

        stopping = n1.membership.stop()
        self.coordinator.release()
        self.assertIsNone(self.successResultOf(stopping))
        # n1 does not rejoin; its leaving lets n2's round complete without it.
        self.assertEqual(
            self.coordinator.seen,
            [("n1", "LeaveGroup", "member-1"), ("n2", "SyncGroup", "member-2")],
        )
        self.assertEqual(n1.membership.rebalances, 0)
        self.assertEqual(n2.roster, joined((2, "member-2")))
        self.assertEqual(n1.rosters, rosters)
        self.assertEqual(self.open_connections("n1"), 0)

    def test_stop_while_waiting_to_retry(self) -> None:
        [n1] = self.stable(1)
        self.coordinator.drop("n1")
        self.assertIsNone(self.successResultOf(n1.membership.stop()))
        self.assertQuiet(n1, n1.rosters[:])

    def test_stop_twice(self) -> None:
        """A second stop fires too, and sends nothing."""
        [n1] = self.stable(1)
        self.forget_seen()
        first = n1.membership.stop()
        second = n1.membership.stop()
        self.coordinator.flush()
        self.assertIsNone(self.successResultOf(first))
        self.assertIsNone(self.successResultOf(second))
        self.assertEqual(self.coordinator.seen, [("n1", "LeaveGroup", "member-1")])
        self.assertQuiet(n1, n1.rosters[:])


class IsMemberTests(MembershipTestCase):
    """The read-only C{is_member} the node's readiness uses."""

    def test_member_while_in_the_roster_only(self) -> None:
        n1 = self.node(1)
        self.assertFalse(n1.membership.is_member)  # alone, not joined
        self.start(n1)
        self.assertTrue(n1.membership.is_member)
        self.coordinator.drop("n1")
        self.assertFalse(n1.membership.is_member)  # handing out only itself
        self.advance(RETRY)
        self.assertTrue(n1.membership.is_member)
        n1.membership.stop()
        self.coordinator.flush()
        self.assertFalse(n1.membership.is_member)
