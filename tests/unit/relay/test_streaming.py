"""
Requests and responses passed on as their pieces arrive, with the in-flight
order kept exactly: acks=0, answers of the gateway's own behind streamed
requests, what must stay whole (interceptors, SASL, a held request before).
"""

from __future__ import annotations

import struct
from typing import Any

from twisted.internet.defer import Deferred
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from kgateway.protocol.headers import response_correlation_id
from kgateway.relay.client_protocol import ClientConnectionFactory
from tests.unit.interceptors.test_data_path import Recorder, interceptor_set
from tests.unit.protocol.builders import fetch_response
from tests.unit.relay.fakes import (
    BrokerSide,
    ClientSide,
    FakeBrokers,
    list_offsets_request,
    list_offsets_response,
    produce_response,
    raw_request,
    raw_response,
)
from tests.unit.relay.test_backpressure import SlowReaderTransport
from tests.unit.relay.test_client_connection import make_factory


def big_produce(correlation_id: int, acks: int, size: int) -> bytes:
    """A Produce v9 request with C{size} bytes where its records would be."""
    body = b"\x00" + struct.pack(">hi", acks, 1000) + bytes(range(256)) * (size // 256)
    return raw_request(0, 9, correlation_id, body)


def api_versions_v9(correlation_id: int) -> bytes:
    """ApiVersions above the offered version: the gateway answers it."""
    return raw_request(18, 9, correlation_id)


def in_pieces(client: ClientSide, data: bytes, size: int) -> None:
    for start in range(0, len(data), size):
        client.send(data[start : start + size])


def connected(factory: ClientConnectionFactory | None = None) -> tuple[ClientSide, BrokerSide]:
    brokers = FakeBrokers()
    client = ClientSide(factory or make_factory(brokers, max_frame_bytes=100 << 20))
    return client, brokers.opened[-1]


class RequestStreamingTests(SynchronousTestCase):
    def test_tiny_pieces_go_on_as_they_arrive(self) -> None:
        """A large Produce request goes on piece by piece; at most its header is ever held."""
        client, broker = connected()
        request = big_produce(1, acks=1, size=200_000)
        most_held = 0
        for start in range(0, len(request), 7):
            client.send(request[start : start + 7])
            most_held = max(most_held, client.wire.reader.buffered)
            # Everything that arrived went on, but a header still being read.
            self.assertEqual(
                _sent(broker) + client.wire.reader.buffered, min(start + 7, len(request))
            )
        self.assertEqual(broker.transport.value(), request)
        self.assertLess(most_held, 64)
        self.assertEqual(len(client.wire.core.inflight), 1)
        broker.answer(produce_response(1))
        self.assertEqual(client.responses(), [produce_response(1)])

    def test_order_kept_around_streamed_requests(self) -> None:
        """
        acks=0 streamed takes no place; an answer of the gateway's own behind a
        streamed request waits for the broker's answer to it.
        """
        client, broker = connected()
        first = big_produce(1, acks=1, size=100_000)
        silent = big_produce(2, acks=0, size=100_000)
        stream = first + silent + api_versions_v9(3) + list_offsets_request(4)
        in_pieces(client, stream, 4096)
        sent = broker.transport.value()
        self.assertEqual(sent, first + silent + list_offsets_request(4))
        self.assertEqual(len(client.wire.core.inflight), 3)  # 1, 3 (local) and 4
        broker.answer(produce_response(1))
        broker.answer(list_offsets_response(4))
        self.assertEqual([response_correlation_id(f) for f in client.responses()], [1, 3, 4])

    def test_request_an_interceptor_wants_stays_whole(self) -> None:
        """An interceptor that wants Produce gets it as one frame, however it arrived."""
        seen: list[int] = []
        recorder = Recorder({0}, set(), lambda call: seen.append(len(call.frame)))
        brokers = FakeBrokers()
        factory = make_factory(brokers, max_frame_bytes=1 << 20)
        factory.interceptors = interceptor_set(Clock(), ("p", 1, recorder, None))
        client = ClientSide(factory)
        broker = brokers.opened[0]
        request = big_produce(1, acks=1, size=50_000)
        in_pieces(client, request[:-10], 1000)
        self.assertEqual(broker.transport.value(), b"")
        self.assertEqual(client.wire.reader.buffered, len(request) - 10)
        client.send(request[-10:])
        self.assertEqual(seen, [len(request)])
        self.assertEqual(broker.transport.value(), request)

    def test_frame_behind_a_held_request_waits(self) -> None:
        """Nothing is passed on past a request an interceptor holds."""
        decision: Deferred[None] = Deferred()
        recorder = Recorder({2}, set(), lambda call: decision)
        brokers = FakeBrokers()
        factory = make_factory(brokers, max_frame_bytes=1 << 20)
        factory.interceptors = interceptor_set(Clock(), ("h", 1, recorder, None))
        client = ClientSide(factory)
        broker = brokers.opened[0]
        big = big_produce(2, acks=1, size=30_000)
        client.send(list_offsets_request(1) + big[:1000])
        self.assertEqual(broker.transport.value(), b"")
        self.assertEqual(client.transport.producerState, "paused")
        decision.callback(None)
        # The ListOffsets went; the Produce behind it now passes on as it arrives.
        self.assertEqual(broker.transport.value(), list_offsets_request(1) + big[:1000])
        client.send(big[1000:])
        self.assertEqual(broker.transport.value(), list_offsets_request(1) + big)

    def test_header_cut_before_the_client_id_waits(self) -> None:
        """The first frame's client id must be in before it can go on."""
        client, broker = connected()
        request = big_produce(1, acks=1, size=10_000)
        client.send(request[:15])
        self.assertEqual(broker.transport.value(), b"")
        client.send(request[15:40])
        self.assertEqual(broker.transport.value(), request[:40])
        self.assertEqual(client.wire.core.requests.client.client_id, "test-client")


def _sent(broker: BrokerSide) -> int:
    return len(broker.transport.value())


class ResponseStreamingTests(SynchronousTestCase):
    def test_non_reading_client_costs_a_few_reads(self) -> None:
        """
        A client that reads nothing: the broker is paused after one read, and the
        node holds what Twisted has queued, not the 10 MiB response.
        """
        brokers = FakeBrokers()
        transport = SlowReaderTransport(limit=64 * 1024)
        client = ClientSide(make_factory(brokers, max_frame_bytes=100 << 20), transport=transport)
        broker = brokers.opened[0]
        client.send(raw_request(71, 0, 1))
        answer = raw_response(1, b"r" * (10 << 20))
        fed = 0
        while broker.transport.producerState == "producing" and fed < len(answer):
            broker.protocol.dataReceived(answer[fed : fed + 65536])
            fed += 65536
        self.assertEqual(broker.transport.producerState, "paused")
        self.assertLessEqual(fed, 2 * 65536)
        reader = client.wire.core.broker_reader
        assert reader is not None
        self.assertEqual(reader.buffered, 0)
        self.assertLessEqual(len(transport.value()), 2 * 65536)

    def test_streamed_response_then_local_answer(self) -> None:
        """An answer of the gateway's own behind a streamed response leaves right after it."""
        client, broker = connected()
        client.send(raw_request(1, 16, 1, b"\x00" * 20), api_versions_v9(2))
        frame = fetch_response(16, ())
        frame = frame[:4] + (1).to_bytes(4, "big") + frame[8:]
        for start in range(0, len(frame), 333):
            broker.protocol.dataReceived(frame[start : start + 333])
        [first, second] = client.responses()
        self.assertEqual(first, frame)
        self.assertEqual(response_correlation_id(second), 2)

    def test_response_an_interceptor_wants_stays_whole(self) -> None:
        seen: list[Any] = []
        recorder = Recorder(set(), {71}, lambda call: seen.append(len(call.frame)))
        brokers = FakeBrokers()
        factory = make_factory(brokers)
        factory.interceptors = interceptor_set(Clock(), ("r", 1, recorder, None))
        client = ClientSide(factory)
        broker = brokers.opened[0]
        client.send(raw_request(71, 0, 1))
        answer = raw_response(1, b"z" * 5000)
        broker.protocol.dataReceived(answer[:100])
        self.assertEqual(client.transport.value(), b"")
        reader = client.wire.core.broker_reader
        assert reader is not None
        self.assertEqual(reader.buffered, 100)
        broker.protocol.dataReceived(answer[100:])
        self.assertEqual(seen, [len(answer)])
        self.assertEqual(client.responses(), [answer])
