"""The seams between the gateway's parts, as zope interfaces."""

from __future__ import annotations

from dataclasses import dataclass

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


class IRelayedConnection(Interface):
    """A client connection as the rest of the node sees it (for shutdown and the API)."""

    broker_id = Attribute("The broker id this connection's port stands for.")

    def drain() -> None:
        """Stop taking requests, deliver the responses in flight, then close."""
