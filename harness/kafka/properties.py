"""What each broker of a L{harness.kafka.cluster.KafkaCluster} is told: its C{server.properties}.

Every node runs in combined mode (C{process.roles=broker,controller}) with a C{PLAINTEXT}
listener, which inter-broker traffic and the harness's readiness probe use, and a
C{CONTROLLER} listener for KRaft. A cluster can add client listeners (L{Listener}: an SSL or
SASL_SSL one, say) and any other setting, without a change here.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

PLAINTEXT = "PLAINTEXT"
"""The listener every broker has, for clients, for other brokers and for the harness."""

CONTROLLER = "CONTROLLER"
"""The KRaft controller listener, which no client should ever reach."""

LOG4J2_PROPERTIES = """\
status = warn
appender.out.type = Console
appender.out.name = STDOUT
appender.out.layout.type = PatternLayout
appender.out.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = INFO
rootLogger.appenderRef.out.ref = STDOUT
logger.request.name = kafka.request.logger
logger.request.level = WARN
"""
"""Brokers log to stdout, which the harness sends to a log file per node."""


@dataclass(frozen=True)
class Listener:
    """A client listener every broker opens beside C{PLAINTEXT} and C{CONTROLLER}.

    C{name} is the listener's name (e.g. C{SASL_SSL}); C{security_protocol} defaults to it.
    C{properties} are settings for this listener only, written without their
    C{listener.name.<name>.} prefix, e.g. C{{"ssl.keystore.type": "PEM",
    "scram-sha-512.sasl.jaas.config": "..."}}. Settings for the whole broker
    (C{sasl.enabled.mechanisms}) go in the cluster's C{overrides}.
    """

    name: str
    security_protocol: str | None = None
    properties: Mapping[str, object] = field(default_factory=dict, hash=False)

    def __post_init__(self) -> None:
        if self.name.upper() in (PLAINTEXT, CONTROLLER):
            raise ValueError(f"listener {self.name!r}: every broker has that one already")
        if not self.name.replace("_", "").isalnum():
            raise ValueError(f"listener {self.name!r}: use letters, digits and '_' only")

    @property
    def protocol(self) -> str:
        """The security protocol: C{security_protocol}, or the name."""
        return self.security_protocol or self.name

    def prefixed_properties(self) -> dict[str, object]:
        """C{properties} under this listener's C{listener.name.<name>.} prefix."""
        prefix = f"listener.name.{self.name.lower()}."
        return {prefix + key: value for key, value in self.properties.items()}


@dataclass(frozen=True)
class BrokerInfo:
    """Where one broker of a cluster listens for clients."""

    node_id: int
    host: str
    port: int
    """The C{PLAINTEXT} port."""
    rack: str
    listener_ports: Mapping[str, int] = field(default_factory=dict, hash=False)
    """The port of each extra L{Listener}, by name."""

    def port_of(self, listener: str = PLAINTEXT) -> int:
        """The port of the listener called C{listener}."""
        if listener == PLAINTEXT:
            return self.port
        try:
            return self.listener_ports[listener]
        except KeyError:
            raise KeyError(
                f"broker {self.node_id} has no listener {listener!r}; it has "
                f"{[PLAINTEXT, *self.listener_ports]}"
            ) from None

    @property
    def ports(self) -> set[int]:
        """Every port a client could reach this broker on."""
        return {self.port, *self.listener_ports.values()}


def server_properties(
    broker: BrokerInfo,
    controller_port: int,
    voters: str,
    size: int,
    data_dir: Path,
    listeners: Sequence[Listener] = (),
    overrides: Mapping[str, object] | None = None,
) -> dict[str, object]:
    """The settings of one node of a cluster of C{size} nodes, C{overrides} applied last.

    C{voters} is C{controller.quorum.voters} (C{id@host:port,...}, the same on every node).
    """
    host = broker.host
    client = [(PLAINTEXT, broker.port)] + [
        (listener.name, broker.port_of(listener.name)) for listener in listeners
    ]
    replication = min(3, size)
    min_isr = min(2, size)
    settings: dict[str, object] = {
        "process.roles": "broker,controller",
        "node.id": broker.node_id,
        "controller.quorum.voters": voters,
        "listeners": ",".join(
            [f"{name}://{host}:{port}" for name, port in client]
            + [f"{CONTROLLER}://{host}:{controller_port}"]
        ),
        "advertised.listeners": ",".join(f"{name}://{host}:{port}" for name, port in client),
        "controller.listener.names": CONTROLLER,
        "inter.broker.listener.name": PLAINTEXT,
        "listener.security.protocol.map": ",".join(
            [f"{PLAINTEXT}:PLAINTEXT", f"{CONTROLLER}:PLAINTEXT"]
            + [f"{listener.name}:{listener.protocol}" for listener in listeners]
        ),
        "log.dirs": data_dir,
        "broker.rack": broker.rack,
        "num.partitions": 1,
        "auto.create.topics.enable": "true",
        # Tests would otherwise wait 3 s for every first consumer group join.
        "group.initial.rebalance.delay.ms": 0,
        # Internal topics must fit the cluster, or the first group/transaction/share
        # coordinator lookup fails on clusters smaller than three nodes.
        "offsets.topic.replication.factor": replication,
        "transaction.state.log.replication.factor": replication,
        "transaction.state.log.min.isr": min_isr,
        "share.coordinator.state.topic.replication.factor": replication,
        "share.coordinator.state.topic.min.isr": min_isr,
    }
    for listener in listeners:
        settings.update(listener.prefixed_properties())
    settings.update(overrides or {})
    return settings


def render(settings: Mapping[str, object]) -> str:
    """C{settings} as the lines of a C{.properties} file."""
    return "".join(f"{key}={value}\n" for key, value in settings.items())
