"""
Hostile and careless clients against a real node in front of real Kafka
(issue 12): half-sent requests end, a non-reading consumer costs the node a
few reads, a refused request closes only after the answers before it, and
an idle connection is closed.

The node runs with short limits (3 s) so the tests are quick; the clients
are raw sockets in a process of their own (C{clients/raw_hostile.py}), run
under strace like every other client: none may reach a broker.
"""

from __future__ import annotations

import atexit
import json
import uuid
from typing import Any

from twisted.trial.unittest import TestCase

from harness.gateway_process import GatewayProcess
from tests.integration.environment import Environment, shared

MIB = 1 << 20


_shared: Environment | None = None


def hostile_environment() -> Environment:
    """The shared cluster with a node of this module's own (short limits), started once."""
    global _shared
    if _shared is None:
        base = shared()
        node = GatewayProcess(
            base.cluster.bootstrap_servers,
            base.workdir / f"hostile-{uuid.uuid4().hex[:6]}.log",
            env={
                "GATEWAY_CLUSTER_ID": f"hostile-{uuid.uuid4().hex[:8]}",
                "GATEWAY_REQUEST_RECEIVE_TIMEOUT_MS": "3000",
                "GATEWAY_CONNECTIONS_MAX_IDLE_MS": "3000",
                "GATEWAY_MAX_BUFFERED_BYTES": str(16 * MIB),
            },
        )
        node.start(timeout=90)
        atexit.register(node.stop)
        _shared = Environment(base.cluster, node, base.workdir)
    return _shared


class HostileClientTests(TestCase):
    env: Environment
    node: GatewayProcess

    def setUp(self) -> None:
        self.env = hostile_environment()
        self.node = self.env.gateway

    def raw(self, *args: str, timeout: float = 90) -> Any:
        result = self.env.python_client("raw_hostile.py", *args, timeout=timeout)
        return json.loads(result.stdout.strip().splitlines()[-1])

    def metric(self, name: str) -> float:
        _, text = self.node.api("GET", "/metrics")
        for line in str(text).splitlines():
            if line.startswith(name + " "):
                return float(line.rsplit(" ", 1)[1])
        raise AssertionError(f"{name} not in /metrics")

    def test_half_sent_requests_end(self) -> None:
        """
        Eight connections send 4 MiB of a frame claiming 100 MiB (kept whole:
        SaslAuthenticate) and go silent: the node holds them within its 16 MiB
        budget, then closes each once its frame is 3 s old, and holds nothing.
        """
        before = self.metric("kgateway_request_frames_timed_out_total")
        got = self.raw("partial", "--count", "8", "--sent", str(4 * MIB), "--wait", "20")
        self.assertEqual(got["still_open"], 0, got)
        self.assertEqual(len(got["closed_after"]), 8)
        # Closed by the deadline (3 s after the frame began), not at once, not never.
        self.assertTrue(all(2.5 <= seconds <= 12 for seconds in got["closed_after"]), got)
        self.assertEqual(self.metric("kgateway_request_frames_timed_out_total") - before, 8)
        self.assertEqual(self.metric("kgateway_buffered_bytes"), 0)
        # Never more than the budget and one read per connection.
        self.assertLessEqual(self.metric("kgateway_buffered_bytes_peak"), 16 * MIB + 8 * 65536)
        self.assertIn("a request frame started", self.node.log_tail(200))

    def test_non_reading_fetch_client_bounded(self) -> None:
        """
        A consumer pipelines ten Fetch requests for 12 MiB of records and reads
        nothing for 5 s: the node holds a few reads at most; then it reads and
        every answer is whole and in order.
        """
        topic = f"hostile-fetch-{uuid.uuid4().hex[:8]}"
        self.env.python_client(
            "kp_produce.py",
            "--topic",
            topic,
            "--partitions",
            "1",
            "--count",
            "24",
            "--value-size",
            str(512 * 1024),
            "--acks",
            "1",
            timeout=120,
        )
        got = self.raw(
            "fetch",
            "--topic",
            topic,
            "--requests",
            "10",
            "--pause",
            "5",
            "--metrics-url",
            f"{self.node.api_url}/metrics",
            "--auth",
            ":".join(self.node.api_auth),
        )
        self.assertLessEqual(max(got["buffered_samples"]), 2 * MIB, got["buffered_samples"])
        answers = got["answers"]
        self.assertEqual([a["correlation_id"] for a in answers], list(range(1, 11)))
        self.assertEqual({a["error_code"] for a in answers}, {0})
        self.assertTrue(all(a["records_bytes"] >= 8 * MIB for a in answers), answers)

    def test_refused_version_closes_after_the_answers_before_it(self) -> None:
        """DescribeQuorum v2 in the middle: the two answers before it arrive, then the close."""
        got = self.raw("pipeline", "--over-key", "55", "--over-version", "2", "--wait", "20")
        self.assertEqual([cid for cid, _ in got["answered"]], [1, 2], got)
        self.assertTrue(got["closed"], got)

    def test_api_versions_above_the_offer_is_answered(self) -> None:
        """ApiVersions v99 in the middle is answered UNSUPPORTED_VERSION, in its place."""
        got = self.raw("pipeline", "--over-key", "18", "--over-version", "99", "--wait", "20")
        self.assertEqual(got["answered"], [[1, 0], [2, 0], [3, 35], [4, 0]], got)
        self.assertFalse(got["closed"], got)

    def test_idle_connection_closed(self) -> None:
        before = self.metric("kgateway_connections_closed_idle_total")
        got = self.raw("idle", "--wait", "20")
        self.assertIsNotNone(got["closed_after"])
        self.assertTrue(2.5 <= got["closed_after"] <= 10, got)
        self.assertGreaterEqual(self.metric("kgateway_connections_closed_idle_total") - before, 1)
