"""
A client, the gateway's two legs and a broker that answers, with bytes
pumped between them by L{twisted.test.iosim}.
"""

from __future__ import annotations

from kafka.protocol.metadata import MetadataResponse
from twisted.internet.defer import Deferred, succeed
from twisted.internet.protocol import Factory, Protocol
from twisted.test.iosim import FakeTransport, IOPump, connect
from twisted.trial.unittest import SynchronousTestCase

from kgateway.net import HostPort
from kgateway.protocol.codec import decode_response
from kgateway.protocol.framing import FrameReader
from kgateway.protocol.headers import request_info
from kgateway.relay.client_protocol import ClientConnectionFactory
from kgateway.routing.mapping import FixedHostMapper
from kgateway.routing.ports import PortPlan
from tests.unit.relay.fakes import (
    FixedRouter,
    list_offsets_request,
    list_offsets_response,
    metadata_request,
    metadata_response,
    produce_request,
)

CLUSTER = [(0, "b0.kafka", 9092), (1, "b1.kafka", 9092), (2, "b2.kafka", 9092)]


class AnsweringBroker(Protocol):
    """A broker: Metadata gets the cluster, ListOffsets an empty answer, Produce acks=0 nothing."""

    def __init__(self) -> None:
        self.reader = FrameReader()
        self.seen: list[int] = []

    def dataReceived(self, data: bytes) -> None:
        for frame in self.reader.feed(data):
            info = request_info(frame)
            self.seen.append(info.correlation_id)
            assert self.transport is not None
            if info.api_key == 3:
                self.transport.write(metadata_response(info.correlation_id, CLUSTER))
            elif info.api_key == 2:
                self.transport.write(list_offsets_response(info.correlation_id))


class KafkaClient(Protocol):
    """Collects the response frames the gateway sends."""

    def __init__(self) -> None:
        self.reader = FrameReader()
        self.responses: list[bytes] = []

    def dataReceived(self, data: bytes) -> None:
        self.responses.extend(self.reader.feed(data))


class IOSimRelayTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.broker_pumps: list[IOPump] = []
        self.broker = AnsweringBroker()

        def connect_broker(endpoint: HostPort, factory: Factory) -> Deferred[Protocol]:
            wire = factory.buildProtocol(None)
            assert isinstance(wire, Protocol)
            pump = connect(
                self.broker,
                FakeTransport(self.broker, isServer=True),
                wire,
                FakeTransport(wire, isServer=False),
                greet=False,
            )
            self.broker_pumps.append(pump)
            return succeed(wire)

        factory = ClientConnectionFactory(
            FixedRouter(0),
            FixedHostMapper("gw.local", PortPlan(9000, 3)),
            connect_broker,
        )
        self.client = KafkaClient()
        gateway_side = factory.buildProtocol(None)
        self.client_pump = connect(
            gateway_side,
            FakeTransport(gateway_side, isServer=True),
            self.client,
            FakeTransport(self.client, isServer=False),
            greet=False,
        )

    def pump(self) -> None:
        for _ in range(10):
            moved = self.client_pump.pump()
            for pump in self.broker_pumps:
                moved = pump.pump() or moved
            if not moved:
                return

    def test_pipelined_mix_answered_in_order(self) -> None:
        sent = []
        for cid in range(1, 31):
            if cid % 3 == 0:
                sent.append(metadata_request(cid))
            elif cid % 3 == 1:
                sent.append(list_offsets_request(cid))
            else:
                sent.append(produce_request(cid, acks=0))
        assert self.client.transport is not None
        self.client.transport.write(b"".join(sent))
        self.pump()

        self.assertEqual(self.broker.seen, list(range(1, 31)))
        answered = [cid for cid in range(1, 31) if cid % 3 != 2]
        self.assertEqual([int.from_bytes(f[4:8], "big") for f in self.client.responses], answered)
        for frame in self.client.responses:
            if int.from_bytes(frame[4:8], "big") % 3 == 0:
                message = decode_response(MetadataResponse, frame, 12)
                self.assertEqual(
                    [(b.node_id, b.host, b.port) for b in message.brokers],
                    [(0, "gw.local", 9000), (1, "gw.local", 9001), (2, "gw.local", 9002)],
                )
            else:
                self.assertEqual(frame, list_offsets_response(int.from_bytes(frame[4:8], "big")))
