"""
A client connection's lifecycle: waiting for a route that comes late and for
its broker, and interceptor decisions that arrive after the connection closed.
"""

from __future__ import annotations

from typing import Any

from twisted.internet.defer import Deferred
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase
from zope.interface.verify import verifyObject

from kgateway.interceptors.api import ClientInfo, Close, RequestCall
from kgateway.interfaces import ConnectionView, IRelayedConnection
from kgateway.net import HostPort
from kgateway.protocol.headers import request_info, response_correlation_id
from kgateway.relay.client_protocol import ClientConnectionFactory
from kgateway.routing.mapping import FixedHostMapper
from kgateway.routing.ports import PortPlan
from kgateway.routing.router import Route
from tests.unit.interceptors.test_data_path import Recorder, interceptor_set
from tests.unit.relay.fakes import (
    ClientSide,
    FakeBrokers,
    FixedRouter,
    LateRouter,
    catch_logs,
    list_offsets_request,
    list_offsets_response,
    produce_request,
    produce_response,
)

PLAN = PortPlan(start=7000, count=5, min_broker_id=0)
BROKER_2 = HostPort("b2.kafka", 9092)


def factory_with(
    router: Any, brokers: FakeBrokers, interceptors: Any = None, clock: Clock | None = None
) -> Any:
    return ClientConnectionFactory(
        router,
        FixedHostMapper("gw", PLAN),
        brokers.connect,
        interceptors=interceptors,
        now=(clock or Clock()).seconds,
    )


def correlation_ids(frames: list[bytes]) -> list[int]:
    return [request_info(frame).correlation_id for frame in frames]


class LateRouteTests(SynchronousTestCase):
    """The route may come later (as it will after a TLS handshake): requests wait for it."""

    def setUp(self) -> None:
        self.router = LateRouter()
        self.brokers = FakeBrokers(delayed=True)
        self.clock = Clock()
        self.factory = factory_with(self.router, self.brokers, clock=self.clock)
        self.client = ClientSide(self.factory, gateway_port=7002)

    def test_router_is_asked_with_peer_and_port(self) -> None:
        [(accepted, _)] = self.router.asked
        self.assertEqual((accepted.peer, accepted.local_port), ("10.0.0.7:50000", 7002))
        self.assertIsNone(self.successResultOf(accepted.server_name))

    def test_requests_wait_in_order_for_the_route_then_the_broker(self) -> None:
        """Requests before the route and before the broker opens go on in order, once."""
        self.assertEqual(self.client.transport.producerState, "paused")
        self.client.send(list_offsets_request(1), list_offsets_request(2))
        self.assertEqual(self.brokers.waiting, [])  # no broker leg without a route

        self.router.answer(Route(2, BROKER_2))
        self.assertEqual([address for address, _, _ in self.brokers.waiting], [BROKER_2])
        self.client.send(list_offsets_request(3))
        self.assertEqual(self.client.transport.producerState, "paused")

        broker = self.brokers.open_next()
        self.assertEqual(correlation_ids(broker.requests()), [1, 2, 3])
        self.assertEqual(self.client.transport.producerState, "producing")
        broker.answer(*[list_offsets_response(cid) for cid in (1, 2, 3)])
        self.assertEqual([response_correlation_id(f) for f in self.client.responses()], [1, 2, 3])

    def test_connection_view_before_and_after_routing(self) -> None:
        """Until routed a connection stands for no broker; then its view says where it goes."""
        connection = self.client.wire
        verifyObject(IRelayedConnection, connection)
        self.assertEqual(self.factory.connections, {connection})
        self.assertIsNone(connection.broker_id)
        view = connection.view()
        unrouted = ConnectionView("10.0.0.7:50000", 7002, None, None, None, 0, 0, 0, 0.0)
        self.assertEqual(view, unrouted)
        self.clock.advance(1.25)
        self.router.answer(Route(2, BROKER_2))
        self.assertEqual(connection.broker_id, 2)
        self.client.send(list_offsets_request(1))
        view = connection.view()
        self.assertEqual(
            (view.broker_id, view.upstream, view.port, view.age_seconds), (2, BROKER_2, 7002, 1.25)
        )
        self.assertEqual(view.bytes_from_client, 0)  # still waiting for the broker
        self.brokers.open_next()
        view = connection.view()
        self.assertEqual(view.client_id, "test-client")
        self.assertEqual(view.bytes_from_client, len(list_offsets_request(1)))
        self.assertEqual(view.in_flight, 1)

    def test_refused_route_closes_with_the_reason(self) -> None:
        logs = catch_logs(self)
        self.client.send(list_offsets_request(1))
        self.router.refuse("named a host no broker has")
        self.assertFalse(self.client.open)
        self.assertEqual(self.brokers.waiting, [])
        self.assertEqual(self.factory.connections, set())
        self.assertIn("client 10.0.0.7:50000 named a host no broker has; closing", logs())

    def test_client_leaves_before_the_route(self) -> None:
        """A route that comes after the client left opens no broker connection."""
        self.client.send(list_offsets_request(1))
        self.client.transport.loseConnection()
        self.assertEqual(self.factory.connections, set())
        self.router.answer(Route(2, BROKER_2))
        self.assertEqual(self.brokers.waiting, [])
        self.assertEqual(self.factory.stats.client_connections_opened, 0)

    def test_drain_before_the_route(self) -> None:
        closed = self.client.wire.when_closed()
        self.client.wire.drain()
        self.assertFalse(self.client.open)
        self.successResultOf(closed)
        self.router.answer(Route(2, BROKER_2))
        self.assertEqual(self.brokers.waiting, [])

    def test_bad_frame_before_the_route(self) -> None:
        logs = catch_logs(self)
        self.client.send(b"\xff\xff\xff\xff")
        self.assertFalse(self.client.open)
        self.assertTrue(self.client.transport.disconnected)  # aborted
        self.assertTrue(any("bad frame from client" in line for line in logs()), logs())


class LateDecisionTests(SynchronousTestCase):
    """An interceptor decision that arrives after the connection closed is dropped."""

    def connect(self, requests: set[int], responses: set[int]) -> tuple[Any, Deferred[None]]:
        decision: Deferred[None] = Deferred()
        recorder = Recorder(requests, responses, lambda call: decision)
        brokers = FakeBrokers()
        interceptors = interceptor_set(Clock(), ("late", 1, recorder, None))
        client = ClientSide(factory_with(FixedRouter(1), brokers, interceptors))
        return (client, brokers.opened[0]), decision

    def test_request_decision_after_close(self) -> None:
        (client, broker), decision = self.connect({0}, set())
        client.send(list_offsets_request(1), produce_request(2, acks=1), list_offsets_request(3))
        self.assertEqual(correlation_ids(broker.requests()), [1])
        client.transport.loseConnection()
        self.assertFalse(broker.transport.connected)
        written = client.transport.value()

        decision.callback(None)  # "send it on", too late
        self.assertEqual(correlation_ids(broker.requests()), [1])
        self.assertEqual(client.transport.value(), written)

    def test_response_decision_after_close(self) -> None:
        (client, broker), decision = self.connect(set(), {2})
        client.send(list_offsets_request(1))
        broker.answer(list_offsets_response(1))
        self.assertEqual(client.responses(), [])  # with the interceptor
        client.transport.loseConnection()

        decision.callback(None)
        self.assertEqual(client.responses(), [])
        self.assertEqual(client.transport.value(), b"")

    def test_held_request_during_drain(self) -> None:
        """
        Draining: the held request still goes when decided; what waited behind
        it does not (the client sends it again elsewhere), and the connection
        closes once the answers are in.
        """
        (client, broker), decision = self.connect({0}, set())
        client.send(list_offsets_request(1), produce_request(2, acks=1), list_offsets_request(3))
        client.wire.drain()
        self.assertTrue(client.open)  # request 1 is in flight
        decision.callback(None)
        self.assertEqual(correlation_ids(broker.requests()), [1, 2])
        self.assertEqual(client.transport.producerState, "paused")
        broker.answer(list_offsets_response(1))
        self.assertTrue(client.open)
        broker.answer(produce_response(2))
        self.assertEqual([response_correlation_id(f) for f in client.responses()], [1, 2])
        self.assertFalse(client.open)

    def test_close_decided_later_hangs_up_both_sides(self) -> None:
        """An interceptor's later Close closes the client and the broker, sending nothing on."""
        decision: Deferred[Close] = Deferred()
        recorder = Recorder({0}, set(), lambda call: decision)
        brokers = FakeBrokers()
        interceptors = interceptor_set(Clock(), ("late", 1, recorder, None))
        client = ClientSide(factory_with(FixedRouter(1), brokers, interceptors))
        broker = brokers.opened[0]
        logs = catch_logs(self)
        client.send(produce_request(1, acks=1), list_offsets_request(2))
        decision.callback(Close("not today"))
        self.assertFalse(client.open)
        self.assertTrue(client.transport.disconnected)  # aborted
        self.assertFalse(broker.transport.connected)
        self.assertEqual(broker.requests(), [])
        self.assertEqual(client.responses(), [])
        self.assertTrue(any("closed by an interceptor: not today" in line for line in logs()))

    def test_client_info_is_the_routes(self) -> None:
        """Interceptors see the client as routed: its peer, and the route's broker id."""
        seen: list[ClientInfo] = []

        def look(call: RequestCall) -> None:
            seen.append(call.client)

        recorder = Recorder({2}, set(), look)
        brokers = FakeBrokers()
        interceptors = interceptor_set(Clock(), ("look", 1, recorder, None))
        client = ClientSide(factory_with(FixedRouter(3), brokers, interceptors))
        client.send(list_offsets_request(1))
        [info] = seen
        self.assertEqual(
            (info.peer, info.broker_id, info.client_id), ("10.0.0.7:50000", 3, "test-client")
        )
