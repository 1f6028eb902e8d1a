"""
What a benchmark client talks to: Kafka itself, kgateway nodes, or a peer proxy.

Every target says where clients bootstrap, which ports they may reach, which
processes do its work (for CPU accounting) and how many bytes it has seen
move (the second proof, after strace, that traffic really went through it).
"""

from __future__ import annotations

import re
import ssl
import subprocess
import time
import urllib.request
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from harness.client_security import ClientSecurity
from harness.gateway_process import GatewayProcess
from harness.ports import free_port_range
from harness.probe import advertised_brokers

_BYTES_LOGGED = re.compile(rb"; (\d+) bytes up, (\d+) bytes down")


def _prometheus_sums(port: int, prefixes: Sequence[str]) -> list[float] | None:
    """For each prefix, the sum of the samples on 127.0.0.1:C{port}/metrics whose name
    (labels included) starts with it; None when the endpoint does not answer."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as answer:
            text = answer.read().decode()
    except OSError:
        return None
    sums = [0.0] * len(prefixes)
    for line in text.splitlines():
        name, _, value = line.rpartition(" ")
        for index, prefix in enumerate(prefixes):
            if name.startswith(prefix):
                sums[index] += float(value)
    return sums


@dataclass(frozen=True)
class PeerTls:
    """TLS for a peer proxy on both legs: its server certificate for clients (PEM key and
    chain), the CA of the brokers' certificates, and how clients then connect."""

    certificate: Path
    key: Path
    upstream_ca: Path
    client: ClientSecurity


class Target:
    """Something Kafka clients can bootstrap against."""

    key = "?"
    title = "?"
    is_proxy = True
    #: How clients connect (TLS settings); None: plaintext.
    security: ClientSecurity | None = None

    @property
    def bootstrap(self) -> str:
        """The client's bootstrap address."""
        raise NotImplementedError

    @property
    def client_ports(self) -> set[int]:
        """The ports a client of this target should connect to."""
        raise NotImplementedError

    def pids(self) -> list[int]:
        """The processes that do this target's work."""
        return []

    def bytes_moved(self) -> tuple[int, int] | None:
        """Bytes client→Kafka and Kafka→client the target has accounted for so far."""
        return None

    def requests_counted(self) -> int | None:
        """Client requests the target has counted so far, for a proxy that counts no bytes."""
        return None

    def stop(self) -> None:
        """Stop whatever the target started."""


class Direct(Target):
    """Clients straight to the brokers: the baseline."""

    key = "direct"
    title = "direct"
    is_proxy = False

    def __init__(
        self,
        bootstrap_servers: str,
        broker_ports: set[int],
        security: ClientSecurity | None = None,
        key: str = "direct",
        title: str = "direct",
    ) -> None:
        self._bootstrap = bootstrap_servers
        self._ports = broker_ports
        self.security = security
        self.key, self.title = key, title

    @property
    def bootstrap(self) -> str:
        return self._bootstrap

    @property
    def client_ports(self) -> set[int]:
        return self._ports


class KGateway(Target):
    """One or more C{twistd kgateway} nodes sharing one GATEWAY_CLUSTER_ID."""

    def __init__(
        self,
        bootstrap_servers: str,
        workdir: Path,
        nodes: int,
        min_broker_id: int,
        racks: Sequence[str] = ("a", "b", "c"),
        env: Mapping[str, str] | None = None,
        security: ClientSecurity | None = None,
        suffix: str = "",
    ) -> None:
        self.key = f"kgateway-{nodes}{'-' + suffix if suffix else ''}"
        self.title = f"kgateway ×{nodes}{', ' + suffix if suffix else ''}"
        self.security = security
        cluster_id = f"bench{nodes}-{uuid.uuid4().hex[:8]}"
        self.nodes = [
            GatewayProcess(
                bootstrap_servers,
                workdir / self.key / f"node{index}.log",
                min_broker_id=min_broker_id,
                env={
                    "GATEWAY_CLUSTER_ID": cluster_id,
                    **({"GATEWAY_RACK_ID": racks[index % len(racks)]} if nodes > 1 else {}),
                    **(env or {}),
                },
            )
            for index in range(nodes)
        ]

    def start(self, timeout: float = 90.0) -> None:
        """Start every node; with several, wait until metadata hands out all of them."""
        for node in self.nodes:
            node.start()
        if len(self.nodes) == 1:
            return
        wanted = {node.port_start for node in self.nodes}
        deadline = time.monotonic() + timeout
        seen: set[int] = set()
        while time.monotonic() < deadline:
            try:
                advertised = advertised_brokers(
                    self.nodes[0].advertised_host, self.nodes[0].port_start
                )
            except OSError:
                advertised = {}
            seen = {self._owner(port) for _, port in advertised.values()}
            if seen == wanted:
                return
            time.sleep(0.25)
        raise RuntimeError(
            f"{self.title}: metadata still names nodes {sorted(seen)} of {sorted(wanted)} "
            f"after {timeout}s\n" + "\n".join(n.log_tail(10) for n in self.nodes)
        )

    def _owner(self, port: int) -> int:
        for node in self.nodes:
            if port in node.ports:
                return node.port_start
        return -1

    @property
    def bootstrap(self) -> str:
        return self.nodes[0].bootstrap

    @property
    def client_ports(self) -> set[int]:
        return {port for node in self.nodes for port in node.ports}

    def pids(self) -> list[int]:
        return [node.pid for node in self.nodes if node.pid is not None]

    def bytes_moved(self) -> tuple[int, int]:
        """The byte counts each node logs when a client connection closes, summed."""
        up = down = 0
        for node in self.nodes:
            try:
                text = node.log_path.read_bytes()
            except OSError:
                continue
            for match in _BYTES_LOGGED.finditer(text):
                up += int(match[1])
                down += int(match[2])
        return up, down

    def stop(self) -> None:
        for node in self.nodes:
            node.stop()


class PeerProcess(Target):
    """A peer proxy run as one child process, logging to C{log_path}."""

    process: subprocess.Popen[bytes]
    log_path: Path

    def _launch(self, command: list[str], bootstrap_port: int, timeout: float) -> None:
        """Start C{command}; return once it answers Metadata on C{bootstrap_port} (over TLS,
        trusting C{security.ca}, when the target has client TLS settings)."""
        context = None
        if self.security is not None and self.security.ca is not None:
            context = ssl.create_default_context(cafile=str(self.security.ca))
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(
                command, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(
                    f"{self.title} exited with {self.process.returncode}: "
                    + self.log_path.read_text(errors="replace")[-2000:]
                )
            try:
                advertised_brokers("127.0.0.1", bootstrap_port, timeout=2, tls=context)
                return
            except OSError:
                time.sleep(0.25)
        self.stop()
        raise RuntimeError(f"{self.title} did not answer Metadata within {timeout:.0f} s")

    def pids(self) -> list[int]:
        return [self.process.pid] if self.process.poll() is None else []

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)


class KafkaProxy(PeerProcess):
    """grepplabs/kafka-proxy, one listener per broker, no dynamic listeners."""

    key = "kafka-proxy"
    title = "kafka-proxy"

    def __init__(
        self,
        binary: Path,
        brokers: dict[int, tuple[str, int]],
        workdir: Path,
        tls: PeerTls | None = None,
    ) -> None:
        """kafka-proxy for C{brokers}; with C{tls}, TLS to the brokers (their CA verified)
        and a TLS listener for clients (the given server certificate), on loopback only."""
        if tls is not None:
            self.key, self.title, self.security = "kafka-proxy-tls", "kafka-proxy, TLS", tls.client
        first = free_port_range(len(brokers) + 1)
        self._ports = {broker: first + i for i, broker in enumerate(sorted(brokers))}
        self._metrics_port = first + len(brokers)
        mappings = [
            arg
            for broker, (host, port) in sorted(brokers.items())
            for arg in (
                "--bootstrap-server-mapping",
                f"{host}:{port},127.0.0.1:{self._ports[broker]}",
            )
        ]
        tls_flags = (
            [
                "--tls-enable",
                "--tls-ca-chain-cert-file", str(tls.upstream_ca),
                "--proxy-listener-tls-enable",
                "--proxy-listener-cert-file", str(tls.certificate),
                "--proxy-listener-key-file", str(tls.key),
            ]
            if tls is not None
            else []
        )  # fmt: skip
        self.log_path = workdir / f"{self.key}.log"
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self._launch(
            [
                str(binary),
                "server",
                *mappings,
                *tls_flags,
                "--dynamic-listeners-disable",
                "--default-listener-ip",
                "127.0.0.1",
                "--http-listen-address",
                f"127.0.0.1:{self._metrics_port}",
            ],
            min(self._ports.values()),
            timeout=20,
        )

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{min(self._ports.values())}"

    @property
    def client_ports(self) -> set[int]:
        return set(self._ports.values())

    def bytes_moved(self) -> tuple[int, int] | None:
        """From kafka-proxy's Prometheus metrics (request and response byte counters)."""
        sums = _prometheus_sums(
            self._metrics_port, ("proxy_requests_bytes", "proxy_responses_bytes")
        )
        return None if sums is None else (int(sums[0]), int(sums[1]))


class Kroxylicious(PeerProcess):
    """Kroxylicious' proxy (its runtime library, started by bench/kroxylicious/Launcher.java):
    one virtual cluster, a port per broker (C{portIdentifiesNode}), no filters."""

    key = "kroxylicious"
    title = "Kroxylicious"

    def __init__(
        self,
        lib: Path,
        launcher: Path,
        bootstrap_servers: str,
        brokers: dict[int, tuple[str, int]],
        workdir: Path,
        tls: PeerTls | None = None,
    ) -> None:
        """Kroxylicious for the cluster at C{bootstrap_servers}; with C{tls}, TLS to the
        brokers (their CA trusted) and on the virtual cluster's gateway (the given PEM key
        and certificate)."""
        if tls is not None:
            self.key, self.title, self.security = (
                "kroxylicious-tls",
                "Kroxylicious, TLS",
                tls.client,
            )
        low, high = min(brokers), max(brokers)
        first = free_port_range(high - low + 3)
        self._bootstrap_port = first
        # portIdentifiesNode gives node id n the port bootstrap + 1 + (n - low).
        self._ports = {first + 1 + (broker - low) for broker in brokers} | {first}
        self._metrics_port = first + high - low + 2
        upstream_tls = (
            "      tls:\n"
            "        trust:\n"
            f"          storeFile: {tls.upstream_ca}\n"
            "          storeType: PEM\n"
            if tls is not None
            else ""
        )
        gateway_tls = (
            "        tls:\n"
            "          key:\n"
            f"            privateKeyFile: {tls.key}\n"
            f"            certificateFile: {tls.certificate}\n"
            if tls is not None
            else ""
        )
        config = workdir / f"{self.key}.yaml"
        config.parent.mkdir(parents=True, exist_ok=True)
        config.write_text(
            "management:\n"
            "  bindAddress: 127.0.0.1\n"
            f"  port: {self._metrics_port}\n"
            "  endpoints:\n"
            "    prometheus: {}\n"
            "virtualClusters:\n"
            "  - name: bench\n"
            "    targetCluster:\n"
            f"      bootstrapServers: {bootstrap_servers}\n" + upstream_tls + "    gateways:\n"
            "      - name: default\n"
            "        portIdentifiesNode:\n"
            f"          bootstrapAddress: 127.0.0.1:{first}\n"
            "          nodeIdRanges:\n"
            "            - name: brokers\n"
            f"              start: {low}\n"
            f"              end: {high}\n" + gateway_tls
        )
        self.log_path = workdir / f"{self.key}.log"
        self._launch(["java", "-cp", f"{lib}/*", str(launcher), str(config)], first, timeout=60)

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self._bootstrap_port}"

    @property
    def client_ports(self) -> set[int]:
        return set(self._ports)

    def requests_counted(self) -> int | None:
        """Kroxylicious counts messages from clients, not bytes (records are never decoded)."""
        sums = _prometheus_sums(
            self._metrics_port, ("kroxylicious_inbound_downstream_messages_total",)
        )
        return None if sums is None else int(sums[0])
