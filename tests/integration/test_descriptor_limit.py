"""
Issue 12: a real C{twistd kgateway} node at its file-descriptor limit.

The node runs under C{prlimit --nofile} with a small limit, in a gateway
cluster of its own, before the shared Kafka cluster.  Clients open TCP
connections to its Kafka ports (each costs the node two descriptors: the
client's and its broker leg's) in bursts until the node runs out: its log
then has one warning (not a line per refused client), C{/health/ready}
answers 503 saying it is saturated, and once the clients close it is ready
again and a real client gets metadata through it, never reaching a broker.
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from twisted.trial.unittest import TestCase

from harness.connect_audit import assert_never_connected, audited_command, connected_addresses
from harness.gateway_process import GatewayProcess
from tests.integration.environment import CLIENTS, shared
from tests.integration.test_java_clients import unique

#: The node's open-files limit: enough to start and serve a few dozen clients.
NOFILE = 160
WARNING = "Out of file descriptors"


class LimitedGateway(GatewayProcess):
    """A node whose open-files limit is C{nofile} (soft and hard)."""

    nofile = NOFILE

    def command(self) -> list[str]:
        return ["prlimit", f"--nofile={self.nofile}:{self.nofile}", "--", *super().command()]


def ready(node: GatewayProcess) -> tuple[int, dict[str, object]] | None:
    """C{/health/ready}'s status and answer, or None when the node did not take the request."""
    try:
        status, body = node.api("GET", "/health/ready")
    except OSError:
        return None
    return status, body if isinstance(body, dict) else {"body": body}


def wait_for(check: Callable[[], Any], timeout: float, what: str, node: GatewayProcess) -> Any:
    """C{check}'s first true answer; fails with the node's log after C{timeout}."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = check()
        if result:
            return result
        time.sleep(0.5)
    raise AssertionError(f"{what} not within {timeout:.0f} s; node log:\n{node.log_tail(60)}")


class DescriptorLimitTests(TestCase):
    def setUp(self) -> None:
        self.env = shared()
        name = unique("nofile")
        self.node = LimitedGateway(
            self.env.cluster.bootstrap_servers,
            self.env.workdir / f"{name}.log",
            env={
                "GATEWAY_CLUSTER_ID": name,
                "GATEWAY_GROUP_SESSION_TIMEOUT_MS": "6000",
                "GATEWAY_GROUP_HEARTBEAT_INTERVAL_MS": "200",
            },
        )
        self.node.start(timeout=120)
        self.addCleanup(self.node.stop)
        self.clients: list[socket.socket] = []
        self.addCleanup(self._close_clients)

    def _close_clients(self) -> None:
        for client in self.clients:
            client.close()
        self.clients.clear()

    def _burst(self, count: int) -> None:
        port = self.node.port_start  # broker 1's port
        for _ in range(count):
            client = socket.socket()
            client.settimeout(5)
            client.connect(("127.0.0.1", port))
            self.clients.append(client)

    def test_saturated_then_ready_again(self) -> None:
        node = self.node
        wait_for(
            lambda: (answer := ready(node)) is not None and answer[0] == 200,
            120,
            "the node ready",
            node,
        )

        # Bursts of connections until the node runs out of descriptors.
        began = time.monotonic()
        for _ in range(30):
            self._burst(20)
            time.sleep(1)
            if WARNING in node.log_since_start():
                break
        else:
            raise AssertionError(
                f"{len(self.clients)} connections and no warning; node log:\n{node.log_tail(60)}"
            )
        saturated_at = time.monotonic()
        opened = len(self.clients)
        # More clients while it lasts: each is refused, none is another line.
        # Between bursts the node has a few descriptors free (those of the
        # clients it just closed), so /health/ready can answer; it stays
        # saturated until DESCRIPTOR_HEADROOM are free at a check (each second),
        # which a burst's refusals alone may reach.  So /health/ready is asked
        # straight after each burst, while the burst holds the node at its limit.
        answers: list[tuple[int, dict[str, object]]] = []
        for _ in range(10):
            self._burst(20)
            for _ in range(10):
                answer = ready(node)
                if answer is not None:
                    answers.append(answer)
                    if answer[0] == 503:
                        break
                time.sleep(0.05)
            if answers and answers[-1][0] == 503:
                break
        self.assertTrue(answers, f"/health/ready never answered; node log:\n{node.log_tail(60)}")
        status, body = answers[-1]
        self.assertEqual(status, 503, answers)
        reasons = body.get("reasons", [])
        assert isinstance(reasons, list)
        self.assertTrue(
            any(str(r).startswith("saturated: out of file descriptors (EMFILE)") for r in reasons),
            body,
        )

        log = node.log_since_start()
        warnings = [line for line in log.splitlines() if WARNING in line]
        lasted = time.monotonic() - saturated_at
        # One line when it began, at most one more per 10 s while it lasts.
        self.assertGreaterEqual(len(warnings), 1)
        self.assertLessEqual(len(warnings), 1 + int(lasted // 10), warnings)
        self.assertIn(f"ulimit -n, now {NOFILE}", warnings[0])
        # Twisted's line per refused client is not there.
        self.assertNotIn("EMFILE recovery", log)
        self.assertNotIn("Could not accept new connection (EMFILE)", log)

        # Every client leaves: ready again once descriptors are free.
        self._close_clients()
        wait_for(
            lambda: (answer := ready(node)) is not None and answer[0] == 200,
            120,
            "the node ready again",
            node,
        )
        self.assertIn("File descriptors free again", node.log_since_start())

        # And it serves: a real client gets metadata through it, never reaching a broker.
        trace = self.env.workdir / f"{node.port_start}-after-saturation.strace"
        result = self._run_client(trace)
        self.assertEqual(result.returncode, 0, result.stderr[-3000:])
        assert_never_connected(trace, self.env.forbidden_ports)
        self.assertIn(
            node.port_start, {port for _, port in connected_addresses(trace)}, "not via the node"
        )
        metadata = json.loads(result.stdout)
        self.assertTrue(all(p in node.ports for _, _, p in metadata["brokers"]), metadata)
        print(
            f"\nsaturated after {saturated_at - began:.1f} s and {opened} connections; "
            f"{len(warnings)} warning line(s) over {lasted:.1f} s"
        )

    def _run_client(self, trace: Path) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            audited_command(
                [
                    sys.executable,
                    str(CLIENTS / "kp_first_metadata.py"),
                    "--bootstrap",
                    f"127.0.0.1:{self.node.port_start}",
                    "--topic",
                    "__consumer_offsets",
                    "--timeout",
                    "30",
                ],
                trace,
            ),
            capture_output=True,
            text=True,
            timeout=90,
        )
