"""
chaos: exact delays on a Clock, and with scripted chances, exact error codes
for exactly the partitions chosen.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from kafka.protocol.consumer import FetchResponse
from kafka.protocol.producer import ProduceResponse
from twisted.internet.defer import Deferred
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from kgateway.interceptors.api import InterceptorContext, InvalidConfig, Respond
from kgateway.interceptors.builtin.chaos import Chaos
from kgateway.protocol.codec import decode_response, encode_request, encode_response
from kgateway.protocol.error_codes import ErrorCode
from tests.unit.interceptors.builtin.messages import (
    batch,
    fetch,
    fetch_answer,
    produce,
    produce_answer,
    request_call,
    response_call,
)


def scripted(*values: float) -> Any:
    """A context.random that gives C{values} in turn and fails if asked for more."""
    it: Iterator[float] = iter(values)
    return lambda: next(it)


def chaos(config: dict[str, Any], *chances: float, clock: Clock | None = None) -> Chaos:
    context = InterceptorContext(clock or Clock(), "chaos", random=scripted(*chances))
    return Chaos.from_config(config, context)


def codes(message: Any) -> dict[tuple[str, int], int]:
    """(topic, partition) -> error code of a Produce or Fetch response."""
    out = {}
    for topic in message.responses:
        if hasattr(topic, "partition_responses"):
            for p in topic.partition_responses:
                out[(topic.name, p.index)] = p.error_code
        else:
            for p in topic.partitions:
                out[(topic.topic, p.partition_index)] = p.error_code
    return out


class LatencyTests(SynchronousTestCase):
    def test_latency_exact(self) -> None:
        """latencyMs delays the request by exactly that long, then lets it go on."""
        clock = Clock()
        interceptor = chaos({"latencyMs": 50}, clock=clock)
        result = interceptor.on_request(request_call(fetch({"t": [0]}), 1, 12))
        assert isinstance(result, Deferred)
        fired: list[Any] = []
        result.addCallback(fired.append)
        clock.advance(0.0499)
        self.assertEqual(fired, [])
        clock.advance(0.0001)
        self.assertEqual(fired, [None])
        self.assertEqual(interceptor.counters.delayed, 1)

    def test_jitter(self) -> None:
        """jitterMs adds random() * jitter on top."""
        clock = Clock()
        interceptor = chaos({"latencyMs": 10, "jitterMs": 20}, 0.25, clock=clock)
        result = interceptor.on_request(request_call(fetch({"t": [0]}), 1, 12))
        assert isinstance(result, Deferred)
        self.assertEqual([c.getTime() for c in clock.getDelayedCalls()], [0.015])

    def test_other_api_keys_only_delayed(self) -> None:
        """apiKeys chooses what is delayed; a Metadata request is never answered with errors."""
        interceptor = chaos({"apiKeys": [3], "latencyMs": 5, "brokenBrokerRate": 1})
        self.assertEqual(interceptor.requests, {3})
        call = request_call(fetch({"t": [0]}), 3, 12)
        self.assertIsInstance(interceptor.on_request(call), Deferred)
        self.assertEqual(interceptor.counters.broken, 0)

    def test_nothing_configured_passes(self) -> None:
        """No latency and no rates: the request goes on at once, random never asked."""
        self.assertIsNone(chaos({}).on_request(request_call(fetch({"t": [0]}), 1, 12)))


class BrokenBrokerTests(SynchronousTestCase):
    def test_produce_every_partition_gets_the_code(self) -> None:
        """The second chance picks the code: 0.5 of the two Produce defaults is the second."""
        interceptor = chaos({"brokenBrokerRate": 0.2}, 0.1, 0.5)
        frame = produce({"a": [(0, batch()), (1, batch())], "b": [(0, batch())]})
        outcome = interceptor.on_request(request_call(frame, 0, 9))
        assert isinstance(outcome, Respond)
        self.assertEqual(
            codes(outcome.message),
            {
                ("a", 0): ErrorCode.NOT_ENOUGH_REPLICAS,
                ("a", 1): ErrorCode.NOT_ENOUGH_REPLICAS,
                ("b", 0): ErrorCode.NOT_ENOUGH_REPLICAS,
            },
        )
        self.assertEqual(interceptor.counters.broken, 1)

    def test_default_codes_are_retriable_broker_failures(self) -> None:
        """Produce: timed out, not enough replicas; Fetch: storage error, replica not available."""
        cases = [
            (0, 0.0, ErrorCode.REQUEST_TIMED_OUT),
            (0, 0.9, ErrorCode.NOT_ENOUGH_REPLICAS),
            (1, 0.0, ErrorCode.KAFKA_STORAGE_ERROR),
            (1, 0.9, ErrorCode.REPLICA_NOT_AVAILABLE),
        ]
        for api_key, chance, code in cases:
            interceptor = chaos({"brokenBrokerRate": 1}, 0.0, chance)
            if api_key == 0:
                call = request_call(produce({"t": [(0, batch()), (1, batch())]}), 0, 9)
            else:
                call = request_call(fetch({"t": [0, 1]}), 1, 12)
            outcome = interceptor.on_request(call)
            assert isinstance(outcome, Respond)
            self.assertEqual(codes(outcome.message), {("t", 0): code, ("t", 1): code})

    def test_configured_codes_for_both(self) -> None:
        """errorCodes replaces both defaults."""
        interceptor = chaos({"brokenBrokerRate": 1, "errorCodes": [13]}, 0.0, 0.7)
        outcome = interceptor.on_request(request_call(fetch({"t": [0]}), 1, 12))
        assert isinstance(outcome, Respond)
        self.assertEqual(codes(outcome.message), {("t", 0): ErrorCode.NETWORK_EXCEPTION})

    def test_above_the_rate_passes(self) -> None:
        """A chance at or above the rate sends the request on untouched."""
        interceptor = chaos({"brokenBrokerRate": 0.2, "errorCodes": [7]}, 0.2)
        call = request_call(fetch({"t": [0]}), 1, 12)
        self.assertIsNone(interceptor.on_request(call))
        self.assertFalse(call.changed)

    def test_delayed_error(self) -> None:
        """With latency too, the error comes after the delay."""
        clock = Clock()
        interceptor = chaos(
            {"brokenBrokerRate": 1, "errorCodes": [19], "latencyMs": 100}, 0.0, 0.0, clock=clock
        )
        result = interceptor.on_request(request_call(fetch({"t": [0]}), 1, 12))
        assert isinstance(result, Deferred)
        fired: list[Any] = []
        result.addCallback(fired.append)
        clock.advance(0.1)
        (outcome,) = fired
        self.assertEqual(codes(outcome.message), {("t", 0): ErrorCode.NOT_ENOUGH_REPLICAS})


class LeaderElectionTests(SynchronousTestCase):
    def test_produce_some_partitions(self) -> None:
        """Chosen partitions leave the request and come back in the answer with their code."""
        # a/0 chosen (0.0: NOT_LEADER_OR_FOLLOWER), a/1 not, b/0 chosen (0.9: LEADER_NOT_AVAILABLE)
        interceptor = chaos({"leaderElectionRate": 0.3}, 0.1, 0.0, 0.5, 0.2, 0.9)
        frame = produce({"a": [(0, batch()), (1, batch())], "b": [(0, batch())]})
        call = request_call(frame, 0, 9)
        self.assertIsNone(interceptor.on_request(call))
        self.assertTrue(call.changed)
        sent = call.message
        self.assertEqual(
            [(t.name, [p.index for p in t.partition_data]) for t in sent.topic_data], [("a", [1])]
        )
        encode_request(sent)  # what the data path does with a changed request
        answer = response_call(produce_answer({"a": [1]}), 0, 9)
        self.assertIsNone(interceptor.on_response(answer))
        self.assertTrue(answer.changed)
        delivered = decode_response(
            ProduceResponse, encode_response(answer.message, answer.correlation_id, 9), 9
        )
        self.assertEqual(
            codes(delivered),
            {
                ("a", 1): 0,
                ("a", 0): ErrorCode.NOT_LEADER_OR_FOLLOWER,
                ("b", 0): ErrorCode.LEADER_NOT_AVAILABLE,
            },
        )
        self.assertEqual(interceptor.counters.leader_errors, 2)

    def test_produce_all_partitions(self) -> None:
        """Every partition chosen: the gateway answers alone, each with its own code."""
        interceptor = chaos({"leaderElectionRate": 1}, 0.0, 0.0, 0.0, 0.7)
        outcome = interceptor.on_request(
            request_call(produce({"a": [(0, batch()), (1, batch())]}), 0, 9)
        )
        assert isinstance(outcome, Respond)
        self.assertEqual(
            codes(outcome.message),
            {("a", 0): ErrorCode.NOT_LEADER_OR_FOLLOWER, ("a", 1): ErrorCode.LEADER_NOT_AVAILABLE},
        )

    def test_produce_acks_zero_keeps_nothing(self) -> None:
        """acks=0 gets no answer, so nothing is kept waiting for one."""
        interceptor = chaos({"leaderElectionRate": 0.5}, 0.1, 0.0, 0.9)
        call = request_call(produce({"a": [(0, batch()), (1, batch())]}, acks=0), 0, 9)
        self.assertIsNone(interceptor.on_request(call))
        self.assertEqual(interceptor._failed, {})

    def test_fetch_partitions_in_the_answer(self) -> None:
        """Fetch: the chosen partition's data is replaced by the error; the others keep theirs."""
        interceptor = chaos({"leaderElectionRate": 0.5}, 0.9, 0.1, 0.0)
        self.assertEqual(interceptor.responses, {0, 1})
        records = batch()
        answer = response_call(fetch_answer({"t": [0, 1]}, records), 1, 12)
        self.assertIsNone(interceptor.on_response(answer))
        delivered = decode_response(
            FetchResponse, encode_response(answer.message, answer.correlation_id, 12), 12
        )
        self.assertEqual(
            codes(delivered), {("t", 0): 0, ("t", 1): ErrorCode.NOT_LEADER_OR_FOLLOWER}
        )
        p0, p1 = delivered.responses[0].partitions
        self.assertEqual(p0.records, records)
        self.assertEqual(p1.records, b"")
        self.assertEqual(p1.high_watermark, -1)


class ConfigTests(SynchronousTestCase):
    def test_errors(self) -> None:
        """Bad values get one line naming the setting."""
        cases: dict[str, dict[str, Any]] = {
            "config.brokenBrokerRate must be <= 1": {"brokenBrokerRate": 1.5},
            "config.leaderElectionRate must be >= 0": {"leaderElectionRate": -0.1},
            "config.latencyMs must be a number": {"latencyMs": "slow"},
            "config.errorCodes must be a list of integers from 1": {"errorCodes": [0]},
            "config.errorCodes must name at least one": {"errorCodes": []},
            "config.apiKeys must be a list of integers": {"apiKeys": "0"},
            "unknown config key(s) latency": {"latency": 5},
        }
        for expected, config in cases.items():
            with self.assertRaises(InvalidConfig) as raised:
                chaos(config)
            message = str(raised.exception)
            self.assertTrue(message.startswith(expected), message)
            self.assertNotIn("\n", message)
