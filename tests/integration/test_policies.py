"""
The policy interceptors and the audit log against real Kafka, configured through the admin API.

Each test PUTs its interceptor to C{/api/v1/interceptors/NAME} (scoped to the test's own
client ids, so a leftover cannot touch other tests) and DELETEs it afterwards.  Clients
are real: librdkafka through L{ck_policy.py} and Kafka's Java C{TopicCommand}, each run
under the strace connect audit.  What the clients were told is checked, and what
happened in the cluster is checked separately through the gateway (describe, consume).
"""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

from twisted.trial.unittest import TestCase

from harness.kafka import CONSOLE_PRODUCER, TOPIC_COMMAND
from kgateway.protocol.error_codes import ErrorCode
from tests.integration.environment import Environment, shared

CLIENT_TIMEOUT = 60.0
POLICY_VIOLATION = ErrorCode.POLICY_VIOLATION
#: The scope every test interceptor gets: only this module's clients.
SCOPE = {"clientId": "policy-test.*"}
#: The audit log's default topic for GATEWAY_CLUSTER_ID=gateway (the test gateway's).
AUDIT_TOPIC = "_kgateway_gateway_audit"


def api(env: Environment, method: str, path: str, body: Any = None) -> tuple[int, Any]:
    """Call the gateway's admin API as its admin user: status and decoded JSON body."""
    return env.gateway.api(method, path, body)


class PolicyTests(TestCase):
    """Each policy as a client meets it."""

    env: Environment

    def setUp(self) -> None:
        self.env = shared()

    # -- helpers ------------------------------------------------------------------------

    def unique(self, what: str) -> str:
        return f"policy-{what}-{uuid.uuid4().hex[:8]}"

    def configure(self, name: str, plugin: str, config: dict[str, Any], **extra: Any) -> None:
        """PUT an interceptor (scoped to this module's clients); DELETE it after the test."""
        spec = {"plugin": plugin, "priority": 50, "config": config, "scope": SCOPE, **extra}
        status, body = api(self.env, "PUT", f"/api/v1/interceptors/{name}", spec)
        self.assertIn(status, (200, 201), f"PUT {name}: HTTP {status}: {body}")
        self.addCleanup(self.remove, name)
        # The PUT answers once this node has read the change back: it runs now.
        status, listing = api(self.env, "GET", "/api/v1/interceptors")
        self.assertEqual(status, 200, listing)
        self.assertEqual(listing["failed"], {}, listing)
        self.assertIn(name, [i["name"] for i in listing["interceptors"]])

    def remove(self, name: str) -> None:
        status, body = api(self.env, "DELETE", f"/api/v1/interceptors/{name}")
        self.assertIn(status, (204, 404), f"DELETE {name}: HTTP {status}: {body}")

    def client(
        self, command: str, *topics: str, script: str = "ck_policy.py", **options: Any
    ) -> Any:
        """Run a policy client script under the connect audit; return the JSON it printed."""
        argv = [command] if script == "ck_policy.py" else []
        for topic in topics:
            argv += ["--topic", topic]
        for key, value in {"timeout": CLIENT_TIMEOUT, **options}.items():
            argv += ["--" + key.replace("_", "-"), str(value)]
        result = self.env.python_client(script, *argv, timeout=CLIENT_TIMEOUT + 60)
        try:
            return json.loads(result.stdout.strip().splitlines()[-1])
        except (IndexError, ValueError):
            raise AssertionError(
                f"{script} {command} printed no JSON:\n{result.stdout}\n{result.stderr}"
            ) from None

    def create(self, topic: str, partitions: int = 3) -> None:
        created = self.client("create", f"{topic}:{partitions}:3")["results"][topic]
        self.assertTrue(created["ok"], created)

    def audit_log(self) -> None:
        """Run the audit log with its default topic (the node creates it on its first record)."""
        self.configure("policy-audit", "audit-log", {})

    def audited(self, *topics: str) -> dict[str, dict[str, Any]]:
        """The audit records about C{topics} (by details.topic), once they are all there."""
        records: list[dict[str, Any]] = []
        for _ in range(20):
            values = self.client("consume", AUDIT_TOPIC, count=10_000, timeout=5)["values"]
            records = [json.loads(v) for v in values]
            found = {r["details"].get("topic"): r for r in records}
            if all(topic in found for topic in topics):
                return found
        self.fail(f"the audit topic never showed {topics}: {records[-5:]}")

    def assertRefused(self, result: dict[str, Any], message: str) -> None:
        self.assertEqual((result["ok"], result["code"]), (False, POLICY_VIOLATION), result)
        self.assertIn(message, result["message"])

    # -- create-topic-policy ------------------------------------------------------------

    def test_create_topic_policy_per_topic(self) -> None:
        """One request, four topics: the valid one is created, each other refused with its limit."""
        self.configure(
            "policy-create",
            "create-topic-policy",
            {"maxPartitions": 6, "minReplicationFactor": 3, "namePattern": "policy-[a-z0-9-]+"},
        )
        good, many, thin = self.unique("good"), self.unique("many"), self.unique("thin")
        bad_name = "Policy_" + uuid.uuid4().hex[:8]
        results = self.client(
            "create", f"{good}:3:3", f"{many}:10:3", f"{thin}:2:1", f"{bad_name}:1:3"
        )["results"]
        self.assertEqual(
            results[good], {"ok": True, "partitions": 3, "replicas": [3]}, "created as asked"
        )
        self.assertRefused(results[many], "partitions 10 is above maxPartitions 6")
        self.assertRefused(results[thin], "replication factor 1 is below minReplicationFactor 3")
        self.assertRefused(results[bad_name], "does not match namePattern")
        exists = self.client("exists", good, many, thin, bad_name)["exists"]
        self.assertEqual(exists, [good])

    def test_create_topic_policy_java_admin(self) -> None:
        """Kafka's own TopicCommand shows the policy's reason to its user."""
        self.configure("policy-create-java", "create-topic-policy", {"maxPartitions": 4})
        topic = self.unique("java")
        properties = Path(self.mktemp())
        properties.write_text("client.id=policy-test-java\n")
        result = self.env.java_tool(
            "topic-create-refused",
            TOPIC_COMMAND,
            "--bootstrap-server",
            self.env.bootstrap,
            "--command-config",
            str(properties),
            "--create",
            "--topic",
            topic,
            "--partitions",
            "8",
            "--replication-factor",
            "3",
            check=False,
        )
        output = result.stdout + result.stderr
        self.assertNotEqual(result.returncode, 0, output)
        self.assertIn("PolicyViolationException", output)
        self.assertIn("partitions 8 is above maxPartitions 4", output)
        self.assertEqual(self.client("exists", topic)["exists"], [])

    # -- produce-policy -----------------------------------------------------------------

    def test_produce_policy(self) -> None:
        """acks=1, gzip and non-idempotent producers are refused; the compliant one delivers."""
        topic = self.unique("produce")
        self.create(topic)
        self.configure(
            "policy-produce",
            "produce-policy",
            {"acks": ["all"], "compressionTypes": ["zstd", "lz4"], "idempotenceRequired": True},
        )
        cases = [
            ({"acks": "1", "compression": "zstd"}, "acks=1 is not allowed (acks: all)"),
            (
                {"acks": "all", "compression": "gzip", "idempotence": "on"},
                "compression gzip is not allowed (compressionTypes: lz4, zstd)",
            ),
            ({"acks": "all", "compression": "lz4"}, "an idempotent producer is required"),
        ]
        for options, _reason in cases:
            result = self.client("produce", topic, count=5, **options)
            self.assertEqual(result["delivered"], 0, (options, result))
            self.assertEqual(len(result["errors"]), 5, (options, result))
            self.assertEqual(
                {e["code"] for e in result["errors"]}, {POLICY_VIOLATION}, (options, result)
            )
        # kafka-python shows the broker's error message: the client sees the policy's reason.
        refused = self.client(
            "produce", topic, script="kp_policy.py", count=2, acks="1", compression="zstd"
        )
        self.assertEqual(refused["delivered"], 0, refused)
        self.assertEqual(
            [e["error"] for e in refused["errors"]], ["PolicyViolationError"] * 2, refused
        )
        self.assertIn(cases[0][1], refused["errors"][0]["message"])
        accepted = self.client("produce", topic, count=5, compression="zstd", idempotence="on")
        self.assertEqual((accepted["delivered"], accepted["errors"]), (5, []), accepted)
        # Only the compliant producer's records are in the topic.
        consumed = self.client("consume", topic, count=5)["values"]
        self.assertEqual(len(consumed), 5)

    # -- read-only-topics ---------------------------------------------------------------

    def test_read_only_topic(self) -> None:
        """A read-only topic refuses produce, delete and config changes but can be consumed."""
        topic, other = self.unique("ro"), self.unique("rw")
        self.create(topic)
        self.create(other)
        written = self.client("produce", topic, count=4)
        self.assertEqual(written["delivered"], 4, written)
        self.configure("policy-read-only", "read-only-topics", {"topics": ["policy-ro-.*"]})

        refused = self.client("produce", topic, count=3)
        self.assertEqual(refused["delivered"], 0, refused)
        self.assertEqual({e["code"] for e in refused["errors"]}, {POLICY_VIOLATION}, refused)
        self.assertEqual(self.client("produce", other, count=3)["delivered"], 3)

        configs = self.client("alter-config", topic)["results"]
        self.assertRefused(configs[topic], f"topic {topic!r} is read-only")
        deleted = self.client("delete", topic, other)["results"]
        # librdkafka's DeleteTopics version has no error message: the code says it.
        self.assertEqual((deleted[topic]["ok"], deleted[topic]["code"]), (False, POLICY_VIOLATION))
        self.assertTrue(deleted[other]["ok"], deleted)
        self.assertEqual(self.client("exists", topic, other)["exists"], [topic])

        consumed = self.client("consume", topic, count=4)["values"]
        self.assertEqual(len(consumed), 4, "the records written before are still readable")

    def test_read_only_topic_java_producer(self) -> None:
        """Kafka 4.1's producer names topics by id (Produce v13): still refused, with the reason."""
        topic = self.unique("ro")
        self.create(topic)
        self.audit_log()
        self.configure("policy-read-only-java", "read-only-topics", {"topics": ["policy-ro-.*"]})
        result = self.env.java_tool(
            "console-producer-refused",
            CONSOLE_PRODUCER,
            "--bootstrap-server",
            self.env.bootstrap,
            "--topic",
            topic,
            "--producer-property",
            "client.id=policy-test-java",
            "--producer-property",
            "retries=0",
            input=b"one\ntwo\n",
            check=False,
        )
        output = result.stdout + result.stderr
        self.assertIn("PolicyViolationException", output)
        self.assertIn(f"topic '{topic}' is read-only", output)
        # The producer named the topic by id; the policy knew its name from Metadata.
        denied = self.audited(topic)[topic]
        self.assertEqual((denied["decision"], denied["apiKey"]), ("denied", 0))
        self.assertIn("topicId", denied["details"], "Produce v13 names topics by id")

    # -- audit-log ----------------------------------------------------------------------

    def test_audit_log_records_decisions(self) -> None:
        """Refusals and allowed creations land in the audit topic as JSON records."""
        self.audit_log()
        self.configure("policy-audited", "create-topic-policy", {"maxPartitions": 2})
        good, big = self.unique("audited"), self.unique("big")
        results = self.client("create", f"{good}:1:3", f"{big}:5:3")["results"]
        self.assertTrue(results[good]["ok"], results)
        self.assertRefused(results[big], "partitions 5 is above maxPartitions 2")
        mine = self.audited(good, big)
        denied, allowed = mine[big], mine[good]
        self.assertEqual(
            (denied["decision"], denied["reason"], denied["interceptor"], denied["plugin"]),
            (
                "denied",
                "partitions 5 is above maxPartitions 2",
                "policy-audited",
                "create-topic-policy",
            ),
        )
        self.assertEqual(denied["apiKey"], 19)
        self.assertEqual(denied["client"]["clientId"], "policy-test")
        self.assertTrue(denied["client"]["peer"].startswith("127.0.0.1:"))
        self.assertEqual(
            denied["node"], f"{self.env.gateway.advertised_host}:{self.env.gateway.port_start}"
        )
        self.assertRegex(denied["time"], r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
        self.assertEqual((allowed["decision"], allowed["details"]["partitions"]), ("allowed", 1))
