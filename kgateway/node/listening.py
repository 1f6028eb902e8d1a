"""
What the node listens with once its port plan is known: the planner of the
addresses clients are given, one client factory per port, the endpoint each
port listens on, and the admin API's view of the connections.

This is the one module of the node that knows the relay's client factory.
"""

from __future__ import annotations

import itertools

from twisted.internet.defer import Deferred
from twisted.internet.endpoints import quoteStringArgument, serverFromString
from twisted.internet.interfaces import IListeningPort

from kgateway.config import Settings
from kgateway.interceptors.registry import InterceptorSet
from kgateway.interfaces import (
    ConnectionView,
    IAddressPlanner,
    IBrokerDirectory,
    IMembership,
    INodeReactor,
    IRelayedConnection,
)
from kgateway.metrics import TrafficStats
from kgateway.net import Connector, HostPort
from kgateway.proxy.client_leg import ClientLegFactory
from kgateway.routing.mapping import FixedHostMapper, RackAwareMapper
from kgateway.routing.ports import PortPlan

#: The client factory of each Kafka port, by port.
ClientFactories = dict[int, ClientLegFactory]


class BrokerChooser:
    """Which broker a connection on a port goes to."""

    def __init__(self, directory: IBrokerDirectory) -> None:
        self._directory = directory
        self._turn = itertools.count()

    def __call__(self, broker_id: int) -> HostPort | None:
        broker = self._directory.broker(broker_id)
        if broker is not None:
            return broker.address
        # A port whose broker does not exist (yet) still bootstraps: any live
        # broker answers metadata, and the client then goes to the right port.
        known = sorted(self._directory.brokers().values(), key=lambda b: b.node_id)
        candidates = [b.address for b in known] or self._directory.bootstrap_addresses()
        if not candidates:
            return None
        return candidates[next(self._turn) % len(candidates)]


def address_planner(
    settings: Settings, plan: PortPlan, membership: IMembership, directory: IBrokerDirectory
) -> IAddressPlanner:
    """The gateway addresses clients are given: the roster's nodes, or the load balancer."""
    if not settings.internal_load_balancing:
        # External load balancing: the load balancer's address for every
        # broker, and any node serves any port behind it.
        return FixedHostMapper(settings.advertised_host, plan)

    def rack(broker_id: int) -> str | None:
        broker = directory.broker(broker_id)
        return broker.rack if broker is not None else None

    return RackAwareMapper(lambda: membership.roster, rack)


def client_factories(
    plan: PortPlan,
    directory: IBrokerDirectory,
    planner: IAddressPlanner,
    connect: Connector,
    settings: Settings,
    stats: TrafficStats,
    interceptors: InterceptorSet,
) -> ClientFactories:
    """The client factory of each port of the plan, by port."""
    chooser = BrokerChooser(directory)
    return {
        port: ClientLegFactory(
            plan.broker_for(port),
            chooser,
            planner,
            connect,
            settings.max_frame_bytes,
            stats=stats,
            interceptors=interceptors,
        )
        for port in plan.ports
    }


def kafka_endpoint(host: str, port: int) -> str:
    """The server endpoint string of one Kafka port (a backlog or TLS is a change here)."""
    return f"tcp:{port}:interface={quoteStringArgument(host)}"


def listen(
    reactor: INodeReactor, host: str, port: int, factory: ClientLegFactory
) -> Deferred[IListeningPort]:
    """Listen on one Kafka port; fails with C{CannotListenError} if the port is taken."""
    listening: Deferred[IListeningPort] = serverFromString(
        reactor, kafka_endpoint(host, port)
    ).listen(factory)
    return listening


def relayed_connections(factories: ClientFactories) -> list[IRelayedConnection]:
    """Every client connection of every port (for the drain)."""
    return [wire for factory in factories.values() for wire in factory.connections]


def connection_views(factories: ClientFactories) -> list[ConnectionView]:
    """The relayed connections of every port, as the admin API lists them."""
    views = []
    for port, factory in factories.items():
        now = factory.clock()
        for wire in factory.connections:
            core = wire.core
            if core is None:
                continue
            views.append(
                ConnectionView(
                    peer=wire.peer,
                    port=port,
                    broker_id=factory.broker_id,
                    upstream=core.endpoint,
                    client_id=core.client_id,
                    bytes_from_client=core.bytes_from_client,
                    bytes_to_client=core.bytes_to_client,
                    in_flight=len(core.inflight),
                    age_seconds=now - wire.opened_at,
                )
            )
    return views
