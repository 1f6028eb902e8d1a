"""
Gateway nodes fail or restart while three idempotent producers write through the cluster.

Three nodes in racks a, b, c front the shared 3-broker cluster. Three producers of different
client libraries (Kafka's Java C{VerifiableProducer}, confluent-kafka and kafka-python), each
bootstrapped with all three nodes, write numbered records at a steady rate (acks=all,
idempotent) to a 3-partition RF3 topic, each with its own value prefix. Meanwhile a node is
SIGKILLed, or every node is restarted in turn with SIGTERM. The producers must finish on their
own with every record acked; a consumer group then reads the topic to its end and checks that
every producer's numbers appear exactly once and in order within each partition. Every client
runs under C{strace} and must never have connected to a broker, only to gateway nodes.

How long the clients stalled is printed: the longest gap between consecutive acks of one
producer, overall and within one partition (a partition whose node went away stalls while the
others go on), before and after each disruption.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from twisted.trial.unittest import TestCase

from harness.connect_audit import (
    assert_never_connected,
    audited_command,
    connected_addresses,
)
from harness.gateway_process import GatewayProcess
from harness.kafka import java_tool_command
from harness.probe import advertised_brokers

from .environment import CLIENTS, Environment, shared
from .gateway_cluster import GatewayCluster
from .test_java_clients import create_topic, eventually, fully_replicated

VERIFIABLE_PRODUCER = "org.apache.kafka.tools.VerifiableProducer"
PARTITIONS = 3
RATE = 300  # records per second, per producer
#: Value prefixes, one per producer (VerifiableProducer's --value-prefix is an integer).
JAVA, CONFLUENT, KAFKA_PYTHON = 1, 2, 3
NAMES = {JAVA: "java", CONFLUENT: "confluent-kafka", KAFKA_PYTHON: "kafka-python"}
PRODUCER_TIMEOUT = 120.0


def figure(text: str) -> None:
    """Print a measured figure so it shows in the test run's output."""
    print(f"\n    [figure] {text}", flush=True)


@dataclass
class Client:
    """A client process started in the background under strace."""

    name: str
    process: subprocess.Popen[bytes]
    trace: Path
    out: Path
    err: Path
    started: float = field(default_factory=time.time)

    def running(self) -> bool:
        return self.process.poll() is None

    def reap(self) -> None:
        """Kill the client and everything it started (its own process group)."""
        if self.process.poll() is None:
            try:
                os.killpg(self.process.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            self.process.wait()


@dataclass
class Ack:
    number: int
    partition: int
    at_ms: int


def java_acks(stdout: str) -> tuple[list[Ack], list[str], dict[str, Any]]:
    """VerifiableProducer's JSON lines: its successful sends, its errors, and its tool data."""
    acks: list[Ack] = []
    errors: list[str] = []
    tool: dict[str, Any] = {}
    for line in stdout.splitlines():
        if not line.startswith("{"):
            continue
        event = json.loads(line)
        name = event.get("name")
        if name == "producer_send_success":
            number = int(str(event["value"]).split(".", 1)[1])
            acks.append(Ack(number, int(event["partition"]), int(event["timestamp"])))
        elif name == "producer_send_error":
            errors.append(f"{event.get('value')}: {event.get('exception')} {event.get('message')}")
        elif name == "tool_data":
            tool = event
    return acks, errors, tool


def longest_gap(
    times: Sequence[int], since: float | None = None, until: float | None = None
) -> int:
    """The longest gap between consecutive times (ms) whose later end lies in [since, until)."""
    ordered = sorted(times)
    gaps = [
        b - a
        for a, b in zip(ordered, ordered[1:], strict=False)
        if (since is None or b >= since) and (until is None or b < until)
    ]
    return max(gaps, default=0)


def stall_figures(acks: list[Ack], marks: Sequence[float]) -> list[tuple[int, int]]:
    """For each window between the marks (ms): the longest gap overall and within one partition.

    A gap belongs to the window in which it ended, so the stall a disruption causes counts
    in the window that starts at the disruption.
    """
    times = [a.at_ms for a in acks]
    by_partition: dict[int, list[int]] = {}
    for a in acks:
        by_partition.setdefault(a.partition, []).append(a.at_ms)
    bounds: list[float | None] = [None, *marks, None]
    return [
        (
            longest_gap(times, since, until),
            max((longest_gap(t, since, until) for t in by_partition.values()), default=0),
        )
        for since, until in zip(bounds, bounds[1:], strict=False)
    ]


def established_connections(node: GatewayProcess) -> int:
    """Client connections the node has accepted and still holds (from /proc/net/tcp)."""
    ports = set(node.ports)
    count = 0
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            local_port = int(fields[1].rsplit(":", 1)[1], 16)
            if fields[3] == "01" and local_port in ports:
                count += 1
    return count


class FailoverTests(TestCase):
    """Three gateway nodes in racks a, b, c; producers that must ride out node failures."""

    def setUp(self) -> None:
        self.env: Environment = shared()
        # faulthandler: a node that hangs on SIGTERM is sent SIGABRT and dumps its stacks.
        self.gc = GatewayCluster(self.env, extra_env={"PYTHONFAULTHANDLER": "1"})
        self.clients: list[Client] = []
        self.addCleanup(self.gc.stop)
        self.addCleanup(self._reap_clients)
        for rack in ("a", "b", "c"):
            self.gc.add(rack)
        self.wait_until_handed_out(self.gc.nodes, "the three new nodes")
        self.bootstrap = ",".join(node.bootstrap for node in self.gc.nodes)
        self.topic = f"failover-{uuid.uuid4().hex[:10]}"
        create_topic(self.env, self.topic, partitions=PARTITIONS, replication=3)
        eventually(
            lambda: fully_replicated(self.env, self.topic, PARTITIONS),
            30,
            f"{self.topic} fully replicated",
        )

    def _reap_clients(self) -> None:
        for client in self.clients:
            client.reap()

    # -- the gateway cluster ----------------------------------------------------------------

    def live_nodes(self) -> list[GatewayProcess]:
        return [node for node in self.gc.nodes if node.pid is not None]

    def handed_out(self, via: GatewayProcess, requests: int = 4) -> set[str]:
        """Which nodes (log names, or 'dead:<port>') C{via} hands out over several requests."""
        seen: set[str] = set()
        for _ in range(requests):
            brokers = advertised_brokers(via.advertised_host, via.port_start)
            for _, port in brokers.values():
                owner = [n for n in self.live_nodes() if port in n.ports]
                seen.add(owner[0].log_path.name if owner else f"dead:{port}")
        return seen

    def wait_until_handed_out(
        self, nodes: Sequence[GatewayProcess], what: str, timeout: float = 40.0
    ) -> float:
        """Wait until every live node hands out exactly C{nodes}; return how long it took.

        Every probe is a new connection, and so a new broker connection behind the node:
        probe a few times a second, not flat out, so as not to load the nodes under test.
        """
        wanted = {node.log_path.name for node in nodes}
        started = time.monotonic()
        seen: dict[str, set[str]] = {}
        history: list[str] = []  # every change of what the nodes hand out, timed
        while time.monotonic() - started < timeout:
            try:
                seen = {via.log_path.name: self.handed_out(via) for via in self.live_nodes()}
            except OSError as e:
                seen = {"probe error": {str(e)}}
            entry = "; ".join(f"{via} -> {sorted(v)}" for via, v in sorted(seen.items()))
            if not history or not history[-1].endswith(entry):
                history.append(f"{time.monotonic() - started:5.1f}s {entry}")
            if all(view == wanted for view in seen.values()):
                took = time.monotonic() - started
                if took > 10:
                    figure(f"{what} took {took:.1f}s to be handed out; the views on the way:")
                    for line in history:
                        figure(f"  {line}")
                return took
            time.sleep(0.2)
        raise AssertionError(
            f"after {timeout}s the live nodes still do not all hand out exactly {what} "
            f"{sorted(wanted)}; the views on the way:\n" + "\n".join(history[-20:]) + "\n"
            f"{self.node_logs()}"
        )

    def terminate(self, node: GatewayProcess, timeout: float = 25.0) -> int:
        """SIGTERM and wait; a node that hangs is sent SIGABRT (stack dump) and fails the test."""
        assert node.process is not None
        node.process.send_signal(signal.SIGTERM)
        try:
            return node.process.wait(timeout)
        except subprocess.TimeoutExpired:
            node.process.send_signal(signal.SIGABRT)
            try:
                node.process.wait(10)
            finally:
                node.kill()
            raise AssertionError(
                f"{node.log_path.name} still running {timeout}s after SIGTERM; its stacks:\n"
                f"{node.log_tail(80)}"
            ) from None

    def node_logs(self) -> str:
        return "\n".join(
            f"--- {node.log_path.name} (pid {node.pid}):\n{node.log_tail(25)}"
            for node in self.gc.nodes
        )

    # -- clients ------------------------------------------------------------------------------

    def start_client(self, name: str, command: list[str]) -> Client:
        """Start C{command} in the background under strace, in its own process group."""
        stem = self.env.workdir / self.gc.name / f"{self.topic}-{name}"
        stem.parent.mkdir(parents=True, exist_ok=True)
        trace, out, err = (stem.with_suffix(s) for s in (".strace", ".out", ".err"))
        with open(out, "wb") as stdout, open(err, "wb") as stderr:
            wrapped = audited_command(command, trace)
            # seccomp-bpf: only connect() stops the client; without it every syscall of
            # every thread would, which at these rates slows the clients (and the machine).
            process = subprocess.Popen(
                [wrapped[0], "--seccomp-bpf", *wrapped[1:]],
                stdout=stdout,
                stderr=stderr,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        client = Client(name, process, trace, out, err)
        self.clients.append(client)
        return client

    def finish(self, client: Client, timeout: float) -> str:
        """Wait for C{client}; fail unless it succeeded and reached only gateway nodes."""
        try:
            code = client.process.wait(timeout=max(1.0, client.started + timeout - time.time()))
        except subprocess.TimeoutExpired:
            client.reap()
            code = None
        stdout = client.out.read_text(errors="replace")
        if code != 0:
            stderr = client.err.read_text(errors="replace")
            raise AssertionError(
                f"{client.name} {'hung' if code is None else f'exited with {code}'}\n"
                f"stdout:\n{stdout[-2000:]}\nstderr:\n{stderr[-3000:]}\n{self.node_logs()}"
            )
        self.audit(client)
        return stdout

    def assert_running(self, clients: Iterable[Client], when: str) -> None:
        for client in clients:
            if not client.running():
                raise AssertionError(
                    f"{client.name} ended (code {client.process.returncode}) {when}\n"
                    f"stdout:\n{client.out.read_text(errors='replace')[-2000:]}\n"
                    f"stderr:\n{client.err.read_text(errors='replace')[-3000:]}"
                )

    def audit(self, client: Client) -> None:
        """Never a broker; only gateway nodes; at least one of them."""
        cluster = self.env.cluster
        assert_never_connected(client.trace, cluster.broker_ports | cluster.controller_ports)
        gateway_ports = {port for node in self.gc.nodes for port in node.ports}
        reached = {port for _, port in connected_addresses(client.trace)}
        self.assertTrue(reached & gateway_ports, f"{client.name} reached no gateway: {reached}")
        self.assertEqual(
            reached - gateway_ports, set(), f"{client.name} connected outside the gateway"
        )

    def start_producers(self, count: int) -> dict[int, Client]:
        """The three producers, each writing C{count} records at RATE per second."""
        config = self.env.workdir / self.gc.name / f"{self.topic}-producer.properties"
        config.parent.mkdir(parents=True, exist_ok=True)
        config.write_text(
            "acks=all\nenable.idempotence=true\nretries=2147483647\n"
            "delivery.timeout.ms=120000\nlinger.ms=5\n"
        )
        java = java_tool_command(
            VERIFIABLE_PRODUCER,
            "--topic", self.topic,
            "--max-messages", str(count),
            "--throughput", str(RATE),
            "--acks", "-1",
            "--value-prefix", str(JAVA),
            # Keys 0..99 over and over: the records are hashed over every partition, like
            # the Python producers' n % 3, so Java's sticky partitioner cannot steer the
            # load away from a stalled partition and hide the stall.
            "--repeating-keys", "100",
            "--producer.config", str(config),
            "--bootstrap-server", self.bootstrap,
        )  # fmt: skip

        def python(script: str, prefix: int) -> list[str]:
            return [
                sys.executable,
                str(CLIENTS / script),
                "--bootstrap", self.bootstrap,
                "--topic", self.topic,
                "--count", str(count),
                "--rate", str(RATE),
                "--prefix", str(prefix),
                "--partitions", str(PARTITIONS),
                "--timeout", str(PRODUCER_TIMEOUT - 10),
            ]  # fmt: skip

        return {
            JAVA: self.start_client("verifiable-producer", java),
            CONFLUENT: self.start_client(
                "ck-producer", python("ck_numbered_producer.py", CONFLUENT)
            ),
            KAFKA_PYTHON: self.start_client(
                "kp-producer", python("kp_numbered_producer.py", KAFKA_PYTHON)
            ),
        }

    def finish_producers(self, producers: dict[int, Client], count: int) -> dict[int, list[Ack]]:
        """Wait for every producer; each must have had all C{count} records acked, once."""
        acks: dict[int, list[Ack]] = {}
        for prefix, client in producers.items():
            stdout = self.finish(client, PRODUCER_TIMEOUT)
            if prefix == JAVA:
                got, errors, tool = java_acks(stdout)
                self.assertEqual(errors, [], f"VerifiableProducer send errors:\n{self.node_logs()}")
                self.assertEqual(
                    (tool.get("sent"), tool.get("acked")), (count, count), f"tool data {tool}"
                )
            else:
                result = json.loads(stdout.strip().splitlines()[-1])
                self.assertEqual(result["error_count"], 0, result["errors"])
                got = [Ack(n, p, t) for n, p, _, t in result["acks"]]
            numbers = sorted(a.number for a in got)
            self.assertEqual(numbers, list(range(count)), f"{NAMES[prefix]} acks")
            acks[prefix] = got
        return acks

    def verify_topic(self, count: int) -> dict[str, Any]:
        """A consumer group reads the topic to its end: all records, once each, in order."""
        bootstrap = ",".join(dict.fromkeys(node.bootstrap for node in self.gc.nodes))
        command = [
            sys.executable,
            str(CLIENTS / "ck_verifying_consumer.py"),
            "--bootstrap", bootstrap,
            "--topic", self.topic,
            "--group", f"{self.topic}-verify",
            "--timeout", "60",
            *(arg for p in (JAVA, CONFLUENT, KAFKA_PYTHON) for arg in ("--expect", f"{p}={count}")),
        ]  # fmt: skip
        client = self.start_client("verifying-consumer", command)
        result: dict[str, Any] = json.loads(self.finish(client, 90).strip().splitlines()[-1])
        for prefix in (JAVA, CONFLUENT, KAFKA_PYTHON):
            summary = result["producers"][str(prefix)]
            self.assertEqual(
                (summary["distinct"], summary["records"]), (count, count), f"{NAMES[prefix]}"
            )
        self.assertEqual(sum(result["end_offsets"].values()), 3 * count)
        self.assertEqual(result["order_violations"], 0)
        return result

    def report_stalls(
        self, acks: dict[int, list[Ack]], marks: Sequence[float], windows: Sequence[str]
    ) -> None:
        """Print each producer's longest gaps (overall / one partition) in each window."""
        figure("longest gap between acks, overall / within one partition, in ms:")
        for prefix, got in acks.items():
            cells = [
                f"{window} {overall}/{partition}"
                for window, (overall, partition) in zip(
                    windows, stall_figures(got, [m * 1000 for m in marks]), strict=True
                )
            ]
            figure(f"  {NAMES[prefix]:>15}: " + "; ".join(cells))

    # -- the tests ------------------------------------------------------------------------------

    def test_kill_node_under_load(self) -> None:
        """SIGKILL the busiest node mid-run; the producers carry on without a lost record."""
        count = 25 * RATE
        began = time.time()
        producers = self.start_producers(count)
        time.sleep(8)
        self.assert_running(producers.values(), "before the kill")
        load = {
            node.environment["GATEWAY_RACK_ID"]: established_connections(node)
            for node in self.gc.nodes
        }
        rack = max(sorted(load, key=lambda r: r != "b"), key=lambda r: load[r])
        victim = next(n for n in self.gc.nodes if n.environment["GATEWAY_RACK_ID"] == rack)
        killed_at = time.time()
        victim.kill()
        figure(f"client connections per node at the kill {load}; killed rack {rack}")
        dropped = self.wait_until_handed_out(
            [n for n in self.gc.nodes if n is not victim], "the two surviving nodes"
        )
        figure(f"killed node no longer handed out after {dropped:.2f}s")
        acks = self.finish_producers(producers, count)
        figure(f"producers done {time.time() - began:.1f}s after they started")
        self.report_stalls(acks, [killed_at], ["before the kill", "after"])
        result = self.verify_topic(count)
        figure(f"records per partition and producer: {result['per_partition']}")

    def test_rolling_restart_under_load(self) -> None:
        """Restart every node in turn with SIGTERM; the producers never lose a record."""
        count = 75 * RATE  # enough load for three restarts even on a busy machine
        began = time.time()
        producers = self.start_producers(count)
        time.sleep(6)
        stops: list[float] = []
        for rack in ("a", "b", "c"):
            old = next(n for n in self.live_nodes() if n.environment["GATEWAY_RACK_ID"] == rack)
            self.assert_running(producers.values(), f"before rack {rack} restarted")
            connections = established_connections(old)
            stops.append(time.time())
            code = self.terminate(old)
            stopped = time.time() - stops[-1]
            # twistd ends by re-raising the SIGTERM it handled.
            self.assertIn(code, (0, -signal.SIGTERM), f"node {rack} exit code\n{old.log_tail()}")
            starting = time.time()
            new = self.gc.add(rack)
            started = time.time() - starting
            handed_out = self.wait_until_handed_out(self.live_nodes(), f"the new rack-{rack} node")
            figure(
                f"rack {rack}: SIGTERM to exit (leave, drain {connections} client connections) "
                f"{stopped:.2f}s; new node listening after {started:.2f}s (ports "
                f"{new.port_start}+, old {old.port_start}+), handed out by every node "
                f"{handed_out:.2f}s later"
            )
        done = time.time()
        self.assert_running(producers.values(), "before the last restart was over")
        acks = self.finish_producers(producers, count)
        # Every old node is gone: the producers carried on through the new ones.
        replacements = {port for node in self.live_nodes() for port in node.ports}
        for client in producers.values():
            reached = {port for _, port in connected_addresses(client.trace)}
            self.assertTrue(reached & replacements, f"{client.name} never used a new node")
        figure(
            f"restarts took {done - stops[0]:.1f}s; producers done "
            f"{time.time() - began:.1f}s after they started"
        )
        self.report_stalls(
            acks, stops, ["before", "restarting a", "restarting b", "restarting c and after"]
        )
        result = self.verify_topic(count)
        figure(f"records per partition and producer: {result['per_partition']}")
