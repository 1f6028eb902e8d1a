"""A real Apache Kafka KRaft cluster, run from Maven Central jars, for integration tests and demos.

Each node runs in combined mode (``process.roles=broker,controller``) as its own JVM on free
loopback ports. The JVMs are tied to this Python process (``PR_SET_PDEATHSIG``, an ``atexit``
hook and ``stop()`` on every error path) so that no broker outlives the test that started it.

Run ``python -m harness.kafka --size 3`` to keep a cluster in the foreground.
"""

from __future__ import annotations

import argparse
import atexit
import base64
import contextlib
import fcntl
import hashlib
import itertools
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import FrameType, TracebackType
from typing import IO

from harness.children import die_with_parent
from harness.ports import free_ports
from harness.probe import advertised_brokers

KAFKA_VERSION = "4.1.1"
"""The Apache Kafka release whose jars the harness runs."""

LOG4J_VERSION = "2.24.3"
"""log4j2 release that Kafka 4.1.1 itself depends on; the SLF4J 1.x binding must match it."""

# Main classes, verified against the 4.1.1 jars (several moved between Kafka releases).
KAFKA_MAIN = "kafka.Kafka"
STORAGE_TOOL = "kafka.tools.StorageTool"
TOPIC_COMMAND = "org.apache.kafka.tools.TopicCommand"
PRODUCER_PERF = "org.apache.kafka.tools.ProducerPerformance"
CONSUMER_PERF = "org.apache.kafka.tools.ConsumerPerformance"
CONSOLE_PRODUCER = "org.apache.kafka.tools.ConsoleProducer"
CONSOLE_CONSUMER = "org.apache.kafka.tools.consumer.ConsoleConsumer"
CONFIGS_COMMAND = "kafka.admin.ConfigCommand"
DELETE_RECORDS_COMMAND = "org.apache.kafka.tools.DeleteRecordsCommand"
GET_OFFSET_SHELL = "org.apache.kafka.tools.GetOffsetShell"

# Kafka's artifacts declare slf4j-api 1.7.36, so the binding has to be a 1.x one
# (log4j-slf4j-impl). A 2.x provider such as slf4j-reload4j 2.0.17 is silently ignored by
# slf4j-api 1.7 and the brokers would log nothing at all.
_POM = f"""\
<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>kgateway</groupId>
  <artifactId>kafka-dist</artifactId>
  <version>{KAFKA_VERSION}</version>
  <packaging>pom</packaging>
  <dependencies>
    <dependency>
      <groupId>org.apache.kafka</groupId>
      <artifactId>kafka_2.13</artifactId>
      <version>{KAFKA_VERSION}</version>
    </dependency>
    <dependency>
      <groupId>org.apache.kafka</groupId>
      <artifactId>kafka-tools</artifactId>
      <version>{KAFKA_VERSION}</version>
    </dependency>
    <dependency>
      <groupId>org.apache.logging.log4j</groupId>
      <artifactId>log4j-slf4j-impl</artifactId>
      <version>{LOG4J_VERSION}</version>
    </dependency>
  </dependencies>
</project>
"""

# Brokers log to stdout, which start() sends to a per-node log file.
_LOG4J2_PROPERTIES = """\
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

_MARKER_NAME = ".kgateway-complete"
_METADATA_VERSION = 12
_CLIENT_ID = "kgateway-kafka-cluster"

_resolved_libs: dict[Path, Path] = {}


class KafkaClusterError(RuntimeError):
    """The Kafka cluster could not be built, started or stopped as asked."""


def _default_libs_dir() -> Path:
    configured = os.environ.get("KGATEWAY_KAFKA_CACHE")
    if configured:
        return Path(configured).expanduser()
    return Path.home() / ".cache" / "kgateway" / f"kafka-{KAFKA_VERSION}" / "libs"


def ensure_kafka_libs(cache_dir: Path | str | None = None) -> Path:
    """Return a folder holding Kafka's classpath, downloading it with Maven if needed.

    ``cache_dir`` is the folder of jars itself (default ``$KGATEWAY_KAFKA_CACHE`` or
    ``~/.cache/kgateway/kafka-<version>/libs``). A marker written only after a complete
    download makes an interrupted one start again; a file lock keeps parallel callers apart.
    """
    libs = Path(cache_dir).expanduser() if cache_dir is not None else _default_libs_dir()
    libs = libs.absolute()
    if libs in _resolved_libs:
        return _resolved_libs[libs]
    fingerprint = hashlib.sha256(_POM.encode()).hexdigest()
    marker = libs / _MARKER_NAME
    libs.parent.mkdir(parents=True, exist_ok=True)
    with open(libs.parent / f".{libs.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if _marker_matches(marker, fingerprint):
            print(f"Kafka {KAFKA_VERSION}: using cached jars in {libs}", file=sys.stderr)
        else:
            print(
                f"Kafka {KAFKA_VERSION}: downloading jars with Maven into {libs}",
                file=sys.stderr,
                flush=True,
            )
            _download_libs(libs, fingerprint)
    _resolved_libs[libs] = libs
    return libs


def _marker_matches(marker: Path, fingerprint: str) -> bool:
    try:
        return marker.read_text().split() == [KAFKA_VERSION, fingerprint]
    except OSError:
        return False


def _download_libs(libs: Path, fingerprint: str) -> None:
    # Only ever replace a folder of jars (one whose marker write was interrupted); a cache
    # setting that points somewhere else must not cost the user their files.
    if libs.exists() and any(not entry.name.endswith(".jar") for entry in libs.iterdir()):
        raise KafkaClusterError(
            f"{libs} exists and holds more than jars; point KGATEWAY_KAFKA_CACHE "
            "at an empty or new folder"
        )
    if shutil.which("mvn") is None:
        raise KafkaClusterError("Maven ('mvn') is not on PATH; it is needed to fetch Kafka's jars")
    # Build in a sibling folder and rename, so a half-copied folder is never mistaken for libs.
    with tempfile.TemporaryDirectory(prefix=f".{libs.name}-", dir=libs.parent) as work_dir:
        work = Path(work_dir)
        (work / "pom.xml").write_text(_POM)
        staging = work / "libs"
        command = [
            "mvn",
            "-q",
            "-B",
            "-f",
            str(work / "pom.xml"),
            "dependency:copy-dependencies",
            f"-DoutputDirectory={staging}",
        ]
        result = subprocess.run(
            command, stdin=subprocess.DEVNULL, capture_output=True, text=True, check=False
        )
        if result.returncode != 0 or not any(staging.glob("kafka_2.13-*.jar")):
            output = (result.stdout + result.stderr).strip().splitlines()[-20:]
            raise KafkaClusterError(
                f"'{' '.join(command)}' failed (exit {result.returncode}):\n" + "\n".join(output)
            )
        if libs.exists():
            shutil.rmtree(libs)
        staging.rename(libs)
    (libs / _MARKER_NAME).write_text(f"{KAFKA_VERSION}\n{fingerprint}\n")


def java_tool_command(main_class: str, *args: str) -> list[str]:
    """Return the argv that runs one of Kafka's Java tools, e.g. ``TOPIC_COMMAND``."""
    libs = ensure_kafka_libs()
    return ["java", "-Xmx256m", "-cp", f"{libs}/*", main_class, *args]


@dataclass(frozen=True)
class BrokerInfo:
    """Where one broker of a :class:`KafkaCluster` listens for clients."""

    node_id: int
    host: str
    port: int
    rack: str


@dataclass
class _Node:
    """One combined broker+controller JVM and the files that belong to it."""

    info: BrokerInfo
    controller_port: int
    directory: Path
    process: subprocess.Popen[bytes] | None = None

    @property
    def config_path(self) -> Path:
        return self.directory / "server.properties"

    @property
    def data_dir(self) -> Path:
        return self.directory / "data"

    @property
    def log_path(self) -> Path:
        return self.directory.parent / f"node-{self.info.node_id}.log"

    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None


def _free_ports(host: str, count: int) -> list[int]:
    """``count`` free TCP ports on ``host``, below the kernel's ephemeral range.

    A kernel-chosen port (bind to 0) is ephemeral: between our check and the JVM's bind,
    any outgoing connection on the machine may take it.
    """
    return free_ports(count, host)


def _random_cluster_id() -> str:
    """Make a cluster id the way Kafka's ``Uuid.randomUuid()`` does, without starting a JVM."""
    while True:
        cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        # Kafka never hands out ids starting with "-": command lines would read them as flags.
        if not cluster_id.startswith("-"):
            return cluster_id


def fetch_broker_ids(host: str, port: int, timeout: float = 5.0) -> set[int]:
    """Send one Metadata request to ``host:port`` and return the node ids of listed brokers."""
    return set(advertised_brokers(host, port, timeout=timeout, client_id=_CLIENT_ID))


_RUN_MARKER = "==== kgateway: starting node"


def _log_excerpt(path: Path, errors: int = 8, tail: int = 15) -> str:
    """The first error lines and the last lines of a node's latest run, indented."""
    try:
        with open(path, "rb") as log:
            log.seek(0, os.SEEK_END)
            log.seek(max(0, log.tell() - 1024 * 1024))
            text = log.read().decode("utf-8", "replace")
    except OSError as error:
        return f"    (no log: {error})"
    lines = (
        text[text.rfind(_RUN_MARKER) :].splitlines() if _RUN_MARKER in text else text.splitlines()
    )
    # A shutdown after a fatal error logs pages of noise; the cause is in the first errors.
    found: list[str] = []
    for line in lines:
        if (" ERROR " in line or " FATAL " in line or line.startswith("Caused by:")) and (
            line not in found
        ):
            found.append(line)
            if len(found) == errors:
                break
    parts = []
    if found:
        parts += ["    errors:"] + [f"      {line}" for line in found]
        parts.append("    last lines:")
    parts += [f"      {line}" for line in lines[-tail:]]
    return "\n".join(parts)


# Clusters with JVMs still running, stopped at interpreter exit as a last resort.
_live_clusters: set[KafkaCluster] = set()


@atexit.register
def _stop_live_clusters() -> None:
    for cluster in list(_live_clusters):
        cluster.stop()


class KafkaCluster:
    """A KRaft cluster of ``size`` combined broker+controller nodes on free ports of ``host``.

    ``base_dir`` holds configs, data and one log per node (``node-<id>.log``); when it is not
    given a temporary folder is made and removed again by :meth:`stop`. ``overrides`` adds or
    replaces ``server.properties`` settings on every node (e.g. ``broker.session.timeout.ms``).

    Note: ``PR_SET_PDEATHSIG`` fires when the *thread* that started a JVM exits, so call
    :meth:`start` and :meth:`start_broker` from a thread that lives as long as the cluster.
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
        overrides: Mapping[str, object] | None = None,
    ) -> None:
        if size < 1:
            raise ValueError(f"size={size}: a cluster needs at least one node")
        if not racks:
            raise ValueError("racks=(): give at least one rack name")
        self.size = size
        self.host = host
        self.heap = heap
        self.overrides = dict(overrides or {})
        self._owns_base_dir = base_dir is None
        # Absolute, because each JVM runs in its own node folder.
        self.base_dir = Path(base_dir).absolute() if base_dir is not None else self._make_temp_dir()
        self.cluster_id = _random_cluster_id()
        self._formatted = False
        self._libs: Path | None = None
        ports = _free_ports(host, 2 * size)
        self._nodes: dict[int, _Node] = {}
        for index, rack in zip(range(size), itertools.cycle(racks), strict=False):
            node_id = first_node_id + index
            self._nodes[node_id] = _Node(
                info=BrokerInfo(node_id=node_id, host=host, port=ports[2 * index], rack=rack),
                controller_port=ports[2 * index + 1],
                directory=self.base_dir / f"node-{node_id}",
            )

    @staticmethod
    def _make_temp_dir() -> Path:
        return Path(tempfile.mkdtemp(prefix="kgateway-kafka-"))

    # -- what clients see ---------------------------------------------------------------

    @property
    def brokers(self) -> list[BrokerInfo]:
        """Every broker of the cluster, running or not, in node id order."""
        return [node.info for node in self._nodes.values()]

    @property
    def bootstrap_servers(self) -> str:
        """Comma-separated ``host:port`` of every broker, for a client's bootstrap setting."""
        return ",".join(f"{info.host}:{info.port}" for info in self.brokers)

    @property
    def broker_ports(self) -> set[int]:
        """The client (PLAINTEXT) ports of all brokers."""
        return {info.port for info in self.brokers}

    @property
    def controller_ports(self) -> set[int]:
        """The KRaft controller ports, which no client should ever reach either."""
        return {node.controller_port for node in self._nodes.values()}

    def log_path(self, node_id: int) -> Path:
        """The file that receives a node's stdout and stderr."""
        return self._node(node_id).log_path

    def pid(self, node_id: int) -> int | None:
        """The JVM's process id, or ``None`` when that node is not running."""
        node = self._node(node_id)
        return node.process.pid if node.process is not None and node.running() else None

    def running_node_ids(self) -> set[int]:
        """Node ids whose JVM is currently alive."""
        return {node_id for node_id, node in self._nodes.items() if node.running()}

    # -- lifecycle ----------------------------------------------------------------------

    def start(self, timeout: float = 180.0) -> None:
        """Format storage if needed, start every node and wait until all brokers serve."""
        if self.running_node_ids():
            raise KafkaClusterError("the cluster is already running")
        try:
            _live_clusters.add(self)
            if not self._formatted:
                self._prepare()
            for node in self._nodes.values():
                self._spawn(node)
            self.wait_until_serving(timeout=timeout)
        except BaseException:
            # Keep the files, even a temporary base_dir, so the logs the error names exist
            # until stop().
            self._halt()
            raise

    def stop(self, grace: float = 20.0) -> None:
        """Stop every node (SIGTERM, then SIGKILL after ``grace`` seconds); safe to repeat."""
        self._halt(grace)
        if self._owns_base_dir and self.base_dir.exists():
            shutil.rmtree(self.base_dir, ignore_errors=True)
            self._formatted = False

    def _halt(self, grace: float = 20.0) -> None:
        # Signal all nodes first so their shutdowns overlap instead of adding up.
        for node in self._nodes.values():
            self._signal(node, signal.SIGTERM)
        self._reap(self._nodes.values(), grace)
        _live_clusters.discard(self)

    def stop_broker(self, node_id: int, grace: float = 20.0) -> None:
        """Shut one node down cleanly (SIGTERM, SIGKILL after ``grace`` seconds)."""
        node = self._node(node_id)
        self._signal(node, signal.SIGTERM)
        self._reap([node], grace)

    def kill_broker(self, node_id: int) -> None:
        """Kill one node with SIGKILL, as a crash would."""
        node = self._node(node_id)
        self._signal(node, signal.SIGKILL)
        self._reap([node], 10.0)

    def start_broker(self, node_id: int, timeout: float = 120.0) -> None:
        """Restart a stopped node with its old config and data, and wait until it serves."""
        node = self._node(node_id)
        if node.running():
            raise KafkaClusterError(f"node {node_id} is already running")
        if not self._formatted:
            raise KafkaClusterError("start() the cluster before restarting single brokers")
        _live_clusters.add(self)
        self._spawn(node)
        self.wait_until_serving(timeout=timeout)

    def wait_until_serving(self, timeout: float = 120.0) -> None:
        """Wait until each running broker answers Metadata listing exactly the running brokers.

        Raises :class:`KafkaClusterError`, quoting the tail of the lagging brokers' logs, when
        ``timeout`` passes or a JVM exits.
        """
        deadline = time.monotonic() + timeout
        last_seen: dict[int, str] = {}
        while True:
            expected = self.running_node_ids()
            dead = [n for n in self._nodes.values() if n.process is not None and not n.running()]
            if dead:
                self._fail(
                    [n.info.node_id for n in dead],
                    {
                        n.info.node_id: f"exited with code {n.process.returncode}"
                        for n in dead
                        if n.process
                    },
                )
            lagging = []
            for node_id in sorted(expected):
                info = self._nodes[node_id].info
                try:
                    seen = fetch_broker_ids(info.host, info.port, timeout=2.0)
                except Exception as error:  # any failure just means "not serving yet"
                    last_seen[node_id] = f"no Metadata answer ({type(error).__name__}: {error})"
                    lagging.append(node_id)
                    continue
                if seen != expected:
                    last_seen[node_id] = f"lists brokers {sorted(seen)}, want {sorted(expected)}"
                    lagging.append(node_id)
            if not lagging:
                return
            if time.monotonic() > deadline:
                self._fail(lagging, last_seen, f"not serving after {timeout:.0f}s")
            time.sleep(0.25)

    def _fail(self, node_ids: Iterable[int], reasons: dict[int, str], what: str = "failed") -> None:
        parts = [f"Kafka cluster in {self.base_dir} {what}:"]
        for node_id in node_ids:
            parts.append(
                f"  node {node_id}: {reasons.get(node_id, '?')}; see {self.log_path(node_id)}"
            )
            parts.append(_log_excerpt(self.log_path(node_id)))
        raise KafkaClusterError("\n".join(parts))

    def _node(self, node_id: int) -> _Node:
        try:
            return self._nodes[node_id]
        except KeyError:
            raise KafkaClusterError(
                f"no node {node_id}; the nodes are {sorted(self._nodes)}"
            ) from None

    def _prepare(self) -> None:
        """Write each node's config and format its storage with the shared cluster id."""
        self._libs = ensure_kafka_libs()
        self.base_dir.mkdir(parents=True, exist_ok=True)
        (self.base_dir / "log4j2.properties").write_text(_LOG4J2_PROPERTIES)
        for node in self._nodes.values():
            node.directory.mkdir(parents=True, exist_ok=True)
            node.config_path.write_text(self._server_properties(node))
        # Static controller.quorum.voters means kraft.version 0: format takes no
        # --standalone / --initial-controllers flag (4.1 rejects them with static voters).
        formatters = [
            (
                node,
                subprocess.Popen(
                    self._java(
                        STORAGE_TOOL, "format", "-t", self.cluster_id, "-c", str(node.config_path)
                    ),
                    stdin=subprocess.DEVNULL,
                    stdout=subprocess.PIPE,
                    stderr=subprocess.STDOUT,
                    preexec_fn=die_with_parent(),
                ),
            )
            for node in self._nodes.values()
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
        self._formatted = True

    def _server_properties(self, node: _Node) -> str:
        voters = ",".join(
            f"{n.info.node_id}@{self.host}:{n.controller_port}" for n in self._nodes.values()
        )
        info = node.info
        replication = min(3, self.size)
        min_isr = min(2, self.size)
        settings = {
            "process.roles": "broker,controller",
            "node.id": info.node_id,
            "controller.quorum.voters": voters,
            "listeners": f"PLAINTEXT://{info.host}:{info.port},CONTROLLER://{info.host}:{node.controller_port}",
            "advertised.listeners": f"PLAINTEXT://{info.host}:{info.port}",
            "controller.listener.names": "CONTROLLER",
            "inter.broker.listener.name": "PLAINTEXT",
            "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
            "log.dirs": node.data_dir,
            "broker.rack": info.rack,
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
        settings.update(self.overrides)
        return "".join(f"{key}={value}\n" for key, value in settings.items())

    def _java(self, main_class: str, *args: str, heap: str = "256m") -> list[str]:
        assert self._libs is not None
        return [
            "java",
            f"-Xmx{heap}",
            "-Djava.awt.headless=true",
            f"-Dlog4j2.configurationFile={self.base_dir / 'log4j2.properties'}",
            "-cp",
            f"{self._libs}/*",
            main_class,
            *args,
        ]

    def _spawn(self, node: _Node) -> None:
        with open(node.log_path, "ab") as log:
            log.write(f"{_RUN_MARKER} {node.info.node_id} at {time.ctime()}\n".encode())
            log.flush()
            node.process = subprocess.Popen(
                self._java(KAFKA_MAIN, str(node.config_path), heap=self.heap),
                cwd=node.directory,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                # Its own process group: a terminal's Ctrl-C reaches only Python, which then
                # stops the brokers in order instead of racing them.
                process_group=0,
                preexec_fn=die_with_parent(),
            )

    @staticmethod
    def _signal(node: _Node, signum: signal.Signals) -> None:
        if node.process is None or node.process.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(node.process.pid, signum)

    @staticmethod
    def _reap(nodes: Iterable[_Node], grace: float) -> None:
        deadline = time.monotonic() + grace
        for node in nodes:
            if node.process is None:
                continue
            try:
                node.process.wait(timeout=max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(node.process.pid, signal.SIGKILL)
                node.process.wait()
            node.process = None

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


def _parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m harness.kafka",
        description=f"Run a local Apache Kafka {KAFKA_VERSION} KRaft cluster until Ctrl-C.",
    )
    parser.add_argument("--size", type=int, default=3, help="number of nodes (default 3)")
    parser.add_argument("--base-dir", type=Path, help="keep configs, data and logs here")
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on")
    parser.add_argument("--first-node-id", type=int, default=1)
    parser.add_argument("--heap", default="512m", help="JVM -Xmx per node (default 512m)")
    parser.add_argument("--racks", default="a,b,c", help="comma-separated rack names to cycle")
    parser.add_argument(
        "--download-only", action="store_true", help="fetch the broker jars into the cache and exit"
    )
    return parser.parse_args(argv)


def _raise_keyboard_interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def main(argv: Sequence[str] | None = None, out: IO[str] = sys.stdout) -> int:
    """Start a cluster in the foreground, print its bootstrap servers, stop on Ctrl-C/SIGTERM."""
    args = _parse_args(argv)
    if args.download_only:
        ensure_kafka_libs()
        return 0
    # SIGTERM takes the same orderly path as Ctrl-C instead of killing Python outright; SIGINT
    # is set explicitly because shells start background jobs with it ignored.
    signal.signal(signal.SIGTERM, _raise_keyboard_interrupt)
    signal.signal(signal.SIGINT, _raise_keyboard_interrupt)
    if args.size < 1:
        print(f"--size {args.size}: a cluster needs at least one node", file=sys.stderr)
        return 2
    cluster = KafkaCluster(
        size=args.size,
        base_dir=args.base_dir,
        racks=tuple(r for r in args.racks.split(",") if r) or ("a",),
        host=args.host,
        first_node_id=args.first_node_id,
        heap=args.heap,
    )
    try:
        began = time.monotonic()
        cluster.start()
        print(
            f"Kafka {KAFKA_VERSION} cluster {cluster.cluster_id} ready in "
            f"{time.monotonic() - began:.1f}s, files in {cluster.base_dir}",
            file=out,
        )
        for info in cluster.brokers:
            print(
                f"  node {info.node_id} {info.host}:{info.port} rack={info.rack} "
                f"pid={cluster.pid(info.node_id)}",
                file=out,
            )
        print(cluster.bootstrap_servers, file=out, flush=True)
        reported: set[int] = set()
        while True:
            time.sleep(1.0)
            all_ids = {info.node_id for info in cluster.brokers}
            for node_id in sorted(all_ids - cluster.running_node_ids() - reported):
                print(
                    f"node {node_id} exited; see {cluster.log_path(node_id)}", file=out, flush=True
                )
                reported.add(node_id)
    except KeyboardInterrupt:
        print("stopping", file=out, flush=True)
        return 0
    except KafkaClusterError as error:
        print(error, file=sys.stderr)
        return 1
    finally:
        # stop() is bounded by its SIGKILL grace period; a second Ctrl-C must not cut it short
        # and leave the JVMs to the death signal.
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        cluster.stop()
