"""
The security tests' shared environment: one real 3-broker Kafka cluster with SSL, MTLS,
SASL_SSL and OAUTH listeners (L{harness.kafka.secured}), certificates from one test CA, and
gateway nodes in front of it, each started on first use and kept for the whole run.

Every client (four families: Kafka's Java tools, librdkafka, kafka-python, franz-go) runs as
its own process under C{strace -e trace=connect}; a L{Route} says which ports it must reach and
which it must never touch, so a run through a gateway proves the client never reached a
broker, and a direct run proves it used the secured listener and no other.
"""

from __future__ import annotations

import atexit
import itertools
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from twisted.trial.unittest import SkipTest

from harness.certs import LOOPBACK_SANS, Identity, PemFiles
from harness.client_security import ClientSecurity
from harness.connect_audit import assert_never_connected, audited_command, connected_addresses
from harness.franz import franz_client
from harness.gateway_process import GatewayProcess
from harness.kafka import (
    CONSOLE_CONSUMER,
    CONSOLE_PRODUCER,
    TOPIC_COMMAND,
    ensure_kafka_libs,
    java_tool_command,
)
from harness.kafka.secured import MTLS, SASL_SSL, SSL, SecuredKafkaCluster
from harness.secured_gateway import BrokerSide, ClientSide

CLIENTS = Path(__file__).parent / "clients"
FAMILIES = ("java", "librdkafka", "kafka-python", "franz-go")
"""The client families every scenario runs with."""
STORE_PASSWORD = "store-secret"
"""The password of every key and trust store the tests write."""

AUTHENTICATION_REFUSED = {
    # Java: the admin client fails at once with the broker's error.
    "java": r"SaslAuthenticationException: Authentication failed",
    # librdkafka keeps retrying; each refused login is reported, then deliveries time out.
    "librdkafka": r"librdkafka error: _AUTHENTICATION: .*Authentication failed",
    # kafka-python logs each refused bootstrap connection and retries until it times out.
    "kafka-python": r"SaslAuthenticationFailedError: .*Authentication failed",
    "franz-go": r"SASL_AUTHENTICATION_FAILED",
}
"""What each family prints when its SASL login is refused (a wrong password)."""

CERTIFICATE_REFUSED = {
    "java": r"SslAuthenticationException|SSLHandshakeException",
    "librdkafka": r"librdkafka error: _(TRANSPORT|SSL): .*(alert|certificate|handshake)",
    "kafka-python": r"SSLError|ALERT|alert",
    "franz-go": r"tls: |remote error",
}
"""What each family prints when the server refuses its TLS handshake (no or a bad client
certificate): the server's alert, as each TLS stack words it."""

_counter = itertools.count()


@dataclass(frozen=True)
class Route:
    """Where a client goes and how: its bootstrap, its security, the ports it must reach and
    the ports it must never connect to."""

    bootstrap: str
    security: ClientSecurity
    reach: frozenset[int]
    forbidden: frozenset[int]
    gateway: GatewayProcess | None = None

    def with_security(self, security: ClientSecurity) -> Route:
        """The same route with other client settings (a wrong password, no certificate)."""
        return Route(self.bootstrap, security, self.reach, self.forbidden, self.gateway)


@dataclass
class SecuredEnvironment:
    """The running secured cluster, its CA, the gateways started so far, and audited runs."""

    cluster: SecuredKafkaCluster
    workdir: Path
    gateways: dict[str, GatewayProcess] = field(default_factory=dict)
    _identities: dict[str, tuple[Identity, PemFiles]] = field(default_factory=dict)

    # -- certificates -------------------------------------------------------------------

    def client_certificate(self, subject: str) -> PemFiles:
        """A client certificate of the cluster's CA for C{subject} (made once per subject)."""
        if subject not in self._identities:
            identity = self.cluster.ca.issue(subject, server=False)
            name = f"client-{len(self._identities)}"
            self._identities[subject] = (identity, identity.write_pem(self.workdir / "tls", name))
        return self._identities[subject][1]

    def gateway_key_store(self, name: str, sans: tuple[str, ...] = LOOPBACK_SANS) -> Path:
        """A new PKCS#12 key store for a gateway node's server certificate (the cluster's CA)."""
        identity = self.cluster.ca.issue(f"CN=kgateway {name},O=kgateway tests", sans)
        return identity.write_pkcs12(self.workdir / "tls" / f"gateway-{name}.p12", STORE_PASSWORD)

    # -- routes -------------------------------------------------------------------------

    @property
    def all_broker_ports(self) -> frozenset[int]:
        """Every broker listener and controller port: none a gateway's client may reach."""
        return frozenset(self.cluster.broker_ports | self.cluster.controller_ports)

    def direct(self, listener: str, security: ClientSecurity) -> Route:
        """Straight to the brokers' C{listener}: every other broker port is forbidden."""
        ports = frozenset(info.port_of(listener) for info in self.cluster.brokers)
        return Route(
            self.cluster.bootstrap_for(listener), security, ports, self.all_broker_ports - ports
        )

    def through(self, gateway: GatewayProcess, security: ClientSecurity) -> Route:
        """Through C{gateway}: every broker port is forbidden."""
        return Route(
            gateway.bootstrap, security, frozenset(gateway.ports), self.all_broker_ports, gateway
        )

    def tls(self, protocol: str = SSL, **login: Any) -> ClientSecurity:
        """Client settings trusting the cluster's CA (which signs the gateways' certificates)."""
        return ClientSecurity(protocol, ca=self.cluster.ca_file, **login)

    def sasl(
        self, mechanism: str, user: str = "alice", password: str | None = None
    ) -> ClientSecurity:
        """SASL_SSL settings for one of the cluster's users (or a wrong password)."""
        known = self.cluster.user(user)
        return self.tls(
            SASL_SSL,
            mechanism=mechanism,
            username=known.name,
            password=known.password if password is None else password,
        )

    # -- gateways -----------------------------------------------------------------------

    def gateway(self, key: str, env: dict[str, str], **options: Any) -> GatewayProcess:
        """The node called C{key}, started with C{env} on first use (C{KAFKA_*} and
        C{GATEWAY_*} variables, L{harness.secured_gateway}); later calls get the same node."""
        if key not in self.gateways:
            # A gateway cluster of its own: nodes sharing a cluster id hand out each
            # other's ports, and these nodes differ in what their ports speak.
            env = {"GATEWAY_CLUSTER_ID": f"sec-{key}", **env}
            node = GatewayProcess(
                env["KAFKA_BOOTSTRAP_SERVERS"],
                self.workdir / f"gateway-{key}.log",
                env=env,
                **options,
            )
            node.start(timeout=60)
            atexit.register(node.stop)
            self.gateways[key] = node
        return self.gateways[key]

    def ssl_gateway(self) -> GatewayProcess:
        """TLS for clients, TLS to the brokers' SSL listener."""
        return self.gateway(
            "ssl",
            {
                **BrokerSide(SSL).env(self.cluster),
                **ClientSide(
                    SSL, self.gateway_key_store("ssl"), key_store_password=STORE_PASSWORD
                ).env(),
            },
        )

    def mtls_gateway(self, key: str = "mtls") -> GatewayProcess:
        """TLS that requires a client certificate of the cluster's CA; to the brokers, TLS
        with the node's own client certificate (their MTLS listener requires one too).
        Another C{key} is another node of the same kind."""
        node = self.client_certificate("CN=kgateway node,O=kgateway tests")
        return self.gateway(
            key,
            {
                **BrokerSide(MTLS, key_store=node.key_store).env(self.cluster),
                **ClientSide(
                    SSL,
                    self.gateway_key_store(key),
                    key_store_password=STORE_PASSWORD,
                    trust_store=self.cluster.ca_file,
                    trust_store_type="pem",
                    client_auth="REQUIRE",
                ).env(),
            },
        )

    def sasl_gateway(self) -> GatewayProcess:
        """SASL_SSL for clients (their logins relayed to the brokers), SASL_SSL to the
        brokers with SCRAM-SHA-512 as the user C{kgateway} for the node's own connections."""
        return self.gateway(
            "sasl",
            {
                **BrokerSide(
                    SASL_SSL, mechanism="SCRAM-SHA-512", user=self.cluster.user("kgateway")
                ).env(self.cluster),
                **ClientSide(
                    SASL_SSL, self.gateway_key_store("sasl"), key_store_password=STORE_PASSWORD
                ).env(),
            },
        )

    # -- clients ------------------------------------------------------------------------

    def start(
        self, name: str, command: list[str], route: Route
    ) -> tuple[subprocess.Popen[str], Path]:
        """Start a client under strace in the background: the process and its trace (give
        both to L{finish})."""
        trace = self.workdir / "traces" / f"{next(_counter):03d}-{name}.strace"
        trace.parent.mkdir(parents=True, exist_ok=True)
        process = subprocess.Popen(
            audited_command(command, trace),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        return process, trace

    def finish(
        self, name: str, process: subprocess.Popen[str], trace: Path, route: Route, timeout: float
    ) -> subprocess.CompletedProcess[str]:
        """Wait for a client L{start}ed earlier and audit it as L{run} does."""
        try:
            stdout, stderr = process.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            stdout, stderr = process.communicate()
            raise AssertionError(
                f"{name} did not finish in {timeout}s:\n{stderr[-3000:]}"
            ) from None
        if process.returncode != 0:
            raise AssertionError(
                f"{name} exited with {process.returncode}\nstdout:\n{stdout[-3000:]}\n"
                f"stderr:\n{stderr[-3000:]}" + self._gateway_log(route)
            )
        self._audit(name, trace, route)
        return subprocess.CompletedProcess(process.args, 0, stdout, stderr)

    def _audit(self, name: str, trace: Path, route: Route) -> None:
        assert_never_connected(trace, set(route.forbidden))
        reached = {port for _, port in connected_addresses(trace)}
        if not reached & route.reach:
            raise AssertionError(
                f"{name} never connected to {sorted(route.reach)}: it reached {sorted(reached)}"
            )

    def create_topic(self, prefix: str, partitions: int = 3) -> str:
        """A new topic (set up over PLAINTEXT by the test itself: not a client under test)."""
        from confluent_kafka.admin import AdminClient, NewTopic

        topic = f"{prefix}-{uuid.uuid4().hex[:10]}"
        admin = AdminClient({"bootstrap.servers": self.cluster.bootstrap_servers})
        for future in admin.create_topics([NewTopic(topic, partitions, 3)]).values():
            future.result(60)
        return topic

    def run(
        self,
        name: str,
        command: list[str],
        route: Route,
        *,
        timeout: float = 120,
        check: bool = True,
        input: str | None = None,
    ) -> subprocess.CompletedProcess[str]:
        """Run a client under strace; fail if it failed (with C{check}), touched a forbidden
        port, or never reached the route's ports."""
        trace = self.workdir / "traces" / f"{next(_counter):03d}-{name}.strace"
        trace.parent.mkdir(parents=True, exist_ok=True)
        result = subprocess.run(
            audited_command(command, trace),
            input=input,
            capture_output=True,
            text=True,
            timeout=timeout,
            stdin=None if input is not None else subprocess.DEVNULL,
        )
        if check and result.returncode != 0:
            raise AssertionError(
                f"{name} exited with {result.returncode}\nstdout:\n{result.stdout[-3000:]}\n"
                f"stderr:\n{result.stderr[-3000:]}" + self._gateway_log(route)
            )
        self._audit(name, trace, route)
        return result

    @staticmethod
    def _gateway_log(route: Route) -> str:
        return f"\ngateway log:\n{route.gateway.log_tail()}" if route.gateway is not None else ""

    def roundtrip(
        self, family: str, route: Route, topic: str, count: int = 30, timeout: float = 45.0
    ) -> dict[str, Any]:
        """Produce C{count} records with C{family} and consume them in a new group: the
        client's JSON result (C{produced}, C{consumed}, C{duplicates})."""
        result = self.roundtrip_process(family, route, topic, count, timeout, check=True)
        return parse_result(family, result)

    def roundtrip_process(
        self,
        family: str,
        route: Route,
        topic: str,
        count: int = 30,
        timeout: float = 45.0,
        check: bool = False,
    ) -> subprocess.CompletedProcess[str]:
        """The same run, as the finished process (for refusals: its exit code and output)."""
        group = f"{family}-{uuid.uuid4().hex[:8]}"
        common = ["--bootstrap", route.bootstrap, "--topic", topic, "--count", str(count)]
        common += ["--group", group, "--timeout", str(timeout), *route.security.script_args()]
        if family == "java":
            return self._java_roundtrip(route, topic, count, group, timeout, check)
        if family == "franz-go":
            command = [str(franz_client()), *common]
        elif family in ("librdkafka", "kafka-python"):
            script = {"librdkafka": "ck_roundtrip.py", "kafka-python": "kp_roundtrip.py"}[family]
            command = [sys.executable, str(CLIENTS / script), *common]
        else:
            raise ValueError(f"family {family!r}: use one of {FAMILIES}")
        return self.run(family, command, route, timeout=timeout + 60, check=check)

    def refusal(
        self, family: str, route: Route, topic: str, timeout: float | None = None
    ) -> tuple[subprocess.CompletedProcess[str], float]:
        """Run a client that should be refused: the finished process and its seconds.

        Java runs C{kafka-topics --list --command-config} (its admin client gives up on the
        first refusal); the other families their round trip with a short timeout (15 s;
        kafka-python 30 s: it blocks for half the timeout, and on a loaded machine its first
        bootstrap attempt, TLS and SCRAM and the broker's second of delay, could take all
        of 7.5 s, so it gave up before any refusal was logged).
        """
        if timeout is None:
            timeout = 30.0 if family == "kafka-python" else 15.0
        started = time.monotonic()
        if family == "java":
            result = self.run(
                "java-topics-refused",
                java_tool_command(
                    TOPIC_COMMAND,
                    "--bootstrap-server",
                    route.bootstrap,
                    "--list",
                    "--command-config",
                    str(self.java_properties(route)),
                ),
                route,
                timeout=timeout + 90,
                check=False,
            )
        else:
            result = self.roundtrip_process(family, route, topic, 5, timeout, check=False)
        return result, time.monotonic() - started

    def failed_logins(self) -> int:
        """How many refused logins the brokers have logged so far (Kafka's Selector logs
        each at INFO: C{Failed authentication with /127.0.0.1 (...invalid credentials...)})."""
        total = 0
        for node_id in self.cluster.running_node_ids():
            path = self.cluster.log_path(node_id)
            if path.exists():
                with path.open(errors="replace") as log:
                    total += sum("Failed authentication with" in line for line in log)
        return total

    def login_refusal_missing(self, family: str, output: str, failed_before: int) -> str | None:
        """Why a refused client's run does not show a refused login, or None if it does:
        the brokers logged one since C{failed_before}, and C{output} has the family's own
        words for it. For kafka-python a lost connection will do: over TLS, kafka-python
        3.0 often reports the broker closing the connection after the refusal (C{socket
        disconnected}), never the error answer it was sent just before."""
        if self.failed_logins() <= failed_before:
            return "no broker logged a refused login"
        if re.search(AUTHENTICATION_REFUSED[family], output):
            return None
        if family == "kafka-python" and "socket disconnected" in output:
            return None
        return f"{AUTHENTICATION_REFUSED[family]!r} not in the output"

    def java_properties(self, route: Route, extra: dict[str, str] | None = None) -> Path:
        """A Java client properties file for the route's security."""
        path = self.workdir / "java" / f"{next(_counter):03d}.properties"
        return route.security.write_java_properties(path, extra)

    def _java_roundtrip(
        self, route: Route, topic: str, count: int, group: str, timeout: float, check: bool
    ) -> subprocess.CompletedProcess[str]:
        """Console producer, then console consumer in a group; stdout is a JSON result when
        both worked (as the other families print), else the failing tool's output."""
        producer_config = self.java_properties(
            route, {"acks": "all", "delivery.timeout.ms": str(int(timeout * 500))}
        )
        lines = "".join(f"{seq}:java-{seq:08d}\n" for seq in range(count))
        produced = self.run(
            "java-console-producer",
            java_tool_command(
                CONSOLE_PRODUCER,
                TOPIC_COMMAND,
                "--bootstrap-server",
                route.bootstrap,
                "--topic",
                topic,
                "--producer.config",
                str(producer_config),
                "--property",
                "parse.key=true",
                "--property",
                "key.separator=:",
            ),
            route,
            timeout=timeout + 60,
            check=check,
            input=lines,
        )
        if produced.returncode != 0 or "ERROR" in produced.stderr:
            return produced
        consumed = self.run(
            "java-console-consumer",
            java_tool_command(
                CONSOLE_CONSUMER,
                "--bootstrap-server",
                route.bootstrap,
                "--topic",
                topic,
                "--group",
                group,
                "--from-beginning",
                "--max-messages",
                str(count),
                "--timeout-ms",
                str(int(timeout * 1000)),
                "--consumer.config",
                str(self.java_properties(route)),
                "--property",
                "print.key=true",
                "--property",
                "key.separator=:",
            ),
            route,
            timeout=timeout + 60,
            check=check,
        )
        if consumed.returncode != 0:
            return consumed
        seen: dict[int, int] = {}
        for line in consumed.stdout.splitlines():
            key, _, value = line.partition(":")
            if key.isdigit() and value == f"java-{int(key):08d}":
                seen[int(key)] = seen.get(int(key), 0) + 1
        summary = {
            "client": "java",
            "produced": count,
            "consumed": len(seen),
            "duplicates": sorted(k for k, n in seen.items() if n > 1),
            "group": group,
        }
        return subprocess.CompletedProcess(
            consumed.args, 0, json.dumps(summary) + "\n", produced.stderr + consumed.stderr
        )


def parse_result(family: str, result: subprocess.CompletedProcess[str]) -> dict[str, Any]:
    """The JSON object a client printed last."""
    lines = result.stdout.strip().splitlines()
    try:
        parsed: dict[str, Any] = json.loads(lines[-1])
    except (IndexError, ValueError) as error:
        raise AssertionError(
            f"{family} printed no JSON result ({error}):\n{result.stdout[-2000:]}\n"
            f"stderr:\n{result.stderr[-2000:]}"
        ) from None
    return parsed


_shared: SecuredEnvironment | None = None


def secured() -> SecuredEnvironment:
    """Start the secured cluster on first use; later calls (every module) get the same one."""
    global _shared
    if os.environ.get("KGATEWAY_SKIP_INTEGRATION") == "1":
        raise SkipTest("KGATEWAY_SKIP_INTEGRATION=1")
    if _shared is None:
        ensure_kafka_libs()
        franz_client()  # a build failure is better seen before the cluster starts
        workdir = Path(tempfile.mkdtemp(prefix="kgateway-sec-"))
        if os.environ.get("KGATEWAY_KEEP_LOGS") != "1":
            atexit.register(shutil.rmtree, workdir, True)
        cluster = SecuredKafkaCluster(size=3, base_dir=workdir / "kafka")
        cluster.start()
        atexit.register(cluster.stop)
        _shared = SecuredEnvironment(cluster, workdir)
    return _shared


__all__ = [
    "AUTHENTICATION_REFUSED",
    "CERTIFICATE_REFUSED",
    "FAMILIES",
    "MTLS",
    "SASL_SSL",
    "SSL",
    "Route",
    "SecuredEnvironment",
    "secured",
]
