"""
One node, three listeners, in front of the real (PLAINTEXT) Kafka cluster:
INTERNAL (PLAINTEXT on 127.0.0.1), EXTERNAL (SSL, advertised as
kgw-external.test) and PARTNERS (SSL with client certificates REQUIRED).
kafka-python and librdkafka produce and consume over SSL, each listener's
Metadata advertises its own addresses, a client without a certificate is
refused on PARTNERS while one with a certificate shows its principal in
/api/v1/connections, and a key store renewed on disk is served to a new
connection while an open producer keeps going.  Every client runs under
the strace connect audit: it reached this node's ports and never a broker.

The test names kgw-external.test in /etc/hosts (127.0.0.1) and removes it.
"""

from __future__ import annotations

import atexit
import json
import socket
import ssl
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

from twisted.trial.unittest import TestCase

from harness.connect_audit import assert_never_connected, audited_command, connected_addresses
from harness.gateway_process import GatewayProcess
from harness.ports import free_port_range
from tests.certificates import Authority, write_pem_key_store
from tests.integration.environment import CLIENTS, Environment, shared

EXTERNAL_HOST = "kgw-external.test"
HOSTS = Path("/etc/hosts")
HOSTS_LINE = f"127.0.0.1 {EXTERNAL_HOST} # kgateway test_listeners_tls"
COUNT = 6
TIMEOUT = 45.0


def add_hosts_entry() -> None:
    text = HOSTS.read_text()
    if HOSTS_LINE not in text:
        HOSTS.write_text(text.rstrip("\n") + "\n" + HOSTS_LINE + "\n")


def remove_hosts_entry() -> None:
    lines = HOSTS.read_text().splitlines()
    HOSTS.write_text("".join(line + "\n" for line in lines if line != HOSTS_LINE))


class Node:
    """The three-listener gateway node, its certificates, and audited clients."""

    def __init__(self, env: Environment, workdir: Path) -> None:
        self.env = env
        self.workdir = workdir
        self.authority = Authority()
        self.ca = workdir / "ca.pem"
        self.ca.write_bytes(self.authority.pem())
        self.key_store = workdir / "gateway.pem"
        self.serve("gateway-1")
        app = self.authority.issue("app-1", hosts=(), server=False)
        self.client_cert, self.client_key = workdir / "app-1.crt", workdir / "app-1.key"
        self.client_cert.write_bytes(app.certificate_pem())
        self.client_key.write_bytes(app.key_pem())
        self.principal = app.subject
        ports = free_port_range(3 * COUNT)
        self.ranges = {
            "INTERNAL": range(ports, ports + COUNT),
            "EXTERNAL": range(ports + COUNT, ports + 2 * COUNT),
            "PARTNERS": range(ports + 2 * COUNT, ports + 3 * COUNT),
        }
        listeners: dict[str, str] = {"GATEWAY_LISTENER_NAMES": ",".join(self.ranges)}
        for name, each in self.ranges.items():
            listeners[f"GATEWAY_LISTENER_{name}_PORTS"] = f"{each.start}-{each.stop - 1}"
        for name in ("EXTERNAL", "PARTNERS"):
            listeners[f"GATEWAY_LISTENER_{name}_SECURITY_PROTOCOL"] = "SSL"
            listeners[f"GATEWAY_LISTENER_{name}_ADVERTISED_HOST"] = EXTERNAL_HOST
        listeners["GATEWAY_LISTENER_PARTNERS_SSL_CLIENT_AUTH"] = "REQUIRE"
        self.gateway = GatewayProcess(
            env.cluster.bootstrap_servers,
            workdir / "gateway.log",
            port_start=ports,
            port_count=COUNT,
            env={
                **listeners,
                "GATEWAY_SSL_KEY_STORE_PATH": str(self.key_store),
                "GATEWAY_SSL_KEY_TYPE": "pem",
                "GATEWAY_SSL_TRUST_STORE_PATH": str(self.ca),
                "GATEWAY_SSL_TRUST_STORE_TYPE": "pem",
                "GATEWAY_SSL_UPDATE_INTERVAL_MS": "300",
            },
        )
        # The node's ports come from its listeners, not from the single-listener settings.
        for single in ("GATEWAY_PORT_START", "GATEWAY_PORT_COUNT"):
            del self.gateway.environment[single]

    def serve(self, name: str) -> None:
        """Put a key store for a new certificate on disk (a renewal, after the first)."""
        issued = self.authority.issue(name, hosts=("localhost", "127.0.0.1", EXTERNAL_HOST))
        staged = self.key_store.with_suffix(".new")
        write_pem_key_store(staged, issued, self.authority)
        staged.replace(self.key_store)  # at once, as a Secret's volume swaps its files

    def bootstrap(self, listener: str) -> str:
        host = "127.0.0.1" if listener == "INTERNAL" else EXTERNAL_HOST
        return f"{host}:{self.ranges[listener].start}"

    def command(self, family: str, action: str, listener: str, *args: str) -> list[str]:
        argv = [
            sys.executable,
            str(CLIENTS / "tls_client.py"),
            "--family",
            family,
            "--action",
            action,
            "--bootstrap",
            self.bootstrap(listener),
            "--timeout",
            str(TIMEOUT),
            *args,
        ]
        if listener != "INTERNAL":
            argv += ["--ca", str(self.ca)]
        return argv

    def audited(self, name: str, command: list[str]) -> tuple[list[str], Path]:
        trace = self.workdir / f"{name}-{uuid.uuid4().hex[:6]}.strace"
        return audited_command(command, trace), trace

    def check_trace(self, name: str, trace: Path, listener: str) -> None:
        assert_never_connected(trace, self.env.forbidden_ports)
        reached = {port for _, port in connected_addresses(trace)}
        if not reached & set(self.ranges[listener]):
            raise AssertionError(f"{name} never reached listener {listener}: {sorted(reached)}")

    def run(
        self, family: str, action: str, listener: str, *args: str, check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        """Run one client to its end, audited."""
        name = f"{family}-{action}-{listener}"
        command, trace = self.audited(name, self.command(family, action, listener, *args))
        result = subprocess.run(command, capture_output=True, text=True, timeout=TIMEOUT + 60)
        if check and result.returncode != 0:
            raise AssertionError(
                f"{name} exited {result.returncode}\n{result.stderr[-3000:]}\n"
                f"gateway log:\n{self.gateway.log_tail()}"
            )
        self.check_trace(name, trace, listener)
        return result

    def json(self, *args: Any, **kwargs: Any) -> Any:
        return json.loads(self.run(*args, **kwargs).stdout.strip().splitlines()[-1])


def served_subject(port: int, ca: Path) -> str:
    """The subject of the certificate a new TLS connection to C{port} is served."""
    context = ssl.create_default_context(cafile=str(ca))
    with socket.create_connection(("127.0.0.1", port), timeout=10) as raw:
        with context.wrap_socket(raw, server_hostname=EXTERNAL_HOST) as tls:
            certificate = tls.getpeercert()
    assert certificate is not None
    return ",".join(
        f"{key}={value}"
        for rdn in reversed(certificate["subject"])
        for key, value in rdn
        if key == "commonName"
    )


_node: Node | None = None


def started_node() -> Node:
    """The node, started on first use and stopped (the hosts entry removed) at exit."""
    global _node
    if _node is not None:
        return _node
    env = shared()
    workdir = env.workdir / f"listeners-tls-{uuid.uuid4().hex[:6]}"
    workdir.mkdir()
    add_hosts_entry()
    atexit.register(remove_hosts_entry)
    node = Node(env, workdir)
    atexit.register(node.gateway.stop)
    node.gateway.start(timeout=60)
    deadline = time.monotonic() + 30
    while node.gateway.log_text().count("Listening on") < 3:
        if time.monotonic() > deadline:
            raise AssertionError(node.gateway.log_tail())
        time.sleep(0.2)
    _node = node
    return node


class ListenerTlsTests(TestCase):
    """Each scenario against the node, started once for the module."""

    def setUp(self) -> None:
        self.node = started_node()

    def topic(self) -> str:
        return f"tls-{uuid.uuid4().hex[:10]}"

    def test_metadata_on_each_listener_advertises_its_addresses(self) -> None:
        node = self.node
        brokers = sorted(b.node_id for b in node.env.cluster.brokers)
        for family in ("kafka-python", "librdkafka"):
            for listener, host, args in (
                ("INTERNAL", "127.0.0.1", ()),
                ("EXTERNAL", EXTERNAL_HOST, ()),
                (
                    "PARTNERS",
                    EXTERNAL_HOST,
                    ("--cert", str(node.client_cert), "--key", str(node.client_key)),
                ),
            ):
                got = node.json(family, "metadata", listener, *args)["brokers"]
                first = node.ranges[listener].start
                self.assertEqual(
                    got, [[b, host, first + b - 1] for b in brokers], f"{family} on {listener}"
                )

    def test_produce_and_consume_over_ssl(self) -> None:
        for family in ("kafka-python", "librdkafka"):
            topic = self.topic()
            sent = self.node.json(family, "produce", "EXTERNAL", "--topic", topic, "--count", "20")
            self.assertEqual(sent, {"sent": 20})
            read = self.node.json(family, "consume", "EXTERNAL", "--topic", topic, "--count", "20")
            self.assertEqual(read["values"], [f"record-{n}" for n in range(20)])

    def test_require_refuses_a_client_without_a_certificate(self) -> None:
        node = self.node
        before = node.gateway.log_text().count("failed the TLS handshake on listener PARTNERS")
        refused = node.run("kafka-python", "metadata", "PARTNERS", "--timeout", "8", check=False)
        self.assertNotEqual(refused.returncode, 0)
        deadline = time.monotonic() + 10
        while (
            node.gateway.log_text().count("failed the TLS handshake on listener PARTNERS") <= before
        ):
            if time.monotonic() > deadline:
                self.fail(node.gateway.log_tail())
            time.sleep(0.2)
        self.assertIn("certificate", node.gateway.log_tail())

    def test_a_certificate_shows_its_principal_in_the_api(self) -> None:
        node = self.node
        topic = self.topic()
        command, trace = node.audited(
            "principal",
            node.command(
                "kafka-python",
                "produce",
                "PARTNERS",
                "--topic",
                topic,
                "--seconds",
                "6",
                "--cert",
                str(node.client_cert),
                "--key",
                str(node.client_key),
                "--client-id",
                "partner-app",
            ),
        )
        producer = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        try:
            deadline = time.monotonic() + 20
            while True:
                status, body = node.gateway.api("GET", "/api/v1/connections")
                self.assertEqual(status, 200)
                mine = [c for c in body["connections"] if c["client_id"] == "partner-app"]
                if mine:
                    break
                if time.monotonic() > deadline:
                    self.fail(f"no connection of partner-app: {body}")
                time.sleep(0.3)
            self.assertEqual({c["principal"] for c in mine}, {node.principal})
            self.assertEqual({c["listener"] for c in mine}, {"PARTNERS"})
        finally:
            out, err = producer.communicate(timeout=TIMEOUT + 30)
        self.assertEqual(producer.returncode, 0, err.decode()[-2000:])
        node.check_trace("principal", trace, "PARTNERS")

    def test_renewed_key_store_serves_new_connections_and_an_open_producer_goes_on(self) -> None:
        node = self.node
        port = node.ranges["EXTERNAL"].start
        self.assertTrue(served_subject(port, node.ca).startswith("commonName=gateway-"))
        topic = self.topic()
        command, trace = node.audited(
            "renewal",
            node.command("librdkafka", "produce", "EXTERNAL", "--topic", topic, "--seconds", "8"),
        )
        producer = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        try:
            time.sleep(2)  # the producer's connections are open and sending
            renewed = node.gateway.log_text().count("TLS key store renewed")
            name = f"gateway-{uuid.uuid4().hex[:6]}"
            node.serve(name)
            deadline = time.monotonic() + 10
            while node.gateway.log_text().count("TLS key store renewed") <= renewed:
                if time.monotonic() > deadline:
                    self.fail(node.gateway.log_tail())
                time.sleep(0.1)
            self.assertEqual(served_subject(port, node.ca), f"commonName={name}")
            # A new client connects with the renewed certificate.
            got = node.json("kafka-python", "metadata", "EXTERNAL")["brokers"]
            self.assertEqual(len(got), len(node.env.cluster.brokers))
        finally:
            out, err = producer.communicate(timeout=TIMEOUT + 30)
        self.assertEqual(producer.returncode, 0, err.decode()[-2000:])
        self.assertGreater(json.loads(out.decode().splitlines()[-1])["sent"], 50)
        node.check_trace("renewal", trace, "EXTERNAL")
