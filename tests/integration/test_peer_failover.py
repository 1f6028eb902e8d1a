"""
Gateway nodes checking each other directly (issue 12 item 4), and keeping the
cluster's shape while Kafka fails over (issue 16), under a producer and a consumer.

Three nodes in racks a, b, c front the shared 3-broker cluster, with the default group
session timeout (10 s). A confluent-kafka producer and consumer (``ck_flow.py``, under
strace) move numbered records through all three nodes while:

- one node is SIGKILLed and another SIGSTOPped: the surviving node's Metadata answers must
  stop naming each within a few seconds, long before the group would drop it, and name the
  stopped one again once it is continued;
- the broker that coordinates the gateway group is killed: every node must keep handing out
  all three nodes (each broker's rack-local node) throughout.

Nothing acked may be lost or duplicated, and the clients must never reach a broker.
The consumer's longest gap between records is printed for each disruption.
"""

from __future__ import annotations

import json
import signal
import socket
import struct
import sys
import time
import uuid
from pathlib import Path
from typing import Any

from kafka.protocol.metadata import FindCoordinatorRequest, FindCoordinatorResponse
from twisted.trial.unittest import TestCase

from harness.gateway_process import GatewayProcess
from harness.probe import advertised_brokers, recv_exactly

from . import test_failover
from .environment import CLIENTS, Environment, shared
from .gateway_cluster import GatewayCluster
from .test_failover import Client, figure
from .test_java_clients import create_topic, eventually, fully_replicated

PARTITIONS = 3
RATE = 200
#: The default session timeout: a node the checks did not drop would be handed out this long.
SESSION_TIMEOUT = 10.0
#: How soon a dead or stopped node must be gone from the survivors' answers.
LEFT_OUT_WITHIN = 4.0


def group_coordinator(bootstrap: str, group: str) -> int:
    """The broker id coordinating C{group}, asked of a broker directly (this is no client)."""
    host, port = bootstrap.split(",")[0].rsplit(":", 1)
    request = FindCoordinatorRequest[2](key=group, key_type=0)
    request.with_header(correlation_id=1, client_id="kgateway-test")
    with socket.create_connection((host, int(port)), timeout=5) as sock:
        sock.sendall(request.encode(header=True, framed=True))
        (size,) = struct.unpack(">i", recv_exactly(sock, 4))
        response = FindCoordinatorResponse.decode(recv_exactly(sock, size), version=2, header=True)
    assert response.error_code == 0, f"FindCoordinator({group}): error {response.error_code}"
    return int(response.node_id)


def longest_gap(times: list[float], since: float, until: float) -> float:
    """The longest gap (s) between consumed records whose later end lies in [since, until)."""
    ordered = sorted(times)
    gaps = [b - a for a, b in zip(ordered, ordered[1:], strict=False) if since <= b < until]
    return max(gaps, default=0.0)


class PeerFailoverTests(TestCase):
    """Three nodes, a producer and a consumer; nodes and a broker fail under them."""

    def setUp(self) -> None:
        self.env: Environment = shared()
        self.gc = GatewayCluster(
            self.env,
            extra_env={"GATEWAY_GROUP_SESSION_TIMEOUT_MS": str(int(SESSION_TIMEOUT * 1000))},
        )
        self.clients: list[Client] = []
        self.addCleanup(self.gc.stop)
        self.addCleanup(self._continue_nodes)
        self.addCleanup(self._reap_clients)
        for rack in ("a", "b", "c"):
            # More time than the harness's 30 s: the machine is shared with other Kafka runs.
            self.gc.add(rack, start=False).start(timeout=90)
        # test_failover's helpers, bound to this test's nodes and clients (the module, not
        # the class, is imported: trial would run every test of a class found here).
        self.helpers = test_failover.FailoverTests("run")
        self.helpers.env, self.helpers.gc, self.helpers.clients = self.env, self.gc, self.clients
        self.helpers.wait_until_handed_out(self.gc.nodes, "the three new nodes")
        self.topic = self.helpers.topic = f"peers-{uuid.uuid4().hex[:10]}"
        create_topic(self.env, self.topic, partitions=PARTITIONS, replication=3)
        eventually(
            lambda: fully_replicated(self.env, self.topic, PARTITIONS),
            30,
            f"{self.topic} fully replicated",
        )

    def _reap_clients(self) -> None:
        for client in self.clients:
            client.reap()

    def _continue_nodes(self) -> None:
        for node in self.gc.nodes:
            if node.pid is not None:
                node.send_signal(signal.SIGCONT)

    # -- helpers --------------------------------------------------------------------------

    def start_flow(self) -> tuple[Client, Path]:
        stop_file = self.env.workdir / self.gc.name / f"{self.topic}.stop"
        stop_file.parent.mkdir(parents=True, exist_ok=True)
        bootstrap = ",".join(node.bootstrap for node in self.gc.nodes)
        client = self.helpers.start_client(
            "flow",
            [
                sys.executable,
                str(CLIENTS / "ck_flow.py"),
                "--bootstrap",
                bootstrap,
                "--topic",
                self.topic,
                "--rate",
                str(RATE),
                "--stop-file",
                str(stop_file),
                "--timeout",
                "240",
            ],
        )
        eventually(
            lambda: True if client.out.read_text().startswith("ready") else None,
            60,
            "the first record to come back",
        )
        return client, stop_file

    def finish_flow(self, client: Client, stop_file: Path) -> dict[str, Any]:
        stop_file.touch()
        out = self.helpers.finish(client, 120)
        result: dict[str, Any] = json.loads(out.splitlines()[-1])
        summary = {k: v for k, v in result.items() if k != "consumed_at"}
        self.assertEqual(result["lost"], 0, summary)
        self.assertEqual(result["duplicates"], 0, summary)
        self.assertEqual(result["failure_count"], 0, summary)
        self.assertEqual(result["unflushed"], 0, summary)
        self.assertGreater(result["acked"], RATE, summary)
        return result

    def names_in_answers(self, via: GatewayProcess, broker: int, requests: int = 6) -> set[str]:
        """Which nodes (log names, or 'unknown:<port>') C{via}'s Metadata answers hand out."""
        seen: set[str] = set()
        for n in range(requests):
            answer = advertised_brokers(
                via.advertised_host, via.port_for(broker), client_id=f"probe-{n}"
            )
            for _, port in answer.values():
                owners = [node for node in self.gc.nodes if port in node.ports]
                seen.add(owners[0].log_path.name if owners else f"unknown:{port}")
        return seen

    def left_out_within(
        self, via: GatewayProcess, gone: GatewayProcess, broker: int, what: str
    ) -> float:
        """Seconds until C{via}'s answers no longer name C{gone}; fails past the limit."""
        started = time.monotonic()
        while time.monotonic() - started < SESSION_TIMEOUT:
            if gone.log_path.name not in self.names_in_answers(via, broker):
                took = time.monotonic() - started
                figure(f"{what}: left out of {via.log_path.name}'s answers after {took:.2f}s")
                self.assertLess(took, LEFT_OUT_WITHIN, f"{what} was handed out {took:.1f}s")
                return took
            time.sleep(0.05)
        raise AssertionError(
            f"{what}: still handed out after the session timeout\n{self.helpers.node_logs()}"
        )

    def peer_state(self, via: GatewayProcess, peer: GatewayProcess) -> dict[str, Any]:
        code, cluster = via.api("GET", "/api/v1/cluster")
        self.assertEqual(code, 200)
        [state] = [p for p in cluster["roster"]["peers"] if p["port"] in peer.ports]
        return dict(state)

    # -- the tests ------------------------------------------------------------------------

    def test_killed_and_stopped_nodes_are_left_out_within_seconds(self) -> None:
        """SIGKILL c, then SIGSTOP b: a stops handing each out at once, takes b back on SIGCONT."""
        a, b, c = self.gc.nodes
        client, stop_file = self.start_flow()
        time.sleep(2)

        killed_at = time.time()
        c.kill()
        self.left_out_within(a, c, 1, "SIGKILLed node c")
        self.assertIn("Gateway peer", a.log_since_start())
        time.sleep(3)

        assert b.pid is not None
        stopped_at = time.time()
        b.send_signal(signal.SIGSTOP)
        self.left_out_within(a, b, 1, "SIGSTOPped node b")
        state = self.peer_state(a, b)
        self.assertFalse(state["up"], state)
        self.assertEqual(self.names_in_answers(a, 1), {a.log_path.name})
        time.sleep(3)

        continued_at = time.time()
        b.send_signal(signal.SIGCONT)
        eventually(
            lambda: True if b.log_path.name in self.names_in_answers(a, 1) else None,
            10,
            "node b handed out again once it answers",
        )
        figure(f"node b handed out again {time.time() - continued_at:.2f}s after SIGCONT")
        self.helpers.assert_running([client], "after the node failures")
        time.sleep(3)

        result = self.finish_flow(client, stop_file)
        times = result["consumed_at"]
        figure(
            f"consumer stall: SIGKILL {longest_gap(times, killed_at, stopped_at):.2f}s, "
            f"SIGSTOP {longest_gap(times, stopped_at, continued_at):.2f}s, "
            f"{result['acked']} records acked and consumed, none lost or duplicated"
        )

    def test_killing_the_group_coordinator_keeps_the_whole_roster(self) -> None:
        """The gateway group's coordinator broker dies: every node keeps all three nodes."""
        group = f"kgateway_{self.gc.name}"
        coordinator = group_coordinator(self.env.cluster.bootstrap_servers, group)
        self.addCleanup(self.env.all_brokers_running)
        live = [info.node_id for info in self.env.cluster.brokers if info.node_id != coordinator]
        racks = {info.node_id: info.rack for info in self.env.cluster.brokers}
        client, stop_file = self.start_flow()
        time.sleep(2)

        killed_at = time.time()
        self.env.cluster.kill_broker(coordinator)
        sources: set[str] = set()
        deadline = time.monotonic() + 2 * SESSION_TIMEOUT
        while time.monotonic() < deadline:
            for via in self.gc.nodes:
                for broker in live:
                    answer = advertised_brokers(
                        via.advertised_host, via.port_for(broker), client_id="rack-probe"
                    )
                    for node_id, (_, port) in answer.items():
                        if node_id == coordinator:
                            continue
                        [owner] = [n for n in self.gc.nodes if port in n.ports]
                        # Rack-local throughout: broker in rack x is node x's.
                        self.assertEqual(
                            owner.environment["GATEWAY_RACK_ID"],
                            racks[node_id],
                            f"{via.log_path.name} handed out {owner.log_path.name} for broker "
                            f"{node_id} {time.time() - killed_at:.1f}s after the kill\n"
                            f"{self.helpers.node_logs()}",
                        )
                code, cluster = via.api("GET", "/api/v1/cluster")
                if code == 200 and cluster.get("roster"):
                    sources.add(cluster["roster"]["source"])
            time.sleep(0.2)
        figure(f"rosters in use after the coordinator broker {coordinator} died: {sorted(sources)}")
        self.assertNotIn("alone", sources)
        for node in self.gc.nodes:
            self.assertNotIn("handing out only this node", node.log_since_start())
        result = self.finish_flow(client, stop_file)
        figure(
            f"consumer stall after killing the coordinator broker: "
            f"{longest_gap(result['consumed_at'], killed_at, time.time()):.2f}s"
        )
