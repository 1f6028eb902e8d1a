"""
One client connection's state: what its machine's behaviours share.

L{ClientCore} holds the connection's parts (its transport and reader, the
gate that says whether it is read from, its account with the memory budget,
its timer, the requests in flight and waiting, and once routed the broker
leg and the two paths) and the few things done to all of them together:
counting what the connection holds, and closing it.  L{RelaySettings} is
what every connection of a listener shares.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol as TypingProtocol

from kgateway.interceptors.registry import InterceptorSet
from kgateway.interfaces import ConnectionView, IAddressPlanner
from kgateway.log_limit import LogLimiter
from kgateway.metrics import TrafficStats
from kgateway.net import Connector
from kgateway.protocol.framing import Cut, FrameStream
from kgateway.relay.broker_leg import BrokerLeg
from kgateway.relay.budget import Holding, MemoryBudget
from kgateway.relay.deadlines import ConnectionTimer
from kgateway.relay.guard_stats import GuardStats
from kgateway.relay.inflight import InFlight
from kgateway.relay.pre_auth import PreAuthLimit
from kgateway.relay.read_gate import ReadGate, Reason
from kgateway.relay.requests import RequestPath, WaitingFrames
from kgateway.relay.responses import ResponsePath
from kgateway.relay.transport import Transport, queued_bytes
from kgateway.routing.router import Route

_CLOSING = int(Reason.CLOSING)


class DataInputs(TypingProtocol):
    """Where a connection's reads go: its machine's inputs, or the relaying data path."""

    def requests(self, cut: Cut) -> None:
        """A read of the client."""

    def responses(self, cut: Cut) -> None:
        """A read of the broker."""


class _Dropped:
    """Where the reads of a connection that is over go: nowhere."""

    def requests(self, cut: Cut) -> None:
        """Dropped."""

    def responses(self, cut: Cut) -> None:
        """Dropped."""


_DROPPED = _Dropped()


class _ClosedLeg:
    """Stands in for a broker leg once the connection is over: closing it again is nothing."""

    def connected(self, wire: object) -> None:
        """Not connecting any more."""

    def connect_failed(self, reason: str, os_error: int) -> None:
        """Not connecting any more."""

    def close(self, reason: str) -> None:
        """Already closed."""

    def lost(self, reason: str) -> None:
        """Already gone."""


#: The broker leg of every connection that is over.
CLOSED_LEG: BrokerLeg = _ClosedLeg()


class RelaySettings(TypingProtocol):
    """What every connection of one listener shares (its factory provides it)."""

    planner: IAddressPlanner
    connect: Connector
    stats: TrafficStats
    interceptors: InterceptorSet | None
    max_frame_bytes: int
    #: Monotonic seconds: request latencies and connection ages.
    now: Callable[[], float]
    #: The node's memory budget, shared by every listener.
    budget: MemoryBudget
    #: The per-connection log lines, rate-limited.
    logs: LogLimiter
    #: What the limits count.
    guard: GuardStats
    #: Told when a broker connection fails for want of descriptors (the code, and what failed).
    out_of_descriptors: Callable[[int, str], None]
    #: Whether the broker requires SASL (so frames are small until a login succeeded).
    requires_sasl: bool
    max_pre_auth_frame_bytes: int


@dataclass(eq=False)
class ClientCore:
    """One client connection's state, shared by the machine's behaviours."""

    transport: Transport
    #: The client's address, "host:port".
    peer: str
    settings: RelaySettings
    #: Cuts the client's stream into request frames.
    reader: FrameStream
    #: Whether the client's transport is read from, and why not.
    gate: ReadGate
    #: What the connection holds, for the node's memory budget.
    holding: Holding
    #: The frame limit until the client logged in (when the broker requires SASL).
    pre_auth: PreAuthLimit
    timer: ConnectionTimer | None = None
    #: Where reads go now: the machine's inputs, or while relaying the data
    #: path itself (set by the machine's states).
    data: DataInputs = _DROPPED
    inflight: InFlight = field(default_factory=InFlight)
    #: The one queue of requests that cannot go on yet.
    waiting: WaitingFrames = field(default_factory=WaitingFrames)
    route: Route | None = None
    #: Why each broker the connection tried could not be reached (its route's, then fallbacks).
    unreachable: list[str] = field(default_factory=list)
    #: A broker connection failed for want of descriptors here, not at the broker.
    out_of_descriptors: bool = False
    #: The subject of the client's TLS certificate (mTLS), known before the route.
    principal: str | None = None
    #: The broker connection's transport and reader, once it is open.
    broker_stream: Transport | None = None
    broker_reader: FrameStream | None = None
    # Set together by the transition that learns the route, and read only by
    # the states after it, so none of them asks whether they are there.
    broker: BrokerLeg = field(init=False, repr=False)
    requests: RequestPath = field(init=False, repr=False)
    responses: ResponsePath = field(init=False, repr=False)

    def account(self) -> None:
        """Tell the budget what the connection holds now (after each read and decision)."""
        held = (
            self.reader.buffered
            + self.waiting.bytes
            + self.inflight.held_bytes
            + queued_bytes(self.transport)
        )
        broker = self.broker_stream
        if broker is not None:
            reader = self.broker_reader
            held += self.requests.held_bytes + queued_bytes(broker)
            if reader is not None:
                held += reader.buffered
        self.holding.set(held)

    def busy(self) -> bool:
        """Whether requests are in flight or wait (the connection is not idle)."""
        return bool(self.inflight) or bool(self.waiting) or self.reader.in_frame

    def stop_taking(self, reason: str) -> None:
        """Read no more requests (the one being passed on, if any, is let finish)."""
        if not self.reader.passing:
            self.gate.pause(_CLOSING)
            self.reader.stop(reason)

    def close_when_answered(self) -> None:
        """Hang up once nothing is in flight, held or waiting to go (now, if nothing is)."""
        if self.inflight or self.waiting:
            return
        if self.route is not None and self.requests.held is not None:
            return
        self.transport.loseConnection()

    def release(self) -> None:
        """Whatever the connection holds is dropped, and the budget forgets it at once."""
        self.data = _DROPPED
        self.waiting.clear()
        self.reader.stop("closed")
        broker_reader = self.broker_reader
        if broker_reader is not None:
            # What the broker still sends goes to the machine, which drops it.
            broker_reader.drop_sink()
        self.holding.release()
        timer = self.timer
        if timer is not None:
            timer.stop()

    def finish(self) -> None:
        """The connection is over: what still waits is dropped, and counted if it was sent."""
        unanswered = self.inflight.abandon()
        if unanswered:
            self.settings.stats.unanswered(unanswered)
        self.release()

    def close(self, reason: str, abort: bool) -> None:
        """Close a routed connection and its broker leg, saying why."""
        logs = self.settings.logs
        emit = logs.warn if abort else logs.info
        emit("{conn}: closing: {reason}", conn=self.describe(), reason=reason)
        self.finish()
        self.broker.close(reason)
        if abort:
            self.transport.abortConnection()
        else:
            self.transport.loseConnection()

    def close_unrouted(self, reason: str, abort: bool) -> None:
        """Close a connection that has no broker leg yet, saying why."""
        logs = self.settings.logs
        emit = logs.warn if abort else logs.info
        emit("{conn}: closing: {reason}", conn=self.describe(), reason=reason)
        self.release()
        if abort:
            self.transport.abortConnection()
        else:
            self.transport.loseConnection()

    def detach(self) -> None:
        """
        The client's connection is gone: let go of the broker leg (which
        reports to this connection's machine) and of a request an interceptor
        still holds (whose decision would report to it too), so nothing ties
        the machine, this core and the leg in a cycle the garbage collector
        would have to find.  Their memory is free as soon as Twisted lets go.
        """
        self.data = _DROPPED
        if self.route is not None:
            self.broker = CLOSED_LEG
            self.requests.held = None

    def describe(self) -> str:
        """The connection, for log lines."""
        route = self.route
        if route is None:
            return f"client {self.peer}"
        return f"client {self.peer} (broker {route.broker_id} at {route.address})"

    def view(self, port: int | None, age_seconds: float) -> ConnectionView:
        """What the admin API shows of this connection now."""
        route = self.route
        if route is None:  # nothing relayed yet
            return ConnectionView(
                self.peer, port, None, None, None, 0, 0, 0, age_seconds, self.principal
            )
        return ConnectionView(
            peer=self.peer,
            port=port,
            broker_id=route.broker_id,
            upstream=route.address,
            client_id=self.requests.client.client_id,
            bytes_from_client=self.requests.bytes_from_client,
            bytes_to_client=self.responses.bytes_to_client,
            in_flight=len(self.inflight),
            age_seconds=age_seconds,
            principal=self.principal,
        )
