"""
Every admin API resource, in memory with StubTreq, over a real GatewayNode on
a fake reactor; every JSON answer is checked against the OpenAPI document.
"""

from __future__ import annotations

from typing import Any

from prometheus_client.parser import text_string_to_metric_families
from twisted.trial.unittest import SynchronousTestCase

from kgateway.api.openapi import DOCUMENT
from kgateway.api.status import versions
from kgateway.interfaces import PeerHealth
from kgateway.net import HostPort
from tests.unit.relay.fakes import ClientSide, metadata_request, metadata_response

from .fakes import AUTH, VIEWER, body, conforms, make_api_node

GUARDED = [
    "/",
    "/versions",
    "/metrics",
    "/openapi.json",
    "/api/v1/cluster",
    "/api/v1/mapping",
    "/api/v1/mapping?rack=a",
    "/api/v1/connections",
    "/api/v1/nothing-here",
    "/nothing-here",
]


class HealthTests(SynchronousTestCase):
    def test_live_needs_no_credentials(self) -> None:
        api = make_api_node(self, brokers_known=False)
        response = self.successResultOf(api.get("/health/live", auth=None))
        self.assertEqual(response.code, 200)
        self.assertEqual(conforms(self, "/health/live", response), {"status": "live"})

    def test_not_ready_until_kafka_ports_and_membership(self) -> None:
        api = make_api_node(self, brokers_known=False)
        response = self.successResultOf(api.get("/health/ready", auth=None))
        self.assertEqual(response.code, 503)
        data = conforms(self, "/health/ready", response)
        self.assertEqual(data["title"], "Not ready")
        self.assertEqual(
            data["reasons"],
            [
                "not connected to Kafka: no broker answered from boot:9092 yet",
                "not listening on its Kafka ports yet",
                "not a member of gateway cluster 'prod' (group kgateway_prod) yet",
            ],
        )
        self.assertEqual(data["message"], "; ".join(data["reasons"]))

        api.learn_brokers()
        response = self.successResultOf(api.get("/health/ready", auth=None))
        self.assertEqual(response.code, 200)
        self.assertEqual(
            conforms(self, "/health/ready", response),
            {"status": "ready", "roster": {"source": "group", "since": None, "peers": []}},
        )

    def test_not_ready_outside_the_group(self) -> None:
        api = make_api_node(self)
        api.membership.is_member = False
        response = self.successResultOf(api.get("/health/ready", auth=None))
        self.assertEqual(response.code, 503)
        self.assertEqual(
            conforms(self, "/health/ready", response)["reasons"],
            ["not a member of gateway cluster 'prod' (group kgateway_prod) yet"],
        )

    def test_not_ready_while_shutting_down(self) -> None:
        api = make_api_node(self)
        api.node.stopService()
        response = self.successResultOf(api.get("/health/ready", auth=None))
        self.assertEqual(response.code, 503)
        self.assertEqual(body(self, response)["reasons"], ["the node is shutting down"])


class AuthTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.api = make_api_node(self)

    def assertUnauthorized(self, path: str, auth: tuple[str, str] | None) -> None:
        response = self.successResultOf(self.api.get(path, auth=auth))
        self.assertEqual(response.code, 401, path)
        self.assertEqual(
            response.headers.getRawHeaders(b"www-authenticate"), [b'Basic realm="kgateway"']
        )
        # The same answer whatever was wrong: no detail.
        self.assertEqual(
            body(self, response),
            {"title": "Unauthorized", "message": "valid admin API credentials are required"},
        )

    def test_everything_but_health_needs_a_user(self) -> None:
        for path in GUARDED:
            self.assertUnauthorized(path, None)
            self.assertUnauthorized(path, ("ops", "wrong"))
            self.assertUnauthorized(path, ("nobody", AUTH[1]))
            self.assertUnauthorized(path, ("ops", AUTH[1] + "x"))
            self.assertUnauthorized(path, ("viewer", AUTH[1]))  # another user's password

    def test_any_configured_user_may_read(self) -> None:
        for auth in (AUTH, (VIEWER.username, VIEWER.password)):
            response = self.successResultOf(self.api.get("/api/v1/cluster", auth=auth))
            self.assertEqual(response.code, 200)

    def test_malformed_authorization(self) -> None:
        for header in (b"Basic !!!", b"Bearer abc", b"Basic", b"Basic b3Bz"):
            response = self.successResultOf(
                self.api.get("/versions", auth=None, headers={b"authorization": [header]})
            )
            self.assertEqual(response.code, 401, header)

    def test_metrics_open_when_not_secured(self) -> None:
        api = make_api_node(self, secured_metrics=False)
        self.assertEqual(self.successResultOf(api.get("/metrics", auth=None)).code, 200)
        self.assertEqual(self.successResultOf(api.get("/versions", auth=None)).code, 401)


class ResourceTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.api = make_api_node(self)

    def test_index(self) -> None:
        data = conforms(self, "/", self.successResultOf(self.api.get("/")))
        self.assertEqual(data["paths"], sorted(DOCUMENT["paths"]))

    def test_versions(self) -> None:
        response = self.successResultOf(self.api.get("/versions"))
        data = conforms(self, "/versions", response)
        self.assertEqual(data, versions())
        self.assertEqual(
            set(data["dependencies"]),
            {"twisted", "automat", "zope.interface", "kafka-python", "treq", "prometheus-client"},
        )

    def test_openapi(self) -> None:
        response = self.successResultOf(self.api.get("/openapi.json"))
        self.assertEqual(conforms(self, "/openapi.json", response), DOCUMENT)

    def test_metrics(self) -> None:
        response = self.successResultOf(self.api.get("/metrics"))
        self.assertEqual(response.code, 200)
        [content_type] = response.headers.getRawHeaders(b"content-type")
        self.assertTrue(content_type.startswith(b"text/plain"), content_type)
        text = self.successResultOf(response.text())
        families = {f.name: f for f in text_string_to_metric_families(text)}
        self.assertEqual(families["kgateway_cluster_members"].samples[0].value, 2)
        self.assertEqual(families["kgateway_rebalances"].samples[0].value, 2)
        self.assertEqual(families["kgateway_brokers"].samples[0].value, 3)

    def test_cluster(self) -> None:
        data = conforms(
            self, "/api/v1/cluster", self.successResultOf(self.api.get("/api/v1/cluster"))
        )
        self.assertEqual(
            data,
            {
                "cluster_id": "prod",
                "group_id": "kgateway_prod",
                "answered_by": {
                    "id": "gw-a.test:7000@1",
                    "host": "gw-a.test",
                    "port_start": 7000,
                    "rack": "a",
                },
                "roster": {"source": "group", "since": None, "peers": []},
                "members": [
                    {
                        "id": "gw-a.test:7000@1",
                        "member_id": "member-1",
                        "host": "gw-a.test",
                        "port_start": 7000,
                        "port_count": 6,
                        "min_broker_id": 0,
                        "rack": "a",
                        "joined_at": "2023-11-14T22:13:20.000+00:00",
                        "listeners": [
                            {
                                "name": "DEFAULT",
                                "host": "gw-a.test",
                                "port_start": 7000,
                                "port_count": 6,
                            }
                        ],
                    },
                    {
                        "id": "gw-b.test:7100@2",
                        "member_id": "member-2",
                        "host": "gw-b.test",
                        "port_start": 7100,
                        "port_count": 6,
                        "min_broker_id": 0,
                        "rack": "b",
                        "joined_at": "2023-11-14T22:15:00.000+00:00",
                        # An older node (no listeners described) has one: DEFAULT.
                        "listeners": [
                            {
                                "name": "DEFAULT",
                                "host": "gw-b.test",
                                "port_start": 7100,
                                "port_count": 6,
                            }
                        ],
                    },
                ],
                "brokers": [
                    {"id": 1, "host": "k1.kafka", "port": 9092, "rack": "a"},
                    {"id": 2, "host": "k2.kafka", "port": 9092, "rack": "b"},
                    {"id": 3, "host": "k3.kafka", "port": 9092, "rack": "c"},
                ],
            },
        )

    def test_cluster_and_readiness_say_which_roster_is_in_use(self) -> None:
        """The last known roster since when, and each peer's checks (issue 16)."""
        membership = self.api.membership
        membership.source = "last-known"
        membership.out_since = 1700000200.5
        membership.peers = (
            PeerHealth(
                "gw-b.test:7100@2",
                HostPort("gw-b.test", 7101),
                False,
                2,
                "no answer within 750 ms",
                0.8,
                1700000201.0,
            ),
        )
        expected = {
            "source": "last-known",
            "since": "2023-11-14T22:16:40.500+00:00",
            "peers": [
                {
                    "id": "gw-b.test:7100@2",
                    "host": "gw-b.test",
                    "port": 7101,
                    "up": False,
                    "misses": 2,
                    "reason": "no answer within 750 ms",
                    "round_trip_ms": 0.8,
                    "changed_at": "2023-11-14T22:16:41.000+00:00",
                }
            ],
        }
        cluster = conforms(
            self, "/api/v1/cluster", self.successResultOf(self.api.get("/api/v1/cluster"))
        )
        self.assertEqual(cluster["roster"], expected)
        ready = self.successResultOf(self.api.get("/health/ready", auth=None))
        self.assertEqual(conforms(self, "/health/ready", ready)["roster"], expected)

    def test_cluster_before_the_brokers_are_known(self) -> None:
        api = make_api_node(self, brokers_known=False)
        data = conforms(self, "/api/v1/cluster", self.successResultOf(api.get("/api/v1/cluster")))
        self.assertEqual((data["members"], data["brokers"]), ([], []))
        self.assertEqual(data["answered_by"]["id"], None)

    def test_mapping_of_a_listener(self) -> None:
        """?listener= names whose addresses; an unknown one is 404 naming the listeners."""
        data = conforms(
            self,
            "/api/v1/mapping",
            self.successResultOf(self.api.get("/api/v1/mapping", params={"listener": "default"})),
        )
        self.assertEqual(data["listener"], "DEFAULT")
        response = self.successResultOf(
            self.api.get("/api/v1/mapping", params={"listener": "EXTERNAL"})
        )
        self.assertEqual(response.code, 404)
        error = conforms(self, "/api/v1/mapping", response)
        self.assertEqual(error["title"], "Unknown listener")
        self.assertIn("listeners: DEFAULT", error["message"])
        empty = self.successResultOf(self.api.get("/api/v1/mapping", params={"listener": " "}))
        self.assertEqual(empty.code, 400)

    def test_mapping(self) -> None:
        data = conforms(
            self, "/api/v1/mapping", self.successResultOf(self.api.get("/api/v1/mapping"))
        )
        self.assertEqual((data["mode"], data["rack"]), ("rack-aware", None))
        a = {"node": "gw-a.test:7000@1", "host": "gw-a.test", "rack": "a"}
        b = {"node": "gw-b.test:7100@2", "host": "gw-b.test", "rack": "b"}
        self.assertEqual(
            data["brokers"],
            [
                {
                    "broker_id": 1,
                    "broker": {"host": "k1.kafka", "port": 9092, "rack": "a"},
                    "rack_local": True,
                    "candidates": [{**a, "port": 7001}],
                },
                {
                    "broker_id": 2,
                    "broker": {"host": "k2.kafka", "port": 9092, "rack": "b"},
                    "rack_local": True,
                    "candidates": [{**b, "port": 7102}],
                },
                {
                    "broker_id": 3,
                    "broker": {"host": "k3.kafka", "port": 9092, "rack": "c"},
                    "rack_local": False,
                    "candidates": [{**a, "port": 7003}, {**b, "port": 7103}],
                },
            ],
        )

    def test_mapping_for_a_rack(self) -> None:
        response = self.successResultOf(self.api.get("/api/v1/mapping", params={"rack": "b"}))
        data = conforms(self, "/api/v1/mapping", response)
        self.assertEqual(data["rack"], "b")
        self.assertEqual([entry["broker_id"] for entry in data["brokers"]], [2])

    def test_mapping_unknown_and_empty_rack(self) -> None:
        response = self.successResultOf(self.api.get("/api/v1/mapping?rack=z"))
        self.assertEqual(response.code, 404)
        self.assertEqual(
            conforms(self, "/api/v1/mapping", response),
            {"title": "Unknown rack", "message": "no broker is in rack 'z'; racks: a, b, c"},
        )
        response = self.successResultOf(self.api.get("/api/v1/mapping?rack="))
        self.assertEqual(response.code, 400)
        conforms(self, "/api/v1/mapping", response)

    def test_mapping_with_a_load_balancer(self) -> None:
        api = make_api_node(self, internal_load_balancing=False, advertised_host="lb.test")
        data = conforms(self, "/api/v1/mapping", self.successResultOf(api.get("/api/v1/mapping")))
        self.assertEqual(data["mode"], "load-balancer")
        self.assertEqual(
            [entry["candidates"] for entry in data["brokers"]],
            [
                [{"node": None, "host": "lb.test", "port": 7000 + b, "rack": None}]
                for b in (1, 2, 3)
            ],
        )

    def test_mapping_not_ready(self) -> None:
        api = make_api_node(self, brokers_known=False)
        response = self.successResultOf(api.get("/api/v1/mapping"))
        self.assertEqual(response.code, 503)
        self.assertEqual(conforms(self, "/api/v1/mapping", response)["title"], "Not ready")

    def test_connections(self) -> None:
        empty = conforms(
            self, "/api/v1/connections", self.successResultOf(self.api.get("/api/v1/connections"))
        )
        self.assertEqual(empty["connections"], [])

        client = ClientSide(self.api.node.factory, gateway_port=7002, port=40001)
        self.api.clock.advance(5)
        request = metadata_request(1)
        client.send(request, metadata_request(2))
        broker = self.api.brokers.opened[0]
        response = metadata_response(1, [(1, "k1.kafka", 9092)])
        broker.answer(response)
        self.api.clock.advance(1.5)

        data = conforms(
            self, "/api/v1/connections", self.successResultOf(self.api.get("/api/v1/connections"))
        )
        [row] = data["connections"]
        self.assertEqual(
            {k: v for k, v in row.items() if k != "bytes_to_client"},
            {
                "peer": "10.0.0.7:40001",
                "port": 7002,
                "broker_id": 2,
                "broker": "k2.kafka:9092",
                "client_id": "test-client",
                "bytes_from_client": 2 * len(request),
                "in_flight": 1,
                "age_seconds": 6.5,
                "listener": "DEFAULT",
                "principal": None,
            },
        )
        self.assertEqual(row["bytes_to_client"], len(client.transport.value()))
        self.assertEqual(data["answered_by"]["id"], "gw-a.test:7000@1")
        self.assertEqual(data["total"], 1)

    def test_connections_limited(self) -> None:
        """The listing is bounded: the oldest C{limit} (1000 unless asked), and the total."""
        for port in range(40001, 40006):
            ClientSide(self.api.node.factory, gateway_port=7002, port=port).send(
                metadata_request(1)
            )
            self.api.clock.advance(1)

        def listing(query: str) -> Any:
            response = self.successResultOf(self.api.get("/api/v1/connections" + query))
            return conforms(self, "/api/v1/connections", response)

        data = listing("?limit=2")
        self.assertEqual(data["total"], 5)
        self.assertEqual(
            [r["peer"] for r in data["connections"]], ["10.0.0.7:40001", "10.0.0.7:40002"]
        )
        self.assertEqual(len(listing("")["connections"]), 5)
        for bad in ("0", "x", "-1", "100001"):
            response = self.successResultOf(self.api.get(f"/api/v1/connections?limit={bad}"))
            self.assertEqual(response.code, 400, bad)
            self.assertIn(
                "limit must be", conforms(self, "/api/v1/connections", response)["message"]
            )


class ErrorTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.api = make_api_node(self)

    def test_not_found_is_json(self) -> None:
        for path in ("/nothing", "/api/v2/cluster", "/health", "/api/v1/cluster/x"):
            response = self.successResultOf(self.api.get(path))
            self.assertEqual(response.code, 404, path)
            self.assertEqual(body(self, response)["title"], "Not found")

    def test_trailing_slash(self) -> None:
        self.assertEqual(self.successResultOf(self.api.get("/api/v1/cluster/")).code, 200)

    def test_other_methods_are_json_405(self) -> None:
        response = self.successResultOf(
            self.api.http.post("http://gw-a.test:8888/api/v1/cluster", auth=AUTH, data=b"{}")
        )
        self.assertEqual(response.code, 405)
        self.assertEqual(response.headers.getRawHeaders(b"allow"), [b"GET, HEAD"])
        self.assertEqual(body(self, response)["title"], "Method not allowed")

    def test_head(self) -> None:
        response = self.successResultOf(self.api.http.head("http://gw-a.test:8888/health/live"))
        self.assertEqual(response.code, 200)
        self.assertEqual(self.successResultOf(response.content()), b"")

    def test_a_failing_view_is_a_json_500_and_logged(self) -> None:
        def broken() -> None:
            raise RuntimeError("boom")

        assert self.api.node.admin_api is not None
        self.api.node.admin_api.site.resource.children[b"api"].children[b"v1"].children[
            b"cluster"
        ].view = lambda request: broken()
        response = self.successResultOf(self.api.get("/api/v1/cluster"))
        self.assertEqual(response.code, 500)
        self.assertEqual(
            body(self, response),
            {"title": "Internal error", "message": "the node failed; see its log"},
        )
        self.assertEqual(len(self.flushLoggedErrors(RuntimeError)), 1)


class NoPasswordInTheApiTests(SynchronousTestCase):
    """A node with a TLS listener: no store password in any answer of the admin API."""

    def test_canary(self) -> None:
        from pathlib import Path

        from kgateway.listener import Listener
        from kgateway.security.server_config import ServerTls, StoreFile
        from tests.certificates import Authority, write_pkcs12_key_store

        canary = "canary-Pa55-api"
        directory = Path(self.mktemp())
        directory.mkdir()
        authority = Authority()
        store = write_pkcs12_key_store(
            directory / "gw.p12", authority.issue("gw"), authority, canary
        )
        api = make_api_node(
            self,
            listeners=(Listener("OUTSIDE", 7000, 6, "SSL", "gw-a.test", "127.0.0.2"),),
            server_tls=ServerTls(StoreFile(str(store), "PKCS12", canary), canary),
        )
        for path in (
            "/",
            "/api/v1/cluster",
            "/api/v1/mapping",
            "/api/v1/connections",
            "/health/ready",
            "/versions",
            "/metrics",
            "/openapi.json",
        ):
            response = self.successResultOf(api.get(path))
            self.assertNotIn(canary.encode(), self.successResultOf(response.content()), path)
