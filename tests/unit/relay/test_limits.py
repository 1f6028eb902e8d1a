"""
The limits of a client connection: the node's memory budget, the frame limit
before a login, the idle and request deadlines, refusals in good order, and
memory freed at once when a connection closes.
"""

from __future__ import annotations

import gc
import struct
import weakref
from typing import Any

from kafka.protocol.sasl import (
    SaslAuthenticateRequest,
    SaslAuthenticateResponse,
    SaslHandshakeRequest,
    SaslHandshakeResponse,
)
from twisted.internet.address import IPv4Address
from twisted.internet.defer import Deferred
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransportWithDisconnection
from twisted.trial.unittest import SynchronousTestCase

from kgateway.protocol.codec import encode_response
from kgateway.protocol.headers import request_info, response_correlation_id
from kgateway.relay.budget import MemoryBudget
from kgateway.relay.client_protocol import ClientConnectionFactory
from kgateway.routing.mapping import FixedHostMapper
from kgateway.routing.ports import PortPlan
from tests.unit.interceptors.test_data_path import Recorder, interceptor_set
from tests.unit.relay.fakes import (
    BrokerSide,
    ClientSide,
    FakeBrokers,
    FixedRouter,
    catch_logs,
    list_offsets_request,
    list_offsets_response,
    produce_response,
)
from tests.unit.relay.test_streaming import big_produce


def limited_factory(brokers: FakeBrokers, clock: Clock, **kwargs: Any) -> ClientConnectionFactory:
    return ClientConnectionFactory(
        FixedRouter(1),
        FixedHostMapper("gw", PortPlan(7000, 5, 0)),
        brokers.connect,
        clock=clock,
        **kwargs,
    )


def framed(message: Any, correlation_id: int) -> bytes:
    message.with_header(correlation_id=correlation_id, client_id="test-client")
    return bytes(message.encode(header=True, framed=True))


class BudgetTests(SynchronousTestCase):
    """Over the budget the node stops reading from those holding the most, then resumes."""

    def setUp(self) -> None:
        self.clock = Clock()
        self.brokers = FakeBrokers()
        self.budget = MemoryBudget(limit=300_000, resume_fraction=0.5)
        # An interceptor wants Produce, so Produce requests are held whole.
        recorder = Recorder({0}, set())
        self.factory = limited_factory(
            self.brokers,
            self.clock,
            budget=self.budget,
            max_frame_bytes=1 << 20,
            interceptors=interceptor_set(self.clock, ("p", 1, recorder, None)),
        )

    def client(self, port: int) -> tuple[ClientSide, BrokerSide]:
        client = ClientSide(self.factory, port=port)
        return client, self.brokers.opened[-1]

    def test_the_largest_holders_paused_and_resumed(self) -> None:
        logs = catch_logs(self)
        big = big_produce(1, acks=1, size=500_000)
        greedy = [self.client(50000 + n) for n in range(3)]
        for client, _ in greedy:
            client.send(big[:120_000])
        self.assertEqual(self.budget.total, 360_000)
        paused = [c for c, _ in greedy if c.transport.producerState == "paused"]
        self.assertEqual(len(paused), 3)
        self.assertTrue(any("over its budget of 300000 bytes" in line for line in logs()), logs())

        # A small client still gets through.
        small, broker = self.client(50010)
        small.send(list_offsets_request(7))
        self.assertEqual(small.transport.producerState, "producing")
        broker.answer(list_offsets_response(7))
        self.assertEqual(small.responses(), [list_offsets_response(7)])

        # Two leave: what they held is free at once, and the last one reads again.
        greedy[0][0].transport.loseConnection()
        self.assertEqual(greedy[2][0].transport.producerState, "paused")
        greedy[1][0].transport.loseConnection()
        self.assertEqual(self.budget.total, 120_000)
        self.assertEqual(greedy[2][0].transport.producerState, "producing")
        greedy[2][0].send(big[120_000:])
        self.assertEqual(self.budget.total, 0)
        self.assertEqual(self.budget.paused_connections, 0)
        self.assertEqual(self.budget.pauses, 3)

    def test_answers_waiting_count(self) -> None:
        """An answer waiting behind an earlier request counts; delivered, it does not."""
        client, broker = self.client(50000)
        client.send(list_offsets_request(1), struct.pack(">i", 10) + b"\x00\x12\x00\x09" + bytes(6))
        held = self.budget.total
        self.assertGreater(held, 0)  # the ApiVersions answer waits for ListOffsets 1
        broker.answer(list_offsets_response(1))
        self.assertEqual(self.budget.total, 0)
        self.assertEqual(len(client.responses()), 2)


class PreAuthLimitTests(SynchronousTestCase):
    """With a broker that requires SASL, frames are small until the login succeeded."""

    def setUp(self) -> None:
        self.brokers = FakeBrokers()
        self.factory = limited_factory(
            self.brokers,
            Clock(),
            requires_sasl=True,
            max_pre_auth_frame_bytes=1024,
            max_frame_bytes=1 << 20,
        )
        self.client = ClientSide(self.factory)
        self.broker = self.brokers.opened[0]

    def login(self, mechanism: str, rounds: int) -> None:
        self.client.send(framed(SaslHandshakeRequest[1](mechanism=mechanism), 1))
        self.broker.answer(
            encode_response(SaslHandshakeResponse[1](error_code=0, mechanisms=[mechanism]), 1, 1)
        )
        for n in range(rounds):
            cid = 2 + n
            self.client.send(framed(SaslAuthenticateRequest[2](auth_bytes=b"\0u\0p"), cid))
            self.broker.answer(
                encode_response(
                    SaslAuthenticateResponse[2](
                        error_code=0, error_message=None, auth_bytes=b"", session_lifetime_ms=0
                    ),
                    cid,
                    2,
                )
            )

    def test_large_frame_before_login_refused(self) -> None:
        logs = catch_logs(self)
        self.client.send(big_produce(1, acks=1, size=2000)[:100])
        self.assertFalse(self.client.open)
        self.assertTrue(
            any(
                "over the limit of 1024 bytes (GATEWAY_MAX_PRE_AUTH_FRAME_BYTES" in line
                for line in logs()
            ),
            logs(),
        )

    def test_large_frame_after_login_accepted(self) -> None:
        self.login("PLAIN", 1)
        request = big_produce(9, acks=1, size=200_000)
        self.client.send(request)
        self.assertTrue(self.client.open)
        self.assertTrue(self.broker.transport.value().endswith(request))

    def test_scram_needs_both_rounds(self) -> None:
        self.login("SCRAM-SHA-512", 1)
        self.assertEqual(self.client.wire.reader.max_frame_bytes, 1024)
        self.login("SCRAM-SHA-512", 1)  # a second handshake and round complete it
        self.assertEqual(self.client.wire.reader.max_frame_bytes, 1 << 20)

    def test_without_sasl_no_pre_auth_limit(self) -> None:
        brokers = FakeBrokers()
        client = ClientSide(limited_factory(brokers, Clock(), max_frame_bytes=1 << 20))
        client.send(big_produce(1, acks=1, size=200_000))
        self.assertTrue(client.open)


class DeadlineTests(SynchronousTestCase):
    """The idle limit and the deadline of a request frame, on the reactor's clock."""

    def setUp(self) -> None:
        self.clock = Clock()
        self.brokers = FakeBrokers()
        self.factory = limited_factory(
            self.brokers, self.clock, idle_seconds=600.0, request_receive_seconds=30.0
        )
        self.client = ClientSide(self.factory)
        self.broker = self.brokers.opened[0]

    def test_idle_connection_closed_after_the_limit(self) -> None:
        logs = catch_logs(self)
        self.clock.advance(599)
        self.assertTrue(self.client.open)
        self.clock.advance(1)
        self.assertFalse(self.client.open)
        self.assertTrue(
            any(
                "idle for 600.0 s with nothing in flight" in line
                and "GATEWAY_CONNECTIONS_MAX_IDLE_MS" in line
                for line in logs()
            ),
            logs(),
        )
        self.assertEqual(self.factory.guard.closed_idle, 1)

    def test_a_request_restarts_the_idle_limit(self) -> None:
        self.clock.advance(500)
        self.client.send(list_offsets_request(1))
        self.broker.answer(list_offsets_response(1))
        self.clock.advance(599)
        self.assertTrue(self.client.open)
        self.clock.advance(1)
        self.assertFalse(self.client.open)

    def test_not_idle_while_a_request_is_in_flight(self) -> None:
        self.client.send(list_offsets_request(1))
        self.clock.advance(1200)
        self.assertTrue(self.client.open)
        self.broker.answer(list_offsets_response(1))
        self.clock.advance(600)
        self.assertFalse(self.client.open)

    def test_one_timer_per_connection(self) -> None:
        """Requests do not make timers: one call is pending, however many requests came."""
        for cid in range(100):
            self.client.send(list_offsets_request(cid))
            self.broker.answer(list_offsets_response(cid))
        self.assertEqual(len(self.clock.getDelayedCalls()), 1)

    def test_half_sent_request_ends_after_its_deadline(self) -> None:
        """
        A request that stops half-way: the answers before it are delivered,
        then the connection closes, with what it held freed.
        """
        logs = catch_logs(self)
        # An interceptor wants Produce, so the request is held whole.
        recorder = Recorder({0}, set())
        self.factory.interceptors = interceptor_set(self.clock, ("p", 1, recorder, None))
        self.client = ClientSide(self.factory, port=50001)
        self.broker = self.brokers.opened[-1]
        self.client.send(list_offsets_request(1) + big_produce(2, acks=1, size=10_000)[:5000])
        self.assertEqual(self.client.wire.reader.buffered, 5000)
        self.clock.advance(29)
        self.assertTrue(self.client.open)
        self.clock.advance(1)
        self.assertEqual(self.client.wire.reader.buffered, 0)
        self.assertTrue(self.client.open)  # ListOffsets 1 is still in flight
        self.broker.answer(list_offsets_response(1))
        self.assertEqual(self.client.responses(), [list_offsets_response(1)])
        self.assertFalse(self.client.open)
        self.assertTrue(
            any(
                "a request frame started 30.0 s ago and is still incomplete" in line
                for line in logs()
            ),
            logs(),
        )
        self.assertEqual(self.factory.guard.frames_timed_out, 1)

    def test_half_passed_request_aborted(self) -> None:
        """Part of it already went to the broker: its answer never comes, so abort."""
        self.client.send(big_produce(1, acks=1, size=10_000)[:5000])
        self.assertGreater(len(self.broker.transport.value()), 0)
        self.clock.advance(30)
        self.assertFalse(self.client.open)
        self.assertTrue(self.client.transport.disconnected)


class RefusalOrderTests(SynchronousTestCase):
    """A refused request closes the connection only after the answers before it."""

    def test_bad_frame_after_good_ones(self) -> None:
        brokers = FakeBrokers()
        client = ClientSide(limited_factory(brokers, Clock()))
        broker = brokers.opened[0]
        client.send(list_offsets_request(1), list_offsets_request(2), struct.pack(">i", -1))
        self.assertEqual(len(broker.requests()), 2)
        self.assertTrue(client.open)
        broker.answer(list_offsets_response(1), list_offsets_response(2))
        self.assertEqual([response_correlation_id(f) for f in client.responses()], [1, 2])
        self.assertFalse(client.open)

    def test_refused_behind_a_held_request(self) -> None:
        """Requests waiting behind a held one came before the refused one: they go first."""
        decision: Deferred[None] = Deferred()
        recorder = Recorder({2}, set(), lambda call: decision)
        brokers = FakeBrokers()
        clock = Clock()
        client = ClientSide(
            limited_factory(
                brokers, clock, interceptors=interceptor_set(clock, ("h", 1, recorder, None))
            )
        )
        broker = brokers.opened[0]
        client.send(list_offsets_request(1), produce_request_v9(3), struct.pack(">i", -7))
        self.assertEqual(broker.requests(), [])
        decision.callback(None)
        self.assertEqual([request_info(f).correlation_id for f in broker.requests()], [1, 3])
        broker.answer(list_offsets_response(1), produce_response(3))
        self.assertEqual([response_correlation_id(f) for f in client.responses()], [1, 3])
        self.assertFalse(client.open)

    def test_refused_before_the_broker_opens(self) -> None:
        """Requests waiting for the broker go on, are answered, then the connection closes."""
        brokers = FakeBrokers(delayed=True)
        client = ClientSide(limited_factory(brokers, Clock()))
        client.send(list_offsets_request(1), struct.pack(">i", -1))
        self.assertTrue(client.open)
        broker = brokers.open_next()
        self.assertEqual(len(broker.requests()), 1)
        broker.answer(list_offsets_response(1))
        self.assertEqual(client.responses(), [list_offsets_response(1)])
        self.assertFalse(client.open)


def produce_request_v9(correlation_id: int) -> bytes:
    return big_produce(correlation_id, acks=1, size=256)


class TwistedLikeTransport(StringTransportWithDisconnection):
    """Lets go of its protocol and producer when the connection is lost, as Twisted's TCP does."""

    def loseConnection(self) -> None:
        if self.connected:
            super().loseConnection()
            self.producer = None
            del self.protocol

    abortConnection = loseConnection


class NoCycleTests(SynchronousTestCase):
    """A closed connection is freed by reference counting alone: no cycle is left."""

    def test_nothing_left_for_the_collector(self) -> None:
        clock = Clock()
        # Holds Produce until the test decides, as an interceptor's timer would.
        decisions: list[Deferred[None]] = []

        def later(call: object) -> Deferred[None]:
            decisions.append(Deferred())
            return decisions[-1]

        recorder = Recorder({0}, set(), later)
        opened: list[Any] = []

        def connect(endpoint: Any, factory: Any) -> Deferred[Any]:
            protocol = factory.buildProtocol(None)
            transport = TwistedLikeTransport(peerAddress=IPv4Address("TCP", "b", 1))
            transport.protocol = protocol
            protocol.makeConnection(transport)
            opened.append(transport)
            d: Deferred[Any] = Deferred()
            d.callback(protocol)
            return d

        factory = ClientConnectionFactory(
            FixedRouter(1),
            FixedHostMapper("gw", PortPlan(7000, 5, 0)),
            connect,
            clock=clock,
            interceptors=interceptor_set(clock, ("hold", 1, recorder, None)),
        )
        gc.collect()
        gc.disable()
        self.addCleanup(gc.enable)
        transport = TwistedLikeTransport(peerAddress=IPv4Address("TCP", "10.0.0.7", 5))
        client = ClientSide(factory, transport=transport)
        client.send(list_offsets_request(1), big_produce(2, acks=1, size=5000))
        broker = opened[0]
        broker.protocol.dataReceived(list_offsets_response(1))
        client.send(big_produce(3, acks=1, size=70_000)[:9000])
        wire = client.wire
        watched = [
            weakref.ref(part)
            for part in (wire, wire.core, wire.machine, broker.protocol, broker.protocol.leg)
        ]
        del wire
        transport.loseConnection()
        broker.loseConnection()
        # The interceptor decides after the client left, and lets go.
        decisions.pop().callback(None)
        del client, broker, opened[:]
        self.assertEqual([ref() for ref in watched], [None] * len(watched))
        gc.set_debug(gc.DEBUG_SAVEALL)
        self.addCleanup(gc.set_debug, 0)
        gc.collect()
        ours = [o for o in gc.garbage if type(o).__module__.startswith("kgateway")]
        gc.garbage.clear()
        self.assertEqual(ours, [])
        self.assertEqual(factory.budget.total, 0)
        self.assertEqual(clock.getDelayedCalls(), [])
