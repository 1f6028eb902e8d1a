"""
The Twisted protocol of an accepted client connection, and the factory a
listener accepts connections with.

A connection cuts the client's stream into request frames and hands them,
and every other event, to its machine (L{kgateway.relay.client_machine}).
It asks the listener's router where it goes; until the answer comes (it
may come later, after a TLS handshake) its requests wait.

On a TLS listener the connection is made only once the handshake is done
(L{kgateway.security.handshake}), so it reads who the client is from its
certificate (its principal) and the server name it asked for at once.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import cast

from twisted.internet.defer import Deferred, succeed
from twisted.internet.interfaces import IAddress
from twisted.internet.protocol import Protocol, ServerFactory, connectionDone
from twisted.logger import Logger
from twisted.python.failure import Failure
from zope.interface import implementer

from kgateway.interceptors.registry import InterceptorSet
from kgateway.interfaces import ConnectionView, IAddressPlanner, IRelayedConnection
from kgateway.metrics import TrafficStats
from kgateway.net import Connector
from kgateway.protocol.framing import DEFAULT_MAX_FRAME_BYTES, FrameError, FrameReader
from kgateway.relay.client_machine import ClientCore, ClientInputs, new_client_machine
from kgateway.relay.transport import Transport, no_delay
from kgateway.routing.router import Accepted, IRouter, NoRoute
from kgateway.security.handshake import peer_principal, server_name

log = Logger()


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
        self.reader = FrameReader(factory.max_frame_bytes)
        self.opened_at = factory.now()
        self._lost = False
        self._close_waiters: list[Deferred[None]] = []

    @property
    def broker_id(self) -> int | None:
        """The broker id the connection's route stands for (None until routed)."""
        route = self.core.route
        return route.broker_id if route is not None else None

    def connectionMade(self) -> None:
        # Twisted types the transport as ITransport | None; it is a TCP (or TLS)
        # transport, which is also the push producer and consumer the relay needs.
        transport = cast(Transport, self.transport)
        no_delay(transport)
        # Read nothing until the broker connection is open.
        transport.pauseProducing()
        # TLS (issue 13): who the client's certificate says it is, and the host
        # it asked for; both None without TLS.
        principal, asked_for = peer_principal(transport), server_name(transport)
        self.core = ClientCore(transport, self.peer, self.factory, principal=principal)
        self.machine = machine = new_client_machine(self.core)
        self.factory.connections.add(self)
        accepted = Accepted(
            self.peer, getattr(transport.getHost(), "port", None), succeed(asked_for)
        )
        self.factory.router.route(accepted).addCallbacks(machine.routed, self._unroutable)

    def _unroutable(self, failure: Failure) -> None:
        if failure.check(NoRoute) is None:
            log.failure("client {peer}: the router failed", failure, peer=self.peer)
        self.machine.unroutable(failure.getErrorMessage())

    def dataReceived(self, data: bytes) -> None:
        try:
            frames = self.reader.feed(data)
        except FrameError as e:
            self.machine.abort(f"bad frame from client: {e}")
            return
        if frames:
            self.machine.requests(frames)

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
        now: Callable[[], float] = time.monotonic,
    ) -> None:
        self.router = router
        #: Which gateway address stands for each broker, in rewritten responses.
        self.planner = planner
        self.connect = connect
        self.max_frame_bytes = max_frame_bytes
        self.stats = stats if stats is not None else TrafficStats()
        #: The node's interceptors, shared by every connection (None: none).
        self.interceptors = interceptors
        #: Monotonic seconds: request latencies and connection ages.
        self.now = now
        #: The open connections, routed or not.
        self.connections: set[ClientConnection] = set()

    def buildProtocol(self, addr: IAddress | None) -> ClientConnection:
        host = getattr(addr, "host", "?")
        port = getattr(addr, "port", "?")
        return ClientConnection(self, f"{host}:{port}")
