"""
The seams between the gateway's parts: zope interfaces where a part is
provided (and faked in tests), typing protocols where a part only needs a
few methods of another, and the values that cross them.

Everything here depends only on L{kgateway.net} (and Twisted), so every
package can import it without importing another package.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from typing import Any, Protocol

from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IReactorCore, IReactorTCP, IReactorTime
from zope.interface import Attribute, Interface

from kgateway.net import HostPort


class INodeReactor(IReactorCore, IReactorTime, IReactorTCP):
    """
    The reactor as a node uses it: time, TCP, and stopping.  Twisted types
    its global reactor as a make-believe union of such interfaces too.
    """


# Kafka's brokers ----------------------------------------------------------------


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


# The gateway cluster --------------------------------------------------------------

#: The listener a node's single-listener settings make, and the one every member
#: of an older kgateway (which described no listeners) has.
DEFAULT_LISTENER = "DEFAULT"


@dataclass(frozen=True, order=True, slots=True)
class AdvertisedListener:
    """One listener of a gateway node as the others see it: its name, host and ports."""

    name: str
    host: str
    port_start: int
    port_count: int


@dataclass(frozen=True, order=True)
class Member:
    """
    One gateway node as the others see it.

    C{host}, C{port_start} and C{port_count} are its first listener's (all
    an older node reads); C{listeners} has every listener, and is empty in
    the description of an older node, which has one, L{DEFAULT_LISTENER}.
    """

    node_name: str
    host: str
    port_start: int
    port_count: int
    min_broker_id: int
    rack: str | None = None
    joined_at: float = 0.0
    #: The id the group coordinator gave this member ("" before it joined).
    member_id: str = ""
    #: Every listener, the first one's host and ports the same as the member's own.
    listeners: tuple[AdvertisedListener, ...] = ()

    def every_listener(self) -> tuple[AdvertisedListener, ...]:
        """Its listeners (an older node's: one, DEFAULT, of its host and ports)."""
        if self.listeners:
            return self.listeners
        return (AdvertisedListener(DEFAULT_LISTENER, self.host, self.port_start, self.port_count),)

    def listener(self, name: str | None = None) -> AdvertisedListener | None:
        """The listener of that name (None: its first), or None when it has none of that name."""
        listeners = self.every_listener()
        if name is None:
            return listeners[0]
        return next((each for each in listeners if each.name == name), None)

    def port_for(self, broker_id: int, listener: str | None = None) -> int | None:
        """This node's port for a broker on a listener, or None when it has no such port."""
        advertised = self.listener(listener)
        if advertised is None:
            return None
        offset = broker_id - self.min_broker_id
        if 0 <= offset < advertised.port_count:
            return advertised.port_start + offset
        return None

    def to_json(self) -> dict[str, object]:
        """The member as JSON-able data."""
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, object]) -> Member:
        """Read a member back; unknown keys (from newer nodes) are ignored."""
        known = {k: data[k] for k in cls.__dataclass_fields__ if k in data}
        raw = known.pop("listeners", None) or []
        listeners = tuple(
            AdvertisedListener(
                str(each["name"]),
                str(each["host"]),
                int(each["port_start"]),
                int(each["port_count"]),
            )
            for each in raw  # type: ignore[attr-defined]
        )
        return cls(**known, listeners=listeners)  # type: ignore[arg-type]


@dataclass(frozen=True, slots=True)
class PeerHealth:
    """One peer as this node's checks last saw it (for the admin API)."""

    node_name: str
    address: HostPort
    up: bool
    #: Failed checks in a row.
    misses: int
    #: Why the last check failed ("" when it was answered).
    reason: str
    #: Round trip of the last answered check, in milliseconds (None before one).
    round_trip_ms: float | None
    #: When the peer last went up or down, in the node's clock seconds (None: never changed).
    changed_at: float | None


@dataclass(frozen=True, slots=True)
class RosterState:
    """Which roster a node hands out, since when, and how its peers answer (issue 16)."""

    #: "group" (the group's), "last-known" (the last it received, while it
    #: rejoins) or "alone" (only itself).
    source: str
    #: When it lost contact with its group (clock seconds; None while in contact).
    out_since: float | None
    #: Its direct checks of the peers, by node name.
    peers: tuple[PeerHealth, ...] = ()


class IMembership(Interface):
    """The node's place in its gateway cluster, and the roster it learns."""

    myself = Attribute("This node's own description (a Member), as it joins with it.")
    roster = Attribute(
        "The live members (list of Member), this node always among them: peers its "
        "direct checks find down are left out."
    )
    state = Attribute("Which roster it hands out, since when, and its peers' checks (RosterState).")
    is_member = Attribute("Whether the roster last handed out names this node by its member id.")
    rebalances = Attribute("How many times the group has rebalanced while this node was in it.")

    def start() -> None:
        """Find the group coordinator and join."""

    def stop() -> Deferred[None]:
        """Leave the group (at once, if in it) and stop."""


# Addresses clients are given ---------------------------------------------------------


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


# Client connections -------------------------------------------------------------------


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
    #: The subject of the client's TLS certificate (mTLS), e.g. "CN=app-1,O=acme".
    principal: str | None = None
    #: The listener it arrived on.
    listener: str = DEFAULT_LISTENER


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


# The node as the admin API reads it ---------------------------------------------------


class INodeView(Interface):
    """What the admin API reads of a running node; reading it changes nothing."""

    def stopping() -> bool:
        """Whether the node is shutting down."""

    def accepting_clients() -> bool:
        """Whether it listens on its Kafka ports."""

    def saturated() -> str | None:
        """Why it cannot accept clients now (out of file descriptors), or None when it can."""

    def interceptors_pending() -> bool:
        """Whether it has started reading the interceptors topic but not read it to its end."""

    def brokers() -> dict[int, BrokerInfo]:
        """The Kafka brokers it knows, by id."""

    def myself() -> Member | None:
        """This node as its gateway cluster sees it (None before it has its port plan)."""

    def is_member() -> bool:
        """Whether it is a member of its gateway cluster's group."""

    def roster() -> list[Member]:
        """The gateway cluster's members as this node last heard (empty before it listens)."""

    def roster_state() -> RosterState | None:
        """Which roster it hands out and how its peers answer (None before it listens)."""

    def planner(listener: str | None = None) -> IAddressPlanner | None:
        """
        What hands out the addresses clients of a listener (None: the first) are
        given; None before it listens, or for a listener it does not have.
        """

    def connections() -> list[ConnectionView]:
        """Its client connections relayed to a broker now."""


# The cluster's topics, as their users need them --------------------------------------

#: Called with the whole current content of a topic after it changed.
Listener = Callable[[Mapping[bytes, bytes]], None]


class TopicReader(Protocol):
    """
    What a user of a compacted topic needs of its reader (a
    L{kgateway.cluster.topics.CompactedTopicReader}, a service of its own).
    """

    entries: dict[bytes, bytes]
    listener: Listener | None

    def setServiceParent(self, parent: Any) -> None:
        """Run as a child of C{parent}: polling while it runs."""

    def poll(self) -> Deferred[None]:
        """Read what is new now."""

    def loaded(self) -> Deferred[None]:
        """Fires once the topic has been read to its end."""

    def seen(self, offset: int) -> Deferred[None]:
        """Fires once the record at C{offset} has been read."""


class TopicWriter(Protocol):
    """What a user of a topic needs of its writer (a L{kgateway.cluster.topics.TopicWriter})."""

    def produce(self, topic: str, key: bytes | None, value: bytes | None) -> Deferred[int]:
        """Write one record (C{value} None: a tombstone); fires with its offset."""
