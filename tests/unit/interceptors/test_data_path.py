"""
Interceptors on the relay's data path: a client leg with a fake broker and
interceptors that answer at once, later, or change the message.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from kafka.protocol.producer import ProduceRequest, ProduceResponse
from kafka.protocol.sasl import (
    SaslAuthenticateRequest,
    SaslAuthenticateResponse,
    SaslHandshakeRequest,
    SaslHandshakeResponse,
)
from twisted.internet.task import Clock, deferLater
from twisted.trial.unittest import SynchronousTestCase
from zope.interface import implementer

from kgateway.interceptors.api import (
    ALL_APIS,
    Close,
    HookResult,
    IInterceptor,
    InterceptorContext,
    RequestCall,
    ResponseCall,
)
from kgateway.interceptors.plugin import InterceptorPlugin
from kgateway.interceptors.registry import InterceptorSet
from kgateway.interceptors.spec import InterceptorSpec
from kgateway.plugins.kgateway_builtins import client_id_required
from kgateway.protocol.codec import decode_request, decode_response, encode_response
from kgateway.protocol.headers import request_info, response_correlation_id
from kgateway.relay.client_protocol import ClientConnectionFactory
from kgateway.routing.mapping import FixedHostMapper
from kgateway.routing.ports import PortPlan
from tests.unit.relay.fakes import (
    ClientSide,
    FakeBrokers,
    FixedRouter,
    metadata_request,
    metadata_response,
    produce_request,
    produce_response,
)

PLAN = PortPlan(start=7000, count=5, min_broker_id=0)


@implementer(IInterceptor)
class Recorder:
    """Sees the API keys it is told to, and does what C{decide} says."""

    def __init__(self, requests: Any, responses: Any, decide: Any = None) -> None:
        self.requests = requests
        self.responses = responses
        self.decide = decide or (lambda call: None)
        self.seen: list[tuple[str, int, int]] = []
        self.stopped = False

    def on_request(self, call: RequestCall) -> HookResult:
        self.seen.append(("request", call.api_key, call.correlation_id))
        return self.decide(call)

    def on_response(self, call: ResponseCall) -> HookResult:
        self.seen.append(("response", call.api_key, call.correlation_id))
        return self.decide(call)

    def stop(self) -> None:
        self.stopped = True

    def made(self, config: Mapping[str, Any], context: InterceptorContext) -> Recorder:
        """The plugin's factory: this recorder, whatever the config."""
        return self


def interceptor_set(clock: Clock, *named: tuple[str, int, Recorder, Any]) -> InterceptorSet:
    """An InterceptorSet running the given recorders (name, priority, recorder, scope)."""
    plugins = {
        name: InterceptorPlugin(name, "test", recorder.made) for name, _, recorder, _ in named
    }
    interceptors = InterceptorSet(plugins, lambda name: InterceptorContext(clock, name))
    interceptors.apply(
        InterceptorSpec.parse({"name": name, "plugin": name, "priority": priority, "scope": scope})
        for name, priority, _, scope in named
    )
    return interceptors


def factory(brokers: FakeBrokers, interceptors: InterceptorSet) -> ClientConnectionFactory:
    return ClientConnectionFactory(
        FixedRouter(1),
        FixedHostMapper("gw", PLAN),
        brokers.connect,
        interceptors=interceptors,
    )


class DataPathTests(SynchronousTestCase):
    def test_untouched_without_a_wanting_interceptor(self) -> None:
        """An interceptor that wants only Produce leaves Metadata alone, byte for byte."""
        recorder = Recorder({0}, set())
        brokers = FakeBrokers()
        client = ClientSide(factory(brokers, interceptor_set(Clock(), ("p", 1, recorder, None))))
        broker = brokers.opened[0]
        request = metadata_request(5)
        client.send(request)
        self.assertEqual(broker.transport.value(), request)
        self.assertEqual(recorder.seen, [])

    def test_priority_order_and_change(self) -> None:
        """Lower priority runs first; a changed request is re-encoded, the client id kept."""
        order: list[str] = []

        def set_timeout(call: RequestCall) -> None:
            order.append("first")
            call.message.timeout_ms = 4321
            call.changed = True

        second = Recorder({0}, set(), lambda call: order.append("second"))
        first = Recorder({0}, set(), set_timeout)
        brokers = FakeBrokers()
        sets = interceptor_set(Clock(), ("b", 20, second, None), ("a", 10, first, None))
        client = ClientSide(factory(brokers, sets))
        broker = brokers.opened[0]
        client.send(produce_request(3, acks=1))
        self.assertEqual(order, ["first", "second"])
        sent = decode_request(0, broker.transport.value(), 9)
        self.assertEqual(sent.timeout_ms, 4321)
        self.assertEqual(sent.header.client_id, "test-client")

    def test_delayed_request_keeps_order(self) -> None:
        """A request an interceptor delays holds the ones behind it; responses stay in order."""
        clock = Clock()

        def delay_produce(call: RequestCall) -> HookResult:
            if call.api_key == 0:
                return deferLater(clock, 1.0, lambda: None)
            return None

        recorder = Recorder(ALL_APIS, set(), delay_produce)
        brokers = FakeBrokers()
        client = ClientSide(factory(brokers, interceptor_set(clock, ("d", 1, recorder, None))))
        broker = brokers.opened[0]
        client.send(metadata_request(1), produce_request(2, acks=1), metadata_request(3))
        sent = [request_info(f).correlation_id for f in broker.requests()]
        self.assertEqual(sent, [1])
        self.assertEqual(client.transport.producerState, "paused")
        clock.advance(1.0)
        self.assertEqual([request_info(f).correlation_id for f in broker.requests()], [1, 2, 3])
        self.assertEqual(client.transport.producerState, "producing")
        broker.answer(
            metadata_response(1, [(1, "b1.kafka", 9092)]),
            produce_response(2),
            metadata_response(3, [(1, "b1.kafka", 9092)]),
        )
        self.assertEqual([response_correlation_id(f) for f in client.responses()], [1, 2, 3])

    def test_delayed_response_keeps_order(self) -> None:
        """A response held by an interceptor holds the ones after it."""
        clock = Clock()
        recorder = Recorder(set(), {0}, lambda call: deferLater(clock, 2.0, lambda: None))
        brokers = FakeBrokers()
        client = ClientSide(factory(brokers, interceptor_set(clock, ("d", 1, recorder, None))))
        broker = brokers.opened[0]
        client.send(produce_request(1, acks=1), metadata_request(2))
        broker.answer(produce_response(1), metadata_response(2, [(1, "b1.kafka", 9092)]))
        self.assertEqual(client.responses(), [])
        clock.advance(2.0)
        self.assertEqual([response_correlation_id(f) for f in client.responses()], [1, 2])

    def test_close(self) -> None:
        """Close hangs up on the client and the broker."""
        recorder = Recorder({0}, set(), lambda call: Close("no"))
        brokers = FakeBrokers()
        client = ClientSide(factory(brokers, interceptor_set(Clock(), ("c", 1, recorder, None))))
        client.send(produce_request(1, acks=1))
        self.assertFalse(client.open)
        (broker,) = brokers.opened
        self.assertFalse(broker.transport.connected)
        self.assertEqual(broker.requests(), [])

    def test_failing_interceptor_closes(self) -> None:
        """An interceptor that raises closes the connection rather than letting the request by."""

        def boom(call: RequestCall) -> None:
            raise RuntimeError("bug")

        recorder = Recorder({0}, set(), boom)
        brokers = FakeBrokers()
        client = ClientSide(factory(brokers, interceptor_set(Clock(), ("c", 1, recorder, None))))
        client.send(produce_request(1, acks=1))
        self.assertFalse(client.open)
        self.assertEqual(brokers.opened[0].requests(), [])
        self.assertEqual(len(self.flushLoggedErrors(RuntimeError)), 1)

    def test_scope_by_client_id(self) -> None:
        """A scoped interceptor sees only the matching clients' requests."""
        recorder = Recorder({0}, set())
        brokers = FakeBrokers()
        sets = interceptor_set(Clock(), ("s", 1, recorder, {"clientId": "other-.*"}))
        client = ClientSide(factory(brokers, sets))
        client.send(produce_request(1, acks=1))
        self.assertEqual(recorder.seen, [])


class ClientIdRequiredTests(SynchronousTestCase):
    def test_refused_with_policy_violation(self) -> None:
        """A Produce without the required client id pattern gets POLICY_VIOLATION per partition."""
        clock = Clock()
        interceptors = InterceptorSet(
            {"client-id-required": client_id_required}, lambda n: InterceptorContext(clock, n)
        )
        interceptors.apply(
            [
                InterceptorSpec.parse(
                    {"name": "ids", "plugin": "client-id-required", "config": {"pattern": "app-.*"}}
                )
            ]
        )
        brokers = FakeBrokers()
        client = ClientSide(factory(brokers, interceptors))
        request = ProduceRequest[9](
            transactional_id=None,
            acks=1,
            timeout_ms=1000,
            topic_data=[
                ProduceRequest[9].TopicProduceData(
                    name="orders",
                    partition_data=[
                        ProduceRequest[9].TopicProduceData.PartitionProduceData(
                            index=0, records=b""
                        )
                    ],
                )
            ],
        )
        request.with_header(correlation_id=1, client_id="batch-job")
        client.send(bytes(request.encode(header=True, framed=True)))
        self.assertEqual(brokers.opened[0].requests(), [])
        (answer,) = client.responses()
        response = decode_response(ProduceResponse, answer, 9)
        codes = [p.error_code for t in response.responses for p in t.partition_responses]
        self.assertEqual(set(codes), {44})


def _framed(message: Any, correlation_id: int, client_id: str = "test-client") -> bytes:
    message.with_header(correlation_id=correlation_id, client_id=client_id)
    return bytes(message.encode(header=True, framed=True))


class SaslUsernameScopeTests(SynchronousTestCase):
    """A username scope applies once the broker accepted the client's SASL/PLAIN login."""

    def login(self, error_code: int) -> tuple[Recorder, ClientSide, Any]:
        recorder = Recorder({0}, set())
        brokers = FakeBrokers()
        sets = interceptor_set(Clock(), ("u", 1, recorder, {"username": "alice"}))
        client = ClientSide(factory(brokers, sets))
        broker = brokers.opened[0]
        client.send(_framed(SaslHandshakeRequest[1](mechanism="PLAIN"), 1))
        broker.answer(
            encode_response(SaslHandshakeResponse[1](error_code=0, mechanisms=["PLAIN"]), 1, 1)
        )
        client.send(_framed(SaslAuthenticateRequest[2](auth_bytes=b"\0alice\0s3cret"), 2))
        broker.answer(
            encode_response(
                SaslAuthenticateResponse[2](
                    error_code=error_code, error_message=None, auth_bytes=b"", session_lifetime_ms=0
                ),
                2,
                2,
            )
        )
        client.send(produce_request(3, acks=1))
        return recorder, client, broker

    def test_accepted_login(self) -> None:
        recorder, client, _ = self.login(0)
        self.assertEqual(recorder.seen, [("request", 0, 3)])
        self.assertEqual(client.wire.core.requests.client.username, "alice")
        for part in (client.wire.core, client.wire.core.requests, client.wire.core.responses):
            self.assertNotIn("s3cret", repr(part))

    def test_refused_login(self) -> None:
        recorder, client, _ = self.login(58)  # SASL_AUTHENTICATION_FAILED
        self.assertEqual(recorder.seen, [])
        self.assertIsNone(client.wire.core.requests.client.username)
