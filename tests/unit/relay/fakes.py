"""
Fakes for the relay tests: Kafka messages built with kafka-python, a fake
broker behind the L{Connector} seam, routers, a client connection on a
StringTransport, and a log catcher.
"""

from __future__ import annotations

import struct
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from kafka.protocol.consumer import ListOffsetsRequest, ListOffsetsResponse
from kafka.protocol.metadata import MetadataRequest, MetadataResponse
from kafka.protocol.producer import ProduceRequest, ProduceResponse
from twisted.internet.address import IPv4Address
from twisted.internet.defer import Deferred, fail, succeed
from twisted.internet.error import ConnectionRefusedError
from twisted.internet.protocol import Factory, Protocol
from twisted.internet.testing import StringTransportWithDisconnection
from twisted.logger import ILogObserver, formatEvent, globalLogPublisher
from twisted.trial.unittest import SynchronousTestCase
from zope.interface import implementer, provider

from kgateway.net import HostPort
from kgateway.protocol.codec import encode_response
from kgateway.protocol.framing import FrameReader
from kgateway.relay.client_protocol import ClientConnectionFactory
from kgateway.routing.router import Accepted, IRouter, NoRoute, Route

CLIENT_ID = "test-client"


# Messages -------------------------------------------------------------------


def _request(message: Any, correlation_id: int) -> bytes:
    message.with_header(correlation_id=correlation_id, client_id=CLIENT_ID)
    return bytes(message.encode(header=True, framed=True))


def metadata_request(correlation_id: int, version: int = 12) -> bytes:
    """A framed Metadata request for every topic."""
    return _request(
        MetadataRequest[version](
            topics=None,
            allow_auto_topic_creation=False,
            include_topic_authorized_operations=False,
        ),
        correlation_id,
    )


def metadata_response(
    correlation_id: int, brokers: list[tuple[int, str, int]], version: int = 12
) -> bytes:
    """A framed Metadata response listing C{brokers} as (id, host, port) and one topic."""
    cls = MetadataResponse[version]
    partition = cls.MetadataResponseTopic.MetadataResponsePartition(
        error_code=0,
        partition_index=0,
        leader_id=brokers[0][0] if brokers else -1,
        leader_epoch=3,
        replica_nodes=[b[0] for b in brokers],
        isr_nodes=[b[0] for b in brokers],
        offline_replicas=[],
    )
    topic = cls.MetadataResponseTopic(
        error_code=0,
        name="orders",
        topic_id=uuid.UUID(int=1),
        is_internal=False,
        partitions=[partition],
    )
    message = cls(
        throttle_time_ms=0,
        brokers=[
            cls.MetadataResponseBroker(node_id=i, host=h, port=p, rack=f"rack-{i}")
            for i, h, p in brokers
        ],
        cluster_id="cluster-1",
        controller_id=brokers[0][0] if brokers else -1,
        topics=[topic],
    )
    return encode_response(message, correlation_id, version)


def list_offsets_request(correlation_id: int) -> bytes:
    """A framed ListOffsets v7 request."""
    return _request(
        ListOffsetsRequest[7](replica_id=-1, isolation_level=0, topics=[]), correlation_id
    )


def list_offsets_response(correlation_id: int, throttle_ms: int = 0) -> bytes:
    """A framed ListOffsets v7 response (the throttle time makes each one distinct)."""
    return encode_response(
        ListOffsetsResponse[7](throttle_time_ms=throttle_ms, topics=[]), correlation_id, 7
    )


def produce_request(correlation_id: int, acks: int, version: int = 9) -> bytes:
    """A framed Produce request with no records."""
    return _request(
        ProduceRequest[version](transactional_id=None, acks=acks, timeout_ms=1000, topic_data=[]),
        correlation_id,
    )


def produce_response(correlation_id: int, version: int = 9) -> bytes:
    """A framed, empty Produce response."""
    return encode_response(
        ProduceResponse[version](responses=[], throttle_time_ms=0), correlation_id, version
    )


def raw_request(api_key: int, version: int, correlation_id: int, body: bytes = b"") -> bytes:
    """A request the codec may not know: a valid flexible (v2) header, then C{body}."""
    client = CLIENT_ID.encode()
    payload = struct.pack(">hhih", api_key, version, correlation_id, len(client)) + client
    payload += b"\x00" + body  # no tagged fields
    return struct.pack(">i", len(payload)) + payload


def raw_response(correlation_id: int, body: bytes) -> bytes:
    """A response the gateway does not decode: correlation id, then C{body}."""
    payload = struct.pack(">i", correlation_id) + body
    return struct.pack(">i", len(payload)) + payload


def frames(data: bytes) -> list[bytes]:
    """Cut bytes written to a transport into frames; fails on a trailing partial frame."""
    reader = FrameReader()
    out = reader.feed(data) if data else []
    assert reader.buffered == 0, f"{reader.buffered} bytes of a partial frame"
    return out


# The broker side --------------------------------------------------------------


def connected_transport(protocol: Protocol, peer: IPv4Address) -> StringTransportWithDisconnection:
    """Connect C{protocol} to a new StringTransport that reports its disconnection."""
    transport = StringTransportWithDisconnection(peerAddress=peer)
    transport.protocol = protocol
    protocol.makeConnection(transport)
    return transport


@dataclass
class BrokerSide:
    """One connection the gateway made to the fake broker."""

    endpoint: HostPort
    protocol: Any
    transport: StringTransportWithDisconnection

    def requests(self) -> list[bytes]:
        """Every request frame the gateway has written so far."""
        return frames(self.transport.value())

    def answer(self, *responses: bytes) -> None:
        """The broker writes C{responses} (in one read)."""
        self.protocol.dataReceived(b"".join(responses))

    def hang_up(self) -> None:
        """The broker closes the connection."""
        self.transport.loseConnection()


@dataclass
class FakeBrokers:
    """
    A L{Connector} for tests.  By default a connection opens at once; with
    C{delayed} it opens when the test calls L{open_next}; with C{refuse} it
    fails, and so does one to a broker in C{down} (a broker whose process is
    gone: connection refused).  C{tried} is every endpoint asked for, in order.
    """

    delayed: bool = False
    refuse: bool = False
    down: set[HostPort] = field(default_factory=set)
    tried: list[HostPort] = field(default_factory=list)
    opened: list[BrokerSide] = field(default_factory=list)
    waiting: list[tuple[HostPort, Factory, Deferred[Protocol]]] = field(default_factory=list)

    def connect(self, endpoint: HostPort, factory: Factory) -> Deferred[Protocol]:
        """The Connector seam."""
        self.tried.append(endpoint)
        if self.refuse or endpoint in self.down:
            return fail(ConnectionRefusedError(f"{endpoint.host}:{endpoint.port}"))
        if self.delayed:
            attempt: Deferred[Protocol] = Deferred()
            self.waiting.append((endpoint, factory, attempt))
            return attempt
        return succeed(self._open(endpoint, factory).protocol)

    def open_next(self) -> BrokerSide:
        """Let the oldest delayed connection open."""
        endpoint, factory, attempt = self.waiting.pop(0)
        side = self._open(endpoint, factory)
        if not attempt.called:
            attempt.callback(side.protocol)
        return side

    def _open(self, endpoint: HostPort, factory: Factory) -> BrokerSide:
        address = IPv4Address("TCP", endpoint.host, endpoint.port)
        protocol = factory.buildProtocol(address)
        assert isinstance(protocol, Protocol), "the factory refused the connection"
        side = BrokerSide(endpoint, protocol, connected_transport(protocol, address))
        self.opened.append(side)
        return side


# Routers ------------------------------------------------------------------------


@implementer(IRouter)
class FixedRouter:
    """Routes every connection to one broker (B{b<id>.kafka:9092} unless told otherwise)."""

    def __init__(
        self,
        broker_id: int = 1,
        address: HostPort | None = None,
        fallbacks: tuple[HostPort, ...] = (),
    ) -> None:
        self.route_to = Route(
            broker_id, address or HostPort(f"b{broker_id}.kafka", 9092), fallbacks
        )
        self.asked: list[Accepted] = []

    def route(self, connection: Accepted) -> Deferred[Route]:
        """Always the same route."""
        self.asked.append(connection)
        return succeed(self.route_to)


@implementer(IRouter)
class NoRouter:
    """Routes no connection, saying C{reason}."""

    def __init__(self, reason: str = "on the port for broker 1: no broker is reachable") -> None:
        self.reason = reason

    def route(self, connection: Accepted) -> Deferred[Route]:
        """Always NoRoute."""
        return fail(NoRoute(self.reason))


@implementer(IRouter)
class LateRouter:
    """Answers when the test says (as an SNI router answers after the TLS handshake)."""

    def __init__(self) -> None:
        self.asked: list[tuple[Accepted, Deferred[Route]]] = []

    def route(self, connection: Accepted) -> Deferred[Route]:
        """A Deferred the test fires with L{answer} or L{refuse}."""
        answer: Deferred[Route] = Deferred()
        self.asked.append((connection, answer))
        return answer

    def answer(self, route: Route, index: int = 0) -> None:
        """The router decided."""
        self.asked[index][1].callback(route)

    def refuse(self, reason: str, index: int = 0) -> None:
        """The router found nothing."""
        self.asked[index][1].errback(NoRoute(reason))


# The client side --------------------------------------------------------------


class ClientSide:
    """
    A Kafka client connected to a gateway port, on a StringTransport: from
    port C{port} of 10.0.0.7 to C{gateway_port} (the transport's host port).
    """

    def __init__(
        self,
        factory: ClientConnectionFactory | None,
        port: int = 50000,
        transport: StringTransportWithDisconnection | None = None,
        gateway_port: int = 7001,
    ) -> None:
        # (None is a node's factory before it listens: no client can connect to that.)
        assert factory is not None, "the node is not listening"
        address = IPv4Address("TCP", "10.0.0.7", port)
        self.wire = factory.buildProtocol(address)
        if transport is None:
            self.transport = StringTransportWithDisconnection(
                hostAddress=IPv4Address("TCP", "10.0.0.1", gateway_port), peerAddress=address
            )
            self.transport.protocol = self.wire
            self.wire.makeConnection(self.transport)
        else:
            self.transport = transport
            transport.protocol = self.wire
            self.wire.makeConnection(transport)

    def send(self, *requests: bytes) -> None:
        """The client writes C{requests} (in one read)."""
        self.wire.dataReceived(b"".join(requests))

    def responses(self) -> list[bytes]:
        """Every response frame the gateway has written to the client so far."""
        return frames(self.transport.value())

    @property
    def open(self) -> bool:
        """Whether the gateway has not closed this connection."""
        return bool(self.transport.connected)


# Logs ---------------------------------------------------------------------------


def catch_logs(case: SynchronousTestCase) -> Callable[[], list[str]]:
    """Record log events until the test ends; return a function giving them as text."""
    events: list[dict[str, Any]] = []

    @provider(ILogObserver)
    def observer(event: dict[str, Any]) -> None:
        events.append(event)

    globalLogPublisher.addObserver(observer)
    case.addCleanup(globalLogPublisher.removeObserver, observer)
    return lambda: [formatEvent(event) for event in events]
