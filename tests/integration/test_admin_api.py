"""
The admin API over real HTTP, on a running 2-node gateway cluster in front of
the shared Kafka cluster: both nodes give the same cluster view and mapping,
known traffic shows up in /metrics, the CLI works against a real node, and
schemathesis checks the real server against its own OpenAPI document.
"""

from __future__ import annotations

import base64
import json
import os
import socket
import struct
import subprocess
import sys
import urllib.error
import urllib.request
from typing import Any

from kafka.protocol.metadata import MetadataRequest
from prometheus_client.parser import text_string_to_metric_families
from twisted.trial.unittest import TestCase

from harness import REPO_ROOT
from harness.gateway_process import GatewayProcess
from harness.probe import recv_exactly

from .environment import shared
from .gateway_cluster import GatewayCluster, SharedByTests

RACK_OF_BROKER = {1: "a", 2: "b", 3: "c"}


def http_get(
    node: GatewayProcess, path: str, auth: tuple[str, str] | None | bool = True
) -> tuple[int, bytes, Any]:
    """GET C{path} from the node's admin API: status code, body, and headers."""
    request = urllib.request.Request(node.api_url + path)
    credentials = node.api_auth if auth is True else auth or None
    if credentials:
        token = base64.b64encode(":".join(credentials).encode()).decode()
        request.add_header("Authorization", f"Basic {token}")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, response.read(), response.headers
    except urllib.error.HTTPError as e:
        return e.code, e.read(), e.headers


def get_json(node: GatewayProcess, path: str, **kwargs: Any) -> Any:
    code, body, _ = http_get(node, path, **kwargs)
    assert code == 200, f"{path}: HTTP {code}: {body!r}"
    return json.loads(body)


def metric_samples(node: GatewayProcess) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """The node's /metrics, by sample name and labels."""
    code, body, _ = http_get(node, "/metrics")
    assert code == 200, code
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(body.decode())
        for sample in family.samples
    }


def metadata_over(sock: socket.socket, correlation_id: int, client_id: str) -> None:
    """Send a Metadata request for no topics and read its whole response."""
    request = MetadataRequest[12](topics=[], allow_auto_topic_creation=False)
    request.with_header(correlation_id=correlation_id, client_id=client_id)
    sock.sendall(request.encode(header=True, framed=True))
    (size,) = struct.unpack(">i", recv_exactly(sock, 4))
    recv_exactly(sock, size)


def _two_nodes() -> GatewayCluster:
    # The nodes' direct checks of each other are off: these tests count a node's connections
    # and requests exactly, and a check is a connection to a peer's Kafka port (with its own
    # broker leg) that reconnects after a miss. tests/integration/test_peer_failover.py
    # tests the checks and the roster they report.
    return GatewayCluster.ready(
        shared(),
        ("a", "b"),
        lambda node: (
            http_get(node, "/health/ready", auth=False)[0] == 200
            and len(get_json(node, "/api/v1/cluster")["members"]) == 2
        ),
        "to be ready in a 2-member cluster",
        GATEWAY_PEER_CHECK_INTERVAL_MS="0",
    )


#: One 2-node gateway cluster (racks a and b) for all the tests of this module.
TWO_NODES = SharedByTests(_two_nodes, GatewayCluster.stop)


class AdminApiTests(TestCase):
    """Two nodes, racks a and b, shared by the tests (starting them is most of the time)."""

    def setUp(self) -> None:
        self.gc = TWO_NODES.acquire(self)
        self.a, self.b = self.gc.nodes

    def test_both_nodes_give_the_same_cluster_view_and_mapping(self) -> None:
        views = {}
        for node in (self.a, self.b):
            cluster = get_json(node, "/api/v1/cluster")
            answered = cluster.pop("answered_by")
            self.assertEqual(
                (answered["host"], answered["port_start"], answered["rack"]),
                (node.advertised_host, node.port_start, node.environment["GATEWAY_RACK_ID"]),
            )
            # Which roster each node hands out is its own: both the group's.
            roster = cluster.pop("roster")
            self.assertEqual((roster["source"], roster["since"]), ("group", None), roster)
            views[node.log_path.name] = cluster
        view_a, view_b = views.values()
        self.assertEqual(view_a, view_b)
        self.assertEqual(
            {(m["host"], m["port_start"], m["port_count"], m["rack"]) for m in view_a["members"]},
            {
                (n.advertised_host, n.port_start, n.port_count, r)
                for n, r in ((self.a, "a"), (self.b, "b"))
            },
        )
        self.assertEqual(
            {(b["id"], b["rack"]) for b in view_a["brokers"]}, set(RACK_OF_BROKER.items())
        )
        self.assertEqual(view_a["cluster_id"], self.gc.name)

        mapping_a = get_json(self.a, "/api/v1/mapping")
        self.assertEqual(mapping_a, get_json(self.b, "/api/v1/mapping"))
        self.assertEqual(mapping_a["mode"], "rack-aware")
        by_broker = {entry["broker_id"]: entry for entry in mapping_a["brokers"]}
        ports = {
            broker: {c["port"] for c in entry["candidates"]} for broker, entry in by_broker.items()
        }
        # Rack a's broker on node a, rack b's on node b, rack c's (no node) on either.
        self.assertEqual(ports[1], {self.a.port_for(1)})
        self.assertEqual(ports[2], {self.b.port_for(2)})
        self.assertEqual(ports[3], {self.a.port_for(3), self.b.port_for(3)})
        self.assertEqual([by_broker[b]["rack_local"] for b in (1, 2, 3)], [True, True, False])
        # What metadata requests really hand out stays within the candidates.
        for via in (self.a, self.b):
            for _ in range(4):
                for broker, node in self.gc.mapping(via).items():
                    self.assertIn(node.port_for(broker), ports[broker])

        rack_c = get_json(self.b, "/api/v1/mapping?rack=c")
        self.assertEqual([entry["broker_id"] for entry in rack_c["brokers"]], [3])
        self.assertEqual(http_get(self.b, "/api/v1/mapping?rack=nowhere")[0], 404)

    def test_health_and_auth_over_http(self) -> None:
        self.assertEqual(
            json.loads(http_get(self.a, "/health/live", auth=False)[1]), {"status": "live"}
        )
        for path in ("/api/v1/cluster", "/metrics", "/versions", "/openapi.json"):
            code, body, headers = http_get(self.a, path, auth=False)
            self.assertEqual(code, 401, path)
            self.assertEqual(headers["WWW-Authenticate"], 'Basic realm="kgateway"')
            self.assertEqual(http_get(self.a, path, auth=(self.a.api_auth[0], "wrong"))[0], 401)
        # Each node has its own password; a node's user is not another's.
        self.assertEqual(http_get(self.b, "/versions", auth=self.a.api_auth)[0], 401)
        log = self.a.log_path.read_text()
        self.assertNotIn(self.a.api_auth[1], log)
        self.assertIn("Admin API on http://127.0.0.1:", log)

    def test_known_traffic_is_counted(self) -> None:
        """Five Metadata requests on two connections to node a: counted exactly."""
        metadata = (("api", "Metadata"), ("api_key", "3"))
        before, before_b = metric_samples(self.a), metric_samples(self.b)
        with socket.create_connection(("127.0.0.1", self.a.port_for(2)), timeout=10) as one:
            for correlation_id in range(3):
                metadata_over(one, correlation_id, "it-admin-api")
            with socket.create_connection(("127.0.0.1", self.a.port_for(1)), timeout=10) as two:
                for correlation_id in range(2):
                    metadata_over(two, correlation_id, "it-other")
                connections = get_json(self.a, "/api/v1/connections")["connections"]
                mine = {c["client_id"]: c for c in connections}
                self.assertEqual(set(mine), {"it-admin-api", "it-other"})
                self.assertEqual(
                    (mine["it-admin-api"]["port"], mine["it-admin-api"]["broker_id"]),
                    (self.a.port_for(2), 2),
                )
                self.assertEqual(mine["it-admin-api"]["in_flight"], 0)
                self.assertGreater(mine["it-admin-api"]["bytes_to_client"], 0)
                live = metric_samples(self.a)
                self.assertEqual(live[("kgateway_client_connections", ())], 2)
                self.assertEqual(live[("kgateway_broker_connections", ())], 2)
        after = metric_samples(self.a)

        def delta(name: str, labels: tuple[tuple[str, str], ...] = ()) -> float:
            return after.get((name, labels), 0) - before.get((name, labels), 0)

        self.assertEqual(delta("kgateway_requests_total", metadata), 5)
        self.assertEqual(delta("kgateway_rewritten_responses_total", metadata), 5)
        self.assertEqual(delta("kgateway_request_latency_seconds_count", metadata), 5)
        self.assertGreater(delta("kgateway_request_latency_seconds_sum", metadata), 0)
        self.assertEqual(delta("kgateway_client_connections_accepted_total"), 2)
        self.assertEqual(delta("kgateway_broker_connections_opened_total"), 2)
        for direction in ("from_client", "to_broker", "from_broker", "to_client"):
            self.assertGreater(delta("kgateway_bytes_total", (("direction", direction),)), 0)
        self.assertEqual(after[("kgateway_cluster_members", ())], 2)
        # Node b saw none of it.
        self.assertEqual(
            metric_samples(self.b).get(("kgateway_requests_total", metadata), 0),
            before_b.get(("kgateway_requests_total", metadata), 0),
        )
        # Open and close are both in the log, with the close's reason.
        log = self.a.log_path.read_text()
        self.assertIn("connected on the port of broker 2; relaying to", log)
        self.assertIn("client closed the connection", log)

    def test_cli_against_a_real_node(self) -> None:
        environment = {
            **os.environ,
            "PYTHONPATH": str(REPO_ROOT),
            "KGATEWAY_URL": self.b.api_url,
            "KGATEWAY_USER": self.b.api_auth[0],
            "KGATEWAY_PASSWORD": self.b.api_auth[1],
        }

        def kgateway(*args: str) -> subprocess.CompletedProcess[str]:
            return subprocess.run(
                [sys.executable, "-m", "kgateway.api.cli", *args],
                capture_output=True,
                text=True,
                timeout=60,
                env=environment,
            )

        status = kgateway("status")
        self.assertEqual((status.returncode, status.stderr), (0, ""))
        self.assertIn("ready     yes", status.stdout)
        self.assertIn("members (2)", status.stdout)
        mapping = kgateway("mapping")
        self.assertEqual(mapping.returncode, 0, mapping.stderr)
        self.assertIn(f"127.0.0.1:{self.b.port_for(2)}", mapping.stdout)
        connections = kgateway("--json", "connections")
        self.assertEqual(connections.returncode, 0, connections.stderr)
        self.assertIn("connections", json.loads(connections.stdout))
        wrong = kgateway("--password", "wrong", "--user", "x", "status")
        self.assertEqual(wrong.returncode, 1)
        self.assertEqual(len(wrong.stderr.splitlines()), 1)
        self.assertIn("refused the credentials (401)", wrong.stderr)

    def test_openapi_conformance(self) -> None:
        """schemathesis: the real server against the document it serves."""
        from hypothesis import HealthCheck, Phase, given, settings
        from schemathesis.core.result import Err
        from schemathesis.openapi import from_dict
        from schemathesis.specs.openapi.checks import positive_data_acceptance

        schema = from_dict(get_json(self.a, "/openapi.json"))
        checked = []
        for result in schema.get_all_operations():
            if isinstance(result, Err):  # the document has an operation it cannot read
                raise result.err()
            operation = result.ok()
            # Whether an interceptor's plugin and config are valid is for the installed
            # plugins to say, which no schema can: a schema-valid PUT may rightly get 400.
            excluded = [positive_data_acceptance] if operation.method.upper() == "PUT" else []

            # A handful of examples each keeps this to seconds; derandomised so
            # a failure is reproducible.
            @given(case=operation.as_strategy())
            @settings(
                max_examples=8,
                deadline=None,
                database=None,
                derandomize=True,
                suppress_health_check=list(HealthCheck),
                phases=[Phase.explicit, Phase.generate],
            )
            def conforms(case: Any) -> None:
                case.call_and_validate(
                    base_url=self.a.api_url,
                    auth=self.a.api_auth,
                    excluded_checks=excluded,  # noqa: B023 - run within this iteration
                )

            conforms()
            checked.append(operation.label)
        methods = {"get", "put", "post", "patch", "delete"}
        operations = sum(len(methods & set(item)) for item in schema.raw_schema["paths"].values())
        self.assertEqual(len(checked), operations)
