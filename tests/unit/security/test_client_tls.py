"""
TLS to a broker through L{KafkaLink.open} and the node's connector, over
real loopback sockets: a fake broker behind Twisted's TLS with certificates
the test makes, the node's side built from the settings as at start.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from OpenSSL import SSL
from OpenSSL.crypto import X509, PKey
from twisted.internet import reactor as global_reactor
from twisted.internet.defer import Deferred, DeferredList, gatherResults
from twisted.internet.interfaces import IListeningPort
from twisted.internet.protocol import Factory, Protocol
from twisted.internet.ssl import Certificate, CertificateOptions
from twisted.trial.unittest import TestCase

from kgateway.cluster.brokers import fetch_brokers
from kgateway.cluster.link import KafkaLink, LinkError
from kgateway.config import Settings
from kgateway.net import HostPort, tcp_connector
from kgateway.security.client_tls import BrokerTls
from tests.unit.cluster.fake_topic_broker import FakeTopicBroker
from tests.unit.security.certificates import CertificateAuthority, Issued

CA = CertificateAuthority.make()
OTHER_CA = CertificateAuthority.make("another CA")
BROKER = CA.issue("broker", ("localhost", "127.0.0.1"))
ELSEWHERE = CA.issue("broker", ("broker.example",))
CLIENT = CA.issue("gateway", ())
reactor: Any = global_reactor


class TlsTestCase(TestCase):
    def setUp(self) -> None:
        self.folder = Path(self.mktemp())
        self.folder.mkdir()
        self.broker = FakeTopicBroker()
        self.server_names: list[bytes | None] = []
        self.client_subjects: list[str] = []

    def listen(self, issued: Issued = BROKER, require_client: bool = False) -> int:
        """A fake broker with TLS on a loopback port."""
        factory: Factory = self.broker.factory()
        options = CertificateOptions(
            privateKey=PKey.from_cryptography_key(issued.key),
            certificate=X509.from_cryptography(issued.certificate),
            extraCertChain=[X509.from_cryptography(c) for c in issued.chain],
            verify=require_client,
            caCerts=[X509.from_cryptography(CA.certificate)] if require_client else None,
            requireCertificate=require_client,
        )
        context = options.getContext()
        context.set_tlsext_servername_callback(
            lambda connection: self.server_names.append(connection.get_servername())
        )
        port: IListeningPort = reactor.listenSSL(0, factory, options, interface="127.0.0.1")
        self.addCleanup(self.close_all, port)
        return int(port.getHost().port)  # type: ignore[attr-defined]

    async def _close_all(self, port: IListeningPort) -> None:
        for server in self.broker.servers:
            if server.transport is not None and not server.lost.called:
                server.transport.loseConnection()
        await DeferredList([server.lost for server in self.broker.servers])
        stopped = port.stopListening()
        if stopped is not None:
            await stopped

    def close_all(self, port: IListeningPort) -> Deferred[None]:
        return Deferred.fromCoroutine(self._close_all(port))

    def tls(self, environ: Mapping[str, str]) -> BrokerTls:
        settings = Settings.load(
            {
                "KAFKA_BOOTSTRAP_SERVERS": "localhost:1",
                "KAFKA_SECURITY_PROTOCOL": "SSL",
                # what clients speak is not this test's business (unset: SSL, needing a key store)
                "GATEWAY_SECURITY_PROTOCOL": "PLAINTEXT",
                **environ,
            },
            {},
        )
        tls = settings.broker_security.tls
        assert tls is not None
        return tls

    def trusting(self, ca: CertificateAuthority = CA, **environ: str) -> BrokerTls:
        return self.tls(
            {"KAFKA_SSL_TRUSTSTORE_LOCATION": str(ca.write_pem(self.folder / "ca.pem")), **environ}
        )

    def link(self, tls: BrokerTls) -> KafkaLink:
        connect = tcp_connector(reactor, 5.0, tls.wrap)
        return KafkaLink((), connect, reactor, 5.0, tls=tls)

    async def brokers(self, tls: BrokerTls, address: HostPort) -> list[Any]:
        return await fetch_brokers(self.link(tls), address)

    async def refused(self, tls: BrokerTls, address: HostPort) -> str:
        try:
            await self.link(tls).open(address)
        except LinkError as e:
            return str(e)
        raise AssertionError("the link opened")


class ServerCertificateTests(TlsTestCase):
    def test_verified_with_sni(self) -> Deferred[None]:
        """The CA is trusted, the host is in the certificate, and SNI names it."""

        async def check() -> None:
            port = self.listen()
            found = await self.brokers(self.trusting(), HostPort("localhost", port))
            self.assertEqual([b.node_id for b in found], [1])
            self.assertEqual(self.server_names, [b"localhost"])

        return Deferred.fromCoroutine(check())

    def test_ip_address_without_sni(self) -> Deferred[None]:
        """An IP address is checked against the certificate's IP names, and sent no SNI."""

        async def check() -> None:
            port = self.listen()
            found = await self.brokers(self.trusting(), HostPort("127.0.0.1", port))
            self.assertEqual([b.node_id for b in found], [1])
            self.assertEqual(self.server_names, [None])

        return Deferred.fromCoroutine(check())

    def test_untrusted_ca(self) -> Deferred[None]:
        async def check() -> None:
            port = self.listen()
            tls = self.trusting(OTHER_CA)
            message = await self.refused(tls, HostPort("localhost", port))
            self.assertEqual(
                message,
                "TLS: certificate verify failed: the broker's certificate is not signed by a "
                f"CA in KAFKA_SSL_TRUSTSTORE_LOCATION={str(self.folder / 'ca.pem')!r} (or it "
                "has expired)",
            )

        return Deferred.fromCoroutine(check())

    def test_system_trust_does_not_know_a_private_ca(self) -> Deferred[None]:
        async def check() -> None:
            port = self.listen()
            message = await self.refused(self.tls({}), HostPort("localhost", port))
            self.assertEqual(
                message,
                "TLS: certificate verify failed: the broker's certificate is not signed by a "
                "CA the system trusts; set KAFKA_SSL_TRUSTSTORE_LOCATION to the CA file (or "
                "it has expired)",
            )

        return Deferred.fromCoroutine(check())

    def test_host_not_in_certificate(self) -> Deferred[None]:
        async def check() -> None:
            port = self.listen(ELSEWHERE)
            message = await self.refused(self.trusting(), HostPort("localhost", port))
            self.assertEqual(
                message,
                "TLS: the broker's certificate is not for 'localhost': list that host in its "
                "subjectAltName, or set KAFKA_SSL_ENDPOINT_IDENTIFICATION_ALGORITHM= (empty) "
                "to skip the host name check",
            )

        return Deferred.fromCoroutine(check())

    def test_host_check_off(self) -> Deferred[None]:
        """Without the host name check the chain is still checked, and SNI still sent."""

        async def check() -> None:
            port = self.listen(ELSEWHERE)
            tls = self.trusting(KAFKA_SSL_ENDPOINT_IDENTIFICATION_ALGORITHM="")
            found = await self.brokers(tls, HostPort("localhost", port))
            self.assertEqual([b.node_id for b in found], [1])
            self.assertEqual(self.server_names, [b"localhost"])
            untrusted = self.trusting(OTHER_CA, KAFKA_SSL_ENDPOINT_IDENTIFICATION_ALGORITHM="")
            message = await self.refused(untrusted, HostPort("localhost", port))
            self.assertIn("certificate verify failed", message)

        return Deferred.fromCoroutine(check())

    def test_not_a_tls_listener(self) -> Deferred[None]:
        """A plaintext Kafka port answers the ClientHello with something that is not TLS."""

        class Plain(Protocol):
            def dataReceived(self, data: bytes) -> None:
                assert self.transport is not None
                self.transport.write(b"\x00\x00\x00\x0cnot a TLS answer")
                self.transport.loseConnection()

        async def check() -> None:
            port = reactor.listenTCP(0, Factory.forProtocol(Plain), interface="127.0.0.1")
            self.addCleanup(port.stopListening)
            message = await self.refused(
                self.trusting(), HostPort("localhost", port.getHost().port)
            )
            self.assertTrue(message.startswith("TLS failed ("), message)
            self.assertTrue(
                message.endswith(
                    "): is it a TLS listener? check KAFKA_SECURITY_PROTOCOL and the port"
                ),
                message,
            )

        return Deferred.fromCoroutine(check())


class ClientCertificateTests(TlsTestCase):
    def test_mtls(self) -> Deferred[None]:
        async def check() -> None:
            port = self.listen(require_client=True)
            store = CLIENT.write_pkcs12(self.folder / "me.p12", "pw")
            tls = self.trusting(
                KAFKA_SSL_KEYSTORE_LOCATION=str(store), KAFKA_SSL_KEYSTORE_PASSWORD="pw"
            )
            found = await self.brokers(tls, HostPort("localhost", port))
            self.assertEqual([b.node_id for b in found], [1])
            (server,) = self.broker.servers
            peer = Certificate.peerFromTransport(server.transport)
            self.assertEqual(peer.getSubject().commonName, b"gateway")

        return Deferred.fromCoroutine(check())

    def test_certificate_required(self) -> Deferred[None]:
        async def check() -> None:
            port = self.listen(require_client=True)
            message = await self.refused(self.trusting(), HostPort("localhost", port))
            self.assertTrue(message.startswith("TLS: the broker refused the handshake ("), message)
            self.assertTrue(
                message.endswith(
                    "): does the broker require a client certificate? set "
                    "KAFKA_SSL_KEYSTORE_LOCATION"
                ),
                message,
            )

        return Deferred.fromCoroutine(check())

    def test_certificate_from_another_ca(self) -> Deferred[None]:
        async def check() -> None:
            port = self.listen(require_client=True)
            stranger = OTHER_CA.issue("stranger", ())
            store = stranger.write_pem(self.folder / "stranger.pem")
            tls = self.trusting(KAFKA_SSL_KEYSTORE_LOCATION=str(store))
            message = await self.refused(tls, HostPort("localhost", port))
            self.assertTrue(
                message.endswith(
                    "is the certificate in KAFKA_SSL_KEYSTORE_LOCATION signed by a CA the "
                    "broker trusts?"
                ),
                message,
            )

        return Deferred.fromCoroutine(check())


class ConnectorTests(TlsTestCase):
    def test_the_relay_connector_wraps_tls(self) -> Deferred[None]:
        """The connector the relay's broker legs use speaks TLS with the same options."""

        async def check() -> None:
            port = self.listen()
            tls = self.trusting()
            connect = tcp_connector(reactor, 5.0, tls.wrap)
            handshakes: list[bool] = []

            class Leg(Protocol):
                def handshakeCompleted(self) -> None:
                    handshakes.append(True)
                    assert self.transport is not None
                    self.transport.loseConnection()

            from twisted.internet.interfaces import IHandshakeListener
            from zope.interface import directlyProvides

            factory = Factory.forProtocol(Leg)
            leg = await connect(HostPort("localhost", port), factory)  # type: ignore[arg-type]
            directlyProvides(leg, IHandshakeListener)
            await gatherResults([s.lost for s in self.broker.servers])
            self.assertEqual(self.server_names, [b"localhost"])
            self.assertIsInstance(leg.transport.getHandle(), SSL.Connection)  # type: ignore[union-attr]

        return Deferred.fromCoroutine(check())
