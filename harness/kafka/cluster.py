"""A real Apache Kafka KRaft cluster, run from Maven Central jars, for integration tests and demos.

Each node runs in combined mode (C{process.roles=broker,controller}) as its own JVM on free
loopback ports (L{harness.kafka.node.KafkaNode}). The JVMs are tied to this Python process
(C{PR_SET_PDEATHSIG}, the harness's exit hook and L{KafkaCluster.stop} on every error path) so
that no broker outlives the test that started it.
"""

from __future__ import annotations

import base64
import itertools
import shutil
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from types import TracebackType

from harness.children import die_with_parent, forget, stop_at_exit
from harness.kafka.maven import ensure_kafka_libs
from harness.kafka.node import KafkaClusterError, KafkaNode
from harness.kafka.properties import (
    LOG4J2_PROPERTIES,
    PLAINTEXT,
    BrokerInfo,
    Listener,
    render,
    server_properties,
)
from harness.kafka.tools import STORAGE_TOOL, java_command
from harness.ports import free_ports
from harness.probe import advertised_brokers

_CLIENT_ID = "kgateway-kafka-cluster"


def _random_cluster_id() -> str:
    """Make a cluster id the way Kafka's C{Uuid.randomUuid()} does, without starting a JVM."""
    while True:
        cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        # Kafka never hands out ids starting with "-": command lines would read them as flags.
        if not cluster_id.startswith("-"):
            return cluster_id


def fetch_broker_ids(host: str, port: int, timeout: float = 5.0) -> set[int]:
    """Send one Metadata request to C{host:port} and return the node ids of listed brokers."""
    return set(advertised_brokers(host, port, timeout=timeout, client_id=_CLIENT_ID))


class KafkaCluster:
    """A KRaft cluster of C{size} combined broker+controller nodes on free ports of C{host}.

    C{base_dir} holds configs, data and one log per node (C{node-<id>.log}); when it is not
    given a temporary folder is made and removed again by L{stop}.

    What a secured cluster needs is given, not built in:
      - C{listeners}: client listeners every broker adds beside C{PLAINTEXT} (which
        inter-broker traffic and the readiness check keep using), each on a port of its own
        (L{BrokerInfo.port_of});
      - C{overrides}: settings added to or replacing every node's C{server.properties}
        (C{broker.session.timeout.ms}, C{sasl.enabled.mechanisms}, ...);
      - C{format_args}: extra C{StorageTool format} arguments, given to every node (e.g.
        C{("--add-scram", "SCRAM-SHA-512=[name=alice,password=secret]")}).

    Note: C{PR_SET_PDEATHSIG} fires when the I{thread} that started a JVM exits, so call
    L{start} and L{start_broker} from a thread that lives as long as the cluster.
    """

    def __init__(
        self,
        size: int = 3,
        base_dir: Path | str | None = None,
        racks: Sequence[str] = ("a", "b", "c"),
        host: str = "127.0.0.1",
        first_node_id: int = 1,
        heap: str = "512m",
        *,
        listeners: Sequence[Listener] = (),
        overrides: Mapping[str, object] | None = None,
        format_args: Sequence[str] = (),
    ) -> None:
        """A cluster (not started yet); see the class docstring for the parameters."""
        if size < 1:
            raise ValueError(f"size={size}: a cluster needs at least one node")
        if not racks:
            raise ValueError("racks=(): give at least one rack name")
        names = [listener.name for listener in listeners]
        if len(set(names)) != len(names):
            raise ValueError(f"listeners={names}: each listener needs a name of its own")
        self.size = size
        self.host = host
        self.heap = heap
        self.listeners = tuple(listeners)
        self.overrides = dict(overrides or {})
        self.format_args = tuple(format_args)
        self._owns_base_dir = base_dir is None
        # Absolute, because each JVM runs in its own node folder.
        self.base_dir = (
            Path(base_dir).absolute()
            if base_dir is not None
            else Path(tempfile.mkdtemp(prefix="kgateway-kafka-"))
        )
        self.cluster_id = _random_cluster_id()
        self._formatted = False
        # Per node: PLAINTEXT, CONTROLLER, then one port per extra listener.
        per_node = 2 + len(self.listeners)
        ports = iter(free_ports(per_node * size, host))
        self._nodes: dict[int, KafkaNode] = {}
        for index, rack in zip(range(size), itertools.cycle(racks), strict=False):
            node_id = first_node_id + index
            port, controller_port = next(ports), next(ports)
            info = BrokerInfo(
                node_id=node_id,
                host=host,
                port=port,
                rack=rack,
                listener_ports={listener.name: next(ports) for listener in self.listeners},
            )
            self._nodes[node_id] = KafkaNode(
                info,
                controller_port,
                self.base_dir / f"node-{node_id}",
                heap=heap,
                log4j_config=self._log4j_config,
            )

    @property
    def _log4j_config(self) -> Path:
        return self.base_dir / "log4j2.properties"

    # -- what clients see ---------------------------------------------------------------

    @property
    def brokers(self) -> list[BrokerInfo]:
        """Every broker of the cluster, running or not, in node id order."""
        return [node.info for node in self._nodes.values()]

    @property
    def bootstrap_servers(self) -> str:
        """Comma-separated C{host:port} of every broker's C{PLAINTEXT} listener."""
        return self.bootstrap_for(PLAINTEXT)

    def bootstrap_for(self, listener: str) -> str:
        """Comma-separated C{host:port} of every broker's listener called C{listener}."""
        return ",".join(f"{info.host}:{info.port_of(listener)}" for info in self.brokers)

    @property
    def broker_ports(self) -> set[int]:
        """Every client port of every broker (each listener's): none a gateway's client
        should reach."""
        return {port for info in self.brokers for port in info.ports}

    @property
    def controller_ports(self) -> set[int]:
        """The KRaft controller ports, which no client should ever reach either."""
        return {node.controller_port for node in self._nodes.values()}

    def log_path(self, node_id: int) -> Path:
        """The file that receives a node's stdout and stderr."""
        return self._node(node_id).log_path

    def pid(self, node_id: int) -> int | None:
        """The JVM's process id, or C{None} when that node is not running."""
        return self._node(node_id).pid

    def running_node_ids(self) -> set[int]:
        """Node ids whose JVM is currently alive."""
        return {node_id for node_id, node in self._nodes.items() if node.running()}

    # -- lifecycle ----------------------------------------------------------------------

    def start(self, timeout: float = 180.0) -> None:
        """Format storage if needed, start every node and wait until all brokers serve."""
        if self.running_node_ids():
            raise KafkaClusterError("the cluster is already running")
        try:
            stop_at_exit(self, self.stop)
            if not self._formatted:
                self._prepare()
            for node in self._nodes.values():
                node.spawn()
            self.wait_until_serving(timeout=timeout)
        except BaseException:
            # Keep the files, even a temporary base_dir, so the logs the error names exist
            # until stop().
            self._halt()
            raise

    def stop(self, grace: float = 20.0) -> None:
        """Stop every node (SIGTERM, then SIGKILL after C{grace} seconds); safe to repeat."""
        self._halt(grace)
        forget(self)
        if self._owns_base_dir and self.base_dir.exists():
            shutil.rmtree(self.base_dir, ignore_errors=True)
            self._formatted = False

    def _halt(self, grace: float = 20.0) -> None:
        # Signal all nodes first so their shutdowns overlap instead of adding up.
        for node in self._nodes.values():
            node.terminate()
        deadline = time.monotonic() + grace
        for node in self._nodes.values():
            node.reap(deadline - time.monotonic())

    def stop_broker(self, node_id: int, grace: float = 20.0) -> None:
        """Shut one node down cleanly (SIGTERM, SIGKILL after C{grace} seconds)."""
        self._node(node_id).stop(grace)

    def kill_broker(self, node_id: int) -> None:
        """Kill one node with SIGKILL, as a crash would."""
        self._node(node_id).kill()

    def start_broker(self, node_id: int, timeout: float = 120.0) -> None:
        """Restart a stopped node with its old config and data, and wait until it serves."""
        node = self._node(node_id)
        if node.running():
            raise KafkaClusterError(f"node {node_id} is already running")
        if not self._formatted:
            raise KafkaClusterError("start() the cluster before restarting single brokers")
        stop_at_exit(self, self.stop)
        node.spawn()
        self.wait_until_serving(timeout=timeout)

    def wait_until_serving(self, timeout: float = 120.0) -> None:
        """Wait until each running broker answers Metadata listing exactly the running brokers.

        Raises L{KafkaClusterError}, quoting the lagging brokers' logs, when C{timeout}
        passes or a JVM exits.
        """
        deadline = time.monotonic() + timeout
        last_seen: dict[int, str] = {}
        while True:
            expected = self.running_node_ids()
            dead = {
                node.info.node_id: f"exited with code {code}"
                for node in self._nodes.values()
                if (code := node.exit_code()) is not None
            }
            if dead:
                self._fail(dead)
            lagging: dict[int, str] = {}
            for node_id in sorted(expected):
                info = self._nodes[node_id].info
                try:
                    seen = fetch_broker_ids(info.host, info.port, timeout=2.0)
                except Exception as error:  # any failure just means "not serving yet"
                    lagging[node_id] = f"no Metadata answer ({type(error).__name__}: {error})"
                    continue
                if seen != expected:
                    lagging[node_id] = f"lists brokers {sorted(seen)}, want {sorted(expected)}"
            if not lagging:
                return
            last_seen.update(lagging)
            if time.monotonic() > deadline:
                self._fail({n: last_seen[n] for n in lagging}, f"not serving after {timeout:.0f}s")
            time.sleep(0.25)

    def _fail(self, reasons: Mapping[int, str], what: str = "failed") -> None:
        parts = [f"Kafka cluster in {self.base_dir} {what}:"]
        for node_id, reason in reasons.items():
            node = self._nodes[node_id]
            parts.append(f"  node {node_id}: {reason}; see {node.log_path}")
            parts.append(node.log_excerpt())
        raise KafkaClusterError("\n".join(parts))

    def _node(self, node_id: int) -> KafkaNode:
        try:
            return self._nodes[node_id]
        except KeyError:
            raise KafkaClusterError(
                f"no node {node_id}; the nodes are {sorted(self._nodes)}"
            ) from None

    def _prepare(self) -> None:
        """Write each node's config and format its storage with the shared cluster id."""
        ensure_kafka_libs()
        self.base_dir.mkdir(parents=True, exist_ok=True)
        self._log4j_config.write_text(LOG4J2_PROPERTIES)
        for node in self._nodes.values():
            node.directory.mkdir(parents=True, exist_ok=True)
            node.config_path.write_text(render(self.server_properties(node.info.node_id)))
        self._format(self._nodes.values())
        self._formatted = True

    def server_properties(self, node_id: int) -> dict[str, object]:
        """The C{server.properties} settings of one node."""
        node = self._node(node_id)
        voters = ",".join(
            f"{n.info.node_id}@{self.host}:{n.controller_port}" for n in self._nodes.values()
        )
        return server_properties(
            node.info,
            node.controller_port,
            voters,
            self.size,
            node.data_dir,
            listeners=self.listeners,
            overrides=self.overrides,
        )

    def format_arguments(self, node_id: int) -> list[str]:
        """The C{StorageTool} arguments that format one node, C{format_args} included."""
        node = self._node(node_id)
        # Static controller.quorum.voters means kraft.version 0: format takes no
        # --standalone / --initial-controllers flag (4.1 rejects them with static voters).
        return ["format", "-t", self.cluster_id, "-c", str(node.config_path), *self.format_args]

    def _format(self, nodes: Iterable[KafkaNode]) -> None:
        # The formatters run at once: each is a JVM start, a few seconds of CPU.
        formatters = [
            (
                node,
                subprocess.Popen(
                    java_command(
                        STORAGE_TOOL,
                        *self.format_arguments(node.info.node_id),
                        log4j_config=self._log4j_config,
                    ),
                    stdin=subprocess.DEVNULL,
                    stdout=subprocess.PIPE,
                    stderr=subprocess.STDOUT,
                    preexec_fn=die_with_parent(),
                ),
            )
            for node in nodes
        ]
        failures = []
        try:
            for node, formatter in formatters:
                output, _ = formatter.communicate()
                if formatter.returncode != 0:
                    failures.append(f"node {node.info.node_id}: {output.decode(errors='replace')}")
        finally:
            for _, formatter in formatters:
                if formatter.poll() is None:
                    formatter.kill()
                    formatter.wait()
        if failures:
            raise KafkaClusterError("formatting Kafka storage failed:\n" + "\n".join(failures))

    def __enter__(self) -> KafkaCluster:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    def __repr__(self) -> str:
        return f"<KafkaCluster {self.bootstrap_servers} running={sorted(self.running_node_ids())}>"
