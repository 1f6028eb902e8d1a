"""
Addresses and outgoing connections, the vocabulary every package shares.

C{HostPort} is a host and port value (Twisted's "endpoint" is something else:
an object that makes connections); a C{Connector} opens a connection to one.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from twisted.internet.defer import Deferred
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
