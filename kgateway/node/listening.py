"""
What the node listens with once its port plan is known: the planner of the
addresses clients are given, the client factory (one per listener, routing
by the port a connection arrived on), the endpoint each port listens on,
and the admin API's view of the connections.

This is the one module of the node that knows the relay's client factory.
"""

from __future__ import annotations

import time

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
from kgateway.net import Connector
from kgateway.relay.budget import MemoryBudget
from kgateway.relay.client_protocol import ClientConnectionFactory
from kgateway.relay.guard_stats import GuardStats
from kgateway.routing.mapping import FixedHostMapper, RackAwareMapper
from kgateway.routing.ports import PortPlan
from kgateway.routing.router import PortRouter


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


def client_factory(
    plan: PortPlan,
    directory: IBrokerDirectory,
    planner: IAddressPlanner,
    connect: Connector,
    settings: Settings,
    stats: TrafficStats,
    interceptors: InterceptorSet,
    reactor: INodeReactor | None = None,
    budget: MemoryBudget | None = None,
    guard: GuardStats | None = None,
) -> ClientConnectionFactory:
    """
    The client factory every port of the plan listens with; the port picks the
    broker.  C{reactor} runs the connections' time limits; C{budget} is the
    node's memory budget (every listener's connections share it).
    """
    return ClientConnectionFactory(
        PortRouter(plan, directory),
        planner,
        connect,
        max_frame_bytes=settings.max_frame_bytes,
        stats=stats,
        interceptors=interceptors,
        # Issue 12: memory and time limits.
        now=time.monotonic,
        clock=reactor,
        budget=budget if budget is not None else MemoryBudget(settings.max_buffered_bytes),
        guard=guard,
        idle_seconds=settings.connections_max_idle_seconds,
        request_receive_seconds=settings.request_receive_timeout_seconds,
        max_pre_auth_frame_bytes=settings.max_pre_auth_frame_bytes,
    )


def kafka_endpoint(host: str, port: int) -> str:
    """The server endpoint string of one Kafka port (a backlog or TLS is a change here)."""
    return f"tcp:{port}:interface={quoteStringArgument(host)}"


def listen(
    reactor: INodeReactor, host: str, port: int, factory: ClientConnectionFactory
) -> Deferred[IListeningPort]:
    """Listen on one Kafka port; fails with C{CannotListenError} if the port is taken."""
    listening: Deferred[IListeningPort] = serverFromString(
        reactor, kafka_endpoint(host, port)
    ).listen(factory)
    return listening


def relayed_connections(factory: ClientConnectionFactory | None) -> list[IRelayedConnection]:
    """Every client connection, routed or not (for the drain)."""
    return [] if factory is None else list(factory.connections)


def connection_views(factory: ClientConnectionFactory | None) -> list[ConnectionView]:
    """The client connections relayed to a broker, as the admin API lists them."""
    if factory is None:
        return []
    views = [connection.view() for connection in factory.connections]
    return [view for view in views if view.broker_id is not None]
