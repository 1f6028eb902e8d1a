"""audit-log: decisions become JSON records on a topic, through a bounded queue."""

from __future__ import annotations

import json
from typing import Any

from twisted.internet.defer import Deferred, fail
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from kgateway.interceptors.api import (
    AuditEvent,
    IAuditSink,
    IInterceptor,
    InterceptorContext,
    InvalidConfig,
)
from kgateway.interceptors.builtin.audit_log import AuditLog
from kgateway.interceptors.registry import InterceptorSet
from kgateway.interceptors.spec import InterceptorSpec
from kgateway.plugins.kgateway_builtins import audit_log, create_topic_policy
from tests.unit.interceptors.messages import call, client, create_topics


class FakeProducer:
    """Records what was produced; each write is acknowledged when the test says."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, bytes | None, bytes, Deferred[None]]] = []

    def __call__(self, topic: str, key: bytes | None, value: bytes) -> Deferred[None]:
        acknowledged: Deferred[None] = Deferred()
        self.sent.append((topic, key, value, acknowledged))
        return acknowledged

    def records(self) -> list[dict[str, Any]]:
        return [json.loads(value) for _, _, value, _ in self.sent]


def event(n: int = 0) -> AuditEvent:
    return AuditEvent(
        "topics", "create-topic-policy", client(), 19, "denied", f"reason {n}", {"topic": "t"}
    )


def audit(config: dict[str, Any] | None = None, producer: Any = None) -> tuple[AuditLog, Clock]:
    clock = Clock()
    clock.advance(1_800_000_000.25)
    context = InterceptorContext(clock, "audit", cluster_id="gw", produce=producer, node="gw1:6969")
    return AuditLog.from_config(config or {}, context), clock


class AuditLogTests(SynchronousTestCase):
    def test_interfaces_and_no_traffic(self) -> None:
        """It is an audit sink and an interceptor that wants no requests or responses."""
        sink, _ = audit()
        self.assertTrue(IAuditSink.providedBy(sink))
        self.assertTrue(IInterceptor.providedBy(sink))
        self.assertEqual((len(sink.requests), len(sink.responses)), (0, 0))
        self.assertNotIn(0, sink.requests)

    def test_record_shape(self) -> None:
        """One JSON record per decision on the default topic, keyed by the interceptor."""
        producer = FakeProducer()
        sink, _ = audit(producer=producer)
        sink.record(event())
        ((topic, key, _, _),) = producer.sent
        self.assertEqual((topic, key), ("_kgateway_gw_audit", b"topics"))
        self.assertEqual(
            producer.records(),
            [
                {
                    "time": "2027-01-15T08:00:00.250Z",
                    "node": "gw1:6969",
                    "cluster": "gw",
                    "interceptor": "topics",
                    "plugin": "create-topic-policy",
                    "client": {"peer": "10.1.2.3:50000", "clientId": "app-1", "username": "alice"},
                    "apiKey": 19,
                    "decision": "denied",
                    "reason": "reason 0",
                    "details": {"topic": "t"},
                }
            ],
        )

    def test_bounded_queue_drops_oldest(self) -> None:
        """Beyond maxInFlight records queue; beyond maxQueued the oldest are dropped and counted."""
        producer = FakeProducer()
        sink, _ = audit({"topic": "audit", "maxQueued": 3, "maxInFlight": 2}, producer)
        for n in range(7):
            sink.record(event(n))
        self.assertEqual([r["reason"] for r in producer.records()], ["reason 0", "reason 1"])
        self.assertEqual(sink.dropped, 2)  # 2 and 3 made way for 4, 5 and 6
        self.assertEqual(len(self.flushLoggedErrors()), 0)
        for _, _, _, acknowledged in list(producer.sent):
            acknowledged.callback(None)
        self.assertEqual(
            [r["reason"] for r in producer.records()],
            ["reason 0", "reason 1", "reason 4", "reason 5"],
        )
        producer.sent[2][3].callback(None)
        self.assertEqual(producer.records()[-1]["reason"], "reason 6")
        self.assertEqual(sink.written, 3)

    def test_no_producer_drops(self) -> None:
        """Without context.produce records are dropped and counted; nothing raises."""
        sink, _ = audit()
        sink.record(event())
        sink.record(event())
        self.assertEqual(sink.dropped, 2)
        self.assertEqual(len(sink.queue), 0)

    def test_failed_write_counted(self) -> None:
        """A write that fails is tried again twice, a second apart, then counted; the next
        record still goes meanwhile."""
        calls: list[bytes] = []

        def failing(topic: str, key: bytes | None, value: bytes) -> Deferred[None]:
            calls.append(value)
            return fail(RuntimeError("broker down"))

        sink, clock = audit(producer=failing)
        sink.record(event(1))
        sink.record(event(2))
        self.assertEqual((sink.failed, len(calls)), (0, 2))
        clock.advance(1.0)
        self.assertEqual((sink.failed, len(calls)), (0, 4))
        clock.advance(1.0)
        self.assertEqual((sink.failed, len(calls)), (2, 6))
        clock.advance(10.0)
        self.assertEqual(len(calls), 6)
        self.assertEqual(calls[:2], calls[2:4])

    def test_a_write_that_fails_once_lands(self) -> None:
        """The first write to a topic created a moment before can fail: it lands a second
        later, and nothing is counted as failed."""
        producer = FakeProducer()
        sink, clock = audit(producer=producer)
        sink.record(event(1))
        producer.sent[0][3].errback(RuntimeError("no leader yet"))
        sink.record(event(2))
        clock.advance(1.0)
        self.assertEqual(
            [r["reason"] for r in producer.records()], ["reason 1", "reason 2", "reason 1"]
        )
        for sent in producer.sent[1:]:
            sent[3].callback(None)
        self.assertEqual((sink.written, sink.failed), (2, 0))

    def test_stop_finishes_the_queue(self) -> None:
        """A stopped audit log takes no new records but writes the ones it holds."""
        producer = FakeProducer()
        sink, _ = audit({"maxInFlight": 1}, producer)
        sink.record(event(1))
        sink.record(event(2))
        sink.stop()
        sink.record(event(3))
        producer.sent[0][3].callback(None)
        self.assertEqual([r["reason"] for r in producer.records()], ["reason 1", "reason 2"])

    def test_config_errors(self) -> None:
        """Bad settings get one line."""
        for config, message in (
            ({"maxQueued": 0}, "config.maxQueued must be >= 1, got 0"),
            ({"topic": 5}, "config.topic must be a string, got 5"),
            ({"topic": ""}, "config.topic '' is not a valid topic name"),
            ({"tpoic": "x"}, "unknown config key(s) tpoic; known: maxInFlight, maxQueued, topic"),
        ):
            self.assertEqual(str(self.assertRaises(InvalidConfig, audit, config)), message)

    def test_policy_decisions_reach_it(self) -> None:
        """Through the node's InterceptorSet a policy's decision lands in the audit topic."""
        clock = Clock()
        producer = FakeProducer()
        interceptors: InterceptorSet

        def context(name: str) -> InterceptorContext:
            return InterceptorContext(
                clock, name, audit=interceptors.audit, produce=producer, cluster_id="c1"
            )

        interceptors = InterceptorSet(
            {"audit-log": audit_log, "create-topic-policy": create_topic_policy}, context
        )
        interceptors.apply(
            [
                InterceptorSpec.parse({"name": "audit", "plugin": "audit-log"}),
                InterceptorSpec.parse(
                    {
                        "name": "topics",
                        "plugin": "create-topic-policy",
                        "config": {"maxPartitions": 4},
                    }
                ),
            ]
        )
        (policy,) = interceptors.for_request(19, client())
        policy.interceptor.on_request(call(create_topics([("big", 9, 3)])))
        ((topic, _, _, _),) = producer.sent
        self.assertEqual(topic, "_kgateway_c1_audit")
        (record,) = producer.records()
        self.assertEqual(
            (record["interceptor"], record["decision"], record["reason"], record["details"]),
            (
                "topics",
                "denied",
                "partitions 9 is above maxPartitions 4",
                {"topic": "big", "partitions": 9, "replicationFactor": 3},
            ),
        )
