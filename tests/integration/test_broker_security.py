"""
The broker side's security against real Apache Kafka: a one-node cluster
with an SSL listener, an SSL listener that requires client certificates, a
SASL_SSL listener (SCRAM-SHA-512 and PLAIN) and a SASL_SSL listener for
OAUTHBEARER (Kafka's unsecured validator; the token endpoint is a small
HTTP server in this test issuing unsigned JWTs), certificates made by the
test with C{cryptography}.  Each test starts a real C{twistd kgateway} in
front of it and checks that the node becomes ready, that clients (their
own SASL relayed untouched) produce and consume through it under the
connect audit, and what a mistake looks like.

This module builds its own secured cluster, as H's harness will; fold
L{_cluster} into C{harness/} when it has one.
"""

from __future__ import annotations

import atexit
import base64
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from twisted.trial.unittest import SkipTest, TestCase

from harness.connect_audit import assert_never_connected, audited_command, connected_addresses
from harness.gateway_process import GatewayProcess
from harness.kafka import KafkaCluster, Listener, ensure_kafka_libs, java_tool_command
from harness.kafka.tools import CONFIGS_COMMAND, TOPIC_COMMAND
from tests.unit.security.certificates import CertificateAuthority

CLIENTS = Path(__file__).parent / "clients"
GATEWAY_PASSWORD = "gw-canary-s3cret"
ALICE_PASSWORD = "alice-pw"
OAUTH_SECRET = "oauth-canary-s3cret"
PLAIN_MODULE = "org.apache.kafka.common.security.plain.PlainLoginModule"
SCRAM_MODULE = "org.apache.kafka.common.security.scram.ScramLoginModule"
OAUTH_MODULE = "org.apache.kafka.common.security.oauthbearer.OAuthBearerLoginModule"


class TokenHandler(BaseHTTPRequestHandler):
    """An OAuth token endpoint: client credentials in, an unsigned JWT out."""

    issued: list[str] = []

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length", "0"))
        form = self.rfile.read(length).decode()
        basic = base64.b64encode(f"gateway:{OAUTH_SECRET}".encode()).decode()
        if self.headers.get("Authorization") != f"Basic {basic}" or (
            "grant_type=client_credentials" not in form
        ):
            self.send_response(401)
            self.end_headers()
            self.wfile.write(b'{"error": "invalid_client"}')
            return
        now = int(time.time())

        def part(data: dict[str, Any]) -> str:
            return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()

        token = (
            f"{part({'alg': 'none'})}.{part({'sub': 'gateway', 'iat': now, 'exp': now + 3600})}."
        )
        TokenHandler.issued.append(token)
        body = json.dumps({"access_token": token, "token_type": "Bearer", "expires_in": 3600})
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(body.encode())

    def log_message(self, format: str, *args: Any) -> None:
        pass


@dataclass
class Secured:
    """The secured cluster, its files, and the token endpoint."""

    cluster: KafkaCluster
    workdir: Path
    ca: CertificateAuthority
    token_url: str

    def file(self, name: str) -> Path:
        return self.workdir / "certs" / name

    @property
    def forbidden_ports(self) -> set[int]:
        return self.cluster.broker_ports | self.cluster.controller_ports


_shared: Secured | None = None


def _cluster() -> Secured:
    """Start the secured cluster (and the token endpoint) once for the module."""
    global _shared
    if os.environ.get("KGATEWAY_SKIP_INTEGRATION") == "1":
        raise SkipTest("KGATEWAY_SKIP_INTEGRATION=1")
    if _shared is not None:
        return _shared
    ensure_kafka_libs()
    workdir = Path(tempfile.mkdtemp(prefix="kgateway-brokersec-"))
    if os.environ.get("KGATEWAY_KEEP_LOGS") != "1":
        atexit.register(shutil.rmtree, workdir, True)
    certs = workdir / "certs"
    certs.mkdir()
    ca = CertificateAuthority.make()
    broker = ca.issue("broker", ("localhost", "127.0.0.1"))
    # Kafka's PEM key store: an unencrypted PKCS#8 key, then the certificate chain.
    broker.write_pem(certs / "broker.pem")
    ca.write_pem(certs / "ca.pem")
    gateway = ca.issue("kgateway", ())
    gateway.write_pkcs12(certs / "gateway.p12", "p12-pass")
    gateway.write_jks(certs / "gateway.jks", "jks-pass")
    gateway.write_pem(certs / "gateway-encrypted.pem", password="key-pass")
    ca.write_jks_trust(certs / "ca.jks", "trust-pass")
    ca.write_pkcs12_trust(certs / "ca.p12", "trust-pass")
    CertificateAuthority.make("a stranger").write_pem(certs / "stranger-ca.pem")

    tls = {
        "ssl.keystore.type": "PEM",
        "ssl.keystore.location": certs / "broker.pem",
        "ssl.truststore.type": "PEM",
        "ssl.truststore.location": certs / "ca.pem",
    }
    listeners = [
        Listener("SSL", properties=tls),
        Listener("MTLS", "SSL", {**tls, "ssl.client.auth": "required"}),
        Listener(
            "SASL_SSL",
            properties={
                **tls,
                "scram-sha-512.sasl.jaas.config": f"{SCRAM_MODULE} required;",
                "plain.sasl.jaas.config": f'{PLAIN_MODULE} required user_gateway="'
                f'{GATEWAY_PASSWORD}" user_alice="{ALICE_PASSWORD}";',
            },
        ),
        Listener(
            "OAUTH",
            "SASL_SSL",
            {
                **tls,
                "sasl.enabled.mechanisms": "OAUTHBEARER",
                # Kafka's unsecured validator (the default without a callback handler)
                # accepts unsigned JWTs: for tests only.
                "oauthbearer.sasl.jaas.config": f"{OAUTH_MODULE} required;",
            },
        ),
    ]
    users = [("gateway", GATEWAY_PASSWORD), ("alice", ALICE_PASSWORD)]
    cluster = KafkaCluster(
        size=1,
        base_dir=workdir / "kafka",
        racks=("a",),
        listeners=listeners,
        overrides={"sasl.enabled.mechanisms": "SCRAM-SHA-512,PLAIN"},
        format_args=[
            arg
            for name, password in users
            for arg in ("--add-scram", f"SCRAM-SHA-512=[name={name},password={password}]")
        ],
    )
    server = ThreadingHTTPServer(("127.0.0.1", 0), TokenHandler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    atexit.register(server.shutdown)
    cluster.start()
    atexit.register(cluster.stop)
    _shared = Secured(cluster, workdir, ca, f"http://127.0.0.1:{server.server_port}/token")
    return _shared


class BrokerSecurityTests(TestCase):
    """The node reaches a secured cluster; clients go through it as themselves."""

    timeout = 300

    def setUp(self) -> None:
        self.secured = _cluster()
        self.count = 0

    def gateway(self, listener: str, env: dict[str, str], ready: bool = True) -> GatewayProcess:
        self.count += 1
        gateway = GatewayProcess(
            self.secured.cluster.bootstrap_for(listener),
            self.secured.workdir / f"{self._testMethodName}-{self.count}.log",
            port_count=4,
            env={"GATEWAY_SECURITY_PROTOCOL": "PLAINTEXT", **env},
        )
        self.addCleanup(gateway.stop)
        if ready:
            gateway.start(timeout=90)
        else:
            gateway.spawn()
        return gateway

    def audited(
        self, gateway: GatewayProcess, name: str, command: list[str], check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        trace = self.secured.workdir / f"{self._testMethodName}-{name}.strace"
        result = subprocess.run(
            audited_command(command, trace), capture_output=True, text=True, timeout=180
        )
        if check and result.returncode != 0:
            raise AssertionError(
                f"{name} exited {result.returncode}\n{result.stdout[-3000:]}\n"
                f"{result.stderr[-3000:]}\ngateway log:\n{gateway.log_tail()}"
            )
        assert_never_connected(trace, self.secured.forbidden_ports)
        reached = {port for _, port in connected_addresses(trace)}
        self.assertTrue(reached & set(gateway.ports), f"{name} never reached the gateway")
        return result

    def roundtrip(
        self, gateway: GatewayProcess, topic: str, user: str, password: str, check: bool = True
    ) -> dict[str, Any]:
        result = self.audited(
            gateway,
            f"roundtrip-{topic}",
            [
                sys.executable,
                str(CLIENTS / "kp_sasl_roundtrip.py"),
                "--bootstrap",
                gateway.bootstrap,
                "--topic",
                topic,
                "--user",
                user,
                "--password",
                password,
            ],
            check=check,
        )
        answer: dict[str, Any] = json.loads(result.stdout.strip().splitlines()[-1])
        return answer

    def trust(self, name: str = "ca.pem", **extra: str) -> dict[str, str]:
        return {"KAFKA_SSL_TRUSTSTORE_LOCATION": str(self.secured.file(name)), **extra}

    def test_ssl(self) -> None:
        """SSL with a PEM trust store: ready, and a PLAINTEXT client's data goes over TLS."""
        gateway = self.gateway("SSL", {"KAFKA_SECURITY_PROTOCOL": "SSL", **self.trust()})
        self.assertIn("Listening on", gateway.log_since_start())
        result = self.audited(
            gateway,
            "produce-consume",
            [
                sys.executable,
                "-c",
                "import sys; from kafka import KafkaProducer, KafkaConsumer\n"
                f"p = KafkaProducer(bootstrap_servers={gateway.bootstrap!r}, acks='all')\n"
                "[p.send('over-tls', b'x%d' % i) for i in range(10)]; p.flush(30); p.close()\n"
                f"c = KafkaConsumer('over-tls', bootstrap_servers={gateway.bootstrap!r}, "
                "auto_offset_reset='earliest', consumer_timeout_ms=5000)\n"
                "print(len([r for r in c]))",
            ],
        )
        self.assertEqual(result.stdout.strip(), "10")

    def test_ssl_mtls_pkcs12_and_jks_trust(self) -> None:
        """A broker that requires client certificates: PKCS12 key store, JKS trust store."""
        self.gateway(
            "MTLS",
            {
                "KAFKA_SECURITY_PROTOCOL": "SSL",
                **self.trust("ca.jks", KAFKA_SSL_TRUSTSTORE_PASSWORD="trust-pass"),
                "KAFKA_SSL_KEYSTORE_LOCATION": str(self.secured.file("gateway.p12")),
                "KAFKA_SSL_KEYSTORE_TYPE": "PKCS12",
                "KAFKA_SSL_KEYSTORE_PASSWORD": "p12-pass",
            },
        )

    def test_ssl_mtls_jks_and_encrypted_pem(self) -> None:
        """The same with a JKS key store, then an encrypted PEM key."""
        self.gateway(
            "MTLS",
            {
                "KAFKA_SECURITY_PROTOCOL": "SSL",
                **self.trust("ca.p12", KAFKA_SSL_TRUSTSTORE_PASSWORD="trust-pass"),
                "KAFKA_SSL_KEYSTORE_LOCATION": str(self.secured.file("gateway.jks")),
                "KAFKA_SSL_KEYSTORE_PASSWORD": "jks-pass",
            },
        )
        self.gateway(
            "MTLS",
            {
                "KAFKA_SECURITY_PROTOCOL": "SSL",
                **self.trust(),
                "KAFKA_SSL_KEYSTORE_LOCATION": str(self.secured.file("gateway-encrypted.pem")),
                "KAFKA_SSL_KEY_PASSWORD": "key-pass",
            },
        )

    def test_mtls_without_certificate(self) -> None:
        """No key store for a broker that requires one: never ready, one line that says so."""
        gateway = self.gateway(
            "MTLS", {"KAFKA_SECURITY_PROTOCOL": "SSL", **self.trust()}, ready=False
        )
        line = self.wait_for_line(gateway, "Cannot reach any Kafka broker")
        self.assertIn("does the broker require a client certificate? set", line)
        self.assertIn("KAFKA_SSL_KEYSTORE_LOCATION", line)

    def test_untrusted_broker(self) -> None:
        """A trust store without the broker's CA: the error line names it."""
        gateway = self.gateway(
            "SSL", {"KAFKA_SECURITY_PROTOCOL": "SSL", **self.trust("stranger-ca.pem")}, ready=False
        )
        line = self.wait_for_line(gateway, "Cannot reach any Kafka broker")
        self.assertIn("certificate verify failed", line)
        self.assertIn("KAFKA_SSL_TRUSTSTORE_LOCATION=", line)
        time.sleep(3)  # several refreshes later, still the one line
        self.assertEqual(gateway.log_since_start().count("Cannot reach any Kafka broker"), 1)

    def sasl_env(self, mechanism: str, module: str, password: str) -> dict[str, str]:
        return {
            "KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
            **self.trust(),
            "KAFKA_SASL_MECHANISM": mechanism,
            "KAFKA_SASL_JAAS_CONFIG": f'{module} required username="gateway" '
            f'password="{password}";',
            "GATEWAY_SECURITY_PROTOCOL": "SASL_PLAINTEXT",
        }

    def test_sasl_ssl_scram_and_clients_as_themselves(self) -> None:
        """
        The node logs in with SCRAM-SHA-512; a client speaks SASL_PLAINTEXT to the
        gateway and logs in as alice, relayed untouched over the gateway's TLS; a
        wrong password gets the broker's refusal.  No secret in the log or the API.
        """
        gateway = self.gateway(
            "SASL_SSL", self.sasl_env("SCRAM-SHA-512", SCRAM_MODULE, GATEWAY_PASSWORD)
        )
        self.assertEqual(
            self.roundtrip(gateway, "as-alice", "alice", ALICE_PASSWORD),
            {"produced": 20, "consumed": 20},
        )
        # Kafka's Java tools say at once what the broker answered (kafka-python only
        # reports that it could not bootstrap).
        wrong = self.secured.workdir / "alice-wrong.properties"
        wrong.write_text(
            "security.protocol=SASL_PLAINTEXT\nsasl.mechanism=SCRAM-SHA-512\n"
            f'sasl.jaas.config={SCRAM_MODULE} required username="alice" password="wrong";\n'
        )
        refused = self.audited(
            gateway,
            "topics-wrong-password",
            java_tool_command(
                TOPIC_COMMAND,
                "--bootstrap-server",
                gateway.bootstrap,
                "--command-config",
                str(wrong),
                "--list",
            ),
            check=False,
        )
        said = refused.stdout + refused.stderr
        self.assertNotEqual(refused.returncode, 0)
        self.assertIn("SaslAuthenticationException", said)
        self.assertIn(
            "Authentication failed during authentication due to invalid credentials with SASL "
            "mechanism SCRAM-SHA-512",
            said,
        )
        for path in ("/versions", "/api/v1/cluster", "/api/v1/connections"):
            status, answer = gateway.api("GET", path)
            self.assertEqual(status, 200, path)
            self.assertNotIn(GATEWAY_PASSWORD, json.dumps(answer), path)
        self.assertNotIn(GATEWAY_PASSWORD, gateway.log_since_start())

    def test_sasl_ssl_plain(self) -> None:
        self.gateway("SASL_SSL", self.sasl_env("PLAIN", PLAIN_MODULE, GATEWAY_PASSWORD))

    def test_sasl_wrong_password(self) -> None:
        gateway = self.gateway(
            "SASL_SSL", self.sasl_env("SCRAM-SHA-512", SCRAM_MODULE, "not-it"), ready=False
        )
        line = self.wait_for_line(gateway, "Cannot reach any Kafka broker")
        self.assertIn("SASL SCRAM-SHA-512 login as user 'gateway' refused by the broker", line)
        self.assertIn("check the credentials in KAFKA_SASL_JAAS_CONFIG", line)
        self.assertNotIn("not-it", gateway.log_since_start())

    def test_oauthbearer(self) -> None:
        """Client credentials at the token endpoint, the token to Kafka's validator."""
        before = len(TokenHandler.issued)
        gateway = self.gateway(
            "OAUTH",
            {
                "KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
                **self.trust(),
                "KAFKA_SASL_MECHANISM": "OAUTHBEARER",
                "KAFKA_SASL_JAAS_CONFIG": f'{OAUTH_MODULE} required clientId="gateway" '
                f'clientSecret="{OAUTH_SECRET}" scope="kafka";',
                "KAFKA_SASL_OAUTHBEARER_TOKEN_ENDPOINT_URL": self.secured.token_url,
                "GATEWAY_SECURITY_PROTOCOL": "SASL_PLAINTEXT",
            },
        )
        self.assertGreater(len(TokenHandler.issued), before)
        log = gateway.log_since_start()
        self.assertNotIn(OAUTH_SECRET, log)
        for token in TokenHandler.issued:
            self.assertNotIn(token, log)

    def test_describe_configs_hides_addresses(self) -> None:
        """kafka-configs --describe --all: the broker's answer names hosts, the gateway's not."""
        cluster = self.secured.cluster
        arguments = ["--entity-type", "brokers", "--entity-name", "1", "--describe", "--all"]
        direct = subprocess.run(
            java_tool_command(
                CONFIGS_COMMAND, "--bootstrap-server", cluster.bootstrap_servers, *arguments
            ),
            capture_output=True,
            text=True,
            timeout=120,
        )
        self.assertIn("advertised.listeners=PLAINTEXT://127.0.0.1:", direct.stdout)
        gateway = self.gateway("SSL", {"KAFKA_SECURITY_PROTOCOL": "SSL", **self.trust()})
        result = self.audited(
            gateway,
            "kafka-configs",
            java_tool_command(CONFIGS_COMMAND, "--bootstrap-server", gateway.bootstrap, *arguments),
        )
        output = result.stdout
        for name in ("listeners", "advertised.listeners", "controller.quorum.voters"):
            self.assertRegex(output, rf"(?m)^\s*{re.escape(name)}=null sensitive=true")
        ports = self.secured.forbidden_ports
        for host, port in re.findall(r"(127\.0\.0\.1|localhost):(\d+)", output):
            self.assertNotIn(int(port), ports, f"{host}:{port} in kafka-configs output")
        self.assertIn("broker.rack=a", output)
        # Everything else is as the broker said it.
        self.assertEqual(
            len(re.findall(r"(?m)^\s+\S+=", output)),
            len(re.findall(r"(?m)^\s+\S+=", direct.stdout)),
        )

    def wait_for_line(self, gateway: GatewayProcess, text: str, timeout: float = 60) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for line in gateway.log_since_start().splitlines():
                if text in line:
                    self.assertNotIn("Traceback", gateway.log_since_start())
                    return line
            time.sleep(0.5)
        raise AssertionError(f"no {text!r} line in:\n{gateway.log_tail()}")
