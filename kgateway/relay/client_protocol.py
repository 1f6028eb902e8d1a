"""
The Twisted protocol of an accepted client connection, and the factory a
listener accepts connections with.

A connection cuts the client's stream into request frames and hands them,
and every other event, to its machine (L{kgateway.relay.client_machine}).
It asks the listener's router where it goes; until the answer comes (it
may come later, after a TLS handshake) its requests wait.  It keeps the
connection's time limits (L{kgateway.relay.deadlines}) and its account
with the node's memory budget (L{kgateway.relay.budget}).

On a TLS listener the connection is made only once the handshake is done
(L{kgateway.security.handshake}), so it reads who the client is from its
certificate (its principal) and the server name it asked for at once.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import cast

from twisted.internet.defer import Deferred, succeed
from twisted.internet.interfaces import IAddress, IReactorTime
from twisted.internet.protocol import Protocol, ServerFactory, connectionDone
from twisted.logger import Logger
from twisted.python.failure import Failure
from zope.interface import implementer

from kgateway.interceptors.registry import InterceptorSet
from kgateway.interfaces import ConnectionView, IAddressPlanner, IRelayedConnection
from kgateway.log_limit import LogLimiter
from kgateway.metrics import TrafficStats
from kgateway.net import Connector
from kgateway.protocol.framing import DEFAULT_MAX_FRAME_BYTES, FrameStream
from kgateway.relay.budget import MemoryBudget
from kgateway.relay.client_core import ClientCore
from kgateway.relay.client_machine import ClientInputs, new_client_machine
from kgateway.relay.deadlines import ConnectionTimer
from kgateway.relay.guard_stats import GuardStats
from kgateway.relay.pre_auth import DEFAULT_MAX_PRE_AUTH_FRAME_BYTES, PreAuthLimit
from kgateway.relay.read_gate import ReadGate, Reason
from kgateway.relay.transport import Transport, no_delay
from kgateway.routing.router import Accepted, IRouter, NoRoute
from kgateway.security.handshake import peer_principal, server_name

log = Logger()

#: Kafka's C{connections.max.idle.ms} default: 10 minutes.
DEFAULT_CONNECTIONS_MAX_IDLE_SECONDS = 600.0
#: How long a request frame may take to arrive once it has started.
DEFAULT_REQUEST_RECEIVE_TIMEOUT_SECONDS = 30.0


def _ignore(code: int, what: str) -> None:
    """Nobody to tell."""


@implementer(IRelayedConnection)
class ClientConnection(Protocol):
    """The Twisted protocol for an accepted client connection."""

    #: The connection's machine: every event of the connection is one of its inputs.
    machine: ClientInputs
    core: ClientCore

    def __init__(self, factory: ClientConnectionFactory, peer: str) -> None:
        self.factory = factory
        #: The client's address, "host:port".
        self.peer = peer
        self.reader = FrameStream(factory.max_frame_bytes)
        self.opened_at = factory.now()
        self.timer: ConnectionTimer | None = None
        self._lost = False
        self._close_waiters: list[Deferred[None]] = []

    @property
    def broker_id(self) -> int | None:
        """The broker id the connection's route stands for (None until routed)."""
        route = self.core.route
        return route.broker_id if route is not None else None

    def connectionMade(self) -> None:
        factory = self.factory
        # Twisted types the transport as ITransport | None; it is a TCP (or TLS)
        # transport, which is also the push producer and consumer the relay needs.
        transport = cast(Transport, self.transport)
        no_delay(transport)
        # Read nothing until the broker connection is open.
        gate = ReadGate(transport, int(Reason.ROUTING))
        if factory.clock is not None:
            self.timer = ConnectionTimer(
                factory.clock,
                factory.now,
                factory.idle_seconds,
                factory.request_receive_seconds,
                self,
            )
        reader = self.reader
        # TLS (issue 13): who the client's certificate says it is, and the host
        # it asked for; both None without TLS.
        principal, asked_for = peer_principal(transport), server_name(transport)
        self.core = ClientCore(
            transport,
            self.peer,
            factory,
            reader,
            gate,
            factory.budget.holding(self.peer, (gate,)),
            PreAuthLimit(reader, factory.requires_sasl, factory.max_pre_auth_frame_bytes),
            self.timer,
            principal=principal,
        )
        self.machine = machine = new_client_machine(self.core)
        self.core.data = machine
        factory.connections.add(self)
        accepted = Accepted(
            self.peer, getattr(transport.getHost(), "port", None), succeed(asked_for)
        )
        factory.router.route(accepted).addCallbacks(machine.routed, self._unroutable)

    def _unroutable(self, failure: Failure) -> None:
        if failure.check(NoRoute) is None:
            log.failure("client {peer}: the router failed", failure, peer=self.peer)
        self.machine.unroutable(failure.getErrorMessage())

    def dataReceived(self, data: bytes) -> None:
        reader = self.reader
        failed = reader.error is not None
        cut = reader.feed(data)
        timer = self.timer
        if timer is not None:
            now = self.factory.now()
            timer.last_active = now
            if reader.new_frame:
                timer.frame_began(now)
            elif not reader.in_frame:
                timer.frame_started = -1.0
        # A read that only continued a frame passed on went to the broker
        # from the reader itself: nothing for the machine.
        if cut.frames or cut.tail is not None or reader.buffered:
            self.core.data.requests(cut)
        if not failed and reader.error is not None:
            self.factory.guard.refused_frames += 1
            self.machine.refuse(f"bad frame from client: {reader.error}")

    # The timer's questions (TimedConnection).

    def busy(self) -> bool:
        """Whether requests are in flight or wait."""
        return self.core.busy()

    def idle_expired(self, reason: str) -> None:
        """Idle for too long: close."""
        self.machine.idle(reason)

    def frame_expired(self, reason: str) -> None:
        """A request frame did not arrive in time: close after the earlier answers."""
        self.factory.guard.frames_timed_out += 1
        if self.reader.passing:
            # Part of it already went to the broker, which waits for the rest:
            # its answer will never come, so nothing is left to wait for.
            self.machine.abort(reason)
        else:
            self.machine.refuse(reason)

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        self._lost = True
        self.factory.connections.discard(self)
        self.machine.client_lost(reason.getErrorMessage())
        waiters, self._close_waiters = self._close_waiters, []
        for waiter in waiters:
            if not waiter.called:
                waiter.callback(None)

    def when_closed(self) -> Deferred[None]:
        """Fires once the client connection has closed (so shutdown can wait for a drain)."""
        if self._lost:
            return succeed(None)
        waiter: Deferred[None] = Deferred()
        self._close_waiters.append(waiter)
        return waiter

    def drain(self) -> None:
        """Stop taking requests, deliver the answers in flight, then close."""
        self.machine.drain()

    def view(self) -> ConnectionView:
        """The connection now, for C{/api/v1/connections}."""
        port = getattr(self.core.transport.getHost(), "port", None)
        return self.core.view(port, round(max(0.0, self.factory.now() - self.opened_at), 3))


class ClientConnectionFactory(ServerFactory):
    """
    Accepts client connections for one listener, which may listen on many
    ports: its router says where each connection goes.

    C{clock} runs the connections' time limits (none without one);
    C{budget} is the node's memory budget, shared by every listener (a
    budget of its own by default).  C{requires_sasl}: the broker behind this
    listener requires SASL, so frames are at most C{max_pre_auth_frame_bytes}
    until a login succeeded.
    """

    noisy = False

    def __init__(
        self,
        router: IRouter,
        planner: IAddressPlanner,
        connect: Connector,
        *,
        max_frame_bytes: int = DEFAULT_MAX_FRAME_BYTES,
        stats: TrafficStats | None = None,
        interceptors: InterceptorSet | None = None,
        now: Callable[[], float] | None = None,
        clock: IReactorTime | None = None,
        budget: MemoryBudget | None = None,
        guard: GuardStats | None = None,
        idle_seconds: float = DEFAULT_CONNECTIONS_MAX_IDLE_SECONDS,
        request_receive_seconds: float = DEFAULT_REQUEST_RECEIVE_TIMEOUT_SECONDS,
        requires_sasl: bool = False,
        max_pre_auth_frame_bytes: int = DEFAULT_MAX_PRE_AUTH_FRAME_BYTES,
        out_of_descriptors: Callable[[int, str], None] | None = None,
    ) -> None:
        self.router = router
        #: Which gateway address stands for each broker, in rewritten responses.
        self.planner = planner
        self.connect = connect
        self.max_frame_bytes = max_frame_bytes
        self.stats = stats if stats is not None else TrafficStats()
        #: The node's interceptors, shared by every connection (None: none).
        self.interceptors = interceptors
        #: Runs the time limits; None: no time limits (tests that want none).
        self.clock = clock
        #: Monotonic seconds: request latencies, connection ages and time limits.
        if now is None:
            now = clock.seconds if clock is not None else time.monotonic
        self.now = now
        self.budget = budget if budget is not None else MemoryBudget()
        self.guard = guard if guard is not None else GuardStats()
        self.idle_seconds = idle_seconds
        self.request_receive_seconds = request_receive_seconds
        self.requires_sasl = requires_sasl
        self.max_pre_auth_frame_bytes = max_pre_auth_frame_bytes
        #: Told when a broker connection fails for want of descriptors (the node's saturation).
        self.out_of_descriptors = out_of_descriptors or _ignore
        #: Per-connection log lines, at most 20 of a kind per 10 s.
        self.logs = LogLimiter(log, now=self.now)
        #: The open connections, routed or not.
        self.connections: set[ClientConnection] = set()

    def buildProtocol(self, addr: IAddress | None) -> ClientConnection:
        host = getattr(addr, "host", "?")
        port = getattr(addr, "port", "?")
        return ClientConnection(self, f"{host}:{port}")
