"""
One gateway node as a Twisted service: it starts its parts in order (the
broker directory, the interceptors, then, once the brokers are known, each
listener's ports: one per broker id) and stops them in the reverse order,
letting its client connections go broker by broker.
"""

from __future__ import annotations

from typing import Any, cast

from prometheus_client import CollectorRegistry
from twisted.application.service import MultiService
from twisted.internet.defer import CancelledError, Deferred, DeferredList
from twisted.internet.defer import TimeoutError as DeferredTimeout
from twisted.internet.error import CannotListenError
from twisted.internet.interfaces import IListeningPort
from twisted.logger import Logger
from twisted.python.components import Componentized
from twisted.python.failure import Failure
from zope.interface import implementer

from kgateway.config import Settings
from kgateway.interceptors.store import IInterceptorAdmin
from kgateway.interfaces import (
    BrokerInfo,
    ConnectionView,
    IAddressPlanner,
    IMembership,
    INodeReactor,
    INodeView,
    Member,
    RosterState,
)
from kgateway.logs import use_json_logs
from kgateway.metrics import NodeSnapshot, node_registry
from kgateway.node.accepting import Saturation, listen
from kgateway.node.listening import (
    ListenerPlan,
    address_planner,
    client_factory,
    connection_views,
    plan_listeners,
    relayed_connections,
    router_for,
    serving_factory,
)
from kgateway.node.parts import NodeParts, build_parts
from kgateway.node.shutdown import drain_broker_by_broker
from kgateway.relay.client_protocol import ClientConnectionFactory
from kgateway.routing.ports import PortPlan
from kgateway.routing.sni import uncovered
from kgateway.security.handshake import HandshakeFailures
from kgateway.security.server_tls import renewal_service
from kgateway.setting import ConfigError

log = Logger()


@implementer(INodeView)
class GatewayNode(MultiService):
    """A gateway node: its parts, started, listening and stopped in order."""

    #: How long shutdown waits for draining connections before the reactor cuts them.
    drain_timeout_seconds = 30.0
    #: How long a starting node waits to read the interceptors topic before it listens anyway.
    interceptors_load_timeout_seconds = 15.0

    def __init__(self, settings: Settings, parts: NodeParts, reactor: INodeReactor) -> None:
        super().__init__()
        self.settings = settings
        self.parts = parts
        self.reactor = reactor
        self.directory = parts.directory
        self.directory.setServiceParent(self)
        if parts.loop_lag is not None:
            parts.loop_lag.setServiceParent(self)
        #: The first listener's port plan (the only one's, for a single listener).
        self.plan: PortPlan | None = None
        #: Every listener's ports, in the order of the settings, once the brokers are known.
        self.plans: list[ListenerPlan] = []
        self.membership: IMembership | None = None
        #: Accepts the first listener's client connections, once listening.
        self.factory: ClientConnectionFactory | None = None
        #: Each listener's client factory, by listener name.
        self.factories: dict[str, ClientConnectionFactory] = {}
        self.ports: list[IListeningPort] = []
        #: Fires once the node listens on its Kafka ports.
        self.listening: Deferred[None] = Deferred()
        self._planners: dict[str, IAddressPlanner] = {}
        #: Whether the Kafka ports can accept (issue 12: the descriptor limit).
        self.saturation = Saturation(reactor)
        #: Clients that failed a TLS handshake, logged a few lines a minute.
        self.handshake_failures = HandshakeFailures(reactor)
        self._reading_interceptors = False
        self._loading: Deferred[None] | None = None
        self._stopping = False
        self.registry = node_registry(parts.stats, self._snapshot, parts.registry)
        self.admin_api = None
        if parts.admin_api is not None:
            self.admin_api = parts.admin_api(
                self, self._interceptor_admin, self.saturation.out_of_descriptors
            )
            self.admin_api.setServiceParent(self)

    def setServiceParent(self, parent: Any) -> None:
        super().setServiceParent(parent)
        # twistd asks the application for a log observer after makeService.
        if self.settings.log_format == "json" and isinstance(parent, Componentized):
            use_json_logs(parent)

    # Starting: the directory, then the interceptors, then the ports.

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

    def _load_interceptors(self) -> Deferred[None]:
        """
        Read the interceptors topic before taking any client connection.

        A node that listened first would relay its first clients' traffic
        without the cluster's policies.  If the topic cannot be read in time
        the node listens anyway (Kafka traffic matters more than a policy
        that is not readable), says so, and applies them once it can read it.
        """
        store = self.parts.interceptor_store
        store.setServiceParent(self)
        self._reading_interceptors = True
        self._loading = loaded = store.loaded()
        loaded.addTimeout(self.interceptors_load_timeout_seconds, self.reactor)
        loaded.addErrback(self._too_slow)
        loaded.addCallback(lambda _: Deferred.fromCoroutine(self._listen()))
        loaded.addErrback(lambda failure: log.failure("The node cannot listen", failure))
        return loaded

    def _too_slow(self, failure: Failure) -> None:
        failure.trap(CancelledError, DeferredTimeout)
        if self._stopping:
            return
        log.error(
            "Cannot read the interceptors topic {topic} after {seconds}s; listening "
            "without the cluster's interceptors until it can be read",
            topic=self.settings.interceptors_topic,
            seconds=self.interceptors_load_timeout_seconds,
        )

    async def _listen(self) -> None:
        if self._stopping:
            return
        settings = self.settings
        brokers = self.directory.brokers()
        try:
            self.plans = plans = plan_listeners(
                settings.listeners,
                settings.min_broker_id,
                max(brokers),
                settings.host_routing.advertised_port,
            )
        except ConfigError as e:
            log.critical("Cannot listen: {reason}. Stopping.", reason=str(e))
            self.reactor.callLater(0, self.reactor.stop)
            return
        self.plan = plans[0].plan
        self.membership = membership = self.parts.membership(
            [each.advertised for each in plans], settings.min_broker_id
        )
        parts = self.parts
        for listening in plans:
            self._warn_off_plan(listening, brokers)
            name = listening.listener.name
            self._planners[name] = planner = address_planner(
                settings, listening, membership, self.directory
            )
            self.factories[name] = client_factory(
                listening.plan,
                self.directory,
                planner,
                parts.connect,
                settings,
                parts.stats,
                parts.interceptors,
                # Issue 12: the node's time limits, budget, and pre-login frame limit.
                reactor=self.reactor,
                budget=parts.budget,
                guard=parts.guard,
                requires_sasl=listening.listener.sasl,
                out_of_descriptors=self.saturation.broker_connect_failed,
                router=router_for(settings, listening, self.directory),
            )
        self.factory = self.factories[plans[0].listener.name]
        for listening in plans:
            if not await self._listen_on(listening):
                return
        if parts.server_tls is not None:
            renewal = renewal_service(parts.server_tls, self.reactor)
            if renewal is not None:
                renewal.setServiceParent(self)
        membership.start()
        parts.license.setServiceParent(self)
        self.listening.callback(None)

    def _warn_off_plan(self, listening: ListenerPlan, brokers: dict[int, BrokerInfo]) -> None:
        plan = listening.plan
        if listening.listener.sni:
            self._warn_uncovered(listening, brokers)
            return  # one port serves every broker id
        for node_id in sorted(brokers):
            if plan.port_for(node_id) is None:
                log.error(
                    "Broker {id} is outside the port range {first}-{last} (listener {listener}): "
                    "{fix}",
                    id=node_id,
                    listener=listening.listener.name,
                    first=plan.start,
                    last=plan.start + plan.count - 1,
                    fix=plan.out_of_range_fix(node_id),
                )

    def _warn_uncovered(self, listening: ListenerPlan, brokers: dict[int, BrokerInfo]) -> None:
        contexts = self.parts.server_tls
        if contexts is None:
            return
        suffix = listening.listener.advertised_host
        why = uncovered(
            contexts.material.key.certificate,
            self.settings.host_routing.names,
            suffix,
            sorted(brokers),
        )
        if why is not None:
            log.warn("Listener {listener}: {why}", listener=listening.listener.name, why=why)

    async def _listen_on(self, listening: ListenerPlan) -> bool:
        """Listen on every port of one listener; False (and the node stops) if one is taken."""
        listener, plan = listening.listener, listening.plan
        factory = serving_factory(
            listener,
            self.factories[listener.name],
            self.parts.server_tls,
            self.reactor,
            self.handshake_failures,
        )
        try:
            for port in plan.ports:
                self.ports.append(
                    await listen(
                        self.reactor,
                        listener.bind_host,
                        port,
                        factory,
                        self.settings.listen_backlog,
                        self.saturation,
                    )
                )
        except CannotListenError as e:
            log.critical(
                "Cannot listen on {host}:{port} ({reason}); check {setting}, or what else "
                "uses the port. Stopping.",
                host=listener.bind_host,
                port=e.port,
                reason=e.socketError,
                setting=listening.ports_setting,
            )
            self.reactor.callLater(0, self.reactor.stop)
            return False
        log.info(
            "Listening on {host}:{first}-{last} for broker ids {low}-{high} (listener "
            "{listener}, {protocol}, advertised as {advertised})",
            host=listener.bind_host,
            first=plan.start,
            last=plan.start + plan.count - 1,
            low=plan.min_broker_id,
            high=plan.min_broker_id + plan.count - 1,
            listener=listener.name,
            protocol=listener.security_protocol
            + (f", client certificates {listener.client_auth}" if listener.tls else ""),
            advertised=listener.advertised_host,
        )
        return True

    # Stopping: leave the group, stop listening, drain, then everything else.

    def stopService(self) -> Deferred[Any]:
        """Leave the group, stop accepting, then close connections broker by broker."""
        return Deferred.fromCoroutine(self._shutdown())

    async def _shutdown(self) -> None:
        self._stopping = True
        if self._loading is not None:
            self._loading.cancel()
        if self.membership is not None:
            await self.membership.stop()
        ports, self.ports = self.ports, []
        self.saturation.stop()
        await DeferredList([d for d in (p.stopListening() for p in ports) if d is not None])
        await drain_broker_by_broker(
            relayed_connections(self.factories.values()),
            self.reactor,
            self.settings.shutdown_delay_between_brokers_seconds,
            self.drain_timeout_seconds,
        )
        self.parts.interceptors.stop()
        for writer in self.parts.writers:
            writer.close()
        await super().stopService()

    def _interceptor_admin(self) -> IInterceptorAdmin | None:
        """The interceptor store for the admin API, once the node reads it."""
        return self.parts.interceptor_store if self._reading_interceptors else None

    def _snapshot(self) -> NodeSnapshot:
        connections = self.connections()
        membership = self.membership
        return NodeSnapshot(
            client_connections=len(connections),
            in_flight=sum(c.in_flight for c in connections),
            members=len(self.roster()),
            rebalances=membership.rebalances if membership is not None else 0,
            brokers=len(self.directory.brokers()),
        )

    # INodeView

    def stopping(self) -> bool:
        """Whether the node is shutting down."""
        return self._stopping

    def accepting_clients(self) -> bool:
        """Whether it listens on its Kafka ports."""
        return bool(self.ports)

    def saturated(self) -> str | None:
        """Why it cannot accept clients now (out of file descriptors), or None."""
        return self.saturation.problem()

    def interceptors_pending(self) -> bool:
        """Whether it has started reading the interceptors topic but not read it to its end."""
        return self._reading_interceptors and not self.parts.interceptor_store.is_loaded

    def brokers(self) -> dict[int, BrokerInfo]:
        """The Kafka brokers it knows, by id."""
        return self.directory.brokers()

    def myself(self) -> Member | None:
        """This node as its gateway cluster sees it, once it has its port plan."""
        if self.membership is None:
            return None
        myself: Member = self.membership.myself
        return myself

    def is_member(self) -> bool:
        """Whether it is a member of its gateway cluster's group."""
        return self.membership is not None and bool(self.membership.is_member)

    def roster(self) -> list[Member]:
        """The gateway cluster's members as this node last heard."""
        if self.membership is None:
            return []
        roster: list[Member] = self.membership.roster
        return list(roster)

    def roster_state(self) -> RosterState | None:
        """Which roster it hands out, since when, and how its peers answer."""
        if self.membership is None:
            return None
        state: RosterState = self.membership.state
        return state

    def planner(self, listener: str | None = None) -> IAddressPlanner | None:
        """What hands out the addresses a listener's (None: the first's) clients are given."""
        if listener is None:
            listener = self.settings.listeners[0].name
        return self._planners.get(listener)

    def connections(self) -> list[ConnectionView]:
        """Its client connections relayed to a broker now, on every listener."""
        return connection_views(self.factories)


def makeService(
    settings: Settings,
    reactor: INodeReactor | None = None,
    registry: CollectorRegistry | None = None,
) -> GatewayNode:
    """
    Build the node's service from its settings; the reactor and the metrics
    registry are parameters so tests can pass their own.
    """
    if reactor is None:
        from twisted.internet import reactor as default_reactor

        # The global reactor provides all of INodeReactor; Twisted types it
        # as a make-believe interface of its own.
        reactor = cast(INodeReactor, default_reactor)
    return GatewayNode(settings, build_parts(settings, reactor, registry), reactor)
