"""
A TLS listener: the handshake first, then the listener's own connection.

L{tls_factory} wraps a listener's client factory in Twisted's
C{TLSMemoryBIOFactory}, with a L{HandshakeGate} between the two: the
listener's protocol is built only once the TLS handshake has completed, so
it sees a connection whose peer certificate (L{peer_principal}) and server
name (L{server_name}) are known, and a client that fails the handshake (no
certificate where one is required, a certificate nobody trusts, plaintext
on a TLS port, silence) never reaches the relay: no broker connection, no
route, nothing another connection could notice.  It is logged once, with
its address and the reason, through L{HandshakeFailures}, which holds a
stranger's million attempts to a few lines a minute.
"""

from __future__ import annotations

from OpenSSL import SSL
from twisted.internet.error import ConnectionDone, ConnectionLost
from twisted.internet.interfaces import (
    IAddress,
    IDelayedCall,
    IHandshakeListener,
    IOpenSSLServerConnectionCreator,
    IProtocol,
    IReactorTime,
)
from twisted.internet.protocol import Protocol, ServerFactory, connectionDone
from twisted.logger import Logger
from twisted.protocols.tls import TLSMemoryBIOFactory
from twisted.python.failure import Failure
from zope.interface import implementer

log = Logger()

#: How long a client has to finish its TLS handshake before it is cut off.
HANDSHAKE_TIMEOUT_SECONDS = 10.0


def peer_principal(transport: object) -> str | None:
    """
    The subject of the client's certificate, RFC 4514 style as Kafka writes
    principals (C{CN=app-1,OU=eng,O=acme}); None without TLS or a certificate.
    """
    get = getattr(transport, "getPeerCertificate", None)
    certificate = get() if get is not None else None
    if certificate is None:
        return None
    subject: str = certificate.to_cryptography().subject.rfc4514_string()
    return subject


def server_name(transport: object) -> str | None:
    """The host name the client asked for in its ClientHello (SNI), if any."""
    handle = getattr(transport, "getHandle", None)
    connection = handle() if handle is not None else None
    name = connection.get_servername() if isinstance(connection, SSL.Connection) else None
    return name.decode("ascii", "replace") if name else None


def handshake_reason(reason: Failure) -> str | None:
    """
    Why a handshake failed, in OpenSSL's words; None for a peer that closed
    without a word (a port probe: a load balancer's health check, a scanner).
    """
    error = reason.value
    if isinstance(error, SSL.Error):
        parts = []
        for entry in error.args[0] if error.args and isinstance(error.args[0], list) else []:
            text = entry[-1] if isinstance(entry, tuple) and entry else entry
            if text and str(text) not in parts:
                parts.append(str(text))
        return "; ".join(parts) or type(error).__name__
    if isinstance(error, ConnectionDone | ConnectionLost):
        return None
    return reason.getErrorMessage()


class HandshakeFailures:
    """
    Logs failed handshakes, each once with its address and reason: at most
    C{burst} lines each C{window} seconds, and a count of the ones left out.
    """

    def __init__(self, clock: IReactorTime, burst: int = 20, window: float = 60.0) -> None:
        self._clock = clock
        self._burst = burst
        self._window = window
        self._started = -window
        self._logged = 0
        self._left_out = 0
        #: Every failure seen (for tests and metrics).
        self.total = 0

    def failed(self, listener: str, peer: str, reason: str) -> None:
        """One client failed its handshake on C{listener}."""
        self.total += 1
        now = self._clock.seconds()
        if now - self._started >= self._window:
            if self._left_out:
                log.warn(
                    "{count} more TLS handshake failures were not logged in the last {window}s",
                    count=self._left_out,
                    window=self._window,
                )
            self._started, self._logged, self._left_out = now, 0, 0
        if self._logged >= self._burst:
            self._left_out += 1
            return
        self._logged += 1
        log.warn(
            "client {peer} failed the TLS handshake on listener {listener}: {reason}",
            peer=peer,
            listener=listener,
            reason=reason,
        )


@implementer(IHandshakeListener)
class HandshakeGate(Protocol):
    """Holds a TLS connection until its handshake completes, then hands it to the listener."""

    def __init__(self, factory: HandshakeGateFactory, addr: IAddress | None) -> None:
        self._factory = factory
        self._addr = addr
        self._inner: IProtocol | None = None
        self._timeout: IDelayedCall | None = None
        self._timed_out = False

    @property
    def peer(self) -> str:
        """The client's address, "host:port"."""
        return f"{getattr(self._addr, 'host', '?')}:{getattr(self._addr, 'port', '?')}"

    def connectionMade(self) -> None:
        self._timeout = self._factory.clock.callLater(self._factory.timeout_seconds, self._too_slow)

    def _too_slow(self) -> None:
        self._timeout = None
        self._timed_out = True
        if self.transport is not None:
            self.transport.abortConnection()  # type: ignore[attr-defined]

    def handshakeCompleted(self) -> None:
        """The client is who its certificate says (if any): the listener takes it from here."""
        if self._timeout is not None:
            self._timeout.cancel()
            self._timeout = None
        transport = self.transport
        assert transport is not None  # a handshake comes on a connection
        inner = self._factory.wrapped.buildProtocol(self._addr)
        if inner is None:
            transport.loseConnection()
            return
        self._inner = inner
        inner.makeConnection(transport)

    def dataReceived(self, data: bytes) -> None:
        if self._inner is not None:
            self._inner.dataReceived(data)

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        if self._timeout is not None:
            self._timeout.cancel()
            self._timeout = None
        if self._inner is not None:
            self._inner.connectionLost(reason)
            return
        failures = self._factory.failures
        if self._timed_out:
            why: str | None = f"no handshake within {self._factory.timeout_seconds:g}s"
        else:
            why = handshake_reason(reason)
        if why is not None:
            failures.failed(self._factory.listener, self.peer, why)


class HandshakeGateFactory(ServerFactory):
    """Builds the gate of each TLS connection of one listener."""

    noisy = False

    def __init__(
        self,
        wrapped: ServerFactory,
        listener: str,
        clock: IReactorTime,
        failures: HandshakeFailures,
        timeout_seconds: float = HANDSHAKE_TIMEOUT_SECONDS,
    ) -> None:
        self.wrapped = wrapped
        self.listener = listener
        self.clock = clock
        self.failures = failures
        self.timeout_seconds = timeout_seconds

    def buildProtocol(self, addr: IAddress | None) -> HandshakeGate:
        return HandshakeGate(self, addr)


def tls_factory(
    wrapped: ServerFactory,
    creator: IOpenSSLServerConnectionCreator,
    listener: str,
    clock: IReactorTime,
    failures: HandshakeFailures,
    timeout_seconds: float = HANDSHAKE_TIMEOUT_SECONDS,
) -> TLSMemoryBIOFactory:
    """A listener's factory behind TLS: C{creator} makes each connection's OpenSSL side."""
    gates = HandshakeGateFactory(wrapped, listener, clock, failures, timeout_seconds)
    return TLSMemoryBIOFactory(creator, False, gates, clock)
