"""The seams between the gateway's parts, as zope interfaces."""

from __future__ import annotations

from dataclasses import dataclass

from twisted.internet.defer import Deferred
from zope.interface import Attribute, Interface

from kgateway.net import HostPort


@dataclass(frozen=True, slots=True)
class BrokerInfo:
    """One Kafka broker as the gateway last saw it."""

    node_id: int
    host: str
    port: int
    rack: str | None = None

    @property
    def address(self) -> HostPort:
        """Where the gateway connects to reach this broker."""
        return HostPort(self.host, self.port)


class IBrokerDirectory(Interface):
    """The gateway node's own view of the Kafka brokers."""

    def broker(node_id: int) -> BrokerInfo | None:
        """The broker with this id, if it is known."""

    def brokers() -> dict[int, BrokerInfo]:
        """Every known broker, by id."""

    def bootstrap_addresses() -> list[HostPort]:
        """Where to go when no broker is known: the configured bootstrap servers."""


class IAddressMap(Interface):
    """One broker-to-gateway-address mapping, used throughout one response."""

    def address_for(broker_id: int) -> HostPort | None:
        """The gateway address that stands for this broker, or None if it has none."""


class IAddressPlanner(Interface):
    """Builds the mapping for each response that carries broker addresses."""

    def mapping(client: str | None = None) -> IAddressMap:
        """The mapping for one response to C{client} (its host and client id), if known."""

    def candidates(broker_id: int) -> list[HostPort]:
        """The addresses a mapping may hand out for this broker now, without side effects."""


@dataclass(frozen=True, slots=True)
class ConnectionView:
    """One client connection as the admin API lists it: a snapshot, read-only."""

    peer: str
    #: The local port it arrived on (None when the transport has no port).
    port: int | None
    #: The broker id its route stands for, and where its broker leg goes (None until routed).
    broker_id: int | None
    upstream: HostPort | None
    #: The client id of its first request (None before one, or if it sent none).
    client_id: str | None
    bytes_from_client: int
    bytes_to_client: int
    #: Requests awaiting their answer to the client.
    in_flight: int
    age_seconds: float


class IRelayedConnection(Interface):
    """A client connection as the rest of the node sees it (for shutdown and the API)."""

    broker_id = Attribute("The broker id this connection's route stands for (None until routed).")
    peer = Attribute('The client\'s address, "host:port".')
    opened_at = Attribute("When the connection was accepted, in the relay's monotonic seconds.")

    def drain() -> None:
        """Stop taking requests, deliver the responses in flight, then close."""

    def when_closed() -> Deferred[None]:
        """Fires once the client connection has closed (at once if it already has)."""

    def view() -> ConnectionView:
        """The connection now, for C{/api/v1/connections}."""
