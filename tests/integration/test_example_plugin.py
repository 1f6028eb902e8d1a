"""
The example interceptor plugin as an operator would use it: its wheel
installed in a directory of its own next to a real C{twistd kgateway} node
in front of the shared Kafka cluster, found by the node, configured through
the admin API, and refusing real clients' writes outside its prefixes while
letting the rest through.
"""

from __future__ import annotations

import atexit
import dataclasses
import json
import shutil
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from confluent_kafka import Consumer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic
from prometheus_client.parser import text_string_to_metric_families
from twisted.trial.unittest import TestCase

from harness.gateway_process import GatewayProcess
from harness.kafka import PRODUCER_PERF
from harness.plugin_package import EXAMPLE_PLUGIN, build_wheel, install_wheel

from .environment import Environment, shared
from .gateway_cluster import SharedByTests

CLIENT_TIMEOUT = 60


def request(node: GatewayProcess, method: str, path: str, body: Any = None) -> tuple[int, Any]:
    """One admin API call with the node's admin user; the status and the JSON answer."""
    return node.api(method, path, body)


def _status(node: GatewayProcess, path: str) -> int | None:
    try:
        return request(node, "GET", path)[0]
    except OSError:  # not listening yet
        return None


def _example_node() -> tuple[GatewayProcess, Environment]:
    """A node with the example installed, and the shared environment's audited runner
    pointed at it: clients must reach its ports and never a broker's."""
    shared_env = shared()
    workdir = Path(tempfile.mkdtemp(prefix="kgateway-it-example-"))
    atexit.register(shutil.rmtree, workdir, True)
    site = install_wheel(build_wheel(EXAMPLE_PLUGIN, workdir), workdir / "site")
    node = GatewayProcess(
        shared_env.cluster.bootstrap_servers,
        workdir / "gateway.log",
        env={"GATEWAY_CLUSTER_ID": f"example-{uuid.uuid4().hex[:8]}"},
        extra_pythonpath=[site],
    )
    node.start(timeout=90)
    # The interceptor API answers once the node reads its interceptors topic.
    deadline = time.monotonic() + 90
    while _status(node, "/api/v1/plugins") != 200:
        if time.monotonic() > deadline:
            node.stop()
            raise AssertionError("the interceptor API never became ready:\n" + node.log_tail())
        time.sleep(0.5)
    return node, dataclasses.replace(shared_env, gateway=node)


#: One node with the example installed, for all the tests of this module.
EXAMPLE_NODE = SharedByTests(_example_node, lambda started: started[0].stop())


class ExamplePluginTests(TestCase):
    """topic-prefix-guard, installed from its wheel, on a node of its own."""

    timeout = 600

    def setUp(self) -> None:
        self.gateway, self.environment = EXAMPLE_NODE.acquire(self)
        self.prefix = f"allowed-{uuid.uuid4().hex[:6]}."

    def configure(self, name: str, prefixes: list[str]) -> None:
        status, answer = request(
            self.gateway,
            "PUT",
            f"/api/v1/interceptors/{name}",
            {"plugin": "topic-prefix-guard", "priority": 50, "config": {"prefixes": prefixes}},
        )
        self.assertIn(status, (200, 201), answer)
        self.addCleanup(request, self.gateway, "DELETE", f"/api/v1/interceptors/{name}")
        self.assertEqual(answer["config"], {"prefixes": prefixes})

    def direct_admin(self) -> AdminClient:
        """The cluster itself, for setting up and checking (not a client under test)."""
        return AdminClient({"bootstrap.servers": self.environment.cluster.bootstrap_servers})

    def end_offsets(self, topic: str, partitions: int = 3) -> list[int]:
        """Each partition's high watermark, read from the brokers."""
        consumer = Consumer(
            {"bootstrap.servers": self.environment.cluster.bootstrap_servers, "group.id": "unused"}
        )
        try:
            return [
                consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=30)[1]
                for p in range(partitions)
            ]
        finally:
            consumer.close()

    def produce(self, topic: str, check: bool = True, count: int = 30) -> Any:
        return self.environment.python_client(
            "ck_produce.py",
            "--topic",
            topic,
            "--count",
            str(count),
            "--timeout",
            str(CLIENT_TIMEOUT),
            timeout=CLIENT_TIMEOUT + 60,
            check=check,
        )

    def test_found_by_the_node(self) -> None:
        """GET /api/v1/plugins lists the example next to the built-ins."""
        status, answer = request(self.gateway, "GET", "/api/v1/plugins")
        self.assertEqual(status, 200, answer)
        names = {plugin["name"]: plugin["description"] for plugin in answer["plugins"]}
        self.assertEqual(
            names.get("topic-prefix-guard"),
            "Refuse Produce and CreateTopics for topics outside the configured name prefixes",
        )
        self.assertIn("client-id-required", names)

    def test_bad_config_is_a_400_with_one_line(self) -> None:
        """The plugin's own validation reaches the operator; nothing is stored."""
        status, answer = request(
            self.gateway,
            "PUT",
            "/api/v1/interceptors/bad-prefixes",
            {"plugin": "topic-prefix-guard", "config": {"prefixes": [], "prefix": "x"}},
        )
        self.assertEqual(status, 400, answer)
        self.assertEqual(
            answer["message"], "unknown config key(s) prefix; known: prefixes, refuseCreate"
        )
        status, answer = request(self.gateway, "GET", "/api/v1/interceptors/bad-prefixes")
        self.assertEqual(status, 404, answer)

    def test_refuses_writes_outside_its_prefixes(self) -> None:
        """
        With the guard on, librdkafka's produce to an allowed topic lands, its
        produce elsewhere fails with TOPIC_AUTHORIZATION_FAILED and nothing
        reaches the broker, and CreateTopics outside the prefixes is refused.
        Java's producer (which speaks Produce v13, topic ids only, when
        offered) still works: the guard offers it v12.
        """
        allowed = f"{self.prefix}orders"
        denied = f"denied-{uuid.uuid4().hex[:6]}.orders"
        admin = self.direct_admin()
        for future in admin.create_topics(
            [NewTopic(allowed, 3, 3), NewTopic(denied, 3, 3)]
        ).values():
            future.result(60)

        # Before the guard: both go through (the topic itself is fine).
        self.produce(denied, count=5)
        self.assertEqual(sum(self.end_offsets(denied)), 5)

        self.configure("prefixes", [self.prefix])

        sent = json.loads(self.produce(allowed).stdout.strip().splitlines()[-1])["sent"]
        self.assertEqual(len(sent), 30)
        self.assertEqual(sum(self.end_offsets(allowed)), 30)

        refused = self.produce(denied, check=False)
        self.assertEqual(refused.returncode, 1, refused.stdout)
        self.assertIn("Topic authorization failed", refused.stderr)
        self.assertEqual(sum(self.end_offsets(denied)), 5, "a refused record reached Kafka")

        created = self.environment.python_client(
            "ck_admin.py",
            "create-topic",
            "--topic",
            f"elsewhere-{uuid.uuid4().hex[:6]}",
            "--replication",
            "3",
            "--timeout",
            str(CLIENT_TIMEOUT),
            timeout=CLIENT_TIMEOUT + 60,
            check=False,
        )
        self.assertEqual(created.returncode, 1, created.stdout)
        self.assertIn("POLICY_VIOLATION", created.stderr)

        perf = self.environment.java_tool(
            "producer-perf",
            PRODUCER_PERF,
            "--topic",
            allowed,
            "--num-records",
            "200",
            "--record-size",
            "100",
            "--throughput",
            "-1",
            "--producer-props",
            f"bootstrap.servers={self.gateway.bootstrap}",
            "acks=all",
            timeout=180,
        )
        self.assertIn("200 records sent", perf.stdout)
        self.assertEqual(sum(self.end_offsets(allowed)), 230)
        # Its audit events reached the node: at least the refused produce and the
        # refused create (a client may send a refused request more than once).
        denials = self.decisions().get(("prefixes", "topic-prefix-guard", "denied"), 0)
        self.assertGreaterEqual(denials, 2)

    def decisions(self) -> dict[tuple[str, str, str], float]:
        """kgateway_interceptor_decisions_total from the node's /metrics."""
        status, text = self.gateway.api("GET", "/metrics")
        self.assertEqual(status, 200)
        return {
            (s.labels["interceptor"], s.labels["plugin"], s.labels["decision"]): s.value
            for family in text_string_to_metric_families(text)
            for s in family.samples
            if s.name == "kgateway_interceptor_decisions_total"
        }
