"""
A broker restarts while a producer writes through the gateway.

The producer (Kafka's ProducerPerformance, acks=all, idempotent) runs in the
background under C{strace}; one broker is shut down and started again mid-run.
The producer must finish with every record acknowledged, no error, exactly
that many records in the topic, and never a connection to a broker.
"""

from __future__ import annotations

import subprocess
import time

from twisted.trial.unittest import TestCase

from harness.connect_audit import (
    assert_never_connected,
    audited_command,
    connected_addresses,
)
from harness.kafka import PRODUCER_PERF, java_tool_command
from tests.integration.environment import shared
from tests.integration.test_java_clients import (
    create_topic,
    eventually,
    fully_replicated,
    offsets,
    perf_records_sent,
    unique,
)

RESTARTED_BROKER = 2
RATE = 2000  # records per second
TOTAL = 50_000  # about 25 s at RATE


class BrokerRestartTests(TestCase):
    def setUp(self) -> None:
        self.env = shared()
        self.addCleanup(self.env.all_brokers_running)

    def test_clean_restart_while_producing(self) -> None:
        env, topic = self.env, unique("restart")
        create_topic(env, topic, partitions=3, replication=3, configs={"min.insync.replicas": "2"})
        eventually(lambda: fully_replicated(env, topic, 3), 30, f"{topic} fully replicated")

        trace = env.workdir / f"{topic}-producer.strace"
        out_path, err_path = (
            env.workdir / f"{topic}-producer.out",
            env.workdir / f"{topic}-producer.err",
        )
        command = java_tool_command(
            PRODUCER_PERF,
            "--topic",
            topic,
            "--num-records",
            str(TOTAL),
            "--record-size",
            "200",
            "--throughput",
            str(RATE),
            "--producer-props",
            f"bootstrap.servers={env.bootstrap}",
            "acks=all",
            "enable.idempotence=true",
            "delivery.timeout.ms=120000",
        )
        with open(out_path, "w") as out, open(err_path, "w") as err:
            producer = subprocess.Popen(
                audited_command(command, trace), stdout=out, stderr=err, stdin=subprocess.DEVNULL
            )

        def reap() -> None:
            if producer.poll() is None:
                producer.kill()
                producer.wait()

        self.addCleanup(reap)

        began = time.monotonic()
        time.sleep(7)
        self.assertIsNone(producer.poll(), "the producer ended before the broker was stopped")
        env.cluster.stop_broker(RESTARTED_BROKER)
        stopped = time.monotonic() - began
        self.assertNotIn(RESTARTED_BROKER, env.cluster.running_node_ids())
        self.assertIsNone(producer.poll(), "the producer ended while the broker was stopping")
        time.sleep(3)
        env.cluster.start_broker(RESTARTED_BROKER)
        restarted = time.monotonic() - began

        try:
            code = producer.wait(timeout=150)
        except subprocess.TimeoutExpired:
            producer.kill()
            producer.wait()
            raise AssertionError(
                f"the producer hung; gateway log:\n{env.gateway.log_tail()}"
            ) from None
        stdout, stderr = out_path.read_text(), err_path.read_text()
        context = (
            f"broker {RESTARTED_BROKER} stopped at {stopped:.1f}s, "
            f"serving again at {restarted:.1f}s, "
            f"producer done at {time.monotonic() - began:.1f}s\nstdout:\n{stdout[-3000:]}\n"
            f"stderr:\n{stderr[-3000:]}\ngateway log:\n{env.gateway.log_tail()}"
        )
        self.assertEqual(code, 0, context)
        self.assertNotIn("Exception", stdout + stderr, context)
        self.assertEqual(perf_records_sent(stdout), TOTAL, context)

        assert_never_connected(trace, env.forbidden_ports)
        reached = {port for _, port in connected_addresses(trace)}
        self.assertTrue(
            reached & set(env.gateway.ports), f"producer never reached the gateway: {reached}"
        )

        # Exactly TOTAL records landed: none lost, none duplicated by the retries.
        self.assertEqual(offsets(env, topic, "-2"), {0: 0, 1: 0, 2: 0})
        end = offsets(env, topic)
        self.assertEqual(sum(end.values()), TOTAL, f"end offsets {end}; {context}")

        # The restarted broker catches up and rejoins every ISR.
        eventually(
            lambda: fully_replicated(env, topic, 3),
            60,
            f"broker {RESTARTED_BROKER} back in the ISR",
        )
