"""
rate-limit: token buckets on a Clock give exact delays; one bucket per client
id across connections; held Produce requests and Fetch responses are released
exactly when the bucket allows, in order.
"""

from __future__ import annotations

from typing import Any

from twisted.internet.defer import Deferred
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from kgateway.interceptors.api import AuditEvent, InterceptorContext, InvalidConfig
from kgateway.interceptors.builtin.rate_limit import Buckets, RateLimit, TokenBucket
from kgateway.interceptors.registry import InterceptorSet
from kgateway.interceptors.spec import InterceptorSpec
from kgateway.plugins.kgateway_builtins import rate_limit
from kgateway.protocol.headers import request_info, response_correlation_id
from kgateway.relay.client_protocol import ClientConnectionFactory
from kgateway.routing.mapping import FixedHostMapper
from kgateway.routing.ports import PortPlan
from tests.unit.interceptors.builtin.messages import (
    batch,
    client,
    fetch,
    fetch_answer,
    produce,
    produce_answer,
    request_call,
    response_call,
)
from tests.unit.relay.fakes import ClientSide, FakeBrokers, FixedRouter


def limiter(
    config: dict[str, Any], clock: Clock, events: list[AuditEvent] | None = None
) -> RateLimit:
    context = InterceptorContext(clock, "rl", audit=(events if events is not None else []).append)
    return RateLimit.from_config(config, context)


def fired_at(clock: Clock, result: Any) -> float | None:
    """When C{result} fires: not a moment before its timer, and at it (None: not held)."""
    if not isinstance(result, Deferred):
        return None
    fired: list[float] = []
    result.addCallback(lambda _: fired.append(clock.seconds()))
    due = max(call.getTime() for call in clock.getDelayedCalls())
    clock.advance(due - clock.seconds() - 1e-6)
    assert not fired, "released early"
    clock.advance(1e-6)
    assert fired, "not released when due"
    return fired[0]


class TokenBucketTests(SynchronousTestCase):
    def test_exact_delays(self) -> None:
        """A full bucket lets a burst through; the debt is paid at the rate."""
        bucket = TokenBucket(rate=1000, burst=1000, tokens=1000, updated=0)
        self.assertEqual(bucket.take(600, 0), 0.0)
        self.assertEqual(bucket.take(900, 0), 0.5)  # 500 bytes owed at 1000/s
        self.assertEqual(bucket.take(100, 0), 0.6)  # queued behind the first
        self.assertAlmostEqual(bucket.take(0, 0.6), 0.0)
        self.assertEqual(bucket.take(0, 100), 0.0)
        self.assertEqual(bucket.tokens, 1000)  # never above the burst

    def test_idle_clients_forgotten(self) -> None:
        """A client id idle for idleSeconds is dropped when another client comes."""
        buckets = Buckets(rate=10, burst=10, idle_seconds=60)
        buckets.take("a", 5, 0)
        buckets.take("b", 5, 30)
        buckets.take("c", 5, 61)
        self.assertEqual(list(buckets.by_client), ["b", "c"])


class RateLimitTests(SynchronousTestCase):
    def test_produce_delayed_by_the_bucket(self) -> None:
        """Frames counted whole: the first fits the burst, the next waits its debt at the rate."""
        clock = Clock()
        events: list[AuditEvent] = []
        frame = produce({"t": [(0, batch(records=10))]})
        size = len(frame)
        rate = size * 1.5
        interceptor = limiter({"produceBytesPerSecond": rate}, clock, events)
        self.assertEqual((interceptor.requests, interceptor.responses), ({0}, frozenset()))
        self.assertIsNone(interceptor.on_request(request_call(frame, 0, 9)))
        at = fired_at(clock, interceptor.on_request(request_call(frame, 0, 9)))
        self.assertAlmostEqual(at, (2 * size - rate) / rate)
        self.assertEqual(interceptor.counters.throttled, 1)
        self.assertEqual(events[0].decision, "throttled")

    def test_shared_across_connections_of_a_client_id(self) -> None:
        """Two connections of one client id share a bucket; another client id has its own."""
        clock = Clock()
        frame = produce({"t": [(0, batch(records=1))]})
        size = len(frame)
        interceptor = limiter({"produceBytesPerSecond": size * 1.5}, clock)
        first = interceptor.on_request(request_call(frame, 0, 9, client("10.0.0.7:1")))
        second = interceptor.on_request(request_call(frame, 0, 9, client("10.0.0.8:2")))
        other = interceptor.on_request(request_call(frame, 0, 9, client("10.0.0.7:3", "other")))
        self.assertIsNone(first)
        self.assertIsNone(other)
        self.assertAlmostEqual(
            fired_at(clock, second), (2 * size - size * 1.5) / (size * 1.5), delta=0.001
        )

    def test_fetch_responses_delayed(self) -> None:
        """consumeBytesPerSecond holds Fetch responses by their size."""
        clock = Clock()
        answer = fetch_answer({"t": [0]}, batch(records=20))
        size = len(answer)
        interceptor = limiter({"consumeBytesPerSecond": size * 1.5}, clock)
        self.assertEqual((interceptor.requests, interceptor.responses), (frozenset(), {1}))
        self.assertIsNone(interceptor.on_response(response_call(answer, 1, 12)))
        at = fired_at(clock, interceptor.on_response(response_call(answer, 1, 12)))
        self.assertAlmostEqual(at, 0.5 * size / (size * 1.5))

    def test_stop_releases_held_messages(self) -> None:
        """A removed limit lets what it held go at once, without errors."""
        clock = Clock()
        interceptor = limiter({"produceBytesPerSecond": 1}, clock)
        frame = produce({"t": [(0, batch())]})
        interceptor.on_request(request_call(frame, 0, 9))
        held = interceptor.on_request(request_call(frame, 0, 9))
        assert isinstance(held, Deferred)
        fired: list[Any] = []
        held.addCallback(fired.append)
        interceptor.stop()
        self.assertEqual(fired, [None])
        self.assertEqual(clock.getDelayedCalls(), [])

    def test_on_the_data_path(self) -> None:
        """Later requests wait behind a throttled Produce and the socket is paused until it goes."""
        clock = Clock()
        one = produce({"t": [(0, batch(records=1))]}, correlation_id=1)
        two = produce({"t": [(0, batch(records=1))]}, correlation_id=2)
        big = fetch_answer({"t": [0]}, batch(records=40), correlation_id=3)
        produce_rate, consume_rate = len(one) * 1.5, len(big) / 2
        interceptors = InterceptorSet(
            {"rate-limit": rate_limit}, lambda name: InterceptorContext(clock, name)
        )
        interceptors.apply(
            [
                InterceptorSpec.parse(
                    {
                        "name": "rl",
                        "plugin": "rate-limit",
                        "config": {
                            "produceBytesPerSecond": produce_rate,
                            "consumeBytesPerSecond": consume_rate,
                        },
                    }
                )
            ]
        )
        brokers = FakeBrokers()
        leg = ClientConnectionFactory(
            FixedRouter(1),
            FixedHostMapper("gw", PortPlan(start=7000, count=5, min_broker_id=0)),
            brokers.connect,
            interceptors=interceptors,
        )
        client_side = ClientSide(leg)
        broker = brokers.opened[0]
        client_side.send(one, two, fetch({"t": [0]}, correlation_id=3))
        self.assertEqual([request_info(f).correlation_id for f in broker.requests()], [1])
        self.assertEqual(client_side.transport.producerState, "paused")
        clock.advance((len(one) + len(two) - produce_rate) / produce_rate - 0.001)
        self.assertEqual([request_info(f).correlation_id for f in broker.requests()], [1])
        clock.advance(0.001)
        self.assertEqual([request_info(f).correlation_id for f in broker.requests()], [1, 2, 3])
        self.assertEqual(client_side.transport.producerState, "producing")
        broker.answer(produce_answer({"t": [0]}, 1), produce_answer({"t": [0]}, 2))
        broker.answer(big)
        self.assertEqual([response_correlation_id(f) for f in client_side.responses()], [1, 2])
        # The bucket held consume_rate bytes; the rest of the response is paid at the rate.
        clock.advance((len(big) - consume_rate) / consume_rate - 0.001)
        self.assertEqual([response_correlation_id(f) for f in client_side.responses()], [1, 2])
        clock.advance(0.001)
        self.assertEqual([response_correlation_id(f) for f in client_side.responses()], [1, 2, 3])

    def test_config_errors(self) -> None:
        """One line per mistake, naming the setting."""
        cases: dict[str, dict[str, Any]] = {
            "config needs produceBytesPerSecond and/or consumeBytesPerSecond": {},
            "config.produceBytesPerSecond must be >= 1": {"produceBytesPerSecond": 0},
            "config.consumeBytesPerSecond must be a number": {"consumeBytesPerSecond": "1MB"},
            "config.burstSeconds must be <= 3600": {
                "produceBytesPerSecond": 1,
                "burstSeconds": 1e9,
            },
            "unknown config key(s) produceBytesPerSec": {"produceBytesPerSec": 1},
        }
        for expected, config in cases.items():
            with self.assertRaises(InvalidConfig) as raised:
                limiter(config, Clock())
            message = str(raised.exception)
            self.assertTrue(message.startswith(expected), message)
            self.assertNotIn("\n", message)
