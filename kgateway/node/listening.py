"""
What the node listens with once its port plans are known: for each listener
(L{ListenerPlan}) the planner of the addresses its clients are given, its
client factory (routing by the port a connection arrived on), TLS in front
of it for an SSL or SASL_SSL listener, and the admin API's view of the
connections.  Each port listens with L{kgateway.node.accepting}.

This is the one module of the node that knows the relay's client factory.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from functools import partial

from twisted.internet.interfaces import IProtocolFactory

from kgateway.config import Settings
from kgateway.interceptors.registry import InterceptorSet
from kgateway.interfaces import (
    DEFAULT_LISTENER,
    AdvertisedListener,
    ConnectionView,
    IAddressPlanner,
    IBrokerDirectory,
    IMembership,
    INodeReactor,
    IRelayedConnection,
)
from kgateway.listener import Listener, check_overlaps
from kgateway.metrics import TrafficStats
from kgateway.net import Connector
from kgateway.relay.budget import MemoryBudget
from kgateway.relay.client_protocol import ClientConnectionFactory
from kgateway.relay.guard_stats import GuardStats
from kgateway.routing.mapping import FixedHostMapper, RackAwareMapper
from kgateway.routing.ports import PortPlan
from kgateway.routing.router import IRouter, PortRouter
from kgateway.routing.sni import FixedSniMapper, SniRouter, sni_address
from kgateway.security.handshake import HandshakeFailures, tls_factory
from kgateway.security.server_tls import ServerContexts


@dataclass(frozen=True)
class ListenerPlan:
    """One listener and its ports, once the brokers decided how many."""

    listener: Listener
    plan: PortPlan
    #: The port an SNI listener advertises (GATEWAY_ADVERTISED_SNI_PORT); None: its own.
    sni_port: int | None = None

    @property
    def advertised(self) -> AdvertisedListener:
        """The listener as the node describes it to the others in its roster entry."""
        listener, plan = self.listener, self.plan
        start = (self.sni_port or plan.start) if listener.sni else plan.start
        return AdvertisedListener(listener.name, listener.advertised_host, start, plan.count)

    @property
    def ports_setting(self) -> str:
        """The setting that gives its ports, for messages."""
        if self.listener.name == DEFAULT_LISTENER:
            return "GATEWAY_PORT_START and GATEWAY_PORT_COUNT"
        return self.listener.setting("PORTS")


def plan_listeners(
    listeners: Sequence[Listener],
    min_broker_id: int,
    highest_broker_id: int,
    sni_port: int | None = None,
) -> list[ListenerPlan]:
    """
    Every listener's port plan: its own count, or as many ports as the brokers
    need (highest id - min id + 3, so two more brokers fit), or one port for
    an SNI listener (advertised at C{sni_port}, if given); a
    L{kgateway.setting.ConfigError} when two plans share a port.
    """
    need = max(highest_broker_id - min_broker_id + 3, 1)
    plans = [
        ListenerPlan(
            each,
            PortPlan(each.port_start, 1 if each.sni else each.port_count or need, min_broker_id),
            sni_port if each.sni else None,
        )
        for each in listeners
    ]
    check_overlaps(listeners, {each.listener.name: each.plan.ports for each in plans})
    return plans


def address_planner(
    settings: Settings,
    listening: ListenerPlan,
    membership: IMembership,
    directory: IBrokerDirectory,
) -> IAddressPlanner:
    """
    The gateway addresses a listener's clients are given: its roster
    addresses (the nodes' same listener), or its advertised host (a load balancer).
    """
    if listening.listener.sni:
        return sni_planner(settings, listening, membership, directory)
    if not settings.internal_load_balancing:
        # External load balancing: the load balancer's address for every
        # broker, and any node serves any port behind it.
        return FixedHostMapper(listening.listener.advertised_host, listening.plan)

    def rack(broker_id: int) -> str | None:
        broker = directory.broker(broker_id)
        return broker.rack if broker is not None else None

    return RackAwareMapper(lambda: membership.roster, rack, listening.listener.name)


def sni_planner(
    settings: Settings,
    listening: ListenerPlan,
    membership: IMembership,
    directory: IBrokerDirectory,
) -> IAddressPlanner:
    """
    An SNI listener's addresses: every broker's name under each node's own
    advertised host (internal load balancing), or under the load balancer's.
    """
    names = settings.host_routing.names
    if not settings.internal_load_balancing:
        advertised = listening.advertised
        return FixedSniMapper(names, advertised.host, advertised.port_start)

    def rack(broker_id: int) -> str | None:
        broker = directory.broker(broker_id)
        return broker.rack if broker is not None else None

    return RackAwareMapper(
        lambda: membership.roster, rack, listening.listener.name, partial(sni_address, names)
    )


def router_for(settings: Settings, listening: ListenerPlan, directory: IBrokerDirectory) -> IRouter:
    """How a listener routes: by the port, or by the TLS server name."""
    if listening.listener.sni:
        return SniRouter(settings.host_routing.names, directory)
    return PortRouter(listening.plan, directory)


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
    requires_sasl: bool = False,
    out_of_descriptors: Callable[[int, str], None] | None = None,
    router: IRouter | None = None,
) -> ClientConnectionFactory:
    """
    The client factory every port of the plan listens with; the port picks the
    broker.  C{reactor} runs the connections' time limits; C{budget} is the
    node's memory budget (every listener's connections share it);
    C{requires_sasl}: the listener's clients log in (SASL_PLAINTEXT, SASL_SSL),
    so their frames are small until they have; C{router}: how connections are
    routed (by default by the plan's ports).
    """
    return ClientConnectionFactory(
        router if router is not None else PortRouter(plan, directory),
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
        requires_sasl=requires_sasl,
        max_pre_auth_frame_bytes=settings.max_pre_auth_frame_bytes,
        out_of_descriptors=out_of_descriptors,
    )


def serving_factory(
    listener: Listener,
    factory: ClientConnectionFactory,
    contexts: ServerContexts | None,
    reactor: INodeReactor,
    failures: HandshakeFailures,
) -> IProtocolFactory:
    """
    What a listener's ports listen with: its client factory, behind TLS for
    SSL and SASL_SSL (the current context of its client-auth mode for each
    new connection, so a renewed key store serves the next one).
    """
    if not listener.tls:
        return factory
    assert contexts is not None, "Settings.load refuses a TLS listener without a key store"
    creator = contexts.creator(listener.client_auth)
    return tls_factory(factory, creator, listener.name, reactor, failures)


def relayed_connections(factories: Iterable[ClientConnectionFactory]) -> list[IRelayedConnection]:
    """Every client connection of every listener, routed or not (for the drain)."""
    return [connection for factory in factories for connection in factory.connections]


def connection_views(factories: Mapping[str, ClientConnectionFactory]) -> list[ConnectionView]:
    """The client connections relayed to a broker, as the admin API lists them."""
    views = [
        replace(connection.view(), listener=name)
        for name, factory in factories.items()
        for connection in factory.connections
    ]
    return [view for view in views if view.broker_id is not None]
