"""
Issue 13 items 6 and 8 with Kafka's own Java tools through a SASL_SSL gateway, every tool
given its security settings with C{--command-config} / C{--producer.config}.

C{kafka-configs --entity-type brokers --entity-name 1 --describe --all} straight to the
broker prints its C{listeners}, C{advertised.listeners} and C{controller.quorum.voters}, every
internal address; through the gateway (the DescribeConfigs rewriting) the same command prints
none of the brokers' or controllers' ports. C{kafka-topics} and C{kafka-producer-perf-test} work
through the gateway too. Every tool is under strace and fails if it touched a broker port.
"""

from __future__ import annotations

import re

from twisted.trial.unittest import TestCase

from harness.kafka import CONFIGS_COMMAND, PRODUCER_PERF, TOPIC_COMMAND, java_tool_command
from harness.kafka.secured import SASL_SSL
from tests.integration.secured_environment import Route, secured

ADDRESS_CONFIGS = ("listeners", "advertised.listeners", "controller.quorum.voters")


class JavaToolsTests(TestCase):
    def setUp(self) -> None:
        self.env = secured()

    def tool(self, name: str, route: Route, main_class: str, *args: str) -> str:
        env = self.env
        config = env.java_properties(route)
        command = java_tool_command(
            main_class,
            "--bootstrap-server",
            route.bootstrap,
            "--command-config",
            str(config),
            *args,
        )
        result = env.run(name, command, route)
        return result.stdout + result.stderr

    def describe_broker(self, route: Route) -> str:
        return self.tool(
            "kafka-configs",
            route,
            CONFIGS_COMMAND,
            "--entity-type", "brokers",
            "--entity-name", "1",
            "--describe",
            "--all",
        )  # fmt: skip

    def leaked_ports(self, output: str) -> set[int]:
        """The broker and controller ports named anywhere in C{output} as C{host:port}."""
        named = {int(port) for port in re.findall(r":(\d{2,5})\b", output)}
        return named & set(self.env.all_broker_ports)

    def test_describe_configs_names_no_broker_address(self) -> None:
        env = self.env
        sasl = env.sasl("SCRAM-SHA-512")
        direct = self.describe_broker(env.direct(SASL_SSL, sasl))
        # The control: straight to the broker the addresses are there to leak.
        for name in ADDRESS_CONFIGS:
            self.assertIn(f"{name}=", direct)
        self.assertTrue(self.leaked_ports(direct), direct[-3000:])
        through = self.describe_broker(env.through(env.sasl_gateway(), sasl))
        self.assertIn("advertised.listeners", through)
        self.assertEqual(self.leaked_ports(through), set(), through[-5000:])
        for info in env.cluster.brokers:
            self.assertNotIn(f"{info.host}:{info.port}", through)

    def test_topics_and_perf_test(self) -> None:
        env = self.env
        route = env.through(env.sasl_gateway(), env.sasl("SCRAM-SHA-512"))
        topic = f"java-tools-{id(self):x}"
        created = self.tool(
            "kafka-topics-create",
            route,
            TOPIC_COMMAND,
            "--create", "--topic", topic, "--partitions", "3", "--replication-factor", "3",
        )  # fmt: skip
        self.assertIn(f"Created topic {topic}.", created)
        described = self.tool(
            "kafka-topics-describe", route, TOPIC_COMMAND, "--describe", "--topic", topic
        )
        self.assertEqual(
            len(re.findall(r"Partition: \d+\s+Leader: [123]\b", described)), 3, described
        )
        perf = env.run(
            "kafka-producer-perf-test",
            java_tool_command(
                PRODUCER_PERF,
                "--topic", topic,
                "--num-records", "5000",
                "--record-size", "512",
                "--throughput", "-1",
                "--producer.config", str(env.java_properties(route, {"acks": "all"})),
                "--producer-props", f"bootstrap.servers={route.bootstrap}",
            ),
            route,
        )  # fmt: skip
        # The summary line, not an interim "N records sent" window line.
        self.assertRegex(perf.stdout, r"(?m)^5000 records sent, .* 50th", perf.stdout[-2000:])
