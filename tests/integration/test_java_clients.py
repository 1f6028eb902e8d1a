"""
Kafka's own Java command-line tools, run through the gateway against a real
3-broker Kafka 4.1 cluster.

Every tool runs under C{strace} (see L{environment.Environment.run}) and the
test fails if it ever connected to a broker or controller port, so each test
proves both that the tool worked and that it only ever talked to the gateway.
"""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from twisted.trial.unittest import TestCase

from harness.kafka import (
    CONFIGS_COMMAND,
    CONSOLE_CONSUMER,
    CONSOLE_PRODUCER,
    CONSUMER_PERF,
    DELETE_RECORDS_COMMAND,
    GET_OFFSET_SHELL,
    PRODUCER_PERF,
    TOPIC_COMMAND,
)
from tests.integration.environment import Environment, shared

# Main classes of the 4.1.1 tools jar not (yet) named in harness/kafka/tools.py.
CONSUMER_GROUP_COMMAND = "org.apache.kafka.tools.consumer.group.ConsumerGroupCommand"
BROKER_API_VERSIONS = "org.apache.kafka.tools.BrokerApiVersionsCommand"
CLUSTER_TOOL = "org.apache.kafka.tools.ClusterTool"
METADATA_QUORUM = "org.apache.kafka.tools.MetadataQuorumCommand"

T = TypeVar("T")


def unique(prefix: str) -> str:
    """A topic or group name no other test (or earlier run) uses."""
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def eventually(check: Callable[[], T | None], timeout: float, what: str) -> T:
    """Call C{check} until it returns something other than C{None}; fail after C{timeout}."""
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result is not None:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(0.5)


# -- TopicCommand --------------------------------------------------------------------------


@dataclass(frozen=True)
class PartitionState:
    """One partition line of C{TopicCommand --describe}."""

    partition: int
    leader: int
    replicas: tuple[int, ...]
    isr: tuple[int, ...]


@dataclass(frozen=True)
class TopicDescription:
    partition_count: int
    replication_factor: int
    partitions: list[PartitionState]
    output: str


def _ids(text: str) -> tuple[int, ...]:
    return tuple(int(part) for part in text.split(",") if part)


def create_topic(
    env: Environment,
    topic: str,
    partitions: int = 3,
    replication: int = 3,
    configs: dict[str, str] | None = None,
) -> None:
    """Create a topic with TopicCommand through the gateway."""
    config_args = [
        arg for key, value in (configs or {}).items() for arg in ("--config", f"{key}={value}")
    ]
    result = env.java_tool(
        "topic-create",
        TOPIC_COMMAND,
        "--bootstrap-server",
        env.bootstrap,
        "--create",
        "--topic",
        topic,
        "--partitions",
        str(partitions),
        "--replication-factor",
        str(replication),
        *config_args,
    )
    if f"Created topic {topic}." not in result.stdout:
        raise AssertionError(
            f"TopicCommand --create did not confirm:\n{result.stdout}{result.stderr}"
        )


def describe_topic(env: Environment, topic: str) -> TopicDescription:
    """Run TopicCommand --describe through the gateway and parse it."""
    result = env.java_tool(
        "topic-describe",
        TOPIC_COMMAND,
        "--bootstrap-server",
        env.bootstrap,
        "--describe",
        "--topic",
        topic,
    )
    header = re.search(r"PartitionCount:\s*(\d+)\s+ReplicationFactor:\s*(\d+)", result.stdout)
    if header is None:
        raise AssertionError(
            f"no topic summary in describe output:\n{result.stdout}{result.stderr}"
        )
    partitions = [
        PartitionState(int(m[1]), int(m[2]), _ids(m[3]), _ids(m[4]))
        for m in re.finditer(
            r"Partition:\s*(\d+)\s+Leader:\s*(-?\d+)\s+Replicas:\s*([\d,]*)\s+Isr:\s*([\d,]*)",
            result.stdout.replace("Leader: none", "Leader: -1"),
        )
    ]
    return TopicDescription(
        int(header[1]), int(header[2]), sorted(partitions, key=lambda p: p.partition), result.stdout
    )


def fully_replicated(env: Environment, topic: str, partitions: int) -> TopicDescription | None:
    """The description if every partition has a live leader and all replicas in sync."""
    described = describe_topic(env, topic)
    ok = (
        described.partition_count == partitions
        and len(described.partitions) == partitions
        and all(
            p.leader in p.replicas and set(p.isr) == set(p.replicas) for p in described.partitions
        )
    )
    return described if ok else None


def list_topics(env: Environment) -> set[str]:
    result = env.java_tool(
        "topic-list", TOPIC_COMMAND, "--bootstrap-server", env.bootstrap, "--list"
    )
    return set(result.stdout.split())


# -- offsets ---------------------------------------------------------------------------------


def offsets(env: Environment, topic: str, time_spec: str = "-1") -> dict[int, int]:
    """GetOffsetShell through the gateway: partition -> offset (-1 latest, -2 earliest)."""
    result = env.java_tool(
        "get-offsets",
        GET_OFFSET_SHELL,
        "--bootstrap-server",
        env.bootstrap,
        "--topic",
        topic,
        "--time",
        time_spec,
    )
    found = {
        int(m[1]): int(m[2])
        for m in re.finditer(rf"^{re.escape(topic)}:(\d+):(-?\d+)$", result.stdout, re.MULTILINE)
    }
    if not found:
        raise AssertionError(
            f"GetOffsetShell printed no offsets for {topic}:\n{result.stdout}{result.stderr}"
        )
    return found


# -- producers and consumers -----------------------------------------------------------------

_PERF_SUMMARY = re.compile(r"^(\d+) records sent, [\d.]+ records/sec .*50th", re.MULTILINE)


def perf_records_sent(output: str) -> int:
    """The final "N records sent" of ProducerPerformance (not an interim window line)."""
    summaries = _PERF_SUMMARY.findall(output)
    if not summaries:
        raise AssertionError(f"no ProducerPerformance summary in:\n{output[-3000:]}")
    return int(summaries[-1])


def produce_perf(
    env: Environment,
    topic: str,
    records: int,
    *props: str,
    record_size: int = 200,
    throughput: int = -1,
    timeout: float = 120,
) -> int:
    """Run ProducerPerformance through the gateway; return its final records-sent count."""
    result = env.java_tool(
        "producer-perf",
        PRODUCER_PERF,
        "--topic",
        topic,
        "--num-records",
        str(records),
        "--record-size",
        str(record_size),
        "--throughput",
        str(throughput),
        "--producer-props",
        f"bootstrap.servers={env.bootstrap}",
        *props,
        timeout=timeout,
    )
    output = result.stdout + result.stderr
    if "Exception" in output:
        raise AssertionError(f"ProducerPerformance reported errors:\n{output[-4000:]}")
    return perf_records_sent(result.stdout)


def consume_perf(env: Environment, topic: str, records: int, group: str) -> int:
    """Run ConsumerPerformance through the gateway; return how many records it consumed."""
    result = env.java_tool(
        "consumer-perf",
        CONSUMER_PERF,
        "--bootstrap-server",
        env.bootstrap,
        "--topic",
        topic,
        "--messages",
        str(records),
        "--group",
        group,
        "--timeout",
        "20000",
    )
    # start.time, end.time, MB, MB.sec, nMsg, ...
    rows = [line.split(",") for line in result.stdout.splitlines() if line.count(",") == 9]
    data = [row for row in rows if not row[0].startswith("start.time")]
    if not data:
        raise AssertionError(f"no ConsumerPerformance result in:\n{result.stdout}{result.stderr}")
    return int(data[-1][4])


def assert_gateway_address(
    test: TestCase, env: Environment, node_id: int, host: str, port: int
) -> None:
    """A broker address a tool printed must be the gateway's port for that broker."""
    test.assertEqual(host, env.gateway.advertised_host)
    test.assertIn(port, env.gateway.ports)
    test.assertNotIn(port, env.forbidden_ports)
    test.assertEqual(
        port, env.gateway.port_for(node_id), f"broker {node_id} got the port of another broker"
    )


class TopicCommandTests(TestCase):
    """TopicCommand create, describe, alter (CreatePartitions) and delete."""

    def setUp(self) -> None:
        self.env = shared()

    def test_topic_lifecycle(self) -> None:
        env, topic = self.env, unique("lifecycle")
        create_topic(env, topic, partitions=3, replication=3)
        described = eventually(
            lambda: fully_replicated(env, topic, 3), 30, f"{topic} fully replicated"
        )
        self.assertEqual((described.partition_count, described.replication_factor), (3, 3))
        self.assertEqual([p.partition for p in described.partitions], [0, 1, 2])
        node_ids = {b.node_id for b in env.cluster.brokers}
        for partition in described.partitions:
            self.assertEqual(set(partition.replicas), node_ids)

        env.java_tool(
            "topic-alter",
            TOPIC_COMMAND,
            "--bootstrap-server",
            env.bootstrap,
            "--alter",
            "--topic",
            topic,
            "--partitions",
            "5",
        )
        described = eventually(
            lambda: fully_replicated(env, topic, 5), 30, f"{topic} with 5 partitions"
        )
        self.assertEqual([p.partition for p in described.partitions], [0, 1, 2, 3, 4])
        self.assertEqual(described.replication_factor, 3)

        # The new partitions take writes through the gateway: every partition gets records.
        self.assertEqual(
            produce_perf(env, topic, 500, "acks=all", "linger.ms=0", "batch.size=200"), 500
        )
        end = offsets(env, topic)
        self.assertEqual(set(end), {0, 1, 2, 3, 4})
        self.assertTrue(all(end.values()), f"a partition got no records: {end}")
        self.assertEqual(sum(end.values()), 500)

        self.assertIn(topic, list_topics(env))
        result = env.java_tool(
            "topic-delete",
            TOPIC_COMMAND,
            "--bootstrap-server",
            env.bootstrap,
            "--delete",
            "--topic",
            topic,
        )
        self.assertNotIn("Error", result.stdout + result.stderr)
        eventually(
            lambda: True if topic not in list_topics(env) else None, 30, f"{topic} to disappear"
        )


class ConfigCommandTests(TestCase):
    """kafka.admin.ConfigCommand (DescribeConfigs, IncrementalAlterConfigs) through the gateway."""

    def setUp(self) -> None:
        self.env = shared()

    def _describe(self, topic: str) -> dict[str, str]:
        result = self.env.java_tool(
            "config-describe",
            CONFIGS_COMMAND,
            "--bootstrap-server",
            self.env.bootstrap,
            "--entity-type",
            "topics",
            "--entity-name",
            topic,
            "--describe",
        )
        self.assertIn(f"Dynamic configs for topic {topic} are:", result.stdout)
        return dict(re.findall(r"^\s+([\w.]+)=(\S*) sensitive=", result.stdout, re.MULTILINE))

    def test_describe_and_alter_topic_config(self) -> None:
        env, topic = self.env, unique("configs")
        create_topic(env, topic, configs={"cleanup.policy": "delete"})
        before = self._describe(topic)
        self.assertEqual(before.get("cleanup.policy"), "delete")
        self.assertNotIn("retention.ms", before)

        result = env.java_tool(
            "config-alter",
            CONFIGS_COMMAND,
            "--bootstrap-server",
            env.bootstrap,
            "--entity-type",
            "topics",
            "--entity-name",
            topic,
            "--alter",
            "--add-config",
            "retention.ms=3600000,max.message.bytes=2000000",
            "--delete-config",
            "cleanup.policy",
        )
        self.assertIn(f"Completed updating config for topic {topic}.", result.stdout)
        after = self._describe(topic)
        self.assertEqual(after.get("retention.ms"), "3600000")
        self.assertEqual(after.get("max.message.bytes"), "2000000")
        self.assertNotIn("cleanup.policy", after)


class OffsetToolTests(TestCase):
    """GetOffsetShell (ListOffsets) and DeleteRecordsCommand (DeleteRecords) through the gateway."""

    def setUp(self) -> None:
        self.env = shared()

    def test_offsets_and_delete_records(self) -> None:
        env, topic = self.env, unique("offsets")
        create_topic(env, topic)
        self.assertEqual(offsets(env, topic), {0: 0, 1: 0, 2: 0})
        self.assertEqual(
            produce_perf(env, topic, 3000, "acks=all", "linger.ms=0", "batch.size=2000"), 3000
        )
        end = offsets(env, topic)
        self.assertEqual(sum(end.values()), 3000)
        self.assertEqual(offsets(env, topic, "-2"), {0: 0, 1: 0, 2: 0})

        # Delete the first half of the fullest partition and the first record of another.
        full = max(end, key=lambda p: end[p])
        other = next(p for p in sorted(end) if p != full and end[p] > 0)
        cut = {full: end[full] // 2, other: 1}
        offsets_file = env.workdir / f"{topic}-delete.json"
        offsets_file.write_text(
            '{"version": 1, "partitions": ['
            + ", ".join(
                f'{{"topic": "{topic}", "partition": {p}, "offset": {o}}}' for p, o in cut.items()
            )
            + "]}"
        )
        result = env.java_tool(
            "delete-records",
            DELETE_RECORDS_COMMAND,
            "--bootstrap-server",
            env.bootstrap,
            "--offset-json-file",
            str(offsets_file),
        )
        reported = {
            int(m[1]): int(m[2])
            for m in re.finditer(
                rf"partition: {re.escape(topic)}-(\d+)\s+low_watermark: (\d+)", result.stdout
            )
        }
        self.assertEqual(reported, cut, result.stdout + result.stderr)

        low = offsets(env, topic, "-2")
        self.assertEqual(low, {p: cut.get(p, 0) for p in end})
        self.assertEqual(offsets(env, topic), end)


class ProducerPerformanceTests(TestCase):
    """ProducerPerformance with different acks, idempotence and compression, read back."""

    def setUp(self) -> None:
        self.env = shared()

    def _produce_and_count(self, records: int, *props: str) -> None:
        env, topic = self.env, unique("perf")
        create_topic(env, topic)
        self.assertEqual(produce_perf(env, topic, records, *props), records)
        end = offsets(env, topic)
        self.assertEqual(sum(end.values()), records, end)
        self.assertTrue(all(end.values()), f"some partition got nothing: {end}")
        self.assertEqual(consume_perf(env, topic, records, unique("perf-group")), records)

    def test_acks_all_idempotent(self) -> None:
        self._produce_and_count(20000, "acks=all", "enable.idempotence=true", "linger.ms=5")

    def test_acks_1(self) -> None:
        self._produce_and_count(20000, "acks=1", "enable.idempotence=false", "linger.ms=5")

    def test_compression_gzip(self) -> None:
        self._produce_and_count(5000, "acks=all", "compression.type=gzip", "linger.ms=20")

    def test_compression_snappy(self) -> None:
        self._produce_and_count(5000, "acks=all", "compression.type=snappy", "linger.ms=20")

    def test_compression_lz4(self) -> None:
        self._produce_and_count(5000, "acks=all", "compression.type=lz4", "linger.ms=20")

    def test_compression_zstd(self) -> None:
        self._produce_and_count(5000, "acks=all", "compression.type=zstd", "linger.ms=20")


class ConsoleClientTests(TestCase):
    """ConsoleProducer and ConsoleConsumer with a consumer group, and the group's offsets."""

    def setUp(self) -> None:
        self.env = shared()

    def _produce_keyed(self, topic: str, count: int) -> set[tuple[str, str]]:
        records = {(f"key{i}", f"value-{i}-{uuid.uuid4().hex}") for i in range(count)}
        self.env.java_tool(
            "console-producer",
            CONSOLE_PRODUCER,
            "--bootstrap-server",
            self.env.bootstrap,
            "--topic",
            topic,
            "--producer-property",
            "acks=all",
            "--property",
            "parse.key=true",
            "--property",
            "key.separator=:",
            input="".join(f"{k}:{v}\n" for k, v in sorted(records)).encode(),
        )
        return records

    def _consume(
        self, topic: str, group: str, count: int, *extra: str
    ) -> list[tuple[int, str, str]]:
        result = self.env.java_tool(
            "console-consumer",
            CONSOLE_CONSUMER,
            "--bootstrap-server",
            self.env.bootstrap,
            "--topic",
            topic,
            "--group",
            group,
            "--from-beginning",
            "--max-messages",
            str(count),
            "--timeout-ms",
            "20000",
            "--property",
            "print.key=true",
            "--property",
            "print.partition=true",
            "--property",
            "key.separator=|",
            *extra,
        )
        self.assertIn(f"Processed a total of {count} messages", result.stderr)
        rows = []
        for line in result.stdout.splitlines():
            match = re.fullmatch(r"Partition:(\d+)\|([^|]*)\|(.*)", line)
            self.assertIsNotNone(match, f"unexpected consumer output line {line!r}")
            assert match is not None
            rows.append((int(match[1]), match[2], match[3]))
        return rows

    def _group_offsets(self, group: str) -> dict[tuple[str, int], tuple[int, int, int]]:
        result = self.env.java_tool(
            "group-describe",
            CONSUMER_GROUP_COMMAND,
            "--bootstrap-server",
            self.env.bootstrap,
            "--describe",
            "--group",
            group,
        )
        return {
            (m[1], int(m[2])): (int(m[3]), int(m[4]), int(m[5]))
            for m in re.finditer(
                rf"^{re.escape(group)}\s+(\S+)\s+(\d+)\s+(\d+)\s+(\d+)\s+(\d+)\s",
                result.stdout,
                re.MULTILINE,
            )
        }

    def _round_trip(self, *consumer_args: str) -> None:
        topic, group = unique("console"), unique("console-group")
        create_topic(self.env, topic)
        sent = self._produce_keyed(topic, 90)
        rows = self._consume(topic, group, len(sent), *consumer_args)
        self.assertEqual(len(rows), len(sent), "duplicates read")
        self.assertEqual({(k, v) for _, k, v in rows}, sent)
        by_partition: dict[int, int] = {}
        for partition, _, _ in rows:
            by_partition[partition] = by_partition.get(partition, 0) + 1
        self.assertEqual(set(by_partition), {0, 1, 2}, "keys should spread over all partitions")

        committed = self._group_offsets(group)
        self.assertEqual(set(committed), {(topic, p) for p in (0, 1, 2)}, committed)
        for (_, partition), (current, log_end, lag) in committed.items():
            self.assertEqual(
                (current, log_end, lag), (by_partition[partition], by_partition[partition], 0)
            )

    def test_console_round_trip_classic_group(self) -> None:
        self._round_trip()

    def test_console_round_trip_consumer_protocol_group(self) -> None:
        """KIP-848 (ConsumerGroupHeartbeat) groups work through the gateway too."""
        self._round_trip("--consumer-property", "group.protocol=consumer")

    def test_record_over_one_mib(self) -> None:
        env, topic = self.env, unique("large")
        create_topic(env, topic, partitions=1, configs={"max.message.bytes": "3000000"})
        value = (uuid.uuid4().hex * 100_000)[:1_600_000]  # 1.6 MB, above the 1 MiB defaults
        env.java_tool(
            "console-producer-large",
            CONSOLE_PRODUCER,
            "--bootstrap-server",
            env.bootstrap,
            "--topic",
            topic,
            "--producer-property",
            "acks=all",
            "--producer-property",
            "max.request.size=3000000",
            "--producer-property",
            "compression.type=none",
            input=(value + "\n").encode(),
        )
        self.assertEqual(offsets(env, topic), {0: 1})
        result = env.java_tool(
            "console-consumer-large",
            CONSOLE_CONSUMER,
            "--bootstrap-server",
            env.bootstrap,
            "--topic",
            topic,
            "--group",
            unique("large-group"),
            "--from-beginning",
            "--max-messages",
            "1",
            "--timeout-ms",
            "20000",
        )
        self.assertEqual(result.stdout.splitlines(), [value])


class ClusterAddressTests(TestCase):
    """Tools that print broker addresses print only the gateway's."""

    def setUp(self) -> None:
        self.env = shared()

    def test_broker_api_versions_shows_gateway_addresses(self) -> None:
        env = self.env
        result = env.java_tool(
            "broker-api-versions", BROKER_API_VERSIONS, "--bootstrap-server", env.bootstrap
        )
        brokers = re.findall(r"^(\S+):(\d+) \(id: (\d+) rack: (\S+)", result.stdout, re.MULTILINE)
        self.assertEqual(
            sorted(int(b[2]) for b in brokers), sorted(b.node_id for b in env.cluster.brokers)
        )
        for host, port, node_id, _ in brokers:
            assert_gateway_address(self, env, int(node_id), host, int(port))
        # The gateway offers the reviewed versions only: nothing it cannot rewrite.
        self.assertIn("Metadata(3)", result.stdout)
        for api in ("ShareFetch(78)", "ShareAcknowledge(79)"):
            self.assertRegex(result.stdout, rf"{re.escape(api)}: UNSUPPORTED")
        self.assertRegex(result.stdout, r"DescribeQuorum\(55\): 0 to 1 ")

    def test_cluster_tool_lists_gateway_endpoints(self) -> None:
        env = self.env
        result = env.java_tool(
            "cluster-tool", CLUSTER_TOOL, "list-endpoints", "--bootstrap-server", env.bootstrap
        )
        rows = re.findall(
            r"^(\d+)\s+(\S+)\s+(\d+)\s+(\S+)\s+(\w+)\s+broker\s*$", result.stdout, re.MULTILINE
        )
        self.assertEqual(
            {int(r[0]) for r in rows}, {b.node_id for b in env.cluster.brokers}, result.stdout
        )
        racks = {b.node_id: b.rack for b in env.cluster.brokers}
        for node_id, host, port, rack, state in rows:
            assert_gateway_address(self, env, int(node_id), host, int(port))
            self.assertEqual(rack, racks[int(node_id)])
            self.assertEqual(state, "unfenced")

    def test_metadata_quorum_shows_no_controller_address(self) -> None:
        env = self.env
        result = env.java_tool(
            "metadata-quorum",
            METADATA_QUORUM,
            "--bootstrap-server",
            env.bootstrap,
            "describe",
            "--status",
        )
        self.assertRegex(result.stdout, r"LeaderId:\s+\d+")
        voters = re.search(r"CurrentVoters:\s+(.*)", result.stdout)
        assert voters is not None
        self.assertEqual(
            {int(i) for i in re.findall(r'"id": (\d+)', voters[1])},
            {b.node_id for b in env.cluster.brokers},
        )
        for port in re.findall(r":(\d{2,5})\b", result.stdout):
            self.assertNotIn(int(port), env.forbidden_ports, result.stdout)
