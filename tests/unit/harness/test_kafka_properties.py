"""Tests for how a harness Kafka cluster configures and formats its brokers, without a JVM."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

from twisted.trial.unittest import TestCase

from harness.kafka import BrokerInfo, KafkaCluster, Listener
from harness.kafka.properties import render, server_properties

SASL_SSL = Listener(
    "SASL_SSL",
    properties={
        "ssl.keystore.type": "PEM",
        "scram-sha-512.sasl.jaas.config": (
            "org.apache.kafka.common.security.scram.ScramLoginModule required;"
        ),
    },
)


def parse(text: str) -> dict[str, str]:
    """A C{.properties} file's settings."""
    return dict(line.split("=", 1) for line in text.splitlines())


class ServerPropertiesTests(TestCase):
    """L{server_properties}: a plain node, and what listeners and overrides add."""

    broker = BrokerInfo(node_id=2, host="127.0.0.1", port=9092, rack="b")

    def test_plain_node(self) -> None:
        """A node of a three-node cluster: PLAINTEXT for clients and brokers, a controller."""
        settings = server_properties(
            self.broker, 9093, "1@h:1,2@h:2,3@h:3", 3, Path("/data/node-2")
        )
        self.assertEqual(settings["node.id"], 2)
        self.assertEqual(settings["broker.rack"], "b")
        self.assertEqual(settings["controller.quorum.voters"], "1@h:1,2@h:2,3@h:3")
        self.assertEqual(
            settings["listeners"], "PLAINTEXT://127.0.0.1:9092,CONTROLLER://127.0.0.1:9093"
        )
        self.assertEqual(settings["advertised.listeners"], "PLAINTEXT://127.0.0.1:9092")
        self.assertEqual(
            settings["listener.security.protocol.map"], "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT"
        )
        self.assertEqual(settings["inter.broker.listener.name"], "PLAINTEXT")
        self.assertEqual(settings["offsets.topic.replication.factor"], 3)
        self.assertEqual(settings["transaction.state.log.min.isr"], 2)

    def test_small_cluster_fits_internal_topics(self) -> None:
        """One node: internal topics with one replica, or coordinators never come up."""
        settings = server_properties(self.broker, 9093, "2@h:9093", 1, Path("/d"))
        self.assertEqual(settings["offsets.topic.replication.factor"], 1)
        self.assertEqual(settings["share.coordinator.state.topic.min.isr"], 1)

    def test_listener(self) -> None:
        """An extra listener is bound, advertised, mapped and gets its own prefixed settings."""
        broker = BrokerInfo(2, "127.0.0.1", 9092, "b", listener_ports={"SASL_SSL": 9094})
        settings = server_properties(broker, 9093, "2@h:9093", 1, Path("/d"), listeners=[SASL_SSL])
        self.assertEqual(
            settings["listeners"],
            "PLAINTEXT://127.0.0.1:9092,SASL_SSL://127.0.0.1:9094,CONTROLLER://127.0.0.1:9093",
        )
        self.assertEqual(
            settings["advertised.listeners"],
            "PLAINTEXT://127.0.0.1:9092,SASL_SSL://127.0.0.1:9094",
        )
        self.assertEqual(
            settings["listener.security.protocol.map"],
            "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT,SASL_SSL:SASL_SSL",
        )
        self.assertEqual(settings["listener.name.sasl_ssl.ssl.keystore.type"], "PEM")
        self.assertIn("listener.name.sasl_ssl.scram-sha-512.sasl.jaas.config", settings)
        self.assertEqual(settings["inter.broker.listener.name"], "PLAINTEXT")

    def test_listener_protocol(self) -> None:
        """A listener's security protocol may differ from its name."""
        listener = Listener("CLIENTS", security_protocol="SSL")
        broker = BrokerInfo(2, "127.0.0.1", 9092, "b", listener_ports={"CLIENTS": 9094})
        settings = server_properties(broker, 9093, "", 1, Path("/d"), listeners=[listener])
        self.assertTrue(str(settings["listener.security.protocol.map"]).endswith(",CLIENTS:SSL"))

    def test_overrides_last(self) -> None:
        """Overrides replace defaults and add settings."""
        settings = server_properties(
            self.broker,
            9093,
            "",
            1,
            Path("/d"),
            overrides={"num.partitions": 6, "sasl.enabled.mechanisms": "SCRAM-SHA-512"},
        )
        self.assertEqual(settings["num.partitions"], 6)
        self.assertEqual(settings["sasl.enabled.mechanisms"], "SCRAM-SHA-512")

    def test_render(self) -> None:
        """One C{key=value} line per setting, in order."""
        self.assertEqual(render({"a.b": 1, "c": "x=y"}), "a.b=1\nc=x=y\n")

    def test_reserved_listener_names(self) -> None:
        """PLAINTEXT and CONTROLLER are every broker's already; names are identifiers."""
        self.assertRaises(ValueError, Listener, "PLAINTEXT")
        self.assertRaises(ValueError, Listener, "controller")
        self.assertRaises(ValueError, Listener, "SASL SSL")

    def test_port_of(self) -> None:
        """A broker's port per listener; an unknown listener names the ones there are."""
        broker = BrokerInfo(2, "127.0.0.1", 9092, "b", listener_ports={"SASL_SSL": 9094})
        self.assertEqual(broker.port_of(), 9092)
        self.assertEqual(broker.port_of("SASL_SSL"), 9094)
        self.assertEqual(broker.ports, {9092, 9094})
        error = self.assertRaises(KeyError, broker.port_of, "SSL")
        self.assertIn("PLAINTEXT", str(error))


class ClusterLayoutTests(TestCase):
    """What a L{KafkaCluster} hands its nodes before any JVM starts."""

    def cluster(
        self,
        listeners: Sequence[Listener] = (),
        overrides: Mapping[str, object] | None = None,
        format_args: Sequence[str] = (),
    ) -> KafkaCluster:
        """A 3-node cluster that is never started."""
        cluster = KafkaCluster(
            size=3,
            base_dir=Path(self.mktemp()),
            listeners=listeners,
            overrides=overrides,
            format_args=format_args,
        )
        self.addCleanup(cluster.stop)
        return cluster

    def test_plain(self) -> None:
        """Three nodes, racks cycled, two distinct ports each, voters naming every controller."""
        cluster = self.cluster()
        self.assertEqual([b.node_id for b in cluster.brokers], [1, 2, 3])
        self.assertEqual([b.rack for b in cluster.brokers], ["a", "b", "c"])
        self.assertEqual(len(cluster.broker_ports | cluster.controller_ports), 6)
        settings = parse(render(cluster.server_properties(2)))
        voters = settings["controller.quorum.voters"].split(",")
        self.assertEqual([v.split("@")[0] for v in voters], ["1", "2", "3"])
        self.assertEqual(
            cluster.format_arguments(2),
            ["format", "-t", cluster.cluster_id, "-c", str(cluster.base_dir / "node-2" /
                                                           "server.properties")],
        )  # fmt: skip

    def test_secured_shape(self) -> None:
        """Listeners get ports of their own; format_args reach every node's format."""
        scram = ["--add-scram", "SCRAM-SHA-512=[name=alice,password=secret]"]
        cluster = self.cluster(
            listeners=[SASL_SSL],
            overrides={"sasl.enabled.mechanisms": "SCRAM-SHA-512"},
            format_args=scram,
        )
        ports = [b.port_of("SASL_SSL") for b in cluster.brokers]
        self.assertEqual(len(cluster.broker_ports), 6, "PLAINTEXT and SASL_SSL per broker")
        self.assertTrue(set(ports) <= cluster.broker_ports)
        self.assertFalse(cluster.broker_ports & cluster.controller_ports)
        self.assertEqual(
            cluster.bootstrap_for("SASL_SSL"), ",".join(f"127.0.0.1:{port}" for port in ports)
        )
        for broker in cluster.brokers:
            settings = cluster.server_properties(broker.node_id)
            self.assertIn(f"SASL_SSL://127.0.0.1:{broker.port_of('SASL_SSL')}",
                          str(settings["advertised.listeners"]))  # fmt: skip
            self.assertEqual(settings["sasl.enabled.mechanisms"], "SCRAM-SHA-512")
            self.assertEqual(cluster.format_arguments(broker.node_id)[-2:], scram)

    def test_listener_names_unique(self) -> None:
        """Two listeners of one name would share nothing sensible."""
        self.assertRaises(
            ValueError, KafkaCluster, size=1, listeners=[Listener("SSL"), Listener("SSL")]
        )
