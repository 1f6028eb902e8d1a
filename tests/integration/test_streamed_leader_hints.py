"""
KIP-951 leader hints in responses the gateway passes on as they arrive,
rewritten to the same length (issue 12), read by real clients.

Java's own parser (kafka-clients' C{FetchResponse}/C{ProduceResponse}) reads
the equal-length rewrite, pad tag and all; and librdkafka and Java
consumers keep consuming, through the gateway, a partition whose leader is
moved while they fetch: throttled by a quota so their fetches are still
running, each gets a Fetch response of another partition's records (large:
streamed) that ends in the moved partition's NOT_LEADER_OR_FOLLOWER and its
new leader's gateway address.
"""

from __future__ import annotations

import json
import subprocess
import threading
import time
import uuid
from pathlib import Path
from typing import Any

from twisted.trial.unittest import TestCase

from harness.kafka import ensure_kafka_libs
from harness.kafka.tools import CONFIGS_COMMAND, CONSUMER_PERF, TOPIC_COMMAND
from kgateway.protocol.tail_rewrite import FETCH, PRODUCE, HintsStream
from kgateway.routing.mapping import FixedHostMapper
from tests.integration.environment import CLIENTS, Environment, shared
from tests.unit.protocol.builders import PLAN, fetch_response, produce_response

REASSIGN = "org.apache.kafka.tools.reassign.ReassignPartitionsCommand"
ELECT = "org.apache.kafka.tools.LeaderElectionCommand"
RECORDS = 40
VALUE = 512 * 1024


class JavaParserTests(TestCase):
    def test_java_reads_the_equal_length_rewrite(self) -> None:
        """Every hinted version, a shorter and a longer gateway host: Java reads it all."""
        frames, pairs, expected = [], [], []
        for host in ("gw", "a-gateway-host-longer-than-the-brokers.example.com"):
            for kind, build, versions in (
                (FETCH, fetch_response, (16, 17, 18)),
                (PRODUCE, produce_response, (10, 11, 12, 13)),
            ):
                for version in versions:
                    frame = build(version)
                    stream = HintsStream(
                        kind, version, len(frame), FixedHostMapper(host, PLAN).mapping
                    )
                    pieces = stream.feed(frame[:100], False) + stream.feed(frame[100:], True)
                    out = b"".join(bytes(piece) for piece in pieces)
                    self.assertEqual(len(out), len(frame))
                    frames.append(out)
                    pairs += [str(kind.api_key), str(version)]
                    kept = stream.outcome.kept if stream.outcome else 0
                    expected.append([[n, host, 19091 + n] for n in (1, 2)[:kept]])
        data = Path(self.mktemp())
        data.write_bytes(b"".join(frames))
        libs = ensure_kafka_libs()
        result = subprocess.run(
            ["java", "-cp", f"{libs}/*", str(CLIENTS / "ParseResponses.java"), str(data), *pairs],
            capture_output=True,
            text=True,
            timeout=120,
        )
        self.assertEqual(result.returncode, 0, result.stderr)
        parsed = [json.loads(line) for line in result.stdout.splitlines()]
        self.assertEqual([p["endpoints"] for p in parsed], expected)
        self.assertEqual({p["left"] for p in parsed}, {0})
        self.assertEqual({p["unknown_tags"] for p in parsed}, {1})


class MovedLeaderTests(TestCase):
    env: Environment

    def setUp(self) -> None:
        self.env = shared()

    def metric(self, name: str) -> float:
        _, text = self.env.gateway.api("GET", "/metrics")
        for line in str(text).splitlines():
            if line.startswith(name + " "):
                return float(line.rsplit(" ", 1)[1])
        raise AssertionError(f"{name} not in /metrics")

    def bytes_to_clients(self) -> float:
        """What the node has sent its clients (C{kgateway_bytes_total}, to_client)."""
        _, text = self.env.gateway.api("GET", "/metrics")
        for line in str(text).splitlines():
            if line.startswith('kgateway_bytes_total{direction="to_client"} '):
                return float(line.rsplit(" ", 1)[1])
        raise AssertionError("kgateway_bytes_total to_client not in /metrics")

    def await_fetching(self, since: float, consumer: threading.Thread) -> None:
        """Until the consumer has read 3 MiB of the 20 through the node: fetching, throttled,
        with most of the topic still to come (a fixed sleep was too short for a client that
        started slowly on a loaded machine, and the leader moved before it fetched)."""
        deadline = time.monotonic() + 120
        while self.bytes_to_clients() - since < 3 * 1024 * 1024:
            if not consumer.is_alive() or time.monotonic() > deadline:
                return  # the join below reports the outcome
            time.sleep(0.25)

    def prepare(self) -> str:
        """A topic whose two partitions broker 1 leads, with 10 MiB each."""
        env = self.env
        topic = f"moved-{uuid.uuid4().hex[:8]}"
        env.java_tool(
            "topic-create",
            TOPIC_COMMAND,
            "--bootstrap-server",
            env.bootstrap,
            "--create",
            "--topic",
            topic,
            "--replica-assignment",
            "1:2:3,1:3:2",
        )
        env.python_client(
            "kp_produce.py",
            "--topic",
            topic,
            "--partitions",
            "2",
            "--count",
            str(RECORDS),
            "--value-size",
            str(VALUE),
            "--acks",
            "all",
            timeout=180,
        )
        return topic

    def throttle(self, rate: int | None) -> None:
        """Every client's fetches at C{rate} bytes per second (None: no quota)."""
        change = (
            ["--add-config", f"consumer_byte_rate={rate}"]
            if rate is not None
            else ["--delete-config", "consumer_byte_rate"]
        )
        self.env.java_tool(
            "quota",
            CONFIGS_COMMAND,
            "--bootstrap-server",
            self.env.bootstrap,
            "--alter",
            *change,
            "--entity-type",
            "clients",
            "--entity-default",
        )

    def prefer_broker_3(self, topic: str) -> None:
        """Partition 1's preferred leader becomes broker 3 (same replicas, new order); broker 1
        still leads it until L{move_leader}."""
        plan = Path(self.mktemp())
        plan.write_text(
            json.dumps(
                {
                    "version": 1,
                    "partitions": [{"topic": topic, "partition": 1, "replicas": [3, 1, 2]}],
                }
            )
        )
        bootstrap = self.env.bootstrap
        self.env.java_tool(
            "reassign",
            REASSIGN,
            "--bootstrap-server",
            bootstrap,
            "--reassignment-json-file",
            str(plan),
            "--execute",
        )

    def move_leader(self, topic: str) -> None:
        """Partition 1's leader from broker 1 to its preferred replica, broker 3."""
        self.env.java_tool(
            "elect",
            ELECT,
            "--bootstrap-server",
            self.env.bootstrap,
            "--election-type",
            "PREFERRED",
            "--topic",
            topic,
            "--partition",
            "1",
        )

    def consume_while_moving(self, name: str, command: list[str]) -> Any:
        topic = self.prepare()
        # Only the election runs while the client fetches (one tool, not two,
        # between "fetching" and "moved"), and the quota leaves about 17 s of
        # the topic to fetch after the first 3 MiB: the moved partition's error
        # comes in a response that still carries the other partition's records.
        self.prefer_broker_3(topic)
        self.throttle(1024 * 1024)
        self.addCleanup(self.throttle, None)
        before = self.metric("kgateway_streamed_leader_hints_total")
        sent_before = self.bytes_to_clients()
        outcome: dict[str, Any] = {}

        def consume() -> None:
            try:
                outcome["result"] = self.env.run(
                    name, [*command[:1], *command[1:], topic], timeout=240
                )
            except BaseException as e:  # reported by the test thread
                outcome["error"] = e

        consumer = threading.Thread(target=consume)
        consumer.start()
        self.await_fetching(sent_before, consumer)
        self.move_leader(topic)
        consumer.join(300)
        if "error" in outcome:
            raise outcome["error"]
        streamed = self.metric("kgateway_streamed_leader_hints_total") - before
        return outcome["result"], streamed

    def test_librdkafka_consumer_follows_the_moved_leader(self) -> None:
        import sys

        result, streamed = self.consume_while_moving(
            "ck-consume-moved",
            [
                sys.executable,
                str(CLIENTS / "ck_consume.py"),
                "--bootstrap",
                self.env.bootstrap,
                "--expect",
                str(RECORDS),
                "--timeout",
                "200",
                "--topic",
            ],
        )
        got = json.loads(result.stdout.strip().splitlines()[-1])
        self.assertEqual(len(got["records"]), RECORDS, got.keys())
        self.assertGreaterEqual(streamed, 1, "no streamed response carried leader hints")

    def test_java_consumer_follows_the_moved_leader(self) -> None:
        from harness.kafka.tools import java_tool_command

        result, streamed = self.consume_while_moving(
            "java-consume-moved",
            java_tool_command(
                CONSUMER_PERF,
                "--bootstrap-server",
                self.env.bootstrap,
                "--messages",
                str(RECORDS),
                "--timeout",
                "200000",
                "--group",
                f"moved-{uuid.uuid4().hex[:8]}",
                "--topic",
            ),
        )
        # start.time, end.time, MB, MB.sec, nMsg, ...
        rows = [line.split(",") for line in result.stdout.splitlines() if line.count(",") == 9]
        data = [row for row in rows if not row[0].startswith("start.time")]
        self.assertEqual([int(row[4]) for row in data], [RECORDS], result.stdout)
        self.assertGreaterEqual(streamed, 1, "no streamed response carried leader hints")
