"""
Backpressure between the legs, and the memory a connection may hold.
"""

from __future__ import annotations

from twisted.internet.address import IPv4Address
from twisted.internet.testing import StringTransportWithDisconnection
from twisted.trial.unittest import SynchronousTestCase

from kgateway.protocol.framing import FrameError, FrameReader
from kgateway.relay.client_protocol import ClientConnectionFactory
from kgateway.routing.mapping import FixedHostMapper
from kgateway.routing.ports import PortPlan
from tests.unit.relay.fakes import (
    BrokerSide,
    ClientSide,
    FakeBrokers,
    FixedRouter,
    list_offsets_request,
    list_offsets_response,
    raw_request,
    raw_response,
)


class SlowReaderTransport(StringTransportWithDisconnection):
    """
    A transport whose peer stops reading: like Twisted's TCP transport, it
    pauses its streaming producer once more than C{limit} bytes wait to be
    sent, and resumes it when the peer has read them (L{peer_reads}).
    """

    def __init__(self, limit: int) -> None:
        super().__init__(peerAddress=IPv4Address("TCP", "10.0.0.7", 50000))
        self.limit = limit
        self.paused_producer = False

    def write(self, data: bytes) -> None:
        super().write(data)
        if len(self.value()) > self.limit and self.producer is not None:
            if not self.paused_producer:
                self.paused_producer = True
                self.producer.pauseProducing()

    def writeSequence(self, data: list[bytes]) -> None:
        self.write(b"".join(data))

    def peer_reads(self) -> bytes:
        """The peer reads everything buffered; a paused producer resumes."""
        data: bytes = self.value()
        self.clear()
        if self.paused_producer and self.producer is not None:
            self.paused_producer = False
            self.producer.resumeProducing()
        return data


class SlowBrokers(FakeBrokers):
    """Brokers whose connection is a L{SlowReaderTransport}."""

    limit: int = 100

    def _open(self, endpoint, factory):  # type: ignore[no-untyped-def]
        address = IPv4Address("TCP", endpoint.host, endpoint.port)
        protocol = factory.buildProtocol(address)
        transport = SlowReaderTransport(self.limit)
        transport.protocol = protocol
        protocol.makeConnection(transport)
        side = BrokerSide(endpoint, protocol, transport)
        self.opened.append(side)
        return side


def make_factory(brokers: FakeBrokers) -> ClientConnectionFactory:
    return ClientConnectionFactory(
        FixedRouter(1),
        FixedHostMapper("gw", PortPlan(7000, 3)),
        brokers.connect,
    )


class BackpressureTests(SynchronousTestCase):
    """A side whose writes back up pauses reading on the other side."""

    def test_legs_register_each_other_as_streaming_producers(self) -> None:
        """Each side's streaming producer pauses and resumes reading the other side."""
        brokers = FakeBrokers()
        client = ClientSide(make_factory(brokers))
        [broker] = brokers.opened
        self.assertTrue(broker.transport.streaming)
        self.assertTrue(client.transport.streaming)
        for full, other in (
            (broker.transport, client.transport),
            (client.transport, broker.transport),
        ):
            self.assertEqual(other.producerState, "producing")
            producer = full.producer
            assert producer is not None
            producer.pauseProducing()
            self.assertEqual(other.producerState, "paused")
            producer.resumeProducing()
            self.assertEqual(other.producerState, "producing")

    def test_backpressure_does_not_lift_another_pause(self) -> None:
        """
        The broker's buffer draining does not make the gateway read a client
        it stopped reading for another reason (here: the memory budget).
        """
        brokers = FakeBrokers()
        client = ClientSide(make_factory(brokers))
        [broker] = brokers.opened
        client.wire.core.holding.pause()
        self.assertEqual(client.transport.producerState, "paused")
        producer = broker.transport.producer
        assert producer is not None
        producer.pauseProducing()
        producer.resumeProducing()
        self.assertEqual(client.transport.producerState, "paused")
        client.wire.core.holding.resume()
        self.assertEqual(client.transport.producerState, "producing")

    def test_slow_client_pauses_reading_from_broker(self) -> None:
        brokers = FakeBrokers()
        client = ClientSide(make_factory(brokers), transport=SlowReaderTransport(limit=100))
        assert isinstance(client.transport, SlowReaderTransport)
        [broker] = brokers.opened
        client.send(raw_request(71, 0, 1), raw_request(71, 0, 2))
        self.assertEqual(broker.transport.producerState, "producing")

        big = raw_response(1, b"x" * 500)
        broker.answer(big)
        self.assertEqual(broker.transport.producerState, "paused")

        self.assertEqual(client.transport.peer_reads(), big)
        self.assertEqual(broker.transport.producerState, "producing")
        broker.answer(raw_response(2, b"y"))
        self.assertEqual(client.transport.peer_reads(), raw_response(2, b"y"))

    def test_slow_broker_pauses_reading_from_client(self) -> None:
        brokers = SlowBrokers()
        client = ClientSide(make_factory(brokers))
        [broker] = brokers.opened
        assert isinstance(broker.transport, SlowReaderTransport)
        self.assertEqual(client.transport.producerState, "producing")

        requests = [list_offsets_request(cid) for cid in range(1, 10)]
        client.send(*requests)
        self.assertEqual(client.transport.producerState, "paused")

        self.assertEqual(broker.transport.peer_reads(), b"".join(requests))
        self.assertEqual(client.transport.producerState, "producing")
        broker.answer(*[list_offsets_response(cid) for cid in range(1, 10)])
        self.assertEqual(len(client.responses()), 9)

    def test_client_not_read_while_broker_connects(self) -> None:
        brokers = FakeBrokers(delayed=True)
        client = ClientSide(make_factory(brokers))
        self.assertEqual(client.transport.producerState, "paused")
        brokers.open_next()
        self.assertEqual(client.transport.producerState, "producing")


class BoundedMemoryTests(SynchronousTestCase):
    """The frame reader holds at most one partial frame."""

    def test_complete_frames_are_not_held(self) -> None:
        reader = FrameReader()
        stream = b"".join(list_offsets_request(cid) for cid in range(50))
        partial = list_offsets_request(50)[:11]
        out = reader.feed(stream + partial)
        self.assertEqual(len(out), 50)
        self.assertEqual(b"".join(out), stream)
        self.assertEqual(reader.buffered, len(partial))

    def test_partial_frame_held_until_complete(self) -> None:
        frame = list_offsets_request(7)
        reader = FrameReader()
        for i in range(len(frame) - 1):
            self.assertEqual(reader.feed(frame[i : i + 1]), [])
            self.assertEqual(reader.buffered, i + 1)
        self.assertEqual(reader.feed(frame[-1:]), [frame])
        self.assertEqual(reader.buffered, 0)

    def test_oversized_frame_refused_before_it_is_buffered(self) -> None:
        reader = FrameReader(max_frame_bytes=1000)
        with self.assertRaises(FrameError) as caught:
            reader.feed(b"\x00\x00\x10\x00" + b"z" * 10)
        self.assertIn("over the limit of 1000 bytes", str(caught.exception))

    def test_client_connection_passes_a_partial_frame_on(self) -> None:
        """A frame whose header is in goes on as it arrives: nothing of it is held."""
        brokers = FakeBrokers()
        client = ClientSide(make_factory(brokers))
        frame = list_offsets_request(1)
        client.send(frame * 20 + frame[:-1])
        self.assertEqual(client.wire.reader.buffered, 0)
        self.assertEqual(brokers.opened[0].transport.value(), frame * 20 + frame[:-1])
        client.send(frame[-1:])
        self.assertEqual(len(brokers.opened[0].requests()), 21)

    def test_client_connection_holds_at_most_a_header_it_waits_for(self) -> None:
        """Until the header is in, the start of the frame is held (a few bytes)."""
        brokers = FakeBrokers()
        client = ClientSide(make_factory(brokers))
        frame = list_offsets_request(1)
        client.send(frame * 20 + frame[:11])
        self.assertEqual(client.wire.reader.buffered, 11)
        self.assertEqual(len(brokers.opened[0].requests()), 20)
