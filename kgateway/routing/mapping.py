"""Which gateway address a client is given for each broker."""

from __future__ import annotations

import itertools
import zlib
from collections.abc import Callable, Sequence
from typing import TypeAlias

from twisted.logger import Logger
from zope.interface import implementer

from kgateway.cluster.roster import Member
from kgateway.interfaces import DEFAULT_LISTENER, IAddressMap, IAddressPlanner
from kgateway.net import HostPort
from kgateway.routing.ports import PortPlan

log = Logger()

#: Where a node serves a broker on a listener: C{address(member, listener, broker_id)},
#: None when it does not.
BrokerAddress: TypeAlias = Callable[[Member, str, int], HostPort | None]


def port_address(member: Member, listener: str, broker_id: int) -> HostPort | None:
    """Port routing: the node's advertised host at its port for the broker."""
    advertised = member.listener(listener)
    port = member.port_for(broker_id, listener)
    return None if advertised is None or port is None else HostPort(advertised.host, port)


@implementer(IAddressMap)
class FixedHostMapping:
    """Every broker on one host, at the broker's port: this node alone, or a load balancer."""

    def __init__(self, host: str, plan: PortPlan, warn: set[int]) -> None:
        self._host = host
        self._plan = plan
        self._warned = warn

    def address_for(self, broker_id: int) -> HostPort | None:
        """The advertised host at the broker's port, or None when the id is off the plan."""
        port = self._plan.port_for(broker_id)
        if port is None:
            if broker_id not in self._warned:
                self._warned.add(broker_id)
                log.error(
                    "Broker {broker_id} has no gateway port: ports {first}-{last} cover "
                    "broker ids {low}-{high}; {fix}. Clients are not told about this broker.",
                    broker_id=broker_id,
                    first=self._plan.start,
                    last=self._plan.start + self._plan.count - 1,
                    low=self._plan.min_broker_id,
                    high=self._plan.min_broker_id + self._plan.count - 1,
                    fix=self._plan.out_of_range_fix(broker_id),
                )
            return None
        return HostPort(self._host, port)


@implementer(IAddressPlanner)
class FixedHostMapper:
    """Hands out the same host for every broker (a single node, or external load balancing)."""

    def __init__(self, host: str, plan: PortPlan) -> None:
        self._host = host
        self._plan = plan
        self._warned: set[int] = set()

    def mapping(self, client: str | None = None) -> IAddressMap:
        """The mapping onto the fixed host (the same for every client)."""
        return FixedHostMapping(self._host, self._plan, self._warned)

    def candidates(self, broker_id: int) -> list[HostPort]:
        """The fixed host at the broker's port (none when the id is off the plan)."""
        port = self._plan.port_for(broker_id)
        return [] if port is None else [HostPort(self._host, port)]


@implementer(IAddressMap)
class RosterMapping:
    """One response's choice of gateway node for each broker, made once per broker."""

    def __init__(self, choose: Callable[[int], HostPort | None]) -> None:
        self._choose = choose
        self._chosen: dict[int, HostPort | None] = {}

    def address_for(self, broker_id: int) -> HostPort | None:
        """The chosen node's address for this broker (the same for the whole response)."""
        if broker_id not in self._chosen:
            self._chosen[broker_id] = self._choose(broker_id)
        return self._chosen[broker_id]


@implementer(IAddressPlanner)
class RackAwareMapper:
    """
    Internal load balancing: spread brokers over the live gateway nodes.

    The candidates for a broker are the live nodes in the broker's rack, or
    every live node when its rack has none.  Among the candidates the choice
    is spread over clients: a client (its address and client id) gets a turn
    from a hash that every node computes alike, offset by the broker id so
    that one response spreads its brokers over the candidates too.  Each
    listener has its own mapper: the candidates are the members' addresses on
    that listener (a member without it is none), so a client of one listener
    is only ever sent to the same listener of another node.

    A client must see the same address for a broker id on every metadata
    answer, from every node, while the candidates do not change: librdkafka
    drops a working connection whenever a broker's address changes, so a
    choice that turned with every request kept it reconnecting.  Requests
    that name no client turn round-robin.
    """

    def __init__(
        self,
        roster: Callable[[], Sequence[Member]],
        broker_rack: Callable[[int], str | None],
        listener: str = DEFAULT_LISTENER,
        address: BrokerAddress = port_address,
    ) -> None:
        self._roster = roster
        #: Where a member serves a broker: at its port for it, or under its SNI name.
        self._address = address
        self._broker_rack = broker_rack
        #: The listener whose addresses it hands out.
        self.listener = listener
        self._turn = itertools.count()
        self._warned: set[int] = set()

    def mapping(self, client: str | None = None) -> IAddressMap:
        """The mapping for one response to C{client} ("host|client id")."""
        members = sorted(self._roster(), key=lambda m: m.node_name)
        turn = zlib.crc32(client.encode()) if client is not None else next(self._turn)

        def choose(broker_id: int) -> HostPort | None:
            candidates = self._candidates(members, broker_id)
            if not candidates:
                if broker_id not in self._warned:
                    self._warned.add(broker_id)
                    log.error(
                        "Broker {broker_id} has no port on any gateway node's listener "
                        "{listener}; raise GATEWAY_PORT_COUNT (with listeners: their "
                        "GATEWAY_LISTENER_<NAME>_PORTS), or lower GATEWAY_MIN_BROKERID, on "
                        "every node. Clients are not told about this broker.",
                        broker_id=broker_id,
                        listener=self.listener,
                    )
                return None
            return candidates[(turn + broker_id) % len(candidates)]

        return RosterMapping(choose)

    def candidates(self, broker_id: int) -> list[HostPort]:
        """The addresses the round-robin picks from for this broker now (it does not turn)."""
        return self._candidates(sorted(self._roster(), key=lambda m: m.node_name), broker_id)

    def _candidates(self, members: Sequence[Member], broker_id: int) -> list[HostPort]:
        name = self.listener
        serving = [
            (m, address)
            for m in members
            if (address := self._address(m, name, broker_id)) is not None
        ]
        rack = self._broker_rack(broker_id)
        local = [address for m, address in serving if rack is not None and m.rack == rack]
        return local or [address for _, address in serving]
