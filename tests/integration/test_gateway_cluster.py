"""
A gateway cluster of real nodes: rack affinity, round-robin, and how fast the
mapping follows nodes that join, leave cleanly, or are killed.

The brokers of the shared cluster are 1, 2, 3 in racks a, b, c.
"""

from __future__ import annotations

from twisted.trial.unittest import TestCase

from .environment import shared
from .gateway_cluster import GatewayCluster

RACK_OF_BROKER = {1: "a", 2: "b", 3: "c"}


def report(what: str, seconds: float) -> None:
    """Print a measured figure so it shows in the test run's output."""
    print(f"\n    [figure] {what}: {seconds:.2f}s")


class GatewayClusterTests(TestCase):
    """Three or four nodes in racks a, b, c."""

    def setUp(self) -> None:
        self.env = shared()
        self.gc = GatewayCluster(self.env)
        self.addCleanup(self.gc.stop)

    def start_nodes(self, *racks: str) -> None:
        for rack in racks:
            self.gc.add(rack)
        everyone = self.gc.live(self.gc.nodes)
        for via in self.gc.nodes:
            self.gc.wait_for(
                lambda via=via: self.gc.handed_out(via) == everyone,
                what=f"{via.log_path.name} to hand out all {len(everyone)} nodes",
            )

    def test_rack_affinity(self) -> None:
        """With a node in every rack, no broker is ever mapped to a node of another rack."""
        self.start_nodes("a", "b", "c")
        rack_of_node = {
            node.log_path: node.environment["GATEWAY_RACK_ID"] for node in self.gc.nodes
        }
        for via in self.gc.nodes:
            for _ in range(20):
                for broker, node in self.gc.mapping(via).items():
                    self.assertEqual(rack_of_node[node.log_path], RACK_OF_BROKER[broker])

    def test_spread_over_clients_stable_per_client_and_consistent_view(self) -> None:
        """Two nodes in rack a: clients are spread over both; each client always sees one."""
        self.start_nodes("a", "a", "b", "c")
        rack_a = {self.gc.nodes[0].log_path, self.gc.nodes[1].log_path}
        via = self.gc.nodes[2]
        # Different clients get different rack-a nodes for broker 1.
        spread = {self.gc.mapping(via, f"client-{i}")[1].log_path for i in range(12)}
        self.assertEqual(spread, rack_a)
        # One client gets the same node for broker 1 on every request, through every node
        # (librdkafka reconnects whenever a broker's address changes).
        for client in ("client-0", "client-1", "client-2"):
            answers = {
                self.gc.mapping(node, client)[1].log_path
                for node in self.gc.nodes
                for _ in range(3)
            }
            self.assertEqual(len(answers), 1, client)
        # Every node knows the same four live nodes.
        views = {frozenset(self.gc.handed_out(node, 16)) for node in self.gc.nodes}
        self.assertEqual(views, {frozenset(self.gc.live(self.gc.nodes))})
        # Rack b's and c's brokers always stay in their racks.
        homes = {self.gc.mapping(via, f"client-{i}")[2].log_path for i in range(6)}
        self.assertEqual(homes, {self.gc.nodes[2].log_path})

    def test_join_leave_and_kill(self) -> None:
        """The mapping follows a node that joins, leaves cleanly, and is killed; timed."""
        self.start_nodes("a", "b")
        first = self.gc.nodes[0]
        # Broker 3 (rack c) has no node in its rack: it goes to a or b.
        self.assertIn(self.gc.mapping(first)[3].log_path, self.gc.live(self.gc.nodes[:2]))

        node_c = self.gc.add("c")
        joined = self.gc.wait_for(
            lambda: self.gc.mapping(first)[3].log_path == node_c.log_path,
            what="the new rack-c node to be handed out for broker 3",
        )
        report("new node handed out after its 'Listening' line", joined)

        node_c.stop()
        left = self.gc.wait_for(
            lambda: all(node_c.log_path not in self.gc.handed_out(first, 4) for _ in range(2)),
            what="the stopped node to disappear from the mapping",
        )
        report("cleanly stopped node dropped from the mapping", left)
        self.assertLess(left, 3.0)

        node_c2 = self.gc.add("c")
        self.gc.wait_for(
            lambda: self.gc.mapping(first)[3].log_path == node_c2.log_path,
            what="the restarted rack-c node to be handed out",
        )
        node_c2.kill()
        killed = self.gc.wait_for(
            lambda: node_c2.log_path not in self.gc.handed_out(first, 4),
            timeout=30,
            what="the killed node to disappear from the mapping",
        )
        report("SIGKILLed node dropped from the mapping (session timeout 6s)", killed)
        self.assertLess(killed, 15.0)

    def test_membership_is_a_kafka_consumer_group_polling_the_license_topic(self) -> None:
        """The nodes are the members of one real consumer group and read the license topic."""
        from confluent_kafka import ConsumerGroupState, Producer
        from confluent_kafka.admin import AdminClient, ConfigResource, ResourceType

        self.start_nodes("a", "b")
        bootstrap = ",".join(node.bootstrap for node in self.gc.nodes)
        admin = AdminClient({"bootstrap.servers": bootstrap})
        group = f"kgateway_{self.gc.name}"
        description = admin.describe_consumer_groups([group])[group].result(timeout=30)
        self.assertEqual(description.state, ConsumerGroupState.STABLE)
        self.assertEqual(len(description.members), 2)
        self.assertEqual(description.partition_assignor, "kgateway-roster")
        topic = f"_kgateway_{self.gc.name}_license"
        resource = ConfigResource(ResourceType.TOPIC, topic)
        configs = admin.describe_configs([resource])[resource].result(timeout=30)
        self.assertEqual(configs["cleanup.policy"].value, "compact")

        producer = Producer({"bootstrap.servers": bootstrap})
        producer.produce(topic, key=b"license", value=b"demo-license-1")
        self.assertEqual(producer.flush(30), 0)
        for node in self.gc.nodes:
            self.gc.wait_for(
                lambda node=node: (
                    "License topic entry license updated"
                    in node.log_path.read_text(errors="replace")
                ),
                what=f"{node.log_path.name} to read the license topic",
            )
