"""
Where the admin API listens, when it refuses to start, and HTTPS for real
(a self-signed certificate, and the CLI trusting it with --cacert).
"""

from __future__ import annotations

import datetime
import io
import ipaddress
from dataclasses import replace
from pathlib import Path
from typing import Any, cast

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from prometheus_client import CollectorRegistry
from twisted.internet.address import IPv4Address
from twisted.internet.defer import ensureDeferred
from twisted.internet.error import CannotListenError
from twisted.trial.unittest import SynchronousTestCase, TestCase

from kgateway.api import cli
from kgateway.api.auth import BasicAuth, OpenOnLoopback
from kgateway.api.server import AdminApiService, endpoint_description
from kgateway.api.status import NodeStatus
from kgateway.config import SETTINGS, HttpTls, Settings
from kgateway.interfaces import BrokerInfo, INodeReactor
from kgateway.net import HostPort
from tests.unit.node.reactors import NodeMemoryReactor
from tests.unit.node.test_service import make_node
from tests.unit.relay.fakes import catch_logs

from .fakes import AUTH, USERS, make_api_node


def self_signed(directory: Path) -> tuple[str, str]:
    """A key and a certificate for 127.0.0.1 and localhost, as PEM files."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "kgateway test")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    key_path, cert_path = directory / "key.pem", directory / "cert.pem"
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return str(key_path), str(cert_path)


def settings(**overrides: Any) -> Settings:
    return Settings(bootstrap_servers=(HostPort("boot", 9092),), **overrides)


class EndpointTests(SynchronousTestCase):
    def test_tcp(self) -> None:
        self.assertEqual(endpoint_description(settings()), "tcp:8888:interface=0.0.0.0")
        self.assertEqual(
            endpoint_description(settings(http_port=9000, http_bind_host="::1")),
            r"tcp:9000:interface=\:\:1",
        )

    def test_ssl(self) -> None:
        tls = HttpTls(key_path="/etc/k:1/key.pem", cert_path="/etc/cert.pem")
        self.assertEqual(
            endpoint_description(settings(http_tls=tls)),
            r"ssl:8888:interface=0.0.0.0:privateKey=/etc/k\:1/key.pem:certKey=/etc/cert.pem",
        )


class RefusalTests(SynchronousTestCase):
    """Without users the API is refused, in one line; the proxy runs on."""

    def test_no_users_no_api_proxy_runs(self) -> None:
        logs = catch_logs(self)
        node, reactor, _, _ = make_node([BrokerInfo(1, "k", 1)])
        node.startService()
        self.addCleanup(node.stopService)
        self.assertIsNone(node.admin_api)
        self.assertEqual(len(node.ports), 4)  # the Kafka ports listen as usual
        self.assertNotIn(8888, [port for port, *_ in reactor.tcpServers])
        [line] = [line for line in logs() if "Admin API" in line]
        self.assertEqual(
            line,
            "Admin API not started: no admin API users: set GATEWAY_ADMIN_API_USERS to a JSON "
            'list of {"username", "password", "admin"} (or GATEWAY_ADMIN_API_OPEN_ON_LOOPBACK='
            "true with a loopback GATEWAY_HTTP_BIND_HOST)",
        )

    def test_open_flag_needs_a_loopback_address(self) -> None:
        refused = settings(admin_api_open_on_loopback=True, http_bind_host="0.0.0.0")
        self.assertEqual(
            refused.admin_api_refusal,
            "GATEWAY_ADMIN_API_OPEN_ON_LOOPBACK=true but GATEWAY_HTTP_BIND_HOST='0.0.0.0' is "
            "not a loopback address: bind to 127.0.0.1 or ::1, or set GATEWAY_ADMIN_API_USERS",
        )
        for host in ("127.0.0.1", "127.1.2.3", "::1", "localhost"):
            allowed = settings(admin_api_open_on_loopback=True, http_bind_host=host)
            self.assertIsNone(allowed.admin_api_refusal, host)

    def test_users_win_over_the_open_flag(self) -> None:
        both = settings(admin_api_users=USERS, admin_api_open_on_loopback=True)
        self.assertIsNone(both.admin_api_refusal)

    def test_open_on_loopback_serves_without_credentials(self) -> None:
        api = make_api_node(
            self, admin_api_users=(), admin_api_open_on_loopback=True, http_bind_host="127.0.0.1"
        )
        assert api.node.admin_api is not None
        self.assertIsInstance(api.node.admin_api.site.resource.guard, OpenOnLoopback)
        self.assertEqual(self.successResultOf(api.get("/api/v1/cluster", auth=None)).code, 200)


class ListeningTests(SynchronousTestCase):
    def test_listens_at_start_before_kafka_answers(self) -> None:
        api = make_api_node(self, brokers_known=False, http_port=9100, http_bind_host="10.1.1.1")
        [(port, site, _, interface)] = api.reactor.tcpServers
        self.assertEqual((port, interface), (9100, "10.1.1.1"))
        assert api.node.admin_api is not None
        self.assertIs(site, api.node.admin_api.site)
        self.assertIsInstance(api.node.admin_api.site.resource.guard, BasicAuth)
        self.successResultOf(api.node.admin_api.listening)

    def test_stops_listening_last(self) -> None:
        api = make_api_node(self)
        http = next(p for p in api.reactor.ports if p.port == 8888)
        self.successResultOf(api.node.stopService())
        self.assertTrue(http.stopped)

    def test_listens_once_when_twistd_starts_it_privileged_first(self) -> None:
        """twistd calls privilegedStartService, then startService: one port, one log line."""
        logs = catch_logs(self)
        reactor = NodeMemoryReactor()
        service = AdminApiService(
            settings(admin_api_users=USERS),
            NodeStatus(settings(), None),  # type: ignore[arg-type]
            CollectorRegistry(),
            reactor,
        )
        service.privilegedStartService()
        service.startService()
        self.assertEqual([port for port, *_ in reactor.tcpServers], [8888])
        self.assertIsNotNone(self.successResultOf(service.listening))
        self.assertEqual(len([line for line in logs() if line.startswith("Admin API on")]), 1)
        self.successResultOf(service.stopService())
        self.assertIsNone(service.port)
        self.assertFalse(service.running)

    def test_cannot_listen_stops_the_node(self) -> None:
        class Busy(NodeMemoryReactor):
            def listenTCP(self, port: int, *args: Any, **kwargs: Any) -> Any:
                raise CannotListenError("0.0.0.0", port, OSError(98, "Address already in use"))

        logs = catch_logs(self)
        reactor = Busy()
        stopped: list[bool] = []
        reactor.stop = lambda: stopped.append(True)  # type: ignore[method-assign]
        service = AdminApiService(
            settings(admin_api_users=USERS),
            NodeStatus(settings(), None),  # type: ignore[arg-type]
            None,  # type: ignore[arg-type]
            reactor,
        )
        service.startService()
        self.assertIsNone(service.port)
        reactor.advance(0)
        self.assertEqual(stopped, [True])
        [line] = [line for line in logs() if "admin API" in line]
        self.assertIn("Cannot serve the admin API on http://0.0.0.0:8888/", line)
        self.assertIn("check GATEWAY_HTTP_PORT and GATEWAY_HTTP_BIND_HOST", line)


class HttpsTests(TestCase):
    """A real HTTPS server on the real reactor, and the CLI trusting its certificate."""

    async def test_https_with_the_cli(self) -> None:
        from twisted.internet import reactor

        directory = Path(self.mktemp())
        directory.mkdir(parents=True)
        key, cert = self_signed(directory)
        loaded = Settings.load(
            {
                "KAFKA_BOOTSTRAP_SERVERS": "boot:9092",
                "GATEWAY_HTTP_TLS_KEY": key,
                "GATEWAY_HTTP_TLS_CERT": cert,
                "GATEWAY_HTTP_BIND_HOST": "127.0.0.1",
            },
            {s.option: None for s in SETTINGS},
        )
        self.assertEqual(loaded.http_tls, HttpTls(key, cert))
        api = make_api_node(self, http_tls=loaded.http_tls, http_bind_host="127.0.0.1")
        # The same node's API once more, on the real reactor and any free port.
        service = AdminApiService(
            replace(api.node.settings, http_port=0),
            NodeStatus(api.node.settings, api.node),
            api.registry,
            cast(INodeReactor, reactor),
        )
        service.startService()
        self.addCleanup(service.stopService)
        address = (await service.listening).getHost()
        assert isinstance(address, IPv4Address)
        port = address.port
        out, err = io.StringIO(), io.StringIO()
        code = await ensureDeferred(
            cli.run(
                ["--url", f"https://127.0.0.1:{port}", "--cacert", cert, "--json", "mapping"],
                out=out,
                err=err,
                environ={"KGATEWAY_USER": AUTH[0], "KGATEWAY_PASSWORD": AUTH[1]},
                reactor=reactor,
            )
        )
        self.assertEqual((code, err.getvalue()), (0, ""))
        self.assertIn('"mode": "rack-aware"', out.getvalue())

        # Without trusting the certificate: one line, no traceback.
        out, err = io.StringIO(), io.StringIO()
        code = await ensureDeferred(
            cli.run(
                ["--url", f"https://127.0.0.1:{port}", "status"],
                out=out,
                err=err,
                environ={},
                reactor=reactor,
            )
        )
        self.assertEqual(code, cli.FAILED)
        self.assertTrue(err.getvalue().startswith("kgateway: cannot reach https://127.0.0.1:"))
        self.assertEqual(err.getvalue().count("\n"), 1)
