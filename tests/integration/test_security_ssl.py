"""
Issue 13 through a gateway: TLS and mTLS for clients, TLS (and mTLS) to the brokers.

Every family (Java console tools, librdkafka, kafka-python, franz-go) produces and consumes in
a group through a node whose ports speak TLS (C{GATEWAY_SECURITY_PROTOCOL=SSL}) in front of the
brokers' SSL listener (C{KAFKA_SECURITY_PROTOCOL=SSL}), and through a node that requires a
client certificate (C{GATEWAY_SSL_CLIENT_AUTH=REQUIRE}) in front of the brokers' MTLS listener
(the node presents its own certificate, C{KAFKA_SSL_KEYSTORE_*}). A missing client certificate,
one from another CA and an expired one are refused. Every run is under strace and fails if the
client touched any broker or controller port.
"""

from __future__ import annotations

import datetime
import json
import re
import socket
import ssl
import sys
import time
import uuid
from pathlib import Path

from cryptography import x509
from twisted.trial.unittest import TestCase

from harness.certs import CertificateAuthority
from tests.integration.secured_environment import (
    CERTIFICATE_REFUSED,
    CLIENTS,
    FAMILIES,
    SecuredEnvironment,
    secured,
)

ALICE = "CN=alice,OU=tests,O=kgateway"


def served_certificate(
    host: str, port: int, ca: Path, client: tuple[Path, Path] | None = None
) -> x509.Certificate:
    """The certificate a TLS port presents, verified against C{ca} for C{host}."""
    context = ssl.create_default_context(cafile=str(ca))
    if client is not None:
        context.load_cert_chain(str(client[0]), str(client[1]))
    with socket.create_connection((host, port), timeout=10) as raw:
        with context.wrap_socket(raw, server_hostname=host) as tls:
            der = tls.getpeercert(binary_form=True)
    assert der is not None
    return x509.load_der_x509_certificate(der)


class GatewayTlsScenarios:
    """The scenarios; a subclass per family sets C{family}."""

    family: str
    env: SecuredEnvironment

    def setUp(self) -> None:
        self.env = secured()

    def assertRoundtrip(self, result: dict[str, object]) -> None:
        assert isinstance(self, TestCase)
        self.assertEqual((result["produced"], result["consumed"]), (30, 30), result)
        self.assertEqual(result["duplicates"], [])

    def assertRefused(self, security: object) -> None:
        env = self.env
        route = env.through(env.mtls_gateway(), security)  # type: ignore[arg-type]
        result, _ = env.refusal(self.family, route, env.create_topic(f"gw-refused-{self.family}"))
        output = result.stdout + result.stderr
        assert isinstance(self, TestCase)
        self.assertNotEqual(result.returncode, 0, output[-3000:])
        if not re.search(CERTIFICATE_REFUSED[self.family], output):
            self.fail(f"{CERTIFICATE_REFUSED[self.family]!r} not in:\n{output[-3000:]}")

    def test_ssl(self) -> None:
        """TLS on both legs; the client verifies the gateway's name (IP SAN 127.0.0.1)."""
        env = self.env
        route = env.through(env.ssl_gateway(), env.tls())
        self.assertRoundtrip(env.roundtrip(self.family, route, env.create_topic("gw-ssl")))

    def test_mtls(self) -> None:
        """A client certificate of the trusted CA is accepted; mTLS to the brokers too."""
        env = self.env
        security = env.tls().with_client_certificate(env.client_certificate(ALICE))
        route = env.through(env.mtls_gateway(), security)
        self.assertRoundtrip(env.roundtrip(self.family, route, env.create_topic("gw-mtls")))

    def test_missing_client_certificate(self) -> None:
        """No client certificate where one is required: the handshake is refused."""
        self.assertRefused(self.env.tls())

    def test_client_certificate_of_another_ca(self) -> None:
        """A client certificate the gateway's trust store does not vouch for is refused."""
        stranger = CertificateAuthority("CN=another CA").issue("CN=mallory", server=False)
        files = stranger.write_pem(self.env.workdir / "tls", f"stranger-{self.family}")
        self.assertRefused(self.env.tls().with_client_certificate(files))


class JavaGatewayTlsTests(GatewayTlsScenarios, TestCase):
    family = "java"


class LibrdkafkaGatewayTlsTests(GatewayTlsScenarios, TestCase):
    family = "librdkafka"


class KafkaPythonGatewayTlsTests(GatewayTlsScenarios, TestCase):
    family = "kafka-python"


class FranzGoGatewayTlsTests(GatewayTlsScenarios, TestCase):
    family = "franz-go"


assert {c.family for c in GatewayTlsScenarios.__subclasses__()} == set(FAMILIES)


class GatewayTlsTests(TestCase):
    """What does not depend on the client family."""

    def setUp(self) -> None:
        self.env = secured()

    def test_every_port_serves_the_gateway_certificate(self) -> None:
        """Every port of the node presents the node's certificate, never a broker's."""
        env = self.env
        gateway = env.ssl_gateway()
        for port in gateway.ports:
            served = served_certificate("127.0.0.1", port, env.cluster.ca_file)
            self.assertEqual(served.subject.rfc4514_string(), "CN=kgateway ssl,O=kgateway tests")
            self.assertNotEqual(served, env.cluster.broker_identity.certificate)

    def test_expired_client_certificate(self) -> None:
        """An expired client certificate is refused (librdkafka presents it all the same)."""
        env = self.env
        now = datetime.datetime.now(datetime.UTC)
        old = env.cluster.ca.issue(
            "CN=expired",
            server=False,
            valid_from=now - datetime.timedelta(days=30),
            valid_until=now - datetime.timedelta(days=1),
        )
        files = old.write_pem(env.workdir / "tls", "expired-client")
        route = env.through(env.mtls_gateway(), env.tls().with_client_certificate(files))
        result, _ = env.refusal("librdkafka", route, env.create_topic("gw-expired"))
        self.assertNotEqual(result.returncode, 0)
        self.assertRegex(result.stderr, CERTIFICATE_REFUSED["librdkafka"])

    def test_plaintext_client_on_tls_port(self) -> None:
        """A client that speaks plaintext to a TLS port gets nowhere, and the node lives on."""
        env = self.env
        gateway = env.ssl_gateway()
        route = env.through(gateway, env.tls("PLAINTEXT"))
        result, _ = env.refusal("librdkafka", route, env.create_topic("gw-plain-on-tls"))
        self.assertNotEqual(result.returncode, 0)
        self.assertTrue(gateway.running())
        ok = env.roundtrip(
            "librdkafka", env.through(gateway, env.tls()), env.create_topic("gw-after")
        )
        self.assertEqual(ok["consumed"], 30)

    def test_refused_handshake_logged_with_address(self) -> None:
        """A refused handshake is logged with the client's address and a reason.

        A node of its own: the node logs a bounded number of refusals a minute, and the
        other tests' refused clients (librdkafka retries) would have used them up."""
        env = self.env
        gateway = env.mtls_gateway("mtls-log")
        before = len(gateway.log_text())
        context = ssl.create_default_context(cafile=str(env.cluster.ca_file))
        with socket.create_connection(("127.0.0.1", gateway.port_start), timeout=10) as raw:
            local_port = raw.getsockname()[1]
            try:
                with context.wrap_socket(raw, server_hostname="127.0.0.1") as tls:
                    tls.sendall(b"\0\0\0\0")
                    tls.recv(1)
            except (ssl.SSLError, OSError):
                pass
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            logged = gateway.log_text()[before:]
            if str(local_port) in logged:
                break
            time.sleep(0.2)
        lines = [
            line for line in gateway.log_text()[before:].splitlines() if str(local_port) in line
        ]
        self.assertTrue(lines, f"no log line names 127.0.0.1:{local_port}:\n{gateway.log_tail()}")
        self.assertRegex(" ".join(lines).lower(), r"tls|ssl|handshake|certificate")

    def test_principal_in_connections_api(self) -> None:
        """An mTLS client's certificate subject is its connection's principal in
        /api/v1/connections while it is connected."""
        env = self.env
        gateway = env.mtls_gateway()
        security = env.tls().with_client_certificate(env.client_certificate(ALICE))
        route = env.through(gateway, security)
        topic = env.create_topic("gw-principal")
        stop = env.workdir / f"stop-{uuid.uuid4().hex[:8]}"
        command = [
            sys.executable,
            str(CLIENTS / "ck_steady_producer.py"),
            "--bootstrap", route.bootstrap,
            "--topic", topic,
            "--stop-file", str(stop),
            "--timeout", "90",
            *security.script_args(),
        ]  # fmt: skip
        process, trace = env.start("ck-steady-principal", command, route)
        try:
            assert process.stdout is not None
            self.assertEqual(process.stdout.readline().strip(), "ready")
            status, answer = gateway.api("GET", "/api/v1/connections")
            self.assertEqual(status, 200, answer)
            text = json.dumps(answer)
            # RFC 4514 as Python and Java print it; either order of the RDNs is accepted.
            self.assertTrue(
                "CN=alice" in text and "O=kgateway" in text,
                f"no principal CN=alice in {text[:2000]}",
            )
        finally:
            stop.touch()
        env.finish("ck-steady-principal", process, trace, route, timeout=60)
