"""
External load balancing (C{GATEWAY_FEATURE_FLAGS_INTERNAL_LOAD_BALANCING=false}) behind a
real HAProxy.

Three gateway nodes of one gateway cluster share one port range, each bound to its own
loopback address (127.0.0.2, .3, .4) and each advertising 127.0.0.1, where HAProxy listens on
the same range and balances every port over the same port of all three nodes.  Clients know
only 127.0.0.1: they run under strace and fail if they ever connect anywhere but 127.0.0.1
on the gateway range (so never to a broker, a controller, or a node's own address).

The brokers of the shared cluster are 1, 2, 3.
"""

from __future__ import annotations

import atexit
import contextlib
import itertools
import json
import os
import re
import socket
import subprocess
import sys
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from twisted.trial.unittest import TestCase

from harness.connect_audit import assert_never_connected, audited_command
from harness.gateway_process import GatewayProcess
from harness.haproxy import HAProxy, available
from harness.ports import free_port_range
from harness.probe import advertised_brokers

from .environment import CLIENTS, Environment, shared

LB_HOST = "127.0.0.1"
NODE_HOSTS = ("127.0.0.2", "127.0.0.3", "127.0.0.4")
PORT_COUNT = 6
MIN_BROKER_ID = 1
BROKER_IDS = (1, 2, 3)
CLIENT_TIMEOUT = 45.0

#: The client leg's line when a client (here: HAProxy's server side) closes its connection.
_CLIENT_CLOSED = re.compile(
    r"client (?P<peer>\S+) \(broker (?P<broker>\d+) at [^)]*\): client closed the connection "
    r"\(.*\); (?P<up>\d+) bytes up, (?P<down>\d+) bytes down"
)
_counter = itertools.count()


def common_free_range(count: int, hosts: tuple[str, ...]) -> int:
    """A range of C{count} ports free on every one of C{hosts}."""
    for _ in range(50):
        first = free_port_range(count, hosts[0])
        with contextlib.ExitStack() as stack:
            try:
                for host, port in itertools.product(hosts[1:], range(first, first + count)):
                    stack.enter_context(socket.socket()).bind((host, port))
            except OSError:
                continue  # taken on another address; free_port_range moves on with time
        return first
    raise AssertionError(f"no {count} ports free on all of {hosts}")


@dataclass
class LoadBalancedGateway:
    """Three external-LB gateway nodes behind HAProxy, and audited clients against them."""

    env: Environment
    workdir: Path
    port_start: int
    nodes: list[GatewayProcess] = field(default_factory=list)
    haproxy: HAProxy | None = None

    @classmethod
    def start(cls, env: Environment) -> LoadBalancedGateway:
        name = f"extlb{uuid.uuid4().hex[:8]}"
        workdir = env.workdir / name
        workdir.mkdir(parents=True)
        port_start = common_free_range(PORT_COUNT, (LB_HOST, *NODE_HOSTS))
        self = cls(env, workdir, port_start)
        try:
            for index, host in enumerate(NODE_HOSTS):
                node = GatewayProcess(
                    env.cluster.bootstrap_servers,
                    workdir / f"node{index}-{host}.log",
                    port_start=port_start,
                    port_count=PORT_COUNT,
                    min_broker_id=MIN_BROKER_ID,
                    advertised_host=LB_HOST,
                    bind_host=host,
                    env={
                        "GATEWAY_CLUSTER_ID": name,
                        "GATEWAY_FEATURE_FLAGS_INTERNAL_LOAD_BALANCING": "false",
                    },
                )
                self.nodes.append(node)
                node.start()  # from this thread: PR_SET_PDEATHSIG follows the forking thread
            self.haproxy = HAProxy(LB_HOST, list(self.ports), list(NODE_HOSTS), workdir)
            self.haproxy.start()
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        if self.haproxy is not None:
            self.haproxy.stop()
        for node in self.nodes:
            node.stop()

    @property
    def lb(self) -> HAProxy:
        assert self.haproxy is not None
        return self.haproxy

    @property
    def ports(self) -> range:
        return range(self.port_start, self.port_start + PORT_COUNT)

    @property
    def bootstrap(self) -> str:
        return f"{LB_HOST}:{self.port_start}"

    def expected_brokers(self) -> dict[int, tuple[str, int]]:
        """What every broker must look like to a client: the load balancer at the broker's port."""
        return {b: (LB_HOST, self.port_start + b - MIN_BROKER_ID) for b in BROKER_IDS}

    def logs(self) -> str:
        parts = [f"--- {n.log_path.name}\n{n.log_tail(12)}" for n in self.nodes]
        return "\n".join([*parts, f"--- haproxy\n{self.lb.log_tail(12)}"])

    # -- counting traffic per node ------------------------------------------------------

    def marks(self) -> tuple[list[int], int]:
        """Where every node's log and HAProxy's log end now."""
        sizes = [n.log_path.stat().st_size if n.log_path.exists() else 0 for n in self.nodes]
        return sizes, len(self.lb.log_text())

    def served(self, since: list[int]) -> list[list[re.Match[str]]]:
        """Per node: the closed client connections that carried requests, after C{since}.

        HAProxy's health checks connect and close without sending a byte, so they are left out.
        """
        served = []
        for node, offset in zip(self.nodes, since, strict=True):
            with open(node.log_path, "rb") as log:
                log.seek(offset)
                text = log.read().decode(errors="replace")
            served.append([m for m in _CLIENT_CLOSED.finditer(text) if int(m["up"]) > 0])
        return served

    # -- audited clients ----------------------------------------------------------------

    def run(
        self, name: str, command: list[str], timeout: float
    ) -> subprocess.CompletedProcess[str]:
        """Run a client under strace; fail unless it only ever connected to the load balancer."""
        trace = self.workdir / f"{next(_counter):03d}-{name}.strace"
        result = subprocess.run(
            audited_command(command, trace),
            capture_output=True,
            text=True,
            timeout=timeout,
            env=dict(os.environ),
        )
        if result.returncode != 0:
            raise AssertionError(
                f"{name} exited with {result.returncode}\nstdout:\n{result.stdout[-3000:]}\n"
                f"stderr:\n{result.stderr[-3000:]}\n{self.logs()}"
            )
        # Never a broker or controller port, on any address...
        calls = assert_never_connected(trace, self.env.forbidden_ports, host=None)
        # ...and nothing but the load balancer's address on the gateway range.
        stray = sorted(
            {(c.ip, c.port) for c in calls if c.ip != LB_HOST or c.port not in self.ports}
        )
        if stray:
            raise AssertionError(f"{name} connected outside {LB_HOST}:{self.ports}: {stray}")
        if not any(c.port == self.port_start for c in calls):
            raise AssertionError(f"{name} never reached the bootstrap port {self.port_start}")
        return result

    def client(self, script: str, *args: str, **options: object) -> Any:
        """Run C{clients/<script>.py} against the load balancer; return the JSON it printed."""
        argv = ["--bootstrap", self.bootstrap, *args]
        for name, value in {**options, "timeout": CLIENT_TIMEOUT}.items():
            flag = "--" + name.replace("_", "-")
            argv += [flag] if value is True else [flag, str(value)]
        result = self.run(
            script, [sys.executable, str(CLIENTS / f"{script}.py"), *argv], CLIENT_TIMEOUT + 60
        )
        try:
            return json.loads(result.stdout.strip().splitlines()[-1])
        except (IndexError, ValueError) as error:
            raise AssertionError(
                f"{script} printed no JSON result ({error}):\n{result.stdout[-2000:]}\n"
                f"stderr:\n{result.stderr[-2000:]}"
            ) from None


def wait_for(condition: Callable[[], bool], what: str, timeout: float = 15.0) -> float:
    started = time.monotonic()
    while not condition():
        if time.monotonic() - started > timeout:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.1)
    return time.monotonic() - started


_shared: LoadBalancedGateway | None = None


def shared_lb(env: Environment) -> LoadBalancedGateway:
    """One load-balanced gateway for the tests that do not kill a node; stopped at exit."""
    global _shared
    if _shared is None:
        _shared = LoadBalancedGateway.start(env)
        atexit.register(_shared.stop)
    return _shared


class Checks:
    """Assertions shared by the test classes."""

    lb: LoadBalancedGateway

    def unique(self, what: str) -> str:
        return f"{what}-{uuid.uuid4().hex[:10]}"

    def create_topic(self, prefix: str, topic: str) -> None:
        created = self.lb.client(
            f"{prefix}_admin", "create-topic", "--replication", "3", topic=topic, partitions=3
        )
        assert sorted(created["partitions"]) == ["0", "1", "2"], created
        for state in created["partitions"].values():
            assert state["replicas"] == [1, 2, 3], created

    def produce_and_consume(self, producer: str, consumer: str, count: int) -> None:
        """Idempotent acks=all producer, then a group: every record once, in order per partition."""
        topic, group = self.unique(f"extlb-{producer}"), self.unique(f"extlb-{consumer}-group")
        self.create_topic(producer, topic)
        produced = self.lb.client(
            f"{producer}_produce", topic=topic, count=count, acks="all", idempotence="on",
            linger_ms=2,
        )  # fmt: skip
        assert produced["idempotent"], produced
        received = self.lb.client(
            f"{consumer}_consume", topic=topic, group=group, expect=count, settle=1
        )
        self.check_exactly_once_in_order(produced["sent"], received["records"], count)
        assert received["assignment"] == [0, 1, 2], received["assignment"]

    def check_exactly_once_in_order(
        self, sent: list[dict[str, Any]], received: list[dict[str, Any]], count: int
    ) -> None:
        counts = Counter(r["seq"] for r in received)
        duplicates = {seq: n for seq, n in counts.items() if n > 1}
        assert not duplicates, f"records delivered more than once: {duplicates}"
        assert sorted(counts) == list(range(count)), "records missing"
        by_seq = {r["seq"]: r for r in received}
        for record in sent:
            got = by_seq[record["seq"]]
            assert (got["p"], got["o"], got["len"], got["sha"]) == (
                record["p"], record["o"], record["len"], record["sha"]
            ), f"record {record['seq']}: sent {record}, got {got}"  # fmt: skip
        by_partition: dict[int, list[dict[str, Any]]] = defaultdict(list)
        for record in received:  # in the order the consumer saw them
            by_partition[record["p"]].append(record)
        assert sorted(by_partition) == [0, 1, 2], sorted(by_partition)
        for partition, records in by_partition.items():
            per_partition = count // 3 + (1 if partition < count % 3 else 0)
            assert [r["o"] for r in records] == list(range(per_partition)), f"p{partition} offsets"
            assert [r["seq"] for r in records] == list(range(partition, count, 3)), (
                f"p{partition} order"
            )

    def probe_every_node(self, probes: int) -> None:
        """Metadata through HAProxy's bootstrap port C{probes} times: always the load balancer's
        addresses, and (round robin) every node served some of the probes and logged them."""
        node_marks, lb_mark = self.lb.marks()
        for _ in range(probes):
            got = advertised_brokers(LB_HOST, self.lb.port_start)
            assert got == self.lb.expected_brokers(), got
        wait_for(
            lambda: (
                set(self.lb.lb.connections(lb_mark)) == {"n0", "n1", "n2"}
                and all(self.lb.served(node_marks))
            ),
            "the probes to reach all three nodes",
        )

    def spread(
        self, since: tuple[list[int], int], nodes: list[int]
    ) -> tuple[list[int], Counter[str]]:
        """Connections per node since C{since}, from the nodes' logs and from HAProxy's log;
        wait until the two agree (a client's last connections close as it exits)."""
        node_marks, lb_mark = since
        counts: list[int] = []
        by_server: Counter[str] = Counter()

        def agree() -> bool:
            nonlocal counts, by_server
            counts = [len(found) for found in self.lb.served(node_marks)]
            by_server = self.lb.lb.connections(lb_mark)
            return all(by_server[f"n{i}"] == counts[i] for i in nodes) and sum(counts) > 0

        try:
            wait_for(agree, "node logs and HAProxy's log to count the same connections", 10)
        except AssertionError as e:
            raise AssertionError(f"{e}: nodes {counts}, haproxy {dict(by_server)}") from None
        return counts, by_server


class ExternalLoadBalancingTests(Checks, TestCase):
    """Three nodes behind HAProxy: addresses, produce/consume with both libraries, spread."""

    def setUp(self) -> None:
        if not available():
            self.fail("haproxy is not installed: run scripts/setup (Debian package haproxy)")
        self.env = shared()
        self.lb = shared_lb(self.env)

    def test_metadata_names_only_the_load_balancer(self) -> None:
        """Metadata through HAProxy (every port, many times) and from each node directly says
        127.0.0.1 at port_start + id - min for every broker; so do DescribeCluster and
        FindCoordinator as kafka-python receives them through HAProxy."""
        expected = self.lb.expected_brokers()
        self.probe_every_node(30)
        for port in self.lb.ports:
            for _ in range(3):
                self.assertEqual(advertised_brokers(LB_HOST, port), expected, f"via LB :{port}")
        for node, host in zip(self.lb.nodes, NODE_HOSTS, strict=True):
            for port in node.ports:
                self.assertEqual(
                    advertised_brokers(host, port), expected, f"{node.log_path.name} :{port}"
                )

        topic, group = self.unique("extlb-meta"), self.unique("extlb-meta-group")
        self.create_topic("kp", topic)
        seen = self.lb.client("kp_metadata", topic=topic, group=group)
        for what in ("metadata_brokers", "cluster_brokers"):
            got = {b["id"]: (b["host"], b["port"]) for b in seen[what]}
            self.assertEqual(got, expected, what)
        coordinator = seen["admin_coordinator"]
        self.assertEqual(
            (coordinator["host"], coordinator["port"]), expected[int(coordinator["id"])]
        )
        joined = seen["consumer_coordinator"]  # id "coordinator-<broker id>"
        self.assertEqual(
            (joined["host"], joined["port"]), expected[int(joined["id"].rsplit("-", 1)[1])]
        )

    def check_library(self, prefix: str) -> None:
        since = self.lb.marks()
        self.produce_and_consume(prefix, prefix, 300)
        counts, by_server = self.spread(since, [0, 1, 2])
        print(f"\n    [{prefix}] client connections per node: {counts} (haproxy {dict(by_server)})")
        for index, count in enumerate(counts):
            self.assertGreater(count, 0, f"node {NODE_HOSTS[index]} served no {prefix} connection")

    def test_kafka_python_through_load_balancer(self) -> None:
        """kafka-python: topic, 300 idempotent acks=all records, a group reads each once in
        order; only 127.0.0.1 on the gateway range was ever connected to; all nodes served."""
        self.check_library("kp")

    def test_confluent_kafka_through_load_balancer(self) -> None:
        """The same with confluent-kafka (librdkafka)."""
        self.check_library("ck")


class NodeFailureTests(Checks, TestCase):
    """A node is SIGKILLed; new clients carry on through HAProxy."""

    def setUp(self) -> None:
        if not available():
            self.fail("haproxy is not installed: run scripts/setup (Debian package haproxy)")
        self.env = shared()
        self.lb = LoadBalancedGateway.start(self.env)
        self.addCleanup(self.lb.stop)

    def test_killed_node(self) -> None:
        """After SIGKILL of one node a new client still produces and consumes, through the
        two survivors only; metadata through HAProxy is unchanged."""
        probed = self.lb.marks()
        self.probe_every_node(6)  # the victim too serves connections through HAProxy
        # HAProxy logs a connection when it closes: wait until every probe's is logged, so
        # that no line after the kill is a connection the victim served before it.
        self.spread(probed, [0, 1, 2])
        victim = self.lb.nodes[1]
        victim.kill()
        killed_at = time.monotonic()
        since = self.lb.marks()
        # Within milliseconds, before two failed health checks can mark it DOWN, the victim
        # is still in the rotation: HAProxy's connection to it is refused and retried on a
        # live node, so the client never notices.
        for _ in range(3):
            self.assertEqual(
                advertised_brokers(LB_HOST, self.lb.port_start), self.lb.expected_brokers()
            )
        wait_for(lambda: self.lb.lb.retried(since[1]) > 0, "a connection retried after the kill")
        # A new client, started without waiting for the health checks.
        self.produce_and_consume("kp", "ck", 60)
        took = time.monotonic() - killed_at
        wait_for(lambda: self.lb.lb.is_down(NODE_HOSTS[1]), "HAProxy to mark n1 DOWN")
        retried = self.lb.lb.retried(since[1])
        print(f"\n    [figure] probes, topic, produce, consume after the kill: {took:.1f}s")
        print(f"    [kill] connections HAProxy retried on a live node: {retried}")
        counts, by_server = self.spread(since, [0, 2])
        print(f"    [kill] client connections per node: {counts} (haproxy {dict(by_server)})")
        # A connection HAProxy tried on the dead node is logged under it, with its retries,
        # whether or not the retry then reached a survivor; none was served by it.
        self.assertLessEqual(by_server["n1"], retried)
        self.assertEqual(counts[1], 0)
        self.assertGreater(counts[0], 0)
        self.assertGreater(counts[2], 0)
        for _ in range(6):
            self.assertEqual(
                advertised_brokers(LB_HOST, self.lb.port_start), self.lb.expected_brokers()
            )
