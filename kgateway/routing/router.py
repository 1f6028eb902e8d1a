"""
Which broker an accepted client connection goes to: a listener's decision.

A listener hands every connection it accepts to its L{IRouter}, which
answers with a L{Route} (the broker id the connection stands for, and where
the broker leg connects), or fails with L{NoRoute}.  The answer is a
Deferred because it may come later: a TLS listener that routes by SNI knows
the broker only once the ClientHello named a host, which L{Accepted} will
carry as its C{server_name}.  L{PortRouter}, the first router, decides by
the port the connection arrived on.

A route also names other live brokers to fall back on, in order: a broker
that is down (its process killed, before Kafka's metadata drops it) refuses
the connection, and the client leg then relays the client to the next one,
whose answers (its metadata; not leader, not coordinator for requests meant
for the dead broker) move the client on as Kafka's own retriable errors do.
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
    #: Other live brokers to relay to, in order, if no connection to C{address}
    #: can be made; each is tried at most once.
    fallbacks: tuple[HostPort, ...] = ()

    def next_fallback(self) -> Route | None:
        """The route to the first fallback (with the rest after it), or None if none is left."""
        if not self.fallbacks:
            return None
        return Route(self.broker_id, self.fallbacks[0], self.fallbacks[1:])


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
    and the client then moves to the right port.  Every route falls back on
    the other brokers the node knows (in turn, so bootstrapping clients are
    spread), so a port whose broker is down bootstraps too.
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
        addresses = self._addresses(broker_id)
        if not addresses:
            return fail(NoRoute(f"on the port for broker {broker_id}: no broker is reachable"))
        return succeed(Route(broker_id, addresses[0], tuple(addresses[1:])))

    def _addresses(self, broker_id: int) -> list[HostPort]:
        return addresses_for(self._directory, broker_id, next(self._turn))


def addresses_for(directory: IBrokerDirectory, broker_id: int | None, turn: int) -> list[HostPort]:
    """
    Where a connection that stands for C{broker_id} goes, first choice first:
    that broker, then the others the node knows; for no or an unknown broker,
    every known broker (else the bootstrap servers) from the C{turn}th, so
    bootstrapping clients are spread.  Each address once.
    """
    known = sorted(directory.brokers().values(), key=lambda b: b.node_id)
    broker = directory.broker(broker_id) if broker_id is not None else None
    if broker is not None:
        others = [b.address for b in known if b.address != broker.address]
        return [broker.address, *_turned(others, turn)]
    candidates = [b.address for b in known] or directory.bootstrap_addresses()
    return _turned(candidates, turn)


def _turned(addresses: list[HostPort], turn: int) -> list[HostPort]:
    """C{addresses} starting at the C{turn}th (round the list), each once."""
    if not addresses:
        return []
    start = turn % len(addresses)
    unique = dict.fromkeys(addresses[start:] + addresses[:start])
    return list(unique)
