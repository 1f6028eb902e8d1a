"""
header-injection, chaos and rate-limit against real Kafka with real clients.

Each test configures its interceptor through the admin API
(C{PUT /api/v1/interceptors/NAME}), scoped to client ids only it uses (the
gateway is shared by the whole run), and removes it afterwards.  Clients are
confluent-kafka (librdkafka) and kafka-python processes, audited as always: a
run that touched a broker directly fails.

Set C{KGATEWAY_SKIP_INTEGRATION=1} to skip them.
"""

from __future__ import annotations

import json
import re
import time
import uuid
from collections import Counter
from typing import Any

from twisted.trial.unittest import TestCase

from tests.integration.environment import Environment, shared
from tests.integration.test_java_clients import produce_perf
from tests.integration.test_python_clients import CODEC_IDS, record_batch_codecs

CLIENT_TIMEOUT = 90.0
MIB = 1024 * 1024


class RecordInterceptorTests(TestCase):
    """The three interceptors on a real gateway in front of a real 3-broker cluster."""

    timeout = 900
    env: Environment

    def setUp(self) -> None:
        self.env = shared()
        self.uid = uuid.uuid4().hex[:8]

    # -- helpers ------------------------------------------------------------------------

    def api(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        """Call the admin API as its admin user."""
        return self.env.gateway.api(method, path, body)

    def interceptor(self, plugin: str, config: dict[str, Any], client_ids: str) -> str:
        """Configure one interceptor for the client ids matching C{client_ids}; removed later."""
        name = f"{plugin}-{self.uid}"
        spec = {"plugin": plugin, "priority": 100, "config": config}
        spec["scope"] = {"clientId": client_ids}
        # 503 while the node's interceptors topic is still being created (the run's first write).
        deadline = time.monotonic() + 90
        while True:
            status, body = self.api("PUT", f"/api/v1/interceptors/{name}", spec)
            if status != 503 or time.monotonic() > deadline:
                break
            time.sleep(1)
        self.assertIn(status, (200, 201), body)
        self.addCleanup(self.api, "DELETE", f"/api/v1/interceptors/{name}")
        return name

    def decisions(self, name: str) -> dict[str, float]:
        """The node's decision counters for interceptor C{name}, from /metrics."""
        status, body = self.api("GET", "/metrics")
        self.assertEqual(status, 200)
        found = {}
        for line in body.splitlines():
            match = re.match(r"kgateway_interceptor_decisions_total\{(.*)\} (\S+)", line)
            if match and f'interceptor="{name}"' in match.group(1):
                decision = re.search(r'decision="([^"]*)"', match.group(1))
                assert decision is not None
                found[decision.group(1)] = float(match.group(2))
        return found

    def create_topic(self, what: str, *configs: str) -> str:
        topic = f"{what}-{self.uid}"
        args = ["create-topic", "--topic", topic, "--partitions", "3", "--replication", "3"]
        for config in configs:
            args += ["--config", config]
        self.env.python_client("kp_admin.py", *args, "--timeout", "45", timeout=120)
        return topic

    def client(self, script: str, mode: str, **options: object) -> Any:
        """Run C{clients/<script>} in C{mode}, audited; return the JSON it printed."""
        argv = [mode]
        for name, value in {**options, "timeout": CLIENT_TIMEOUT}.items():
            argv += ["--" + name.replace("_", "-"), str(value)]
        result = self.env.python_client(script, *argv, timeout=CLIENT_TIMEOUT + 60)
        print(result.stderr[-1500:])
        return json.loads(result.stdout.strip().splitlines()[-1])

    def assertExactlyOnce(self, records: list[dict[str, Any]], count: int) -> None:
        counts = Counter(r["key"] for r in records)
        self.assertEqual({k: n for k, n in counts.items() if n > 1}, {}, "duplicates")
        self.assertEqual(sorted(map(int, counts)), list(range(count)))

    # -- header-injection ---------------------------------------------------------------

    def test_headers_with_every_codec(self) -> None:
        """
        librdkafka produces with each codec; kafka-python (CRCs checked) reads every
        record with the gateway's headers, the forged one replaced, the app's kept; the
        broker stored the batches with the producer's codec at the producer's offsets.
        """
        self.interceptor(
            "header-injection",
            {"headers": {"x-client-id": "{clientId}", "x-client-host": "{clientHost}"}},
            f"hi-{self.uid}-.*",
        )
        for codec in CODEC_IDS:
            topic = self.create_topic(f"hi-{codec}")
            client_id = f"hi-{self.uid}-{codec}"
            produced = self.client(
                "ck_records.py",
                "produce",
                topic=topic,
                client_id=client_id,
                count=60,
                compression=codec,
                value_size=300,
            )
            read = self.client(
                "kp_records.py", "consume", topic=topic, client_id=f"reader-{self.uid}", expect=60
            )
            self.assertExactlyOnce(read["records"], 60)
            offsets = {str(s["seq"]): (s["p"], s["o"]) for s in produced["sent"]}
            for record in read["records"]:
                self.assertEqual((record["p"], record["o"]), offsets[record["key"]])
                self.assertEqual(
                    record["headers"],
                    [["app", "kept"], ["x-client-host", "127.0.0.1"], ["x-client-id", client_id]],
                    f"{codec} record {record['key']}",
                )
            for partition in range(3):
                stored = record_batch_codecs(self.env.cluster.base_dir, topic, partition)
                self.assertEqual(stored, {CODEC_IDS[codec]}, f"{codec} partition {partition}")

    def test_headers_with_transactions_and_both_producers(self) -> None:
        """
        A librdkafka transactional producer (commit, abort, commit) and a kafka-python
        idempotent, transactional one: the broker accepts the rewritten batches (sequence,
        epoch and CRC checked); read_committed sees exactly the committed records, with
        headers.
        """
        self.interceptor(
            "header-injection", {"headers": {"x-client-id": "{clientId}"}}, f"hi-{self.uid}-.*"
        )
        topic = self.create_topic("hi-txn")
        txn = self.client(
            "ck_records.py",
            "produce",
            topic=topic,
            client_id=f"hi-{self.uid}-txn",
            count=40,
            transactional_id=f"txn-{self.uid}",
            txn_plan="commit,abort,commit",
            compression="lz4",
        )
        self.assertEqual([t["outcome"] for t in txn["transactions"]], ["commit", "abort", "commit"])
        kp_topic = self.create_topic("hi-kp")
        self.client(
            "kp_records.py",
            "produce",
            topic=kp_topic,
            client_id=f"hi-{self.uid}-kp",
            count=50,
            transactional_id=f"kptxn-{self.uid}",
            compression="zstd",
        )
        committed = self.client(
            "ck_records.py",
            "consume",
            topic=topic,
            client_id=f"reader-{self.uid}",
            expect=80,
            isolation="read_committed",
        )
        keys = sorted(int(r["key"]) for r in committed["records"])
        self.assertEqual(keys, list(range(40)) + list(range(80, 120)))
        for record in committed["records"]:
            self.assertEqual(
                record["headers"], [["app", "kept"], ["x-client-id", f"hi-{self.uid}-txn"]]
            )
        kp_read = self.client(
            "kp_records.py",
            "consume",
            topic=kp_topic,
            client_id=f"reader-{self.uid}",
            expect=50,
            isolation="read_committed",
        )
        self.assertExactlyOnce(kp_read["records"], 50)
        for record in kp_read["records"]:
            self.assertEqual(
                record["headers"], [["app", "kept"], ["x-client-id", f"hi-{self.uid}-kp"]]
            )

    def test_headers_only_in_scope(self) -> None:
        """A producer whose client id is outside the scope keeps its own headers, forged one too."""
        self.interceptor(
            "header-injection", {"headers": {"x-client-id": "{clientId}"}}, f"hi-{self.uid}-.*"
        )
        topic = self.create_topic("hi-scope")
        self.client(
            "kp_records.py", "produce", topic=topic, client_id=f"outside-{self.uid}", count=20
        )
        read = self.client(
            "kp_records.py", "consume", topic=topic, client_id=f"reader-{self.uid}", expect=20
        )
        for record in read["records"]:
            self.assertEqual(record["headers"], [["x-client-id", "forged"], ["app", "kept"]])

    def test_headers_from_java_producer_with_topic_filter(self) -> None:
        """
        Java's ProducerPerformance (idempotent, acks=all, lz4; Produce v13 names topics by
        id) through an interceptor limited by a topic pattern: the interceptor learnt the
        id from the Metadata the producer asked for, and every record has the header.
        """
        topic = self.create_topic("hi-java")
        self.interceptor(
            "header-injection",
            {"headers": {"x-client-id": "{clientId}"}, "topics": f"hi-java-{self.uid}"},
            f"hi-{self.uid}-.*",
        )
        client_id = f"hi-{self.uid}-java"
        sent = produce_perf(
            self.env,
            topic,
            3000,
            f"client.id={client_id}",
            "acks=all",
            "enable.idempotence=true",
            "compression.type=lz4",
        )
        self.assertEqual(sent, 3000)
        read = self.client(
            "kp_records.py", "consume", topic=topic, client_id=f"reader-{self.uid}", expect=3000
        )
        self.assertEqual(len(read["records"]), 3000)
        for record in read["records"]:
            self.assertEqual(record["headers"], [["x-client-id", client_id]])
        for partition in range(3):
            stored = record_batch_codecs(self.env.cluster.base_dir, topic, partition)
            self.assertEqual(stored, {CODEC_IDS["lz4"]})

    # -- chaos --------------------------------------------------------------------------

    def test_chaos_clients_recover_exactly_once(self) -> None:
        """
        At 20% broken-broker answers and 10% leader elections per partition (Produce and
        Fetch), idempotent librdkafka and kafka-python producers deliver every record
        exactly once, and a librdkafka consumer under the same chaos reads them all; the
        producer counted retries and the node counted the chaos it made.
        """
        name = self.interceptor(
            "chaos",
            {"brokenBrokerRate": 0.2, "leaderElectionRate": 0.1, "latencyMs": 2, "jitterMs": 3},
            f"chaos-{self.uid}-.*",
        )
        topic = self.create_topic("chaos")
        count = 3000
        produced = self.client(
            "ck_records.py",
            "produce",
            topic=topic,
            client_id=f"chaos-{self.uid}-ck",
            count=count,
            linger_ms=1,
            batch_messages=10,
        )
        after_ck = self.decisions(name).get("failed", 0)
        print(f"chaos: {after_ck:.0f} errors made for the librdkafka producer")
        self.assertGreater(after_ck, 0)
        kp_topic = self.create_topic("chaos-kp")
        # One record a batch: many requests, so the chaos surely hits some.
        kp_produced = self.client(
            "kp_records.py",
            "produce",
            topic=kp_topic,
            client_id=f"chaos-{self.uid}-kp",
            count=600,
            linger_ms=0,
            batch_size=100,
        )
        after_kp = self.decisions(name)["failed"]
        print(
            f"chaos: {after_kp - after_ck:.0f} errors made; "
            f"kafka-python logged {kp_produced['retries']} retried produce errors"
        )
        self.assertGreater(kp_produced["retries"], 0)
        self.assertGreater(after_kp, after_ck)
        # Small fetches, many of them: the consumer meets the chaos too.
        read = self.client(
            "ck_records.py",
            "consume",
            topic=topic,
            client_id=f"chaos-{self.uid}-reader",
            expect=count,
            fetch_max_bytes=2000,
        )
        after_read = self.decisions(name)["failed"]
        print(f"chaos: {after_read - after_kp:.0f} errors made for the consumer's fetches")
        self.assertGreater(after_read, after_kp)
        self.assertExactlyOnce(read["records"], count)
        offsets = {str(s["seq"]): (s["p"], s["o"]) for s in produced["sent"]}
        for record in read["records"]:
            self.assertEqual((record["p"], record["o"]), offsets[record["key"]])
        kp_read = self.client(
            "kp_records.py", "consume", topic=kp_topic, client_id=f"reader-{self.uid}", expect=600
        )
        self.assertExactlyOnce(kp_read["records"], 600)
        kp_offsets = {str(s["seq"]): (s["p"], s["o"]) for s in kp_produced["sent"]}
        for record in kp_read["records"]:
            self.assertEqual((record["p"], record["o"]), kp_offsets[record["key"]])

    # -- rate-limit ---------------------------------------------------------------------

    def test_rate_limit_produce_and_consume(self) -> None:
        """
        10 MiB at 1 MiB/s takes about 10 s to produce and about 10 s to consume, without
        errors; an unlimited client id reads the same data much faster.
        """
        self.interceptor(
            "rate-limit",
            {"produceBytesPerSecond": MIB, "consumeBytesPerSecond": MIB, "burstSeconds": 0.1},
            f"rl-{self.uid}-.*",
        )
        topic = self.create_topic("rl")
        count, size = 1024, 10 * 1024
        produced = self.client(
            "ck_records.py",
            "produce",
            topic=topic,
            client_id=f"rl-{self.uid}-producer",
            count=count,
            value_size=size,
            linger_ms=20,
        )
        rate = count * size / produced["seconds"] / MIB
        print(f"rate-limit: produced 10 MiB in {produced['seconds']:.2f} s ({rate:.2f} MiB/s)")
        self.assertEqual(len(produced["sent"]), count)
        # Not faster than the limit (frames are a little more than the values); the upper
        # bound is loose because the machine may be busy.
        self.assertTrue(9.5 <= produced["seconds"] <= 16, produced["seconds"])

        read = self.client(
            "ck_records.py",
            "consume",
            topic=topic,
            client_id=f"rl-{self.uid}-consumer",
            expect=count,
        )
        rate = count * size / read["seconds"] / MIB
        print(f"rate-limit: consumed 10 MiB in {read['seconds']:.2f} s ({rate:.2f} MiB/s)")
        self.assertExactlyOnce(read["records"], count)
        self.assertTrue(9.5 <= read["seconds"] <= 16, read["seconds"])

        free = self.client(
            "ck_records.py", "consume", topic=topic, client_id=f"free-{self.uid}", expect=count
        )
        print(f"rate-limit: unlimited client consumed 10 MiB in {free['seconds']:.2f} s")
        self.assertLess(free["seconds"], read["seconds"] / 2)
