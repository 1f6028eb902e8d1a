"""
kafka-python and confluent-kafka (librdkafka) clients against real Kafka, through the gateway.

Every client is its own process, run by L{Environment.python_client} under strace: a run
fails if the client ever called connect() on a broker or controller port, or never reached
the gateway. The scripts in C{tests/integration/clients} print JSON that these tests check.
Each scenario runs once per library: L{KafkaPythonTests} (C{kp_*.py}) and
L{ConfluentKafkaTests} (C{ck_*.py}).

Set C{KGATEWAY_SKIP_INTEGRATION=1} to skip them.
"""

from __future__ import annotations

import json
import struct
import uuid
from collections import Counter, defaultdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

from twisted.trial.unittest import TestCase

from tests.integration.environment import Environment, shared

CLIENT_TIMEOUT = 45.0
"""Seconds a client script may take before it gives up and fails with a message."""

CODEC_IDS = {"none": 0, "gzip": 1, "snappy": 2, "lz4": 3, "zstd": 4}
"""Compression codec ids in the low three bits of a record batch's attributes."""

MIB = 1024 * 1024


def record_batch_codecs(base_dir: Path, topic: str, partition: int) -> set[int]:
    """The codec ids of the record batches in every replica's log segments of a partition."""
    codecs: set[int] = set()
    for segment in base_dir.glob(f"**/{topic}-{partition}/*.log"):
        data = segment.read_bytes()
        position = 0
        # baseOffset int64, batchLength int32, partitionLeaderEpoch int32, magic int8,
        # crc int32, attributes int16, ...
        while position + 23 <= len(data):
            _, length = struct.unpack_from(">qi", data, position)
            if length <= 0:
                break
            (attributes,) = struct.unpack_from(">h", data, position + 21)
            codecs.add(attributes & 0x7)
            position += 12 + length
    return codecs


if TYPE_CHECKING:
    # To mypy the mixin is the TestCase it is mixed into: its assertions are there.
    _TestCaseMixin = TestCase
else:
    _TestCaseMixin = object


class PythonClientScenarios(_TestCaseMixin):
    """The scenarios; a subclass picks the library by its script prefix."""

    prefix: str
    env: Environment

    def setUp(self) -> None:
        self.env = shared()

    # -- helpers ------------------------------------------------------------------------

    def unique(self, what: str) -> str:
        return f"{what}-{self.prefix}-{uuid.uuid4().hex[:10]}"

    def client(self, role: str, *args: str, **options: object) -> Any:
        """Run C{<prefix>_<role>.py}, audited; return the JSON it printed.

        Keyword options become command-line options: C{max_request_size=5} is
        C{--max-request-size 5}, C{commit=True} is C{--commit}.
        """
        script = f"{self.prefix}_{role}.py"
        argv = list(args)
        for name, value in {**options, "timeout": CLIENT_TIMEOUT}.items():
            flag = "--" + name.replace("_", "-")
            argv += [flag] if value is True else [flag, str(value)]
        result = self.env.python_client(script, *argv, timeout=CLIENT_TIMEOUT + 60)
        lines = result.stdout.strip().splitlines()
        try:
            return json.loads(lines[-1])
        except (IndexError, ValueError) as error:
            raise AssertionError(
                f"{script} printed no JSON result ({error}):\n{result.stdout[-2000:]}\n"
                f"stderr:\n{result.stderr[-2000:]}"
            ) from None

    def create_topic(self, topic: str, partitions: int = 3, *configs: str) -> dict[str, Any]:
        args = ["create-topic", "--replication", "3"]
        for config in configs:
            args += ["--config", config]
        created: dict[str, Any] = self.client("admin", *args, topic=topic, partitions=partitions)
        self.assertEqual(sorted(created["partitions"]), [str(n) for n in range(partitions)])
        for state in created["partitions"].values():
            self.assertEqual(state["replicas"], [1, 2, 3])
        return created

    def gateway_addresses(self) -> dict[int, tuple[str, int]]:
        """What every broker must look like to a client: 127.0.0.1 and its gateway port."""
        ids = [info.node_id for info in self.env.cluster.brokers]
        self.assertEqual(ids, [1, 2, 3])
        return {node_id: ("127.0.0.1", self.env.gateway.port_for(node_id)) for node_id in ids}

    def assertGatewayAddress(self, node_id: int, host: str, port: int) -> None:
        self.assertIn(port, self.env.gateway.ports)
        self.assertNotIn(port, self.env.forbidden_ports)
        self.assertEqual((host, port), self.gateway_addresses()[node_id])

    def assertMatchesSent(
        self, received: list[dict[str, Any]], sent: list[dict[str, Any]], check_offsets: bool = True
    ) -> None:
        """Every sent record arrived exactly once, unchanged, where the producer was told."""
        counts = Counter(r["seq"] for r in received)
        duplicates = {seq: n for seq, n in counts.items() if n > 1}
        self.assertEqual(duplicates, {}, "records delivered more than once")
        by_seq = {r["seq"]: r for r in received}
        self.assertEqual(sorted(by_seq), sorted(s["seq"] for s in sent))
        for record in sent:
            got = by_seq[record["seq"]]
            self.assertEqual(
                (got["p"], got["len"], got["sha"]),
                (record["p"], record["len"], record["sha"]),
                f"record {record['seq']}",
            )
            if check_offsets:
                self.assertEqual(got["o"], record["o"], f"offset of record {record['seq']}")

    # -- 1. addresses -------------------------------------------------------------------

    def test_metadata_cluster_and_coordinator_are_gateway_addresses(self) -> None:
        """Metadata, DescribeCluster and FindCoordinator hand out only gateway addresses."""
        topic, group = self.unique("meta"), self.unique("meta-group")
        self.create_topic(topic)
        seen = self.client("metadata", topic=topic, group=group)
        expected = self.gateway_addresses()
        racks = {info.node_id: info.rack for info in self.env.cluster.brokers}

        metadata = {b["id"]: (b["host"], b["port"]) for b in seen["metadata_brokers"]}
        self.assertEqual(metadata, expected)
        described = {b["id"]: (b["host"], b["port"]) for b in seen["cluster_brokers"]}
        self.assertEqual(described, expected)
        self.assertEqual({b["id"]: b["rack"] for b in seen["cluster_brokers"]}, racks)
        self.assertIn(seen["controller_id"], expected)
        self.assertEqual(sorted(seen["leaders"]), ["0", "1", "2"])
        self.assertLessEqual(set(seen["leaders"].values()), set(expected))
        self.assertEqual(seen["consumer_assignment"], [0, 1, 2])
        if self.prefix == "kp":
            coordinator = seen["admin_coordinator"]
            self.assertGatewayAddress(coordinator["id"], coordinator["host"], coordinator["port"])
            # The consumer names its coordinator connection "coordinator-<broker id>".
            joined = seen["consumer_coordinator"]
            joined_id = int(joined["id"].rsplit("-", 1)[1])
            self.assertGatewayAddress(joined_id, joined["host"], joined["port"])
        else:
            coordinator = seen["group_coordinator"]
            self.assertGatewayAddress(coordinator["id"], coordinator["host"], coordinator["port"])
            self.assertEqual(seen["group_members"], 1)

    # -- 2. produce, consume, commit ----------------------------------------------------

    def test_produce_consume_group_commits_offsets(self) -> None:
        """A group reads all records; its committed offsets are the end offsets."""
        topic, group = self.unique("pc"), self.unique("pc-group")
        self.create_topic(topic)
        sent = self.client("produce", topic=topic, count=60)["sent"]
        first = self.client("consume", topic=topic, group=group, expect=60, commit=True)
        self.assertMatchesSent(first["records"], sent)
        self.assertEqual(first["assignment"], [0, 1, 2])

        offsets = self.client("admin", "offsets", topic=topic, group=group)
        self.assertEqual(offsets["end"], {"0": 20, "1": 20, "2": 20})
        self.assertEqual(offsets["committed"], offsets["end"])

        second = self.client("consume", topic=topic, group=group, expect=0, settle=2)
        self.assertEqual(second["records"], [])
        self.assertEqual(second["assignment"], [0, 1, 2])
        if self.prefix == "kp":
            self.assertEqual(second["positions"], offsets["end"])
        else:
            self.assertEqual(second["committed_before"], offsets["end"])

    # -- 3. idempotence -----------------------------------------------------------------

    def test_idempotent_producer_exactly_once_in_order(self) -> None:
        """An idempotent acks=all producer: every record once, in order in its partition."""
        topic = self.unique("idem")
        self.create_topic(topic)
        produced = self.client(
            "produce", topic=topic, count=300, acks="all", idempotence="on", linger_ms=2
        )
        self.assertTrue(produced["idempotent"])
        received = self.client("consume", topic=topic, expect=300, settle=1)
        self.assertEqual(len(received["records"]), 300)
        self.assertMatchesSent(received["records"], produced["sent"])
        by_partition: dict[int, list[dict[str, Any]]] = defaultdict(list)
        for record in received["records"]:
            by_partition[record["p"]].append(record)
        self.assertEqual(sorted(by_partition), [0, 1, 2])
        for partition, records in by_partition.items():
            records.sort(key=lambda r: r["o"])
            where = f"partition {partition}"
            self.assertEqual([r["o"] for r in records], list(range(100)), where)
            self.assertEqual([r["seq"] for r in records], list(range(partition, 300, 3)), where)

    # -- 4. transactions ----------------------------------------------------------------

    def test_transactions_read_committed_skips_aborted(self) -> None:
        """read_committed sees only committed transactions; the aborted one was written."""
        topic = self.unique("txn")
        self.create_topic(topic)
        produced = self.client(
            "produce", topic=topic, count=10, transactional_id=self.unique("txn-id"),
            txn_plan="commit,abort,commit",
        )  # fmt: skip
        transactions = produced["transactions"]
        self.assertEqual([t["outcome"] for t in transactions], ["commit", "abort", "commit"])
        committed = {seq for t in transactions if t["outcome"] == "commit" for seq in t["seqs"]}
        aborted = {seq for t in transactions if t["outcome"] == "abort" for seq in t["seqs"]}
        self.assertEqual((len(committed), len(aborted)), (20, 10))
        if self.prefix == "kp":  # librdkafka does not expose its transaction coordinator
            found = produced["txn_coordinator"]  # id "coordinator-<broker id>"
            self.assertGatewayAddress(
                int(found["id"].rsplit("-", 1)[1]), found["host"], found["port"]
            )

        read_committed = self.client(
            "consume", topic=topic, expect=20, isolation="read_committed", settle=1
        )
        only_committed = [s for s in produced["sent"] if s["seq"] in committed]
        self.assertMatchesSent(read_committed["records"], only_committed)
        # The aborted records are in the log all the same: read_uncommitted sees all 30.
        everything = self.client("consume", topic=topic, expect=30, isolation="read_uncommitted")
        self.assertMatchesSent(everything["records"], produced["sent"])

    # -- 5. compression -----------------------------------------------------------------

    def test_compression_codecs(self) -> None:
        """gzip, snappy, lz4 and zstd batches go through, and are stored compressed."""
        topic = self.unique("codec")
        codecs = ["gzip", "snappy", "lz4", "zstd"]
        self.create_topic(topic, len(codecs))
        produced = self.client(
            "produce", topic=topic, count=25, value_size=1000, compression=",".join(codecs)
        )
        received = self.client("consume", topic=topic, expect=100, settle=0.5)
        self.assertMatchesSent(received["records"], produced["sent"])
        for partition, codec in enumerate(codecs):
            sent_codecs = {s["codec"] for s in produced["sent"] if s["p"] == partition}
            self.assertEqual(sent_codecs, {codec})
            stored = record_batch_codecs(self.env.cluster.base_dir, topic, partition)
            self.assertEqual(stored, {CODEC_IDS[codec]}, f"partition {partition} ({codec})")

    # -- 6. acks=0 ----------------------------------------------------------------------

    def test_acks_zero(self) -> None:
        """acks=0 produce requests (no response) get through; a consumer finds every record."""
        topic = self.unique("acks0")
        self.create_topic(topic)
        produced = self.client("produce", topic=topic, count=90, acks=0)
        self.assertIn(produced["acks"], (0, "0"))
        received = self.client("consume", topic=topic, expect=90, settle=1)
        # acks=0 gets no offsets back, so compare everything but the offsets.
        self.assertMatchesSent(received["records"], produced["sent"], check_offsets=False)
        for partition in range(3):
            offsets = sorted(r["o"] for r in received["records"] if r["p"] == partition)
            self.assertEqual(offsets, list(range(30)))

    # -- 7. a record over 1 MiB ---------------------------------------------------------

    def test_record_over_one_mebibyte(self) -> None:
        """1.5 MiB records are produced and fetched whole through the gateway."""
        topic = self.unique("big")
        created = self.create_topic(topic, 3, f"max.message.bytes={4 * MIB}")
        self.assertEqual(created["configs"], {"max.message.bytes": str(4 * MIB)})
        produced = self.client(
            "produce", topic=topic, count=3, value_size=3 * MIB // 2, max_request_size=4 * MIB
        )
        self.assertEqual({s["len"] for s in produced["sent"]}, {3 * MIB // 2})
        received = self.client(
            "consume", topic=topic, expect=3, max_partition_fetch_bytes=4 * MIB,
            fetch_max_bytes=8 * MIB,
        )  # fmt: skip
        self.assertMatchesSent(received["records"], produced["sent"])

    # -- 8. topic admin -----------------------------------------------------------------

    def test_topic_admin(self) -> None:
        """Create, describe, create partitions, describe/alter configs, list offsets,
        delete records and delete a topic, each checked by looking again afterwards."""
        topic = self.unique("admin")
        created = self.create_topic(topic, 3, "retention.ms=7200000")
        self.assertEqual(created["configs"], {"retention.ms": "7200000"})
        self.client("produce", topic=topic, count=10, partitions=1)

        ops = self.client("admin", "ops", topic=topic)
        self.assertEqual(sorted(ops["described"]), ["0", "1", "2"])
        self.assertEqual(sorted(ops["after_create_partitions"]), ["0", "1", "2", "3", "4"])
        for state in ops["after_create_partitions"].values():
            self.assertEqual(state["replicas"], [1, 2, 3])
            self.assertIn(state["leader"], (1, 2, 3))
        self.assertEqual(ops["configs_before"]["retention.ms"], "7200000")
        self.assertEqual(ops["configs_before"]["cleanup.policy"], "delete")
        self.assertEqual(
            ops["configs_after"],
            {"retention.ms": "3600000", "cleanup.policy": "delete", "max.message.bytes": "2000000"},
        )
        self.assertEqual(ops["earliest"], {"0": 0})
        self.assertEqual(ops["latest"], {"0": 10})
        self.assertEqual(ops["delete_records_low_watermark"], {"0": 4})
        self.assertEqual(ops["earliest_after_delete"], {"0": 4})
        self.assertFalse(ops["listed_after_delete"])


class KafkaPythonTests(PythonClientScenarios, TestCase):
    """The scenarios with kafka-python 3.x."""

    prefix = "kp"


class ConfluentKafkaTests(PythonClientScenarios, TestCase):
    """The scenarios with confluent-kafka (librdkafka)."""

    prefix = "ck"
