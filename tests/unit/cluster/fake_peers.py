"""
Fake gateway peers for the peer-check tests: a connector whose addresses
answer ApiVersions (with kafka-python's response class), stay silent (a
stopped process), refuse (a killed one) or accept and hang up (a port whose
broker is down), over in-memory connections pumped by L{FakePeers.flush}.
"""

from __future__ import annotations

from typing import Any

from kafka.protocol.metadata import ApiVersionsRequest, ApiVersionsResponse
from twisted.internet.defer import Deferred, fail, succeed
from twisted.internet.error import ConnectionRefusedError
from twisted.internet.protocol import Factory, Protocol, connectionDone
from twisted.python.failure import Failure
from twisted.test.iosim import FakeTransport, IOPump, connect

from kgateway.net import HostPort
from kgateway.protocol.codec import encode_response
from kgateway.protocol.framing import FrameReader
from kgateway.protocol.headers import request_client_id, request_info

#: What an address does with a check.
ANSWER, SILENT, REFUSE, HANG_UP = "answer", "silent", "refuse", "hang up"


class PeerPort(Protocol):
    """One peer port's side of a check connection."""

    def __init__(self, peers: FakePeers, address: HostPort) -> None:
        self.peers = peers
        self.address = address
        self.reader = FrameReader()
        self.lost = False
        self.wire: FakeTransport

    def connectionMade(self) -> None:
        if self.peers.mode(self.address) == HANG_UP:
            self.wire.loseConnection()

    def dataReceived(self, data: bytes) -> None:
        for frame in self.reader.feed(data):
            info = request_info(frame)
            request = ApiVersionsRequest.decode(
                memoryview(frame)[4:], version=info.api_version, header=True
            )
            assert request.API_KEY == 18, "a peer check asks ApiVersions only"
            self.peers.asked.append(self.address)
            self.peers.client_ids.add(request_client_id(frame))
            if self.peers.mode(self.address) != ANSWER:
                continue
            answer = ApiVersionsResponse(error_code=0, api_keys=[], throttle_time_ms=0)
            self.wire.write(encode_response(answer, info.correlation_id, info.api_version))

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        self.lost = True


class FakePeers:
    """Every peer's ports: what each address does, and what it was asked."""

    def __init__(self) -> None:
        #: The mode of each address (host, port); an address not listed answers.
        self.modes: dict[HostPort, str] = {}
        #: The mode of every port of a host not listed by address.
        self.hosts: dict[str, str] = {}
        #: Every connection attempt, and every ApiVersions each address was asked.
        self.attempts: list[HostPort] = []
        self.asked: list[HostPort] = []
        #: The client ids the checks carried.
        self.client_ids: set[str | None] = set()
        self.servers: list[PeerPort] = []
        self.pumps: list[IOPump] = []

    def mode(self, address: HostPort) -> str:
        return self.modes.get(address, self.hosts.get(address.host, ANSWER))

    def connect(self, address: HostPort, factory: Factory) -> Deferred[Protocol]:
        """The L{Connector} the checks are given."""
        self.attempts.append(address)
        if self.mode(address) == REFUSE:
            return fail(ConnectionRefusedError(str(address)))
        client = factory.buildProtocol(None)
        assert isinstance(client, Protocol)
        server = PeerPort(self, address)
        server.wire = FakeTransport(server, isServer=True)
        self.servers.append(server)
        self.pumps.append(
            connect(server, server.wire, client, FakeTransport(client, isServer=False), greet=False)
        )
        return succeed(client)

    def kill(self, host: str) -> None:
        """The peer's process dies: its connections close, its ports refuse."""
        self.hosts[host] = REFUSE
        for server in self.servers:
            if server.address.host == host and not server.lost:
                server.wire.loseConnection()
        self.flush()

    def open(self) -> int:
        """Connections still open."""
        return sum(1 for s in self.servers if not s.lost)

    def flush(self) -> None:
        """Move bytes over every connection until nothing moves."""
        for _ in range(1000):
            if not any([pump.pump() for pump in self.pumps]):
                return
        raise AssertionError("the connections never went quiet")


def advance(clock: Any, peers: FakePeers, seconds: float, step: float = 0.05) -> None:
    """Move the clock in small steps, moving the bytes after each."""
    peers.flush()
    left = seconds
    while left > 1e-9:
        move = min(step, left)
        clock.advance(move)
        peers.flush()
        left -= move
