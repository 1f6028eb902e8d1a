"""
Server TLS over loopback, with certificates the tests make: the handshake,
the mTLS principal, REQUIRE without a certificate refused and logged once,
and a renewed key store served to a new connection while an old one stays.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from twisted.internet import reactor as global_reactor
from twisted.internet.defer import Deferred, inlineCallbacks
from twisted.internet.endpoints import SSL4ClientEndpoint
from twisted.internet.interfaces import IHandshakeListener, IReactorTCP, IReactorTime
from twisted.internet.protocol import Factory, Protocol, ServerFactory, connectionDone
from twisted.internet.ssl import Certificate, PrivateCertificate, optionsForClientTLS
from twisted.internet.task import Clock
from twisted.python.failure import Failure
from twisted.test.proto_helpers import StringTransport
from twisted.trial.unittest import SynchronousTestCase, TestCase
from zope.interface import implementer

from kgateway.security.handshake import (
    HandshakeFailures,
    HandshakeGate,
    HandshakeGateFactory,
    peer_principal,
    tls_factory,
)
from kgateway.security.server_config import ServerTls, StoreFile
from kgateway.security.server_tls import ServerContexts
from tests.certificates import Authority, Issued, write_pem_key_store
from tests.unit.relay.fakes import catch_logs

reactor: Any = global_reactor


class Echo(Protocol):
    """The listener's side: answers each read with the principal it was made with."""

    def connectionMade(self) -> None:
        self.principal = peer_principal(self.transport)
        self.factory.made.append(self)

    def dataReceived(self, data: bytes) -> None:
        assert self.transport is not None
        self.transport.write(data + b"|" + (self.principal or "-").encode())


class EchoFactory(ServerFactory):
    protocol = Echo

    def __init__(self) -> None:
        self.made: list[Echo] = []


@implementer(IHandshakeListener)
class Client(Protocol):
    """A TLS client that records the server's certificate and what comes back."""

    def __init__(self) -> None:
        self.handshaken: Deferred[str] = Deferred()
        self.closed: Deferred[None] = Deferred()
        self.answers: list[Deferred[bytes]] = []

    def connectionMade(self) -> None:
        assert self.transport is not None
        self.local_port = self.transport.getHost().port  # type: ignore[attr-defined]

    def handshakeCompleted(self) -> None:
        certificate = self.transport.getPeerCertificate()  # type: ignore[union-attr]
        self.handshaken.callback(certificate.to_cryptography().subject.rfc4514_string())

    def ask(self, data: bytes) -> Deferred[bytes]:
        answer: Deferred[bytes] = Deferred()
        self.answers.append(answer)
        assert self.transport is not None
        self.transport.write(data)
        return answer

    @inlineCallbacks
    def refused(self) -> Any:
        """Try the handshake and a request, which the server refuses; until the close."""
        try:
            yield self.handshaken
            yield self.ask(b"who")
        except Exception:
            pass
        yield self.closed

    def dataReceived(self, data: bytes) -> None:
        if self.answers:
            self.answers.pop(0).callback(data)

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        for answer in self.answers:
            answer.errback(reason)
        self.answers = []
        if not self.handshaken.called:
            self.handshaken.errback(reason)
        self.closed.callback(None)


class Gateway:
    """A TLS listener on 127.0.0.1 in front of an Echo factory, for one test."""

    def __init__(self, case: TestCase, client_auth: str, interval: float = 0.0) -> None:
        self.directory = Path(case.mktemp())
        self.directory.mkdir()
        self.authority = Authority()
        self.key_store = self.directory / "gateway.pem"
        self.serve(self.authority.issue("gateway-1"))
        tls = ServerTls(
            StoreFile(str(self.key_store), "PEM"),
            trust_store=StoreFile(str(self.trust_file()), "PEM"),
            update_interval_seconds=interval,
        )
        self.contexts = ServerContexts(tls, {client_auth})
        self.echo = EchoFactory()
        self.failures = HandshakeFailures(reactor)
        factory = tls_factory(
            self.echo, self.contexts.creator(client_auth), "OUTSIDE", reactor, self.failures
        )
        tcp: IReactorTCP = reactor
        self.port = tcp.listenTCP(0, factory, interface="127.0.0.1")  # type: ignore[arg-type]
        case.addCleanup(self.port.stopListening)
        self.case = case

    def trust_file(self) -> Path:
        path = self.directory / "ca.pem"
        path.write_bytes(self.authority.pem())
        return path

    def serve(self, issued: Issued) -> None:
        """Put a new key store on disk (as a renewal would)."""
        write_pem_key_store(self.key_store, issued, self.authority)

    @inlineCallbacks
    def connect(self, certificate: Issued | None = None) -> Any:
        """A client connection, once connected (not necessarily handshaken)."""
        options = optionsForClientTLS(
            "localhost",
            trustRoot=Certificate.loadPEM(self.authority.pem()),
            clientCertificate=None
            if certificate is None
            else PrivateCertificate.loadPEM(certificate.key_pem() + certificate.certificate_pem()),
        )
        endpoint = SSL4ClientEndpoint(reactor, "127.0.0.1", self.port.getHost().port, options)  # type: ignore[attr-defined]
        client = yield endpoint.connect(Factory.forProtocol(Client))
        self.case.addCleanup(lambda: _close(client))
        return client


def _close(client: Client) -> Deferred[None] | None:
    if client.closed.called:
        return None
    assert client.transport is not None
    client.transport.abortConnection()  # type: ignore[attr-defined]
    return client.closed


class HandshakeTests(TestCase):
    timeout = 20

    @inlineCallbacks
    def test_handshake_then_the_listener(self) -> Any:
        """Without client auth: the listener's protocol is made after the handshake."""
        gateway = Gateway(self, "NONE")
        client = yield gateway.connect()
        subject = yield client.handshaken
        self.assertEqual(subject, "CN=gateway-1,O=kgateway tests")
        answer = yield client.ask(b"ping")
        self.assertEqual(answer, b"ping|-")
        self.assertEqual(len(gateway.echo.made), 1)

    @inlineCallbacks
    def test_mtls_principal(self) -> Any:
        """REQUIRE with a certificate: its subject is the connection's principal."""
        gateway = Gateway(self, "REQUIRE")
        app = gateway.authority.issue("app-1", hosts=(), server=False)
        client = yield gateway.connect(app)
        yield client.handshaken
        answer = yield client.ask(b"who")
        self.assertEqual(answer, b"who|CN=app-1,O=kgateway tests")

    @inlineCallbacks
    def test_request_without_a_certificate(self) -> Any:
        """REQUEST: a client without a certificate is served, with no principal."""
        gateway = Gateway(self, "REQUEST")
        client = yield gateway.connect()
        yield client.handshaken
        answer = yield client.ask(b"who")
        self.assertEqual(answer, b"who|-")

    @inlineCallbacks
    def test_require_without_a_certificate_is_refused_and_logged_once(self) -> Any:
        """No listener protocol is made; one line names the client and the reason."""
        logs = catch_logs(self)
        gateway = Gateway(self, "REQUIRE")
        witness = yield gateway.connect(gateway.authority.issue("app-2", hosts=(), server=False))
        yield witness.handshaken
        client = yield gateway.connect()
        yield client.refused()
        self.assertEqual(len(gateway.echo.made), 1)  # the witness only
        self.assertEqual(gateway.failures.total, 1)
        [line] = [line for line in logs() if "failed the TLS handshake" in line]
        self.assertIn(f"client 127.0.0.1:{client.local_port} ", line)
        self.assertIn("listener OUTSIDE", line)
        self.assertIn("certificate", line)
        # The other connection did not notice.
        answer = yield witness.ask(b"still")
        self.assertEqual(answer, b"still|CN=app-2,O=kgateway tests")

    @inlineCallbacks
    def test_untrusted_client_certificate_refused(self) -> Any:
        gateway = Gateway(self, "REQUEST")
        stranger = Authority("someone else's CA").issue("intruder", hosts=(), server=False)
        client = yield gateway.connect(stranger)
        yield client.refused()
        self.assertEqual(gateway.echo.made, [])
        self.assertEqual(gateway.failures.total, 1)

    @inlineCallbacks
    def test_renewal_serves_new_connections_and_keeps_old_ones(self) -> Any:
        logs = catch_logs(self)
        gateway = Gateway(self, "NONE")
        old = yield gateway.connect()
        self.assertEqual((yield old.handshaken), "CN=gateway-1,O=kgateway tests")
        self.assertFalse(gateway.contexts.check())  # nothing new on disk

        gateway.serve(gateway.authority.issue("gateway-2"))
        self.assertTrue(gateway.contexts.check())
        new = yield gateway.connect()
        self.assertEqual((yield new.handshaken), "CN=gateway-2,O=kgateway tests")
        # The old connection goes on with its certificate.
        self.assertEqual((yield old.ask(b"old")), b"old|-")
        self.assertEqual(gateway.contexts.renewals, 1)
        self.assertTrue(any("TLS key store renewed" in line for line in logs()))

    @inlineCallbacks
    def test_a_broken_renewal_is_logged_once_and_the_old_one_kept(self) -> Any:
        logs = catch_logs(self)
        gateway = Gateway(self, "NONE")
        gateway.key_store.write_bytes(b"-----BEGIN half a file")
        self.assertFalse(gateway.contexts.check())
        self.assertFalse(gateway.contexts.check())
        [line] = [line for line in logs() if "cannot be used" in line]
        self.assertIn("GATEWAY_SSL_KEY_STORE_PATH", line)
        self.assertIn("still serving the certificate CN=gateway-1,O=kgateway tests", line)
        client = yield gateway.connect()
        self.assertEqual((yield client.handshaken), "CN=gateway-1,O=kgateway tests")
        # An expired certificate is refused as a renewal too.
        expired = gateway.authority.issue("gateway-3", starts_in_days=-10, valid_days=5)
        gateway.serve(expired)
        self.assertFalse(gateway.contexts.check())
        self.assertTrue(any("expired on" in line for line in logs()))


class GateTests(SynchronousTestCase):
    """The gate alone: a silent client is cut off after the handshake timeout."""

    def test_silence_times_out(self) -> None:
        logs = catch_logs(self)
        clock = Clock()
        failures = HandshakeFailures(clock)
        gates = HandshakeGateFactory(EchoFactory(), "OUTSIDE", clock, failures, 10.0)
        gate = gates.buildProtocol(None)
        assert isinstance(gate, HandshakeGate)
        transport = StringTransport()
        aborted: list[bool] = []
        transport.abortConnection = lambda: aborted.append(True)  # type: ignore[method-assign]
        gate.makeConnection(transport)
        clock.advance(9.9)
        self.assertEqual(aborted, [])
        clock.advance(0.1)
        self.assertEqual(aborted, [True])
        gate.connectionLost(Failure(Exception("aborted")))
        [line] = [line for line in logs() if "failed the TLS handshake" in line]
        self.assertIn("no handshake within 10s", line)
        self.assertEqual(clock.getDelayedCalls(), [])

    def test_a_port_probe_is_not_logged(self) -> None:
        """A peer that closes without a word (a health check) is no failure."""
        from twisted.internet.error import ConnectionDone

        logs = catch_logs(self)
        clock = Clock()
        gates = HandshakeGateFactory(EchoFactory(), "OUTSIDE", clock, HandshakeFailures(clock))
        gate = gates.buildProtocol(None)
        gate.makeConnection(StringTransport())
        gate.connectionLost(Failure(ConnectionDone()))
        self.assertEqual([line for line in logs() if "TLS" in line], [])


class RateLimitTests(SynchronousTestCase):
    def test_a_few_lines_a_minute(self) -> None:
        logs = catch_logs(self)
        clock: IReactorTime = Clock()
        failures = HandshakeFailures(clock, burst=3, window=60.0)
        for n in range(10):
            failures.failed("OUTSIDE", f"10.0.0.{n}:5000", "no certificate")
        self.assertEqual(len([line for line in logs() if "failed the TLS" in line]), 3)
        clock.advance(60)  # type: ignore[attr-defined]
        failures.failed("OUTSIDE", "10.0.0.99:5000", "no certificate")
        lines = logs()
        self.assertIn("7 more TLS handshake failures were not logged in the last 60.0s", lines[-2])
        self.assertIn("10.0.0.99:5000", lines[-1])
        self.assertEqual(failures.total, 11)
