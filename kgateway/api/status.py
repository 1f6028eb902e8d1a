"""
What the admin API reports about a node, as JSON-able data.

L{INodeStatus} is the seam between the HTTP resources and the node: the
resources only serialise what it returns, and L{NodeStatus} reads a node
through the L{INodeView} the node provides.  Everything cluster-wide
(members, brokers, the mapping's candidates) comes from the roster the group
leader handed out and from Kafka's own metadata, so every node answers the
same.
"""

from __future__ import annotations

import platform
from datetime import UTC, datetime
from importlib import metadata
from typing import Any

from zope.interface import Interface, implementer

from kgateway.config import Settings
from kgateway.interfaces import INodeView, Member
from kgateway.net import HostPort
from kgateway.routing.mapping import RackAwareMapper

JSON = dict[str, Any]

#: How many connections C{/api/v1/connections} lists unless asked for another number.
DEFAULT_CONNECTIONS_LIMIT = 1000

#: The distributions /versions reports, by the name they are installed under.
DEPENDENCIES = (
    "twisted",
    "automat",
    "zope.interface",
    "kafka-python",
    "treq",
    "prometheus-client",
)


class NotReady(Exception):
    """The node cannot answer this yet (it has not seen the brokers)."""


class UnknownRack(Exception):
    """No broker is in the rack asked for."""


class UnknownListener(Exception):
    """The node has no listener of the name asked for."""


class INodeStatus(Interface):
    """A node's state as the admin API reports it."""

    def readiness() -> list[str]:
        """Why the node is not ready to serve clients; empty when it is."""

    def cluster() -> JSON:
        """The gateway members, the brokers, and which node answered."""

    def roster() -> JSON | None:
        """Which roster the node hands out, since when, and its peer checks (None: not yet)."""

    def mapping(rack: str | None, listener: str | None = None) -> JSON:
        """
        For each broker (in C{rack}, if given): the gateway addresses clients of
        C{listener} (None: the node's first) may be given.
        """

    def connections(limit: int = DEFAULT_CONNECTIONS_LIMIT) -> JSON:
        """This node's client connections: the oldest C{limit}, and how many there are."""


def versions() -> JSON:
    """The kgateway version and the versions of what it runs on."""
    return {
        "kgateway": _version("kgateway"),
        "python": platform.python_version(),
        "dependencies": {name: _version(name) for name in DEPENDENCIES},
    }


def _version(distribution: str) -> str:
    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return "unknown"


def iso_time(seconds: float) -> str:
    """A POSIX time as ISO 8601 in UTC, to the millisecond."""
    return datetime.fromtimestamp(seconds, UTC).isoformat(timespec="milliseconds")


def member_json(member: Member) -> JSON:
    """One gateway cluster member (host and ports: its first listener's), with its listeners."""
    return {
        "id": member.node_name,
        "member_id": member.member_id or None,
        "host": member.host,
        "port_start": member.port_start,
        "port_count": member.port_count,
        "min_broker_id": member.min_broker_id,
        "rack": member.rack,
        "joined_at": iso_time(member.joined_at),
        "listeners": [
            {
                "name": each.name,
                "host": each.host,
                "port_start": each.port_start,
                "port_count": each.port_count,
            }
            for each in member.every_listener()
        ],
    }


@implementer(INodeStatus)
class NodeStatus:
    """
    Reads a node through its L{INodeView}; never changes it (asking for a
    broker's candidates hands no address out).
    """

    def __init__(self, settings: Settings, node: INodeView) -> None:
        self.settings = settings
        self.node = node

    def readiness(self) -> list[str]:
        """Connected to Kafka, listening on its ports, a member of its gateway cluster."""
        node, settings = self.node, self.settings
        if node.stopping():
            return ["the node is shutting down"]
        reasons = []
        if not node.brokers():
            reasons.append(
                "not connected to Kafka: no broker answered from "
                + ",".join(map(str, settings.bootstrap_servers))
                + " yet"
            )
        if not node.accepting_clients():
            reasons.append("not listening on its Kafka ports yet")
        saturated = node.saturated()
        if saturated is not None:
            reasons.append(saturated)
        if node.interceptors_pending():
            reasons.append(f"has not read the interceptors topic {settings.interceptors_topic} yet")
        if not node.is_member():
            reasons.append(
                f"not a member of gateway cluster {settings.cluster_id!r} "
                f"(group {settings.group_id}) yet"
            )
        return reasons

    def _myself(self) -> JSON:
        myself = self.node.myself()
        return {
            "id": myself.node_name if myself is not None else None,
            "host": self.settings.listeners[0].advertised_host,
            "port_start": myself.port_start if myself is not None else None,
            "rack": self.settings.rack_id,
        }

    def _roster(self) -> list[Member]:
        return sorted(self.node.roster(), key=lambda m: m.node_name)

    def cluster(self) -> JSON:
        """The gateway members, the brokers, and which node answered."""
        return {
            "cluster_id": self.settings.cluster_id,
            "group_id": self.settings.group_id,
            "answered_by": self._myself(),
            "roster": self.roster(),
            "members": [member_json(m) for m in self._roster()],
            "brokers": [
                {"id": b.node_id, "host": b.host, "port": b.port, "rack": b.rack}
                for _, b in sorted(self.node.brokers().items())
            ],
        }

    def roster(self) -> JSON | None:
        """Which roster the node hands out (issue 16), and what its peer checks see."""
        state = self.node.roster_state()
        if state is None:
            return None
        return {
            "source": state.source,
            "since": iso_time(state.out_since) if state.out_since is not None else None,
            "peers": [
                {
                    "id": peer.node_name,
                    "host": peer.address.host,
                    "port": peer.address.port,
                    "up": peer.up,
                    "misses": peer.misses,
                    "reason": peer.reason or None,
                    "round_trip_ms": (
                        round(peer.round_trip_ms, 3) if peer.round_trip_ms is not None else None
                    ),
                    "changed_at": iso_time(peer.changed_at)
                    if peer.changed_at is not None
                    else None,
                }
                for peer in state.peers
            ],
        }

    def mapping(self, rack: str | None, listener: str | None = None) -> JSON:
        """For each broker: the addresses a metadata response may give it, and their nodes."""
        names = [each.name for each in self.settings.listeners]
        if listener is not None and listener.upper() not in names:
            raise UnknownListener(
                f"this node has no listener {listener!r}; listeners: {', '.join(names)}"
            )
        name = names[0] if listener is None else listener.upper()
        planner = self.node.planner(name)
        if planner is None:
            raise NotReady("the node has not seen the brokers yet, so it has no mapping")
        brokers = sorted(self.node.brokers().values(), key=lambda b: b.node_id)
        if rack is not None:
            racks = sorted({b.rack for b in brokers if b.rack is not None})
            brokers = [b for b in brokers if b.rack == rack]
            if not brokers:
                raise UnknownRack(
                    f"no broker is in rack {rack!r}; racks: {', '.join(racks) or 'none'}"
                )
        roster = self._roster()
        rack_aware = isinstance(planner, RackAwareMapper)
        entries = []
        for broker in brokers:
            candidates = planner.candidates(broker.node_id)
            # Behind a load balancer a candidate is the balancer, no node.
            nodes = [
                _member_at(roster, broker.node_id, c, name) if rack_aware else None
                for c in candidates
            ]
            entries.append(
                {
                    "broker_id": broker.node_id,
                    "broker": {"host": broker.host, "port": broker.port, "rack": broker.rack},
                    "rack_local": bool(nodes)
                    and broker.rack is not None
                    and all(n is not None and n.rack == broker.rack for n in nodes),
                    "candidates": [
                        {
                            "node": n.node_name if n is not None else None,
                            "host": c.host,
                            "port": c.port,
                            "rack": n.rack if n is not None else None,
                        }
                        for c, n in zip(candidates, nodes, strict=True)
                    ],
                }
            )
        return {
            "mode": "rack-aware" if rack_aware else "load-balancer",
            "listener": name,
            "rack": rack,
            "brokers": entries,
        }

    def connections(self, limit: int = DEFAULT_CONNECTIONS_LIMIT) -> JSON:
        """This node's client connections, oldest first: at most C{limit} of them."""
        views = self.node.connections()
        # Sorted as views, and only the page turned into rows: a node with 10,000
        # connections answers in a few milliseconds of its event loop.
        oldest = sorted(views, key=lambda c: (-c.age_seconds, c.port or 0, c.peer))[:limit]
        rows: list[JSON] = [
            {
                "peer": c.peer,
                "port": c.port,
                "broker_id": c.broker_id,
                "broker": str(c.upstream),
                "client_id": c.client_id,
                "bytes_from_client": c.bytes_from_client,
                "bytes_to_client": c.bytes_to_client,
                "in_flight": c.in_flight,
                "age_seconds": round(max(0.0, c.age_seconds), 3),
                "listener": c.listener,
                "principal": c.principal,
            }
            for c in oldest
        ]
        return {"answered_by": self._myself(), "connections": rows, "total": len(views)}


def _member_at(
    roster: list[Member], broker_id: int, endpoint: HostPort, listener: str
) -> Member | None:
    for member in roster:
        advertised = member.listener(listener)
        if advertised is None:
            continue
        if (
            advertised.host == endpoint.host
            and member.port_for(broker_id, listener) == endpoint.port
        ):
            return member
        # SNI routing: the broker's name under the member's host, at its one port.
        if endpoint.host.endswith(f".{advertised.host}") and endpoint.port == advertised.port_start:
            return member
    return None
