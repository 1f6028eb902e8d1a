"""
What a gateway node is made of, built from its settings by L{build_parts}.

The node (L{kgateway.node.service.GatewayNode}) only orders when each part
starts and stops; tests build their own L{NodeParts} with fakes in it
instead of patching a node after it was made.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import partial

import treq
from prometheus_client import GC_COLLECTOR, PLATFORM_COLLECTOR, PROCESS_COLLECTOR, CollectorRegistry
from twisted.application.service import IService
from twisted.internet.defer import Deferred
from twisted.logger import Logger

from kgateway.api.interceptors import StoreSource
from kgateway.api.server import AdminApiService
from kgateway.api.status import NodeStatus
from kgateway.cluster.brokers import BrokerDirectory
from kgateway.cluster.license import license_topic_reader
from kgateway.cluster.link import KafkaLink
from kgateway.cluster.membership import GatewayMembership, MembershipCore, node_name
from kgateway.cluster.peer_checks import PeerChecks
from kgateway.cluster.topics import (
    CompactedTopicReader,
    LeaderFinder,
    NewTopic,
    TopicWriter,
    replication_for,
)
from kgateway.config import Settings
from kgateway.interceptors.api import InterceptorContext
from kgateway.interceptors.registry import InterceptorSet, discover_plugins
from kgateway.interceptors.store import InterceptorStore
from kgateway.interfaces import AdvertisedListener, IMembership, INodeReactor, INodeView, Member
from kgateway.metrics import InterceptorCollector, TrafficStats
from kgateway.net import Connector, tcp_connector
from kgateway.node.accepting import watch_admin_port
from kgateway.node.free_memory import FreeMemory
from kgateway.node.loop_lag import LoopLag, LoopLagCollector
from kgateway.relay.budget import MemoryBudget
from kgateway.relay.guard_stats import GuardCollector, GuardStats
from kgateway.security.oauth import TokenSource
from kgateway.security.sasl import SaslLogin, SaslSettings
from kgateway.security.server_tls import ServerContexts

log = Logger()

#: Builds the admin API over the node (its view, and its interceptor store once running).
AdminApiFactory = Callable[[INodeView, StoreSource, Callable[[int, str], None]], AdminApiService]


@dataclass(frozen=True)
class NodeParts:
    """Everything a node runs, each part built but not started."""

    #: The Kafka brokers; the node starts with it and listens once it has seen them.
    directory: BrokerDirectory
    #: The node's own way to Kafka, which every part below that talks to Kafka uses.
    kafka: KafkaLink
    #: The node's place in its gateway cluster, made once its listeners' ports are
    #: known (the first listener's are the member's own).
    membership: Callable[[Sequence[AdvertisedListener], int], IMembership]
    #: The cluster's interceptors, shared by every client connection.
    interceptors: InterceptorSet
    #: The interceptors topic applied to C{interceptors}, read before the node listens.
    interceptor_store: InterceptorStore
    #: The license topic's reader, started once the node listens.
    license: IService
    #: Closed once the client connections have drained.
    writers: tuple[TopicWriter, ...]
    #: Opens the relay's connections to the brokers.
    connect: Connector
    #: What the data path counts.
    stats: TrafficStats
    #: Where /metrics is read from; the node adds its own collector.
    registry: CollectorRegistry
    #: None when the settings refuse the admin API (the node logs why).
    admin_api: AdminApiFactory | None
    # Issue 12: what the node's client connections may hold, and what the limits counted.
    #: The memory budget every listener's connections share.
    budget: MemoryBudget = field(default_factory=MemoryBudget)
    guard: GuardStats = field(default_factory=GuardStats)
    #: Measures the event loop's lag while the node runs (None: not measured).
    loop_lag: LoopLag | None = None
    #: The TLS listeners' current contexts, renewed from disk; None without TLS listeners.
    server_tls: ServerContexts | None = None


def build_parts(
    settings: Settings, reactor: INodeReactor, registry: CollectorRegistry | None = None
) -> NodeParts:
    """The parts of a node with these settings, on this reactor (and metrics registry)."""
    timeout = settings.upstream_connect_timeout_seconds
    # issue 13: the broker side's TLS wraps every connection to a broker (the node's own
    # and each client's broker leg); the node's own connections also log in.
    security = settings.broker_security
    tls = security.tls
    _warn_unread(settings.kafka)
    connect = tcp_connector(reactor, timeout, None if tls is None else tls.wrap)
    bootstrap = KafkaLink(
        settings.bootstrap_servers,
        connect,
        reactor,
        timeout,
        tls=tls,
        login=broker_login(security.sasl, reactor, timeout),
    )
    directory = BrokerDirectory(bootstrap, refresh_seconds=settings.metadata_refresh_seconds)
    kafka = bootstrap.also_trying(directory.known_addresses)
    replication = partial(replication_for, directory)

    # Interceptors' own records (context.produce): a missing topic is created
    # with one partition, not compacted (an audit log keeps every record).
    interceptor_writer = TopicWriter(
        LeaderFinder(kafka, NewTopic("interceptor topic", replication, compacted=False))
    )
    interceptors = _interceptor_set(settings, reactor, interceptor_writer)
    # The cluster's own topic of interceptor configurations: written by the
    # admin API, polled every 0.5 s (a Fetch answered at once when nothing
    # changed) so a change made through any node runs everywhere within 2 s.
    configurations_writer = TopicWriter(LeaderFinder(kafka))
    store = InterceptorStore(
        settings.interceptors_topic,
        CompactedTopicReader(
            topic=settings.interceptors_topic,
            finder=LeaderFinder(kafka, NewTopic("interceptors topic", replication)),
            interval_seconds=0.5,
            description="interceptors topic",
        ),
        configurations_writer,
        interceptors,
        reactor,
        timeout,
    )
    metrics = _registry(registry)
    metrics.register(InterceptorCollector(interceptors))
    # Issue 12: the memory budget, the limits' counters, the loop's lag.
    budget = MemoryBudget(settings.max_buffered_bytes, on_drained=FreeMemory())
    guard = GuardStats()
    loop_lag = LoopLag(reactor)
    metrics.register(GuardCollector(guard, budget))
    metrics.register(LoopLagCollector(loop_lag))
    admin_api: AdminApiFactory | None = None
    if settings.admin_api_refusal is None:

        def admin_api(
            view: INodeView, store: StoreSource, out_of_descriptors: Callable[[int, str], None]
        ) -> AdminApiService:
            status = NodeStatus(settings, view)
            return AdminApiService(
                settings,
                status,
                metrics,
                reactor,
                interceptors=store,
                watch=partial(watch_admin_port, saturation=out_of_descriptors),
            )

    server_tls = None
    if settings.server_tls is not None:
        modes = {each.client_auth for each in settings.listeners if each.tls}
        server_tls = ServerContexts(settings.server_tls, modes)
    return NodeParts(
        directory=directory,
        kafka=kafka,
        membership=partial(gateway_membership, settings, kafka, replication, reactor),
        interceptors=interceptors,
        interceptor_store=store,
        license=license_topic_reader(settings.license_topic, kafka),
        writers=(configurations_writer, interceptor_writer),
        connect=connect,
        stats=TrafficStats(),
        registry=metrics,
        admin_api=admin_api,
        budget=budget,
        guard=guard,
        loop_lag=loop_lag,
        server_tls=server_tls,
    )


def _warn_unread(kafka: Mapping[str, str]) -> None:
    """A KAFKA_SSL_* or KAFKA_SASL_* variable without a row is a setting someone expected."""
    for name in sorted(kafka):
        if name.startswith(("ssl.", "sasl.")):
            log.warn(
                "KAFKA_{variable} ({name}) is not a setting kgateway reads; it is ignored",
                variable=name.upper().replace(".", "_"),
                name=name,
            )


def broker_login(
    sasl: SaslSettings | None, reactor: INodeReactor, timeout: float
) -> SaslLogin | None:
    """The node's SASL login (with its OAuth token source, for OAUTHBEARER), or None."""
    if sasl is None:
        return None
    if sasl.oauth is None:
        return SaslLogin(sasl)
    return SaslLogin(sasl, TokenSource(sasl.oauth, reactor, treq.post, timeout).token)


def gateway_membership(
    settings: Settings,
    kafka: KafkaLink,
    replication: Callable[[], int],
    reactor: INodeReactor,
    listeners: Sequence[AdvertisedListener],
    min_broker_id: int,
) -> IMembership:
    """
    This node in its gateway group, describing itself with its listeners'
    hosts and ports; the first listener's are also the member's own, which
    is all an older node reads of it.  It checks its peers directly on their
    first listener (issue 12), unless that speaks TLS or the checks are off.
    """
    first = listeners[0]
    myself = Member(
        node_name=node_name(first.host, first.port_start),
        host=first.host,
        port_start=first.port_start,
        port_count=first.port_count,
        min_broker_id=min_broker_id,
        rack=settings.rack_id,
        joined_at=time.time(),
        listeners=tuple(listeners),
    )
    core = MembershipCore(
        myself=myself,
        group_id=settings.group_id,
        license_topic=settings.license_topic,
        link=kafka,
        replication_factor=replication,
        session_timeout_ms=settings.group_session_timeout_ms,
        heartbeat_interval_ms=settings.group_heartbeat_interval_ms,
        checks=peer_checks(settings, reactor, myself.node_name),
    )
    return GatewayMembership(core)


def peer_checks(settings: Settings, reactor: INodeReactor, myself: str) -> PeerChecks | None:
    """The node's direct checks of its peers, or None when they are off (it says why)."""
    if settings.peer_check_interval_seconds <= 0:
        return None
    if settings.listeners[0].tls:
        # A plain ApiVersions would only fail a TLS listener's handshake.
        log.info(
            "Peer checks are off: the first listener {listener} speaks TLS; the group's "
            "session timeout alone drops a failed node",
            listener=settings.listeners[0].name,
        )
        return None
    # The check's own deadline (peer_check_timeout) cuts a connection attempt short.
    return PeerChecks(
        myself,
        reactor,
        tcp_connector(reactor, settings.upstream_connect_timeout_seconds),
        interval_seconds=settings.peer_check_interval_seconds,
        timeout_seconds=settings.peer_check_timeout_seconds,
        misses=settings.peer_check_misses,
    )


def _interceptor_set(
    settings: Settings, reactor: INodeReactor, writer: TopicWriter
) -> InterceptorSet:
    def produce(topic: str, key: bytes | None, value: bytes) -> Deferred[None]:
        """Write one record for an interceptor (acks=all), creating a missing topic."""
        return writer.produce(topic, key, value).addCallback(lambda _: None)

    def context(name: str) -> InterceptorContext:
        return InterceptorContext(
            clock=reactor,
            name=name,
            cluster_id=settings.cluster_id,
            audit=interceptors.audit,
            node=f"{settings.listeners[0].advertised_host}:{settings.listeners[0].port_start}",
            produce=produce,
        )

    # The set builds each interceptor with a context that reports to the set.
    interceptors = InterceptorSet(discover_plugins(), context)
    return interceptors


def _registry(given: CollectorRegistry | None) -> CollectorRegistry:
    """The registry given, or a fresh one with the process, platform and GC metrics."""
    if given is not None:
        return given
    registry = CollectorRegistry()
    for standard in (PROCESS_COLLECTOR, PLATFORM_COLLECTOR, GC_COLLECTOR):
        registry.register(standard)
    return registry
