"""
librdkafka's C{kcat} through the gateway against a real 3-broker Kafka 4.1 cluster.

Each kcat run is under C{strace} (L{environment.Environment.run}) and fails the
test if it ever connected to a broker or controller port.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import uuid

from twisted.trial.unittest import TestCase

from tests.integration.environment import shared
from tests.integration.test_java_clients import assert_gateway_address, create_topic, unique

KCAT = shutil.which("kcat") or shutil.which("kafkacat")


class KcatTests(TestCase):
    def setUp(self) -> None:
        if KCAT is None:
            self.fail("kcat is not installed: run scripts/setup (Debian package kcat)")
        self.env = shared()

    def kcat(
        self, name: str, *args: str, input: bytes | None = None
    ) -> subprocess.CompletedProcess[str]:
        assert KCAT is not None
        return self.env.run(name, [KCAT, "-b", self.env.bootstrap, *args], input=input, timeout=60)

    def produce(self, topic: str, records: list[tuple[str, str]], *extra: str) -> None:
        """kcat -P with keys; no delivery may fail (the consumers then check what arrived)."""
        payload = "".join(f"{key}\t{value}\n" for key, value in records).encode()
        result = self.kcat(
            "kcat-produce", "-P", "-t", topic, "-K", "\t", "-X", "acks=all", *extra, input=payload
        )
        self.assertNotIn("Delivery failed", result.stderr)
        self.assertNotIn("ERROR", result.stderr)

    def consume(
        self, topic: str, *extra: str, group: str | None = None
    ) -> list[tuple[int, int, str, str]]:
        """kcat until the end of every partition: (partition, offset, key, value) per record."""
        source = (
            ["-G", group, topic, "-X", "auto.offset.reset=earliest"]
            if group
            else ["-C", "-t", topic, "-o", "beginning"]
        )
        result = self.kcat("kcat-consume", *source, "-e", "-q", "-f", "%p\t%o\t%k\t%s\n", *extra)
        rows = []
        for line in result.stdout.splitlines():
            partition, offset, key, value = line.split("\t")
            rows.append((int(partition), int(offset), key, value))
        return rows

    def test_metadata_lists_only_gateway_addresses(self) -> None:
        env, topic = self.env, unique("kcat-meta")
        create_topic(env, topic)
        result = self.kcat("kcat-metadata", "-L", "-t", topic)
        brokers = re.findall(r"^\s+broker (\d+) at ([^:\s]+):(\d+)", result.stdout, re.MULTILINE)
        self.assertEqual(
            sorted(int(b[0]) for b in brokers),
            sorted(b.node_id for b in env.cluster.brokers),
            result.stdout,
        )
        for node_id, host, port in brokers:
            assert_gateway_address(self, env, int(node_id), host, int(port))
        origin = re.search(r"\(from broker (-?\d+): ([^:\s]+):(\d+)/", result.stdout)
        assert origin is not None, result.stdout
        self.assertIn(int(origin[3]), env.gateway.ports)
        self.assertIn(f'topic "{topic}" with 3 partitions:', result.stdout)
        leaders = re.findall(
            r"partition (\d+), leader (\d+), replicas: ([\d,]+), isrs: ([\d,]+)", result.stdout
        )
        self.assertEqual(sorted(int(p[0]) for p in leaders), [0, 1, 2])
        for _, _, replicas, _ in leaders:
            self.assertEqual(len(replicas.split(",")), 3)

    def test_produce_and_consume_with_group(self) -> None:
        topic, group = unique("kcat-rt"), unique("kcat-group")
        create_topic(self.env, topic)
        records = [(f"key{i}", f"value-{i}-{uuid.uuid4().hex}") for i in range(300)]
        self.produce(topic, records, "-X", "enable.idempotence=true")

        rows = self.consume(topic, group=group)
        self.assertEqual(len(rows), len(records), "lost or duplicated records")
        self.assertEqual({(k, v) for _, _, k, v in rows}, set(records))
        self.assertEqual(
            {p for p, _, _, _ in rows}, {0, 1, 2}, "keys should spread over all partitions"
        )
        # Per partition the offsets are exactly 0..n-1, in order.
        for partition in (0, 1, 2):
            seen = [o for p, o, _, _ in rows if p == partition]
            self.assertEqual(seen, list(range(len(seen))))

        # The group committed its offsets through the gateway: a second run reads nothing new...
        self.assertEqual(self.consume(topic, group=group), [])
        # ...and picks up exactly what is produced next.
        more = [(f"more{i}", f"later-{i}") for i in range(30)]
        self.produce(topic, more)
        self.assertEqual(
            sorted((k, v) for _, _, k, v in self.consume(topic, group=group)), sorted(more)
        )

        # A plain (group-less) consumer still sees everything from the beginning.
        everything = self.consume(topic)
        self.assertEqual({(k, v) for _, _, k, v in everything}, set(records) | set(more))
        self.assertEqual(len(everything), len(records) + len(more))

    def test_compression(self) -> None:
        topic = unique("kcat-z")
        create_topic(self.env, topic)
        expected = set()
        for codec in ("gzip", "snappy", "lz4", "zstd"):
            records = [(f"{codec}-{i}", f"{codec} payload {i} " + "x" * 200) for i in range(100)]
            self.produce(topic, records, "-z", codec, "-X", "linger.ms=50")
            expected |= set(records)
        rows = self.consume(topic)
        self.assertEqual(len(rows), len(expected))
        self.assertEqual({(k, v) for _, _, k, v in rows}, expected)
