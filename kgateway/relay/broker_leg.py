"""
The broker leg: the gateway's own connection to one Kafka broker, made for
one client connection.

One upstream connection per client connection keeps the broker's view of the
client intact (SASL passes through untouched, quotas and sessions behave as
if the client were direct).  The leg's lifecycle is an Automat machine.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol as TypingProtocol
from typing import cast

from automat import TypeMachineBuilder
from twisted.internet.defer import CancelledError, Deferred
from twisted.internet.interfaces import ITransport
from twisted.internet.protocol import Factory, Protocol, connectionDone
from twisted.logger import Logger
from twisted.python.failure import Failure
from zope.interface import Interface

from kgateway.metrics import TrafficStats
from kgateway.net import Connector, HostPort
from kgateway.protocol.framing import DEFAULT_MAX_FRAME_BYTES, FrameError, FrameReader
from kgateway.relay.transport import Transport, no_delay, write_pieces

log = Logger()


class IBrokerLegOwner(Interface):
    """What a broker leg reports to the client leg it serves."""

    def broker_ready(leg: BrokerLeg, transport: ITransport) -> None:
        """The connection to the broker is open, on C{transport} (for backpressure)."""

    def responses(frames: list[list[bytes]]) -> None:
        """Whole response frames arrived from the broker, in order, each as its pieces."""

    def broker_lost(reason: str) -> None:
        """The broker connection could not be made, failed, or was closed."""


class BrokerLeg(TypingProtocol):
    """The inputs of a broker leg."""

    def connected(self, wire: BrokerWire) -> None:
        """The TCP connection is open."""

    def connect_failed(self, reason: str) -> None:
        """The TCP connection could not be made."""

    def send(self, frames: list[bytes]) -> None:
        """Write request frames to the broker."""

    def received(self, frames: list[list[bytes]]) -> None:
        """Response frames arrived, each as the pieces it arrived in (see L{FrameReader})."""

    def close(self, reason: str) -> None:
        """Close the connection (the client leg is done with it)."""

    def lost(self, reason: str) -> None:
        """The TCP connection is gone."""


@dataclass
class BrokerLegCore:
    """What a broker leg knows: where it goes, for whom, and what waits to be sent."""

    endpoint: HostPort
    owner: IBrokerLegOwner
    max_frame_bytes: int = DEFAULT_MAX_FRAME_BYTES
    wire: BrokerWire | None = None
    attempt: Deferred[Protocol] | None = None
    waiting: list[bytes] = field(default_factory=list)
    closed_because: str | None = None


def _build() -> Callable[[BrokerLegCore], BrokerLeg]:
    machine = TypeMachineBuilder(BrokerLeg, BrokerLegCore)
    Connecting = machine.state("Connecting")
    Open = machine.state("Open")
    Closing = machine.state("Closing")
    Closed = machine.state("Closed")

    @Connecting.upon(BrokerLeg.connected).to(Open)
    def opened(leg: BrokerLeg, core: BrokerLegCore, wire: BrokerWire) -> None:
        core.wire = wire
        core.attempt = None
        if core.waiting:
            wire.transport.writeSequence(core.waiting)
            core.waiting = []
        core.owner.broker_ready(leg, wire.transport)

    @Connecting.upon(BrokerLeg.connect_failed).to(Closed)
    def failed(leg: BrokerLeg, core: BrokerLegCore, reason: str) -> None:
        core.attempt = None
        core.waiting = []
        core.owner.broker_lost(f"cannot connect to broker at {core.endpoint}: {reason}")

    @Connecting.upon(BrokerLeg.send).loop()
    def hold(leg: BrokerLeg, core: BrokerLegCore, frames: list[bytes]) -> None:
        # Bounded: the client leg stops reading its client until we are open.
        core.waiting.extend(frames)

    @Open.upon(BrokerLeg.send).loop()
    def write(leg: BrokerLeg, core: BrokerLegCore, frames: list[bytes]) -> None:
        assert core.wire is not None
        write_pieces(cast(Transport, core.wire.transport), frames)

    @Open.upon(BrokerLeg.received).loop()
    @Closing.upon(BrokerLeg.received).loop()
    def deliver(leg: BrokerLeg, core: BrokerLegCore, frames: list[list[bytes]]) -> None:
        core.owner.responses(frames)

    @Connecting.upon(BrokerLeg.close).to(Closed)
    def abandon(leg: BrokerLeg, core: BrokerLegCore, reason: str) -> None:
        core.closed_because = reason
        core.waiting = []
        if core.attempt is not None:
            attempt, core.attempt = core.attempt, None
            attempt.cancel()

    @Open.upon(BrokerLeg.close).to(Closing)
    def hang_up(leg: BrokerLeg, core: BrokerLegCore, reason: str) -> None:
        core.closed_because = reason
        assert core.wire is not None
        core.wire.transport.loseConnection()

    @Open.upon(BrokerLeg.lost).to(Closed)
    def dropped(leg: BrokerLeg, core: BrokerLegCore, reason: str) -> None:
        core.owner.broker_lost(f"broker {core.endpoint} closed the connection: {reason}")

    Closing.upon(BrokerLeg.lost).to(Closed).returns(None)
    Closing.upon(BrokerLeg.close).loop().returns(None)
    Closing.upon(BrokerLeg.send).loop().returns(None)
    Closed.upon(BrokerLeg.send).loop().returns(None)
    Closed.upon(BrokerLeg.received).loop().returns(None)
    Closed.upon(BrokerLeg.close).loop().returns(None)
    Closed.upon(BrokerLeg.lost).loop().returns(None)
    Closed.upon(BrokerLeg.connect_failed).loop().returns(None)

    @Closed.upon(BrokerLeg.connected).loop()
    def too_late(leg: BrokerLeg, core: BrokerLegCore, wire: BrokerWire) -> None:
        # The client left while we were connecting and cancel came too late.
        wire.transport.loseConnection()

    return machine.build()


class BrokerWire(Protocol):
    """The Twisted protocol under a broker leg: cuts frames, reports events."""

    def __init__(
        self, leg: BrokerLeg, max_frame_bytes: int, stats: TrafficStats | None = None
    ) -> None:
        self.leg = leg
        self.reader = FrameReader(max_frame_bytes)
        self.stats = stats if stats is not None else TrafficStats()
        self.transport: ITransport

    def connectionMade(self) -> None:
        no_delay(self.transport)
        self.stats.broker_connections_opened += 1
        self.stats.broker_connections_open += 1
        self.leg.connected(self)

    def dataReceived(self, data: bytes) -> None:
        self.stats.bytes_from_broker += len(data)
        try:
            # Kept as pieces: a response passed on unchanged is never joined.
            frames = self.reader.feed_pieces(data)
        except FrameError as e:
            log.error("Broker sent a bad frame: {reason}; closing", reason=str(e))
            self.transport.abortConnection()  # type: ignore[attr-defined]
            return
        if frames:
            self.leg.received(frames)

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        self.stats.broker_connections_open -= 1
        self.leg.lost(reason.getErrorMessage())


class _BrokerWireFactory(Factory):
    noisy = False

    def __init__(self, leg: BrokerLeg, max_frame_bytes: int, stats: TrafficStats | None) -> None:
        self._leg = leg
        self._max = max_frame_bytes
        self._stats = stats

    def buildProtocol(self, addr: object) -> BrokerWire:
        return BrokerWire(self._leg, self._max, self._stats)


def open_broker_leg(
    endpoint: HostPort,
    owner: IBrokerLegOwner,
    connect: Connector,
    max_frame_bytes: int = DEFAULT_MAX_FRAME_BYTES,
    stats: TrafficStats | None = None,
) -> BrokerLeg:
    """Start connecting to a broker on behalf of C{owner}; return the leg at once."""
    core = BrokerLegCore(endpoint=endpoint, owner=owner, max_frame_bytes=max_frame_bytes)
    leg = _new_broker_leg(core)
    attempt = connect(endpoint, _BrokerWireFactory(leg, max_frame_bytes, stats))
    core.attempt = attempt

    def not_connected(failure: Failure) -> None:
        # A cancelled attempt is the client leaving, not the broker failing.
        if stats is not None and not failure.check(CancelledError):
            stats.upstream_connection_failures += 1
        leg.connect_failed(failure.getErrorMessage())

    attempt.addErrback(not_connected)
    return leg


# Built last: Automat resolves the input protocol's annotations at build time.
_new_broker_leg = _build()
