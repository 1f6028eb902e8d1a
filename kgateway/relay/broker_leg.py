"""
The broker leg: the gateway's own connection to one Kafka broker, made for
one client connection.

One upstream connection per client connection keeps the broker's view of the
client intact (SASL passes through untouched, quotas and sessions behave as
if the client were direct).  The leg's lifecycle is an Automat machine; it
reports to a L{BrokerLegOwner}, which the client machine's inputs are.

The machine is the connection's lifecycle only.  Frames do not pass through
it, as in C{twisted.protocols.portforward}: once the leg reports
C{broker_ready}, its owner writes requests to the transport it was given,
and responses go from the L{BrokerConnection} straight to the owner.  (An
Automat input costs a scan of the machine's transitions; two per request
are worth saving.)  Before C{broker_ready} the client side keeps its
requests waiting, so the leg has no buffer of its own.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol as TypingProtocol
from typing import cast

from automat import TypeMachineBuilder
from twisted.internet.defer import CancelledError, Deferred
from twisted.internet.error import ConnectError
from twisted.internet.error import TimeoutError as ConnectTimeout
from twisted.internet.protocol import Factory, Protocol, connectionDone
from twisted.logger import Logger
from twisted.python.failure import Failure

from kgateway.metrics import TrafficStats
from kgateway.net import Connector, HostPort
from kgateway.protocol.framing import DEFAULT_MAX_FRAME_BYTES, Cut, FrameStream
from kgateway.relay.transport import Transport, no_delay

log = Logger()


class BrokerLegOwner(TypingProtocol):
    """What a broker leg reports to the client connection it serves."""

    def broker_ready(self, broker: BrokerLeg, transport: Transport, reader: FrameStream) -> None:
        """
        The connection to the broker is open: write requests to C{transport};
        C{reader} cuts the responses (and offers the one still arriving).
        """

    def responses(self, cut: Cut) -> None:
        """A read of the broker: a passed response's next piece, then whole responses."""

    def broker_unreachable(self, reason: str, os_error: int) -> None:
        """
        The broker connection could not be made (refused, timed out, ...);
        C{os_error} is the system's error number when it says why (EMFILE:
        this process is out of descriptors), else 0.
        """

    def broker_lost(self, reason: str) -> None:
        """The open broker connection failed or was closed."""


class BrokerLeg(TypingProtocol):
    """The inputs of a broker leg."""

    def connected(self, wire: BrokerConnection) -> None:
        """The TCP connection is open."""

    def connect_failed(self, reason: str, os_error: int) -> None:
        """The TCP connection could not be made (C{os_error}: the system's error number, or 0)."""

    def close(self, reason: str) -> None:
        """Close the connection (the client side is done with it)."""

    def lost(self, reason: str) -> None:
        """The TCP connection is gone."""


@dataclass
class BrokerLegCore:
    """What a broker leg knows: where it goes, for whom, and how far it got."""

    address: HostPort
    owner: BrokerLegOwner
    attempt: Deferred[Protocol] | None = None
    #: The broker connection's transport: set by the transition into Open, read
    #: only by the states after it (so no state asks whether it is there).
    transport: Transport = field(init=False, repr=False)


def _build() -> Callable[[BrokerLegCore], BrokerLeg]:
    machine = TypeMachineBuilder(BrokerLeg, BrokerLegCore)
    Connecting = machine.state("Connecting")
    Open = machine.state("Open")
    Closing = machine.state("Closing")
    Closed = machine.state("Closed")

    @Connecting.upon(BrokerLeg.connected).to(Open)
    def opened(leg: BrokerLeg, core: BrokerLegCore, wire: BrokerConnection) -> None:
        core.attempt = None
        core.transport = wire.stream
        core.owner.broker_ready(leg, wire.stream, wire.reader)

    @Connecting.upon(BrokerLeg.connect_failed).to(Closed)
    def failed(leg: BrokerLeg, core: BrokerLegCore, reason: str, os_error: int) -> None:
        core.attempt = None
        core.owner.broker_unreachable(
            f"cannot connect to broker at {core.address}: {reason}", os_error
        )

    @Connecting.upon(BrokerLeg.close).to(Closed)
    def abandon(leg: BrokerLeg, core: BrokerLegCore, reason: str) -> None:
        if core.attempt is not None:
            attempt, core.attempt = core.attempt, None
            attempt.cancel()

    @Open.upon(BrokerLeg.close).to(Closing)
    def hang_up(leg: BrokerLeg, core: BrokerLegCore, reason: str) -> None:
        core.transport.loseConnection()

    @Open.upon(BrokerLeg.lost).to(Closed)
    def dropped(leg: BrokerLeg, core: BrokerLegCore, reason: str) -> None:
        core.owner.broker_lost(f"broker {core.address} closed the connection: {reason}")

    Closing.upon(BrokerLeg.lost).to(Closed).returns(None)
    Closing.upon(BrokerLeg.close).loop().returns(None)
    Closed.upon(BrokerLeg.close).loop().returns(None)
    Closed.upon(BrokerLeg.lost).loop().returns(None)
    Closed.upon(BrokerLeg.connect_failed).loop().returns(None)

    @Closed.upon(BrokerLeg.connected).loop()
    def too_late(leg: BrokerLeg, core: BrokerLegCore, wire: BrokerConnection) -> None:
        # The client left while we were connecting and cancel came too late.
        wire.stream.loseConnection()

    return machine.build()


class BrokerConnection(Protocol):
    """
    The Twisted protocol under a broker leg: reports its lifecycle to the
    leg, and hands the response frames it cuts straight to the owner.
    """

    #: The transport, typed as what it is (Twisted declares C{ITransport | None}).
    stream: Transport

    def __init__(
        self,
        leg: BrokerLeg,
        owner: BrokerLegOwner,
        max_frame_bytes: int,
        stats: TrafficStats | None = None,
    ) -> None:
        self.leg = leg
        self.owner = owner
        self.reader = FrameStream(max_frame_bytes)
        self.stats = stats if stats is not None else TrafficStats()

    def connectionMade(self) -> None:
        self.stream = cast(Transport, self.transport)
        no_delay(self.stream)
        self.stats.broker_connections_opened += 1
        self.stats.broker_connections_open += 1
        self.leg.connected(self)

    def dataReceived(self, data: bytes) -> None:
        self.stats.bytes_from_broker += len(data)
        reader = self.reader
        # Kept as pieces: a response passed on unchanged is never joined.
        cut = reader.feed(data)
        if reader.error is not None:
            log.error("Broker sent a bad frame: {reason}; closing", reason=reader.error)
            self.stream.abortConnection()
            return
        # Every read but those of a response passed on (the reader hands them
        # to the owner's sink), even one inside a response kept whole: the
        # owner counts what is held, and may decide to pass the response on.
        # After the owner closed the leg the owner itself drops these.
        if cut.frames or cut.tail is not None or reader.buffered:
            self.owner.responses(cut)

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        self.stats.broker_connections_open -= 1
        self.leg.lost(reason.getErrorMessage())


class _BrokerConnectionFactory(Factory):
    noisy = False

    def __init__(
        self,
        leg: BrokerLeg,
        owner: BrokerLegOwner,
        max_frame_bytes: int,
        stats: TrafficStats | None,
    ) -> None:
        self._leg = leg
        self._owner = owner
        self._max = max_frame_bytes
        self._stats = stats

    def buildProtocol(self, addr: object) -> BrokerConnection:
        return BrokerConnection(self._leg, self._owner, self._max, self._stats)


def open_broker_leg(
    address: HostPort,
    owner: BrokerLegOwner,
    connect: Connector,
    max_frame_bytes: int = DEFAULT_MAX_FRAME_BYTES,
    stats: TrafficStats | None = None,
    now: Callable[[], float] = time.monotonic,
) -> BrokerLeg:
    """Start connecting to a broker on behalf of C{owner}; return the leg at once."""
    core = BrokerLegCore(address=address, owner=owner)
    leg = _new_broker_leg(core)
    started = now()
    attempt = connect(address, _BrokerConnectionFactory(leg, owner, max_frame_bytes, stats))
    if not attempt.called:
        # Kept to cancel it; one that already fired (the connection opened,
        # or failed, at once) would only tie the leg to itself in a cycle.
        core.attempt = attempt

    def not_connected(failure: Failure) -> None:
        # A cancelled attempt is the client leaving, not the broker failing.
        if stats is not None and not failure.check(CancelledError):
            stats.upstream_connection_failures += 1
        reason = failure.getErrorMessage()
        if failure.check(ConnectTimeout):
            reason = (
                f"no connection after {now() - started:.1f} s (GATEWAY_UPSTREAM_CONNECT_TIMEOUT_MS)"
            )
        # The system's error number says whether it failed here (EMFILE) or there.
        error = failure.value
        os_error = error.osError if isinstance(error, ConnectError) else None
        leg.connect_failed(reason, os_error if isinstance(os_error, int) else 0)

    attempt.addErrback(not_connected)
    return leg


# Built last: Automat resolves the input protocol's annotations at build time.
_new_broker_leg = _build()
