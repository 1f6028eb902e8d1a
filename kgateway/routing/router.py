"""
Which broker an accepted client connection goes to: a listener's decision.

A listener hands every connection it accepts to its L{IRouter}, which
answers with a L{Route} (the broker id the connection stands for, and where
the broker leg connects), or fails with L{NoRoute}.  The answer is a
Deferred because it may come later: a TLS listener that routes by SNI knows
the broker only once the ClientHello named a host, which L{Accepted} will
carry as its C{server_name}.  L{PortRouter}, the first router, decides by
the port the connection arrived on.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field

from twisted.internet.defer import Deferred, fail, succeed
from zope.interface import Interface, implementer

from kgateway.interfaces import IBrokerDirectory
from kgateway.net import HostPort
from kgateway.routing.ports import PortPlan


@dataclass(frozen=True, slots=True)
class Route:
    """Where one client connection goes."""

    #: The broker id the connection stands for (its port's, its server name's, ...).
    broker_id: int
    #: Where its broker leg connects: that broker, or any live broker to bootstrap from.
    address: HostPort


class NoRoute(Exception):
    """No broker can take this connection; the message says why (it is logged)."""


@dataclass(eq=False)
class Accepted:
    """A client connection a listener accepted, as a router sees it."""

    #: The client's address, "host:port".
    peer: str
    #: The local port the connection arrived on (None when the transport has no port).
    local_port: int | None
    #: The host name the client asked for in its TLS ClientHello (SNI); fires with
    #: None at once on a connection without TLS.  A TLS listener fires it from
    #: the handshake, so a router that needs it answers only then.
    server_name: Deferred[str | None] = field(default_factory=lambda: succeed(None))


class IRouter(Interface):
    """Decides, for each accepted connection, which broker it goes to."""

    def route(connection: Accepted) -> Deferred[Route]:
        """The connection's route; fails with L{NoRoute} (saying why) when there is none."""


@implementer(IRouter)
class PortRouter:
    """
    Routes by port: port M{start + n} stands for broker M{min_broker_id + n}.

    Every port is also a bootstrap port: a connection on a port whose broker
    does not exist (yet) goes to any live broker, which answers its metadata,
    and the client then moves to the right port.
    """

    def __init__(self, plan: PortPlan, directory: IBrokerDirectory) -> None:
        self._plan = plan
        self._directory = directory
        self._turn = itertools.count()

    def route(self, connection: Accepted) -> Deferred[Route]:
        """The broker of the connection's port, or a live broker to bootstrap from."""
        port = connection.local_port
        plan = self._plan
        if port is None or port not in plan.ports:
            return fail(NoRoute(f"on port {port}, which is not one of the node's ports"))
        broker_id = plan.broker_for(port)
        address = self._address(broker_id)
        if address is None:
            return fail(NoRoute(f"on the port for broker {broker_id}: no broker is reachable"))
        return succeed(Route(broker_id, address))

    def _address(self, broker_id: int) -> HostPort | None:
        broker = self._directory.broker(broker_id)
        if broker is not None:
            return broker.address
        known = sorted(self._directory.brokers().values(), key=lambda b: b.node_id)
        candidates = [b.address for b in known] or self._directory.bootstrap_addresses()
        if not candidates:
            return None
        # Spread bootstrapping clients over the brokers in turn.
        return candidates[next(self._turn) % len(candidates)]
