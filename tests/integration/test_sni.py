"""
Issue 14: SNI host routing against the secured Kafka cluster, one port for every broker.

Broker names (C{broker-N.<suffix>}) resolve through a marked block this module writes to
C{/etc/hosts} (L{harness.hosts_file}) and removes at exit: nothing on these machines
resolves wildcards.  The node certificates are wildcards (C{*.<suffix>}) of the cluster's
CA, and every client checks host names.

  - Internal load balancing: two nodes on 127.0.0.2 and 127.0.0.3, each advertising its
    own suffix; mTLS required (C{GATEWAY_SSL_CLIENT_AUTH=REQUIRE}).  Kafka's Java tools,
    librdkafka and kafka-python produce and consume in a group; the Java admin tool and
    librdkafka's admin client (Metadata, DescribeCluster, FindCoordinator) run through the
    one port.
  - HAProxy in TCP mode routing by C{req.ssl_sni} (a Kubernetes ingress with TLS
    passthrough): three internal-LB nodes behind 127.0.0.1 at another port
    (C{GATEWAY_ADVERTISED_SNI_PORT}); one node is killed while a client runs.
  - External load balancing: two nodes behind the same kind of HAProxy, every node
    advertising the load balancer's suffix.

Every client runs under strace and fails if it connected anywhere but the addresses its
scenario allows (never a broker, a controller, or a node behind HAProxy directly).
"""

from __future__ import annotations

import atexit
import re
import sys
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from twisted.trial.unittest import TestCase

from harness.certs import LOOPBACK_SANS
from harness.client_security import ClientSecurity
from harness.connect_audit import assert_never_connected
from harness.gateway_process import GatewayProcess
from harness.haproxy import available
from harness.hosts_file import HostsBlock
from harness.kafka import TOPIC_COMMAND, java_tool_command
from harness.secured_gateway import BrokerSide, ClientSide
from harness.sni_haproxy import SniHAProxy
from tests.integration.secured_environment import (
    CERTIFICATE_REFUSED,
    CLIENTS,
    SSL,
    STORE_PASSWORD,
    Route,
    SecuredEnvironment,
    parse_result,
    secured,
)

from .test_external_lb import common_free_range

RUN = uuid.uuid4().hex[:6]
BROKER_IDS = (1, 2, 3)
ALICE = "CN=alice,OU=tests,O=kgateway"
_WARNING = re.compile(r"cover none of the names it advertises")


@dataclass(frozen=True)
class SniRoute(Route):
    """A route whose clients may connect to C{addresses} only (DNS aside)."""

    addresses: frozenset[tuple[str, int]] = frozenset()


class SniEnvironment(SecuredEnvironment):
    """The shared secured environment, auditing every address an L{SniRoute} client reached."""

    @classmethod
    def of(cls, env: SecuredEnvironment) -> SniEnvironment:
        return cls(env.cluster, env.workdir, env.gateways, env._identities)

    def _audit(self, name: str, trace: Path, route: Route) -> None:
        super()._audit(name, trace, route)
        if not isinstance(route, SniRoute):
            return
        calls = assert_never_connected(trace, set(route.forbidden), host=None)
        stray = sorted(
            {(c.ip, c.port) for c in calls if (c.ip, c.port) not in route.addresses}
            - {(c.ip, 53) for c in calls}  # a resolver's question is not Kafka traffic
        )
        if stray:
            raise AssertionError(f"{name} connected outside {sorted(route.addresses)}: {stray}")


def names_for(suffix: str) -> list[str]:
    """The suffix (the bootstrap name) and every broker's name under it."""
    return [suffix, *(f"broker-{b}.{suffix}" for b in BROKER_IDS)]


@dataclass
class SniNodes:
    """Gateway nodes of one gateway cluster routing by SNI, their names and (maybe) HAProxy."""

    env: SniEnvironment
    key: str
    port: int
    nodes: list[GatewayProcess] = field(default_factory=list)
    haproxy: SniHAProxy | None = None
    hosts: HostsBlock | None = None

    def start_node(
        self,
        bind: str,
        suffix: str,
        key_store: Path,
        extra: dict[str, str] | None = None,
        client_auth: str | None = None,
        port: int | None = None,
    ) -> GatewayProcess:
        env = self.env
        client = ClientSide(
            SSL,
            key_store,
            key_store_password=STORE_PASSWORD,
            trust_store=env.cluster.ca_file if client_auth else None,
            client_auth=client_auth,
        )
        node = GatewayProcess(
            env.cluster.bootstrap_for(SSL),
            env.workdir / f"sni-{self.key}-{len(self.nodes)}-{bind}.log",
            port_start=port or self.port,
            port_count=1,
            advertised_host=suffix,
            bind_host=bind,
            env={
                **BrokerSide(SSL).env(env.cluster),
                **client.env(),
                "GATEWAY_CLUSTER_ID": f"sni-{self.key}-{RUN}",
                "GATEWAY_ROUTING_MECHANISM": "host",
                "GATEWAY_GROUP_SESSION_TIMEOUT_MS": "6000",
                "GATEWAY_GROUP_HEARTBEAT_INTERVAL_MS": "1000",
                **(extra or {}),
            },
        )
        self.nodes.append(node)
        node.start(timeout=60)
        return node

    def stop(self) -> None:
        if self.haproxy is not None:
            self.haproxy.stop()
        for node in self.nodes:
            node.stop()
        if self.hosts is not None:
            self.hosts.remove()

    def logs(self) -> str:
        parts = [f"--- {n.log_path.name}\n{n.log_tail(15)}" for n in self.nodes]
        if self.haproxy is not None:
            parts.append(f"--- haproxy\n{self.haproxy.log_tail(15)}")
        return "\n".join(parts)

    def route(
        self, bootstrap: str, security: ClientSecurity, addresses: Iterable[tuple[str, int]]
    ) -> SniRoute:
        allowed = frozenset(addresses)
        reach = frozenset(port for _, port in allowed)
        forbidden = self.env.all_broker_ports - reach
        return SniRoute(bootstrap, security, reach, frozenset(forbidden), None, allowed)

    def metadata(self, route: SniRoute, topic: str) -> dict[str, Any]:
        group = f"sni-meta-{uuid.uuid4().hex[:8]}"
        command = [
            sys.executable,
            str(CLIENTS / "ck_sni_metadata.py"),
            "--bootstrap",
            route.bootstrap,
            "--topic",
            topic,
            "--group",
            group,
            "--timeout",
            "40",
            *route.security.script_args(),
        ]
        try:
            return parse_result("librdkafka", self.env.run("ck-sni-metadata", command, route))
        except AssertionError as e:
            raise AssertionError(f"{e}\n{self.logs()}") from None


def wait_for(condition: Callable[[], bool], what: str, timeout: float = 30.0) -> None:
    started = time.monotonic()
    while not condition():
        if time.monotonic() - started > timeout:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.2)


def hosts_of(seen: list[dict[str, Any]]) -> dict[int, tuple[str, int]]:
    return {int(b["id"]): (b["host"], int(b["port"])) for b in seen}


class SniScenario:
    """What every scenario checks; a subclass starts its nodes in L{start}."""

    env: SniEnvironment
    nodes: SniNodes
    #: Per broker id, the names a client may be given.
    allowed_names: dict[int, set[str]]
    advertised_port: int

    def route(self) -> SniRoute:
        raise NotImplementedError

    def assertRoundtrip(self, result: dict[str, object]) -> None:
        assert isinstance(self, TestCase)
        self.assertEqual((result["produced"], result["consumed"]), (30, 30), result)
        self.assertEqual(result["duplicates"], [])

    def roundtrip(self, family: str, route: SniRoute | None = None) -> None:
        route = route or self.route()
        topic = self.env.create_topic(f"sni-{family}")
        try:
            self.assertRoundtrip(self.env.roundtrip(family, route, topic))
        except AssertionError as e:
            raise AssertionError(f"{e}\n{self.nodes.logs()}") from None

    def check_names(self) -> dict[str, Any]:
        """Metadata, DescribeCluster and FindCoordinator carry broker names at the SNI port."""
        assert isinstance(self, TestCase)
        topic = self.env.create_topic("sni-names")
        seen = self.nodes.metadata(self.route(), topic)
        for what in ("metadata_brokers", "cluster_brokers"):
            got = hosts_of(seen[what])
            self.assertEqual(sorted(got), list(BROKER_IDS), what)
            for broker, (host, port) in got.items():
                self.assertIn(
                    host, self.allowed_names[broker], f"{what}: broker {broker} at {host}"
                )
                self.assertEqual(port, self.advertised_port, what)
        coordinator = seen["coordinator"]
        self.assertIn(coordinator["host"], self.allowed_names[int(coordinator["id"])])
        self.assertEqual(int(coordinator["port"]), self.advertised_port)
        for node in self.nodes.nodes:
            self.assertIsNone(_WARNING.search(node.log_text()), node.log_path.name)
        return seen


def internal_names(suffixes: list[str]) -> dict[int, set[str]]:
    return {b: {f"broker-{b}.{suffix}" for suffix in suffixes} for b in BROKER_IDS}


_internal: SniNodes | None = None


def internal_nodes(env: SniEnvironment) -> SniNodes:
    """Two internal-LB nodes with mTLS, each under its own suffix (started once)."""
    global _internal
    if _internal is None:
        hosts = ("127.0.0.2", "127.0.0.3")
        port = common_free_range(1, hosts)
        nodes = SniNodes(env, "internal", port)
        suffixes = [f"gw-{i}.int{RUN}.test" for i in range(2)]
        nodes.hosts = HostsBlock(
            {
                name: host
                for suffix, host in zip(suffixes, hosts, strict=True)
                for name in names_for(suffix)
            }
        ).add()
        atexit.register(nodes.stop)
        sans = tuple(san for s in suffixes for san in (f"DNS:*.{s}", f"DNS:{s}"))
        store = env.gateway_key_store(f"sni-internal-{RUN}", sans)
        for host, suffix in zip(hosts, suffixes, strict=True):
            nodes.start_node(host, suffix, store, client_auth="REQUIRE")
        _internal = nodes
    return _internal


class InternalLoadBalancingTests(SniScenario, TestCase):
    """Each node's own host is the suffix; clients present a certificate (mTLS)."""

    def setUp(self) -> None:
        self.env = SniEnvironment.of(secured())
        self.nodes = internal_nodes(self.env)
        self.suffixes = [n.advertised_host for n in self.nodes.nodes]
        self.allowed_names = internal_names(self.suffixes)
        self.advertised_port = self.nodes.port
        self.security = self.env.tls().with_client_certificate(self.env.client_certificate(ALICE))

    def route(self) -> SniRoute:
        port = self.nodes.port
        return self.nodes.route(
            f"{self.suffixes[0]}:{port}",
            self.security,
            [("127.0.0.2", port), ("127.0.0.3", port)],
        )

    def test_names(self) -> None:
        """Every address a client is given is broker-N.<a node's suffix> at the one port;
        the two nodes share the brokers (a client is stable, clients spread)."""
        self.check_names()

    def test_java(self) -> None:
        """Kafka's console producer and consumer (in a group) through the one port."""
        self.roundtrip("java")

    def test_librdkafka(self) -> None:
        self.roundtrip("librdkafka")

    def test_kafka_python(self) -> None:
        self.roundtrip("kafka-python")

    def test_java_admin(self) -> None:
        """kafka-topics --describe through the one port sees the topic's three partitions."""
        topic = self.env.create_topic("sni-admin")
        route = self.route()
        result = self.env.run(
            "java-topics-describe",
            java_tool_command(
                TOPIC_COMMAND,
                "--bootstrap-server",
                route.bootstrap,
                "--describe",
                "--topic",
                topic,
                "--command-config",
                str(self.env.java_properties(route)),
            ),
            route,
            timeout=120,
        )
        self.assertEqual(result.stdout.count(f"Topic: {topic}\tPartition:"), 3, result.stdout)

    def test_no_client_certificate(self) -> None:
        """mTLS holds on an SNI listener: a client without a certificate is refused."""
        route = self.route().with_security(self.env.tls())
        result, _ = self.env.refusal("java", route, "unused")
        output = result.stdout + result.stderr
        self.assertNotEqual(result.returncode, 0, output[-2000:])
        self.assertRegex(output, CERTIFICATE_REFUSED["java"])

    def test_certificate_warning(self) -> None:
        """A node whose certificate covers none of its names says so in one line at start."""
        nodes = SniNodes(self.env, "warn", common_free_range(1, ("127.0.0.2",)))
        self.addCleanup(nodes.stop)
        store = self.env.gateway_key_store(f"sni-warn-{RUN}", LOOPBACK_SANS)
        node = nodes.start_node("127.0.0.2", f"warn{RUN}.test", store)
        wait_for(lambda: _WARNING.search(node.log_text()) is not None, "the warning", 10)
        lines = [line for line in node.log_text().splitlines() if _WARNING.search(line)]
        self.assertEqual(len(lines), 1, lines)
        self.assertIn(f"broker-1.warn{RUN}.test", lines[0])
        self.assertIn(f"add *.warn{RUN}.test", lines[0])


class HAProxyScenario(SniScenario):
    """Nodes behind an SNI-routing HAProxy at 127.0.0.1:C{advertised_port}."""

    def route(self) -> SniRoute:
        return self.nodes.route(
            f"{self.bootstrap_name}:{self.advertised_port}",
            self.env.tls(),
            [("127.0.0.1", self.advertised_port)],
        )

    bootstrap_name: str

    def spread(self, since: int) -> set[str]:
        """The HAProxy servers (nodes) that carried client connections since C{since}."""
        assert self.nodes.haproxy is not None
        return set(self.nodes.haproxy.connections(since))


def behind_haproxy(
    env: SniEnvironment, key: str, count: int, internal: bool
) -> tuple[SniNodes, str, int]:
    """C{count} nodes on 127.0.0.2.. behind an SNI HAProxy on 127.0.0.1 at another port."""
    hosts = tuple(f"127.0.0.{2 + i}" for i in range(count))
    port = common_free_range(1, hosts)
    front = common_free_range(1, ("127.0.0.1",))
    nodes = SniNodes(env, key, port)
    try:
        lb_suffix = f"kafka.{key}{RUN}.test"
        suffixes = [f"gw-{i}.{key}{RUN}.test" if internal else lb_suffix for i in range(count)]
        names = set(names_for(lb_suffix))
        for suffix in suffixes:
            names.update(names_for(suffix))
        nodes.hosts = HostsBlock(dict.fromkeys(names, "127.0.0.1")).add()
        sans = tuple(
            san for s in sorted({lb_suffix, *suffixes}) for san in (f"DNS:*.{s}", f"DNS:{s}")
        )
        store = env.gateway_key_store(f"sni-{key}-{RUN}", sans)
        extra = {"GATEWAY_ADVERTISED_SNI_PORT": str(front)}
        if not internal:
            extra["GATEWAY_FEATURE_FLAGS_INTERNAL_LOAD_BALANCING"] = "false"
        for host, suffix in zip(hosts, suffixes, strict=True):
            nodes.start_node(host, suffix, store, extra)
        routes = {s: [h] for s, h in zip(suffixes, hosts, strict=True)} if internal else {}
        nodes.haproxy = SniHAProxy(
            "127.0.0.1", front, hosts, routes, env.workdir / f"haproxy-{key}", server_port=port
        )
        nodes.haproxy.start()
    except BaseException:
        nodes.stop()
        raise
    return nodes, lb_suffix, front


class IngressPassthroughTests(HAProxyScenario, TestCase):
    """Three internal-LB nodes behind HAProxy routing by SNI, as an ingress with TLS
    passthrough would: broker-N.gw-i.* goes to node i, the bootstrap name to any node."""

    def setUp(self) -> None:
        if not available():
            self.fail("haproxy is not installed: run scripts/setup (Debian package haproxy)")
        self.env = SniEnvironment.of(secured())
        self.nodes, self.bootstrap_name, self.advertised_port = behind_haproxy(
            self.env, "ingress", 3, internal=True
        )
        self.addCleanup(self.nodes.stop)
        self.allowed_names = internal_names([n.advertised_host for n in self.nodes.nodes])

    def test_ingress_and_a_killed_node(self) -> None:
        """Names, both Python families through HAProxy (spread over the nodes), then a node
        is killed while a kafka-python client runs: it finishes, and new clients carry on."""
        assert self.nodes.haproxy is not None
        self.check_names()
        mark = len(self.nodes.haproxy.log_text())
        self.roundtrip("librdkafka")
        self.roundtrip("kafka-python")
        wait_for(lambda: len(self.spread(mark)) >= 2, "connections on two nodes or more", 10)
        served = self.spread(mark)
        print(f"\n    [sni ingress] servers that carried connections: {sorted(served)}")

        topic = self.env.create_topic("sni-kill")
        route = self.route()
        process, trace = self.env.start(
            "kp-during-kill",
            [
                sys.executable,
                str(CLIENTS / "kp_roundtrip.py"),
                "--bootstrap",
                route.bootstrap,
                "--topic",
                topic,
                "--count",
                "30",
                "--group",
                f"kill-{RUN}",
                "--timeout",
                "60",
                *route.security.script_args(),
            ],
            route,
        )
        time.sleep(0.5)
        victim = self.nodes.nodes[1]
        victim.kill()
        killed = time.monotonic()
        result = self.env.finish("kp-during-kill", process, trace, route, 120)
        self.assertRoundtrip(parse_result("kafka-python", result))
        self.roundtrip("librdkafka")
        print(f"    [sni ingress] clients done {time.monotonic() - killed:.1f}s after the kill")
        # The survivors stop advertising the dead node's names.
        wait_for(
            lambda: all(
                victim.advertised_host not in host
                for b in self.nodes.metadata(self.route(), topic)["metadata_brokers"]
                for host in [b["host"]]
            ),
            "the survivors to drop the killed node",
            40,
        )


class ExternalLoadBalancingTests(HAProxyScenario, TestCase):
    """Two nodes behind HAProxy, each advertising the load balancer's suffix: any node
    serves any name."""

    def setUp(self) -> None:
        if not available():
            self.fail("haproxy is not installed: run scripts/setup (Debian package haproxy)")
        self.env = SniEnvironment.of(secured())
        self.nodes, self.bootstrap_name, self.advertised_port = behind_haproxy(
            self.env, "external", 2, internal=False
        )
        self.addCleanup(self.nodes.stop)
        self.allowed_names = internal_names([self.bootstrap_name])

    def test_load_balancer_names(self) -> None:
        """Every address is broker-N.<the load balancer's host>; librdkafka and kafka-python
        round trips go through HAProxy to both nodes."""
        assert self.nodes.haproxy is not None
        self.check_names()
        mark = len(self.nodes.haproxy.log_text())
        self.roundtrip("librdkafka")
        self.roundtrip("kafka-python")
        wait_for(lambda: self.spread(mark) == {"n0", "n1"}, "connections on both nodes", 10)
