"""
The client connection on a TLS transport (after the handshake gate): it
reads its principal and server name from the transport, carries the
principal in what interceptors see and what the admin API lists, and hands
the server name to its router.
"""

from __future__ import annotations

from typing import Any

from OpenSSL import crypto
from twisted.internet.address import IPv4Address
from twisted.internet.testing import StringTransportWithDisconnection
from twisted.trial.unittest import SynchronousTestCase

from kgateway.relay.client_protocol import ClientConnectionFactory
from kgateway.routing.mapping import FixedHostMapper
from kgateway.routing.ports import PortPlan
from tests.certificates import Authority
from tests.unit.relay.fakes import ClientSide, FakeBrokers, FixedRouter, list_offsets_request


class TlsTransport(StringTransportWithDisconnection):
    """A transport that answers as Twisted's TLS transport does once handshaken."""

    def __init__(self, certificate: Any, server_name: bytes | None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._certificate = certificate
        self._server_name = server_name

    def getPeerCertificate(self) -> Any:
        return self._certificate

    def getHandle(self) -> Any:
        from OpenSSL import SSL

        name = self._server_name

        class Handle(SSL.Connection):
            def __init__(self) -> None:  # no OpenSSL state: only the server name is asked
                pass

            def get_servername(self) -> bytes | None:
                return name

        return Handle()


class TlsIdentityTests(SynchronousTestCase):
    def connect(self, certificate: Any, server_name: bytes | None) -> tuple[Any, FixedRouter]:
        router = FixedRouter(1)
        factory = ClientConnectionFactory(
            router, FixedHostMapper("gw", PortPlan(7000, 3, 0)), FakeBrokers().connect
        )
        transport = TlsTransport(
            certificate,
            server_name,
            hostAddress=IPv4Address("TCP", "10.0.0.1", 7001),
            peerAddress=IPv4Address("TCP", "10.0.0.7", 50000),
        )
        client = ClientSide(factory, transport=transport)
        return client, router

    def test_principal_and_server_name(self) -> None:
        issued = Authority().issue("app-1", hosts=(), server=False)
        client, router = self.connect(
            crypto.X509.from_cryptography(issued.certificate), b"broker-1.gw.example.com"
        )
        client.send(list_offsets_request(1))
        connection = client.wire
        self.assertEqual(connection.view().principal, "CN=app-1,O=kgateway tests")
        self.assertEqual(connection.core.requests.client.principal, "CN=app-1,O=kgateway tests")
        [accepted] = router.asked
        self.assertEqual(self.successResultOf(accepted.server_name), "broker-1.gw.example.com")

    def test_no_certificate_no_principal(self) -> None:
        client, router = self.connect(None, None)
        self.assertIsNone(client.wire.view().principal)
        self.assertIsNone(self.successResultOf(router.asked[0].server_name))
