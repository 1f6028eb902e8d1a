"""Plugin discovery and the running set of interceptors."""

from __future__ import annotations

import json
from typing import Any

from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase
from zope.interface import implementer

from kgateway.interceptors.api import (
    AuditEvent,
    ClientInfo,
    IAuditSink,
    IInterceptor,
    InterceptorContext,
    InvalidConfig,
)
from kgateway.interceptors.plugin import InterceptorPlugin
from kgateway.interceptors.registry import MAX_CACHED_KEYS, InterceptorSet, discover_plugins
from kgateway.interceptors.spec import InterceptorSpec, Scope
from kgateway.plugins import kgateway_builtins


@implementer(IInterceptor, IAuditSink)
class Stub:
    def __init__(self, config: Any, context: InterceptorContext) -> None:
        self.config = config
        self.context = context
        self.requests = frozenset(config.get("requests", [0]))
        self.responses: frozenset[int] = frozenset()
        self.stopped = False
        self.recorded: list[AuditEvent] = []

    def on_request(self, call: Any) -> None:
        return None

    def on_response(self, call: Any) -> None:
        return None

    def stop(self) -> None:
        self.stopped = True

    def record(self, event: AuditEvent) -> None:
        self.recorded.append(event)


def refuse(config: Any, context: InterceptorContext) -> Any:
    raise InvalidConfig("config.x must be set")


def spec(name: str, plugin: str = "stub", **fields: Any) -> InterceptorSpec:
    return InterceptorSpec.parse({"name": name, "plugin": plugin, **fields})


class RegistryTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.set = InterceptorSet(
            {
                "stub": InterceptorPlugin("stub", "d", Stub),
                "refuse": InterceptorPlugin("refuse", "d", refuse),
            },
            lambda name: InterceptorContext(Clock(), name),
        )

    def test_builtins_discovered(self) -> None:
        """Every built-in plugin is found through twisted.plugin like any other."""
        builtins = {
            plugin.name: plugin
            for plugin in vars(kgateway_builtins).values()
            if isinstance(plugin, InterceptorPlugin)
        }
        self.assertEqual(len(builtins), 8)
        found = discover_plugins()
        for name, plugin in builtins.items():
            self.assertIs(found.get(name), plugin, name)

    def test_priority_order_and_api_keys(self) -> None:
        self.set.apply(
            [
                spec("late", priority=50),
                spec("early", priority=5),
                spec("fetch-only", priority=1, config={"requests": [1]}),
            ]
        )
        client = ClientInfo("h:1", 1)
        self.assertEqual([a.name for a in self.set.for_request(0, client)], ["early", "late"])
        self.assertEqual([a.name for a in self.set.for_request(1, client)], ["fetch-only"])
        self.assertEqual(self.set.for_request(3, client), ())
        self.assertEqual(self.set.for_response(0, client), ())

    def test_answers_follow_a_change(self) -> None:
        """What the data path is told per API key is worked out again after every change."""
        client = ClientInfo("h:1", 1)
        self.set.apply([spec("a")])
        self.assertEqual([a.name for a in self.set.for_request(0, client)], ["a"])
        self.assertEqual(self.set.for_request(1, client), ())
        self.set.apply([spec("a"), spec("f", config={"requests": [1]})])
        self.assertEqual([a.name for a in self.set.for_request(1, client)], ["f"])
        self.set.apply([])
        self.assertEqual(self.set.for_request(0, client), ())

    def test_changes_stop_the_replaced_and_removed(self) -> None:
        self.set.apply([spec("a"), spec("b")])
        first_a, first_b = (active.interceptor for active in self.set.active)
        self.set.apply([spec("a"), spec("b", priority=7)])
        self.assertFalse(first_a.stopped)  # type: ignore[attr-defined]
        self.assertTrue(first_b.stopped)  # type: ignore[attr-defined]
        self.set.apply([])
        self.assertTrue(first_a.stopped)  # type: ignore[attr-defined]
        self.assertEqual(len(self.set), 0)

    def test_unbuildable_is_reported_not_run(self) -> None:
        self.set.apply([spec("x", plugin="missing"), spec("y", plugin="refuse"), spec("z")])
        self.assertEqual([a.name for a in self.set.active], ["z"])
        self.assertIn("no interceptor plugin named 'missing'", self.set.failed["x"])
        self.assertEqual(self.set.failed["y"], "config.x must be set")
        self.flushLoggedErrors()

    def test_validate(self) -> None:
        with self.assertRaises(InvalidConfig):
            self.set.validate(spec("y", plugin="refuse"))
        self.set.validate(spec("ok"))
        self.assertEqual(len(self.set), 0)

    def test_audit_reaches_sinks(self) -> None:
        self.set.apply([spec("sink")])
        event = AuditEvent("p", "produce-policy", ClientInfo("h:1", 1), 0, "denied", "acks")
        self.set.audit(event)
        (active,) = self.set.active
        self.assertEqual(active.interceptor.recorded, [event])  # type: ignore[attr-defined]


class MetricsTests(SynchronousTestCase):
    def test_decisions_counted_for_metrics(self) -> None:
        """Audit events are counted by interceptor, plugin and decision and served on /metrics."""
        from prometheus_client import CollectorRegistry, generate_latest

        from kgateway.metrics import InterceptorCollector

        interceptors = InterceptorSet(
            {"stub": InterceptorPlugin("stub", "d", Stub)},
            lambda name: InterceptorContext(Clock(), name),
        )
        interceptors.apply([spec("s")])
        registry = CollectorRegistry()
        registry.register(InterceptorCollector(interceptors))
        client = ClientInfo("h:1", 1)
        for _ in range(2):
            interceptors.audit(AuditEvent("s", "stub", client, 0, "denied", "r"))
        text = generate_latest(registry).decode()
        self.assertIn("kgateway_interceptors 1.0", text)
        self.assertIn(
            "kgateway_interceptor_decisions_total"
            '{decision="denied",interceptor="s",plugin="stub"} 2.0',
            text,
        )


class ScopeDecisionTests(SynchronousTestCase):
    """A connection's scope is judged once per client id and username, not per request."""

    def setUp(self) -> None:
        self.set = InterceptorSet(
            {"stub": InterceptorPlugin("stub", "d", Stub)},
            lambda name: InterceptorContext(Clock(), name),
        )
        self.set.apply(
            [
                spec("apps", scope={"clientId": "app-.*"}, config={"requests": [0, 3]}),
                spec("alice", scope={"username": "alice"}, config={"requests": [0]}),
                spec("all", config={"requests": [0]}),
            ]
        )
        self.judged: list[str] = []
        original = Scope.applies_to

        def counting(scope: Scope, client: ClientInfo) -> bool:
            self.judged.append(json.dumps(scope.to_json()))
            return original(scope, client)

        self.patch(Scope, "applies_to", counting)

    def names(self, chain: tuple[Any, ...]) -> list[str]:
        return [active.name for active in chain]

    def test_judged_once_per_connection(self) -> None:
        """A thousand requests and responses: each scope matched once."""
        client = ClientInfo("h:1", 1, client_id="app-1")
        for _ in range(1000):
            self.assertEqual(self.names(self.set.for_request(0, client)), ["all", "apps"])
            self.assertEqual(self.names(self.set.for_request(3, client)), ["apps"])
            self.set.for_response(0, client)
        self.assertEqual(len(self.judged), 3)

    def test_each_connection_judged_for_itself(self) -> None:
        one = ClientInfo("h:1", 1, client_id="app-1")
        other = ClientInfo("h:2", 1, client_id="batch")
        self.assertEqual(self.names(self.set.for_request(0, one)), ["all", "apps"])
        self.assertEqual(self.names(self.set.for_request(0, other)), ["all"])
        self.assertEqual(len(self.judged), 6)

    def test_judged_again_when_the_username_arrives(self) -> None:
        """A SASL login after the first requests brings the username's interceptors in."""
        client = ClientInfo("h:1", 1, client_id="x")
        self.assertEqual(self.names(self.set.for_request(0, client)), ["all"])
        client.username = "alice"
        self.assertEqual(self.names(self.set.for_request(0, client)), ["alice", "all"])
        self.set.for_request(0, client)
        self.assertEqual(len(self.judged), 6)

    def test_judged_again_after_a_change(self) -> None:
        """A new configuration makes every connection's decision stale."""
        client = ClientInfo("h:1", 1, client_id="app-1")
        self.set.for_request(0, client)
        self.set.apply([spec("apps", scope={"clientId": "other"}, config={"requests": [0]})])
        self.assertEqual(self.names(self.set.for_request(0, client)), [])
        self.set.stop()
        self.assertEqual(self.set.for_request(0, client), ())

    def test_bounded_per_connection(self) -> None:
        """However many keys a connection asks about, its table stays bounded."""
        client = ClientInfo("h:1", 1, client_id="app-1")
        for key in range(5000):
            self.set.for_request(key, client)
        self.assertLessEqual(len(client.scope_decision.requests), MAX_CACHED_KEYS)
        self.assertEqual(self.names(self.set.for_request(4999, client)), [])
        self.assertEqual(self.names(self.set.for_request(3, client)), ["apps"])
