"""
One gateway node as a Twisted service: the broker directory, then one
listening port per broker id once the brokers are known.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, cast

from prometheus_client import CollectorRegistry
from twisted.application.service import MultiService
from twisted.internet.defer import (
    CancelledError,
    Deferred,
    DeferredList,
    ensureDeferred,
)
from twisted.internet.defer import TimeoutError as DeferredTimeout
from twisted.internet.endpoints import HostnameEndpoint
from twisted.internet.error import CannotListenError
from twisted.internet.interfaces import IListeningPort, IReactorTCP, IReactorTime
from twisted.internet.protocol import Factory, Protocol
from twisted.internet.task import deferLater
from twisted.logger import Logger
from twisted.python.components import Componentized

from kgateway.api.server import AdminApiService
from kgateway.api.status import GatewayNodeStatus
from kgateway.cluster.brokers import BrokerDirectory
from kgateway.cluster.license import license_topic_reader
from kgateway.cluster.membership import GatewayMembership, MembershipCore, node_name
from kgateway.cluster.roster import Member
from kgateway.cluster.topics import CompactedTopicReader, LeaderFinder, TopicWriter
from kgateway.config import Settings
from kgateway.interceptors.api import InterceptorContext
from kgateway.interceptors.registry import InterceptorSet, discover_plugins
from kgateway.interceptors.store import InterceptorStore
from kgateway.interfaces import IAddressPlanner, IRelayedConnection
from kgateway.logs import use_json_logs
from kgateway.metrics import InterceptorCollector, NodeSnapshot, TrafficStats, node_registry
from kgateway.net import Connector, HostPort
from kgateway.relay.client_protocol import ClientConnectionFactory
from kgateway.routing.mapping import FixedHostMapper, RackAwareMapper
from kgateway.routing.ports import PortPlan
from kgateway.routing.router import PortRouter

log = Logger()


def tcp_connector(reactor: Any, timeout: float) -> Connector:
    """Connect with a host-name endpoint (resolves names, tries every address)."""

    def connect(endpoint: HostPort, factory: Factory) -> Deferred[Protocol]:
        attempt = HostnameEndpoint(reactor, endpoint.host, endpoint.port, timeout=timeout)
        return cast("Deferred[Protocol]", attempt.connect(factory))

    return connect


class GatewayNode(MultiService):
    """A gateway node: its directory of brokers and its listening ports."""

    #: How long shutdown waits for draining connections before the reactor cuts them.
    drain_timeout_seconds = 30.0

    def __init__(
        self, settings: Settings, reactor: Any, registry: CollectorRegistry | None = None
    ) -> None:
        super().__init__()
        self.settings = settings
        self.reactor = reactor
        self.connect = tcp_connector(reactor, settings.upstream_connect_timeout_seconds)
        self.directory = BrokerDirectory(
            settings.bootstrap_servers,
            self.connect,
            clock=reactor,
            refresh_seconds=settings.metadata_refresh_seconds,
            timeout_seconds=settings.upstream_connect_timeout_seconds,
        )
        self.directory.setServiceParent(self)
        self.plan: PortPlan | None = None
        self.mapper: IAddressPlanner | None = None
        self.membership: GatewayMembership | None = None
        self.license: CompactedTopicReader | None = None
        #: Builds the node's membership once its port plan is known (a seam for tests).
        self.membership_factory: Callable[[PortPlan], GatewayMembership] = self._membership
        #: Builds the license topic reader (a seam for tests).
        self.license_factory: Callable[[], CompactedTopicReader] = self._license_reader
        #: Writes the cluster's own compacted topics (the interceptor configurations).
        self.writer = TopicWriter(
            LeaderFinder(
                self._bootstrap_and_known,
                lambda endpoint, factory: self.connect(endpoint, factory),
                reactor,
                settings.upstream_connect_timeout_seconds,
            ),
            reactor,
            settings.upstream_connect_timeout_seconds,
        )
        #: Writes for interceptors (context.produce): a missing topic is created, one
        #: partition, not compacted (an audit log keeps every record, not the last per key).
        self.interceptor_writer = TopicWriter(
            LeaderFinder(
                self._bootstrap_and_known,
                lambda endpoint, factory: self.connect(endpoint, factory),
                reactor,
                settings.upstream_connect_timeout_seconds,
                create_with=self._replication_factor,
                what="interceptor topic",
                compacted=False,
            ),
            reactor,
            settings.upstream_connect_timeout_seconds,
        )
        #: The interceptors topic, applied to C{interceptors}; started once listening.
        self.interceptor_store: InterceptorStore | None = None
        #: Builds the interceptor store (a seam for tests).
        self.interceptor_store_factory: Callable[[], InterceptorStore] = self._interceptor_store
        #: The interceptors configured for the cluster, shared by every connection.
        self.interceptors = InterceptorSet(discover_plugins(), self._interceptor_context)
        #: Accepts the client connections of every port (one listener, one router).
        self.factory: ClientConnectionFactory | None = None
        self.ports: list[IListeningPort] = []
        self.listening: Deferred[None] = Deferred()
        self.stopping = False
        #: What the data path counts, and the registry /metrics serves.
        self.stats = TrafficStats()
        self.registry = node_registry(self.stats, self._snapshot, registry)
        self.registry.register(InterceptorCollector(self.interceptors))
        self.admin_api: AdminApiService | None = None
        if settings.admin_api_refusal is None:
            self.admin_api = AdminApiService(
                settings,
                GatewayNodeStatus(self),
                self.registry,
                reactor,
                interceptors=lambda: self.interceptor_store,
            )
            self.admin_api.setServiceParent(self)

    def setServiceParent(self, parent: Any) -> None:
        super().setServiceParent(parent)
        # twistd asks the application for a log observer after makeService.
        if self.settings.log_format == "json" and isinstance(parent, Componentized):
            use_json_logs(parent)

    def startService(self) -> None:
        super().startService()
        log.info(
            "kgateway node starting: bootstrap {servers}, advertised host {host}",
            servers=",".join(map(str, self.settings.bootstrap_servers)),
            host=self.settings.advertised_host,
        )
        refusal = self.settings.admin_api_refusal
        if refusal is not None:
            log.error("Admin API not started: {reason}", reason=refusal)
        self.directory.ready().addCallback(lambda _: self._load_interceptors())

    #: How long a starting node waits to read the interceptors topic before it listens anyway.
    interceptors_load_timeout_seconds = 15.0

    def _load_interceptors(self) -> Deferred[None]:
        """
        Read the interceptors topic before taking any client connection.

        A node that listened first would relay its first clients' traffic
        without the cluster's policies.  If the topic cannot be read in time
        the node listens anyway (Kafka traffic matters more than a policy
        that is not readable), says so, and applies them once it can read it.
        """
        self.interceptor_store = store = self.interceptor_store_factory()
        store.setServiceParent(self)
        loaded = store.loaded()
        loaded.addTimeout(self.interceptors_load_timeout_seconds, self.reactor)

        def too_slow(failure: Any) -> None:
            failure.trap(CancelledError, DeferredTimeout)
            log.error(
                "Cannot read the interceptors topic {topic} after {seconds}s; listening "
                "without the cluster's interceptors until it can be read",
                topic=self.settings.interceptors_topic,
                seconds=self.interceptors_load_timeout_seconds,
            )

        loaded.addErrback(too_slow)
        loaded.addCallback(lambda _: self._listen())
        return loaded

    def _listen(self) -> None:
        settings = self.settings
        brokers = self.directory.brokers()
        count = settings.port_count
        if count is None:
            count = max(brokers) - settings.min_broker_id + 3
        self.plan = plan = PortPlan(settings.port_start, max(count, 1), settings.min_broker_id)
        self.membership = self.membership_factory(plan)
        if settings.internal_load_balancing:
            membership = self.membership
            self.mapper = RackAwareMapper(lambda: membership.roster, self._broker_rack)
        else:
            # External load balancing: the load balancer's address for every
            # broker, and any node serves any port behind it.
            self.mapper = FixedHostMapper(settings.advertised_host, plan)
        for node_id in sorted(brokers):
            if plan.port_for(node_id) is None:
                log.error(
                    "Broker {id} is outside the port range {first}-{last}: {fix}",
                    id=node_id,
                    first=plan.start,
                    last=plan.start + plan.count - 1,
                    fix=plan.out_of_range_fix(node_id),
                )
        self.factory = factory = ClientConnectionFactory(
            PortRouter(plan, self.directory),
            self.mapper,
            self.connect,
            max_frame_bytes=settings.max_frame_bytes,
            stats=self.stats,
            interceptors=self.interceptors,
        )
        tcp: IReactorTCP = self.reactor
        try:
            for port in plan.ports:
                self.ports.append(tcp.listenTCP(port, factory, interface=settings.bind_host))
        except CannotListenError as e:
            log.critical(
                "Cannot listen on {host}:{port} ({reason}); check GATEWAY_PORT_START and "
                "GATEWAY_PORT_COUNT, or what else uses the port. Stopping.",
                host=settings.bind_host,
                port=e.port,
                reason=e.socketError,
            )
            self.reactor.callLater(0, self.reactor.stop)
            return
        log.info(
            "Listening on {host}:{first}-{last} for broker ids {low}-{high}",
            host=settings.bind_host,
            first=plan.start,
            last=plan.start + plan.count - 1,
            low=plan.min_broker_id,
            high=plan.min_broker_id + plan.count - 1,
        )
        self.membership.start()
        self.license = self.license_factory()
        self.license.setServiceParent(self)
        self.listening.callback(None)

    def _membership(self, plan: PortPlan) -> GatewayMembership:
        settings = self.settings
        myself = Member(
            node_name=node_name(settings.advertised_host, plan.start),
            host=settings.advertised_host,
            port_start=plan.start,
            port_count=plan.count,
            min_broker_id=plan.min_broker_id,
            rack=settings.rack_id,
            joined_at=time.time(),
        )
        core = MembershipCore(
            myself=myself,
            group_id=settings.group_id,
            license_topic=settings.license_topic,
            bootstrap=self._bootstrap_and_known,
            connect=self.connect,
            clock=self.reactor,
            replication_factor=self._replication_factor,
            session_timeout_ms=settings.group_session_timeout_ms,
            heartbeat_interval_ms=settings.group_heartbeat_interval_ms,
            request_timeout=settings.upstream_connect_timeout_seconds,
        )
        return GatewayMembership(core)

    def _interceptor_context(self, name: str) -> InterceptorContext:
        return InterceptorContext(
            clock=self.reactor,
            name=name,
            cluster_id=self.settings.cluster_id,
            audit=self.interceptors.audit,
            node=f"{self.settings.advertised_host}:{self.settings.port_start}",
            produce=self._produce,
        )

    def _produce(self, topic: str, key: bytes | None, value: bytes) -> Deferred[None]:
        """Write one record for an interceptor (acks=all), creating a missing topic."""
        return self.interceptor_writer.produce(topic, key, value).addCallback(lambda _: None)

    def _replication_factor(self) -> int:
        """For the cluster's own topics: 3, or fewer on a smaller Kafka cluster."""
        return max(1, min(3, len(self.directory.brokers())))

    def _interceptor_store(self) -> InterceptorStore:
        settings = self.settings
        topic = settings.interceptors_topic
        # Polled every 0.5 s (a Fetch answered at once when nothing changed) so
        # a change made through any node runs everywhere within the promised 2 s.
        reader = CompactedTopicReader(
            topic=topic,
            finder=LeaderFinder(
                self._bootstrap_and_known,
                self.connect,
                self.reactor,
                settings.upstream_connect_timeout_seconds,
                create_with=self._replication_factor,
                what="interceptors topic",
            ),
            clock=self.reactor,
            interval_seconds=0.5,
            timeout_seconds=settings.upstream_connect_timeout_seconds,
            description="interceptors topic",
        )
        return InterceptorStore(
            topic,
            reader,
            self.writer,
            self.interceptors,
            self.reactor,
            settings.upstream_connect_timeout_seconds,
        )

    def _snapshot(self) -> NodeSnapshot:
        views = [c.view() for c in self.factory.connections] if self.factory is not None else []
        membership = self.membership
        return NodeSnapshot(
            client_connections=len(views),
            in_flight=sum(view.in_flight for view in views),
            members=len(membership.roster) if membership is not None else 0,
            rebalances=membership.core.rebalances if membership is not None else 0,
            brokers=len(self.directory.brokers()),
        )

    def _license_reader(self) -> CompactedTopicReader:
        return license_topic_reader(
            topic=self.settings.license_topic,
            brokers=self._bootstrap_and_known,
            connect=self.connect,
            clock=self.reactor,
            timeout_seconds=self.settings.upstream_connect_timeout_seconds,
        )

    def _bootstrap_and_known(self) -> list[HostPort]:
        known = [b.address for b in self.directory.brokers().values()]
        return list(dict.fromkeys(list(self.settings.bootstrap_servers) + known))

    def _broker_rack(self, broker_id: int) -> str | None:
        broker = self.directory.broker(broker_id)
        return broker.rack if broker is not None else None

    def stopService(self) -> Deferred[Any]:
        """Leave the group, stop accepting, then close connections broker by broker."""
        return ensureDeferred(self._shutdown())

    async def _shutdown(self) -> None:
        self.stopping = True
        if self.membership is not None:
            await self.membership.stop()
        ports, self.ports = self.ports, []
        await DeferredList([d for d in (p.stopListening() for p in ports) if d is not None])
        # Close the connections of one broker at a time, as a Kafka rolling
        # restart would, so clients move over without all reconnecting at once.
        by_broker: dict[int, list[IRelayedConnection]] = {}
        closing: list[Deferred[None]] = []
        for accepted in list(self.factory.connections) if self.factory is not None else []:
            if accepted.broker_id is None:  # not routed yet: nothing to drain
                closing.append(accepted.when_closed())
                accepted.drain()
            else:
                by_broker.setdefault(accepted.broker_id, []).append(accepted)
        delay = self.settings.shutdown_delay_between_brokers_seconds
        for index, broker_id in enumerate(sorted(b for b, c in by_broker.items() if c)):
            if index and delay:
                await deferLater(self.reactor, delay, lambda: None)
            for connection in by_broker[broker_id]:
                closing.append(connection.when_closed())
                connection.drain()
        if closing:
            # The reactor cuts every open connection once the services have
            # stopped, so wait for the drains, but not forever.
            drained: Deferred[Any] = DeferredList(closing, consumeErrors=True)
            too_slow = self.reactor.callLater(self.drain_timeout_seconds, drained.cancel)
            try:
                await drained
            except CancelledError:
                pass
            if too_slow.active():
                too_slow.cancel()
            else:
                log.warn(
                    "Connections still draining after {seconds}s; closing them",
                    seconds=self.drain_timeout_seconds,
                )
        self.interceptors.stop()
        self.writer.close()
        self.interceptor_writer.close()
        await super().stopService()


def makeService(
    settings: Settings, reactor: Any = None, registry: CollectorRegistry | None = None
) -> GatewayNode:
    """
    Build the node's service; the reactor and the metrics registry are
    parameters so tests can pass their own.
    """
    if reactor is None:
        from twisted.internet import reactor as default_reactor

        reactor = default_reactor
    return GatewayNode(settings, reactor, registry)


__all__ = ["GatewayNode", "makeService", "tcp_connector", "IReactorTime"]
