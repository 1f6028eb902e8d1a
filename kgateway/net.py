"""
Addresses and outgoing connections, the vocabulary every package shares.

C{HostPort} is a host and port value (Twisted's "endpoint" is something else:
an object that makes connections); a C{Connector} opens a connection to one,
and L{tcp_connector} is the node's.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import cast

from twisted.internet.defer import Deferred
from twisted.internet.endpoints import HostnameEndpoint
from twisted.internet.interfaces import IReactorTime, IStreamClientEndpoint
from twisted.internet.protocol import Factory, Protocol


@dataclass(frozen=True, slots=True)
class HostPort:
    """A host and port to connect to, or that a client is given."""

    host: str
    port: int

    def __str__(self) -> str:
        return f"{self.host}:{self.port}"


#: Opens a TCP connection to an address with the given factory.
Connector = Callable[[HostPort, Factory], "Deferred[Protocol]"]


#: Puts something (TLS) around the TCP endpoint for an address.
EndpointWrapper = Callable[[HostPort, IStreamClientEndpoint], IStreamClientEndpoint]


def tcp_connector(
    reactor: IReactorTime, timeout: float, wrap: EndpointWrapper | None = None
) -> Connector:
    """
    Connect with a host-name endpoint (resolves names, tries every address),
    wrapped by C{wrap} when given (the broker side's TLS).
    """

    def connect(address: HostPort, factory: Factory) -> Deferred[Protocol]:
        endpoint: IStreamClientEndpoint = HostnameEndpoint(
            reactor, address.host, address.port, timeout=timeout
        )
        if wrap is not None:
            endpoint = wrap(address, endpoint)
        return cast("Deferred[Protocol]", endpoint.connect(factory))

    return connect
