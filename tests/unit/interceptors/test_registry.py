"""Plugin discovery and the running set of interceptors."""

from __future__ import annotations

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
from kgateway.interceptors.registry import InterceptorSet, discover_plugins
from kgateway.interceptors.spec import InterceptorSpec
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
