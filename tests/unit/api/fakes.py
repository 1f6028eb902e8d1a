"""
A gateway node on a fake reactor, with a fake directory, fake brokers and a
fake gateway group, for testing the admin API against the node's real
resources with StubTreq.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from jsonschema import Draft202012Validator
from prometheus_client import CollectorRegistry
from treq.testing import StubTreq
from twisted.application.service import Service
from twisted.internet.defer import succeed
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase
from zope.interface import implementer

from kgateway.api.openapi import DOCUMENT
from kgateway.cluster.roster import Member
from kgateway.config import AdminUser, Settings
from kgateway.interceptors.store import InterceptorStore
from kgateway.interfaces import (
    AdvertisedListener,
    BrokerInfo,
    IMembership,
    PeerHealth,
    RosterState,
)
from kgateway.net import HostPort
from kgateway.node.parts import build_parts
from kgateway.node.service import GatewayNode
from tests.unit.interceptors.fake_topic import FakeTopic
from tests.unit.node.test_service import FakeFetch, RecordingReactor, fake_directory
from tests.unit.relay.fakes import FakeBrokers

OPS = AdminUser("ops", "s3cret-Pw!", admin=True)
VIEWER = AdminUser("viewer", "look-only", admin=False)
USERS = (OPS, VIEWER)
AUTH = (OPS.username, OPS.password)
BASE = "http://gw-a.test:8888"

BROKERS = [
    BrokerInfo(1, "k1.kafka", 9092, "a"),
    BrokerInfo(2, "k2.kafka", 9092, "b"),
    BrokerInfo(3, "k3.kafka", 9092, "c"),
]
#: The other node of the gateway cluster, in rack b.
OTHER = Member("gw-b.test:7100@2", "gw-b.test", 7100, 6, 0, "b", 1700000100.0, "member-2")


@implementer(IMembership)
@dataclass
class FakeMembership:
    """The gateway group as the node sees it: a roster and whether it is in it."""

    myself: Member
    others: list[Member] = field(default_factory=lambda: [OTHER])
    is_member: bool = True
    started: bool = False
    rebalances: int = 2
    #: What the node's direct checks of its peers see.
    peers: tuple[PeerHealth, ...] = ()

    @property
    def roster(self) -> list[Member]:
        me = replace(self.myself, member_id="member-1")
        return sorted([me, *self.others]) if self.is_member else [self.myself]

    #: Which roster it hands out (None: the group's while a member, else alone), since when.
    source: str | None = None
    out_since: float | None = None

    @property
    def state(self) -> RosterState:
        source = self.source or ("group" if self.is_member else "alone")
        return RosterState(source, self.out_since, self.peers)

    def start(self) -> None:
        self.started = True

    def stop(self) -> Any:
        self.is_member = False
        return succeed(None)


@dataclass
class ApiNode:
    """A node, its fake surroundings, and an HTTP client for its admin API."""

    node: GatewayNode
    reactor: RecordingReactor
    fetch: FakeFetch
    brokers: FakeBrokers
    clock: Clock
    registry: CollectorRegistry
    #: A StubTreq: it sets treq's functions (get, post ...) on itself at run time, unseen by mypy.
    http: Any
    topic: FakeTopic

    @property
    def membership(self) -> FakeMembership:
        return self.node.membership  # type: ignore[return-value]

    def learn_brokers(self) -> None:
        """Kafka answers: the node listens on its ports and joins (fakely) its group."""
        self.fetch.brokers = list(BROKERS)
        self.reactor.advance(self.node.settings.metadata_refresh_seconds)
        assert self.node.factory is not None
        self.node.factory.now = self.clock.seconds

    def get(self, path: str, auth: tuple[str, str] | None = AUTH, **kwargs: Any) -> Any:
        """GET C{path}; the response (already complete: StubTreq is synchronous)."""
        deferred = self.http.get(BASE + path, auth=auth, **kwargs)
        self.http.flush()
        return deferred

    def send(
        self,
        method: str,
        path: str,
        data: bytes | None = None,
        auth: tuple[str, str] | None = AUTH,
    ) -> Any:
        """Any method with a body; the response (already complete)."""
        deferred = self.http.request(
            method,
            BASE + path,
            data=data,
            auth=auth,
            headers={b"content-type": [b"application/json"]} if data is not None else None,
        )
        self.http.flush()
        return deferred


def make_api_node(
    case: SynchronousTestCase, brokers_known: bool = True, **overrides: Any
) -> ApiNode:
    """A started node with the admin API; stopped when the test ends."""
    values: dict[str, Any] = {
        "bootstrap_servers": (HostPort("boot", 9092),),
        "bind_host": "127.0.0.2",
        "advertised_host": "gw-a.test",
        "port_start": 7000,
        "port_count": 6,
        "rack_id": "a",
        "cluster_id": "prod",
        "group_id": "kgateway_prod",
        "admin_api_users": USERS,
    }
    settings = Settings(**{**values, **overrides})
    reactor = RecordingReactor()
    registry = CollectorRegistry()
    fetch = FakeFetch(None)
    upstream = FakeBrokers()

    def membership(listeners: Sequence[AdvertisedListener], low: int) -> FakeMembership:
        first = listeners[0]
        me = Member(
            "gw-a.test:7000@1",
            first.host,
            first.port_start,
            first.port_count,
            low,
            "a",
            1.7e9,
            listeners=tuple(listeners),
        )
        return FakeMembership(me)

    topic = FakeTopic(settings.interceptors_topic)
    parts = build_parts(settings, reactor, registry)
    parts = replace(
        parts,
        directory=fake_directory(settings, reactor, fetch),
        connect=upstream.connect,
        membership=membership,
        license=Service(),
        interceptor_store=InterceptorStore(
            topic.name, topic.reader(), topic, parts.interceptors, reactor
        ),
    )
    node = GatewayNode(settings, parts, reactor)
    node.startService()
    case.addCleanup(node.stopService)
    assert node.admin_api is not None, "no admin API"
    api = ApiNode(
        node,
        reactor,
        fetch,
        upstream,
        Clock(),
        registry,
        StubTreq(node.admin_api.site.resource),
        topic,
    )
    if brokers_known:
        api.learn_brokers()
    return api


def body(case: SynchronousTestCase, response: Any) -> Any:
    """The response's JSON."""
    return json.loads(case.successResultOf(response.content()))


def conforms(case: SynchronousTestCase, path: str, response: Any, method: str = "get") -> Any:
    """Check a JSON response against the OpenAPI document's schema for it; return the JSON."""
    data = body(case, response)
    operation = DOCUMENT["paths"][path][method]
    documented = operation["responses"].get(str(response.code))
    case.assertIsNotNone(documented, f"{path} answered {response.code}, which is not documented")
    schema = documented["content"]["application/json"]["schema"]
    validator = Draft202012Validator({**schema, "components": DOCUMENT["components"]})
    errors = [f"{list(e.absolute_path)}: {e.message}" for e in validator.iter_errors(data)]
    case.assertEqual(errors, [], f"{path} {response.code} does not match the document")
    case.assertEqual(response.headers.getRawHeaders(b"content-type"), [b"application/json"])
    return data
