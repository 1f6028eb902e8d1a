"""
What the admin API reports about a node, as JSON-able data.

L{INodeStatus} is the seam between the HTTP resources and the node: the
resources only serialise what it returns, and L{GatewayNodeStatus} reads a
running L{GatewayNode}.  Everything cluster-wide (members, brokers, the
mapping's candidates) comes from the roster the group leader handed out and
from Kafka's own metadata, so every node answers the same.
"""

from __future__ import annotations

import platform
from datetime import UTC, datetime
from importlib import metadata
from typing import TYPE_CHECKING, Any

from zope.interface import Interface, implementer

from kgateway.cluster.roster import Member
from kgateway.net import HostPort
from kgateway.routing.mapping import RackAwareMapper

if TYPE_CHECKING:
    from kgateway.service import GatewayNode

JSON = dict[str, Any]

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


class INodeStatus(Interface):
    """A node's state as the admin API reports it."""

    def readiness() -> list[str]:
        """Why the node is not ready to serve clients; empty when it is."""

    def cluster() -> JSON:
        """The gateway members, the brokers, and which node answered."""

    def mapping(rack: str | None) -> JSON:
        """For each broker (in C{rack}, if given): the gateway addresses clients may be given."""

    def connections() -> JSON:
        """This node's client connections."""


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
    """One gateway cluster member."""
    return {
        "id": member.node_name,
        "member_id": member.member_id or None,
        "host": member.host,
        "port_start": member.port_start,
        "port_count": member.port_count,
        "min_broker_id": member.min_broker_id,
        "rack": member.rack,
        "joined_at": iso_time(member.joined_at),
    }


@implementer(INodeStatus)
class GatewayNodeStatus:
    """Reads a L{GatewayNode}; never changes it (the mapper's round-robin does not turn)."""

    def __init__(self, node: GatewayNode) -> None:
        self.node = node

    def readiness(self) -> list[str]:
        """Connected to Kafka, listening on its ports, a member of its gateway cluster."""
        node = self.node
        if node.stopping:
            return ["the node is shutting down"]
        reasons = []
        if not node.directory.brokers():
            reasons.append(
                "not connected to Kafka: no broker answered from "
                + ",".join(map(str, node.settings.bootstrap_servers))
                + " yet"
            )
        if not node.ports:
            reasons.append("not listening on its Kafka ports yet")
        store = node.interceptor_store
        if store is not None and not getattr(store, "is_loaded", True):
            reasons.append(
                f"has not read the interceptors topic {node.settings.interceptors_topic} yet"
            )
        if node.membership is None or not node.membership.is_member:
            reasons.append(
                f"not a member of gateway cluster {node.settings.cluster_id!r} "
                f"(group {node.settings.group_id}) yet"
            )
        return reasons

    def _myself(self) -> JSON:
        node = self.node
        membership = node.membership
        return {
            "id": membership.core.myself.node_name if membership is not None else None,
            "host": node.settings.advertised_host,
            "port_start": node.plan.start if node.plan is not None else None,
            "rack": node.settings.rack_id,
        }

    def _roster(self) -> list[Member]:
        membership = self.node.membership
        return sorted(membership.roster, key=lambda m: m.node_name) if membership else []

    def cluster(self) -> JSON:
        """The gateway members, the brokers, and which node answered."""
        settings = self.node.settings
        return {
            "cluster_id": settings.cluster_id,
            "group_id": settings.group_id,
            "answered_by": self._myself(),
            "members": [member_json(m) for m in self._roster()],
            "brokers": [
                {"id": b.node_id, "host": b.host, "port": b.port, "rack": b.rack}
                for _, b in sorted(self.node.directory.brokers().items())
            ],
        }

    def mapping(self, rack: str | None) -> JSON:
        """For each broker: the addresses a metadata response may give it, and their nodes."""
        mapper = self.node.mapper
        if mapper is None:
            raise NotReady("the node has not seen the brokers yet, so it has no mapping")
        brokers = sorted(self.node.directory.brokers().values(), key=lambda b: b.node_id)
        if rack is not None:
            racks = sorted({b.rack for b in brokers if b.rack is not None})
            brokers = [b for b in brokers if b.rack == rack]
            if not brokers:
                raise UnknownRack(
                    f"no broker is in rack {rack!r}; racks: {', '.join(racks) or 'none'}"
                )
        roster = self._roster()
        entries = []
        for broker in brokers:
            candidates = mapper.candidates(broker.node_id)
            nodes = [_member_at(roster, broker.node_id, c) for c in candidates]
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
            "mode": "rack-aware" if isinstance(mapper, RackAwareMapper) else "load-balancer",
            "rack": rack,
            "brokers": entries,
        }

    def connections(self) -> JSON:
        """This node's client connections, oldest first."""
        factory = self.node.factory
        rows: list[JSON] = []
        for connection in factory.connections if factory is not None else ():
            view = connection.view()
            if view.broker_id is None or view.upstream is None:
                continue  # not routed yet: nothing to show but a peer
            rows.append(
                {
                    "peer": view.peer,
                    "port": view.port,
                    "broker_id": view.broker_id,
                    "broker": str(view.upstream),
                    "client_id": view.client_id,
                    "bytes_from_client": view.bytes_from_client,
                    "bytes_to_client": view.bytes_to_client,
                    "in_flight": view.in_flight,
                    "age_seconds": view.age_seconds,
                }
            )
        rows.sort(key=lambda row: (-float(row["age_seconds"]), row["port"] or 0, row["peer"]))
        return {"answered_by": self._myself(), "connections": rows}


def _member_at(roster: list[Member], broker_id: int, endpoint: HostPort) -> Member | None:
    for member in roster:
        if member.host == endpoint.host and member.port_for(broker_id) == endpoint.port:
            return member
    return None
