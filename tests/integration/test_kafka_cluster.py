"""Tests for L{harness.kafka} against real Apache Kafka JVMs.

Set C{KGATEWAY_SKIP_INTEGRATION=1} to skip them.
"""

from __future__ import annotations

import os
import re
import select
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from twisted.trial.unittest import SkipTest, TestCase

from harness import REPO_ROOT
from harness.kafka import (
    TOPIC_COMMAND,
    KafkaCluster,
    ensure_kafka_libs,
    fetch_broker_ids,
    java_tool_command,
)

T = TypeVar("T")


def skip_unless_integration() -> None:
    """Skip when the environment asks for no real brokers."""
    if os.environ.get("KGATEWAY_SKIP_INTEGRATION") == "1":
        raise SkipTest("KGATEWAY_SKIP_INTEGRATION=1 skips tests that start Kafka JVMs")


@dataclass(frozen=True)
class PartitionState:
    """One line of C{TopicCommand --describe}."""

    partition: int
    leader: int
    replicas: frozenset[int]
    isr: frozenset[int]


def _ids(text: str) -> frozenset[int]:
    return frozenset(int(part) for part in text.split(",") if part)


def describe_topic(bootstrap: str, topic: str) -> tuple[int, int, list[PartitionState]]:
    """Run TopicCommand --describe; return partition count, replication factor, partitions."""
    result = subprocess.run(
        java_tool_command(TOPIC_COMMAND, "--bootstrap-server", bootstrap, "--describe",
                          "--topic", topic),
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    if result.returncode != 0:
        raise AssertionError(f"describe failed: {result.stdout}{result.stderr}")
    header = re.search(r"PartitionCount:\s*(\d+)\s+ReplicationFactor:\s*(\d+)", result.stdout)
    if header is None:
        raise AssertionError(f"no topic summary in describe output:\n{result.stdout}")
    partitions = [
        PartitionState(int(m[1]), int(m[2]), _ids(m[3]), _ids(m[4]))
        for m in re.finditer(
            r"Partition:\s*(\d+)\s+Leader:\s*(-?\d+|none)\s+Replicas:\s*([\d,]*)\s+Isr:\s*([\d,]*)",
            result.stdout.replace("Leader: none", "Leader: -1"),
        )
    ]
    return int(header[1]), int(header[2]), partitions


def eventually(check: Callable[[], T | None], timeout: float, what: str) -> T:
    """Call C{check} until it returns something other than C{None}."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value is not None:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(0.5)


def process_gone(pid: int) -> bool:
    """True when C{pid} no longer runs (absent, or a zombie nobody has reaped yet)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return True
    return "\nState:\tZ" in status


def kill_if_running(target: int | subprocess.Popen[bytes]) -> None:
    """Cleanup for a test that failed half-way: SIGKILL a process if it is still there."""
    if isinstance(target, subprocess.Popen):
        if target.poll() is None:
            target.kill()
            target.wait()
    elif not process_gone(target):
        os.kill(target, signal.SIGKILL)


class KafkaClusterTests(TestCase):
    """A 3-node KRaft cluster really serves, replicates and survives a broker crash."""

    timeout = 600

    def setUp(self) -> None:
        skip_unless_integration()
        ensure_kafka_libs()

    def test_topic_replication_and_broker_crash(self) -> None:
        """Create and describe a replicated topic, kill and restart a broker, stop."""
        cluster = KafkaCluster(size=3, base_dir=Path(self.mktemp()))
        self.addCleanup(cluster.stop)
        began = time.monotonic()
        cluster.start()
        sys.stderr.write(f"\n3-node cluster started in {time.monotonic() - began:.1f}s\n")

        self.assertEqual([b.node_id for b in cluster.brokers], [1, 2, 3])
        self.assertEqual([b.rack for b in cluster.brokers], ["a", "b", "c"])
        self.assertEqual(len(cluster.broker_ports | cluster.controller_ports), 6)
        self.assertEqual(
            cluster.bootstrap_servers, ",".join(f"127.0.0.1:{b.port}" for b in cluster.brokers)
        )
        for broker in cluster.brokers:
            self.assertEqual(fetch_broker_ids(broker.host, broker.port), {1, 2, 3})

        created = subprocess.run(
            java_tool_command(TOPIC_COMMAND, "--bootstrap-server", cluster.bootstrap_servers,
                              "--create", "--topic", "harness", "--partitions", "3",
                              "--replication-factor", "3"),
            capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        self.assertEqual(created.returncode, 0, created.stdout + created.stderr)
        self.assertIn("Created topic harness", created.stdout)

        def fully_replicated() -> list[PartitionState] | None:
            count, factor, partitions = describe_topic(cluster.bootstrap_servers, "harness")
            self.assertEqual((count, factor), (3, 3))
            self.assertEqual(sorted(p.partition for p in partitions), [0, 1, 2])
            for state in partitions:
                self.assertEqual(state.replicas, {1, 2, 3})
            if all(state.isr == {1, 2, 3} for state in partitions):
                return partitions
            return None

        partitions = eventually(fully_replicated, 60, "all replicas in sync")
        # Kafka spreads the leaders of a new topic over the brokers.
        self.assertEqual({state.leader for state in partitions}, {1, 2, 3})

        victim = cluster.brokers[1]
        victim_pid = cluster.pid(victim.node_id)
        assert victim_pid is not None
        cluster.kill_broker(victim.node_id)
        self.assertTrue(process_gone(victim_pid))
        self.assertIsNone(cluster.pid(victim.node_id))
        self.assertEqual(cluster.running_node_ids(), {1, 3})
        self.assertRaises(
            ConnectionRefusedError, socket.create_connection, (victim.host, victim.port), 5
        )
        survivors = ",".join(f"{b.host}:{b.port}" for b in cluster.brokers if b != victim)

        def failed_over() -> list[PartitionState] | None:
            _, _, states = describe_topic(survivors, "harness")
            if states and all(s.leader != victim.node_id and victim.node_id not in s.isr
                              for s in states):  # fmt: skip
                return states
            return None

        # The controller notices the crash after broker.session.timeout.ms (9 s by default).
        for state in eventually(failed_over, 90, "leadership to move off the killed broker"):
            self.assertIn(state.leader, {1, 3})
        self.assertEqual(fetch_broker_ids(cluster.brokers[0].host, cluster.brokers[0].port),
                         {1, 3})  # fmt: skip

        cluster.start_broker(victim.node_id)
        self.assertEqual(cluster.running_node_ids(), {1, 2, 3})
        for broker in cluster.brokers:
            self.assertEqual(fetch_broker_ids(broker.host, broker.port), {1, 2, 3})
        eventually(fully_replicated, 90, "the restarted broker to rejoin every ISR")

        pids = [cluster.pid(node_id) for node_id in (1, 2, 3)]
        cluster.stop()
        cluster.stop()  # idempotent
        self.assertEqual(cluster.running_node_ids(), set())
        for pid in pids:
            assert pid is not None
            self.assertTrue(process_gone(pid), f"JVM {pid} survived stop()")

    def test_start_failure_reports_log(self) -> None:
        """A node that cannot start fails start() with its log tail, and nothing is left running."""
        blocker = socket.socket()
        self.addCleanup(blocker.close)
        cluster = KafkaCluster(size=1, base_dir=Path(self.mktemp()))
        self.addCleanup(cluster.stop)
        # Take the broker's port first, so the JVM fails to bind it.
        blocker.bind((cluster.brokers[0].host, cluster.brokers[0].port))
        blocker.listen()
        error = self.assertRaises(RuntimeError, cluster.start, 120)
        self.assertIn("node 1: exited with code 1", str(error))
        self.assertIn("node-1.log", str(error))
        self.assertIn(
            f"failed to bind to 127.0.0.1:{cluster.brokers[0].port}: Address already in use",
            str(error),
        )
        self.assertEqual(cluster.running_node_ids(), set())


class ForegroundProcessTests(TestCase):
    """C{python -m harness.kafka} never leaves a JVM behind."""

    timeout = 300

    def setUp(self) -> None:
        skip_unless_integration()
        ensure_kafka_libs()

    def start_foreground(self) -> tuple[subprocess.Popen[bytes], list[int]]:
        """Start a 1-node cluster in a child Python; return it and its JVM pids."""
        env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
        process = subprocess.Popen(
            [sys.executable, "-m", "harness.kafka", "--size", "1",
             "--base-dir", self.mktemp()],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env, bufsize=0,
        )  # fmt: skip
        self.addCleanup(kill_if_running, process)
        assert process.stdout is not None
        # Raw reads: a buffered readline would hide lines that select() no longer reports.
        output = b""
        deadline = time.monotonic() + 120
        while not re.search(rb"^127\.0\.0\.1:\d+$", output, re.MULTILINE):
            if time.monotonic() > deadline or process.poll() is not None:
                self.fail(f"cluster did not come up:\n{output.decode(errors='replace')}")
            ready, _, _ = select.select([process.stdout], [], [], 1.0)
            if ready:
                output += os.read(process.stdout.fileno(), 65536)
        pids = [int(pid) for pid in re.findall(rb"pid=(\d+)", output)]
        self.assertEqual(len(pids), 1)
        for pid in pids:
            self.addCleanup(kill_if_running, pid)
        return process, pids

    def test_sigkill_of_python_kills_jvms(self) -> None:
        """The kernel kills the JVMs when their Python parent dies without cleaning up."""
        process, pids = self.start_foreground()
        process.kill()
        process.wait()
        eventually(lambda: all(process_gone(pid) for pid in pids) or None, 10, "JVMs to die")

    def test_interrupt_stops_cleanly(self) -> None:
        """Ctrl-C (SIGINT) and SIGTERM stop the cluster and exit 0."""
        for signum in (signal.SIGINT, signal.SIGTERM):
            process, pids = self.start_foreground()
            process.send_signal(signum)
            output, _ = process.communicate(timeout=60)
            self.assertEqual(process.returncode, 0, output)
            self.assertIn(b"stopping", output)
            for pid in pids:
                self.assertTrue(process_gone(pid), f"JVM {pid} survived {signum!r}")
