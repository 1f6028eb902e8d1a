"""
The node's TLS to the brokers: its own connections and every client's broker leg.

L{BrokerTls} is what the C{KAFKA_SSL_*} settings give (the CA certificates
to trust, the node's own key store for mTLS, whether the broker's host name
is checked); L{BrokerTls.wrap} puts TLS around a connection to one broker
(Twisted's C{wrapClientTLS} with C{optionsForClientTLS}: pyOpenSSL, and
service_identity for the host name), sending the broker's host as SNI.
L{describe_tls_failure} turns OpenSSL's account of a failed handshake into
a line that names the setting to fix.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from cryptography import x509
from OpenSSL import SSL
from OpenSSL.crypto import X509, PKey
from service_identity import VerificationError
from twisted.internet.abstract import isIPAddress, isIPv6Address
from twisted.internet.endpoints import wrapClientTLS
from twisted.internet.interfaces import IOpenSSLClientConnectionCreator, IStreamClientEndpoint
from twisted.internet.ssl import (
    Certificate,
    CertificateOptions,
    KeyPair,
    PrivateCertificate,
    optionsForClientTLS,
    platformTrust,
    trustRootFromCertificates,
)
from twisted.python.failure import Failure
from zope.interface import implementer

from kgateway.net import HostPort
from kgateway.security.stores import KeyStore, StoreSettings

#: How many brokers' TLS options are kept (one per host name; clusters have far fewer).
MAX_HOSTS = 1024


@dataclass(frozen=True)
class TlsNames:
    """The settings TLS to the brokers is made from, for the messages about it."""

    truststore: StoreSettings
    keystore: StoreSettings
    identification: str = "KAFKA_SSL_ENDPOINT_IDENTIFICATION_ALGORITHM"
    protocol: str = "KAFKA_SECURITY_PROTOCOL"


@dataclass(frozen=True, eq=False)
class BrokerTls:
    """How the node speaks TLS to the brokers."""

    names: TlsNames
    #: The CA certificates a broker's certificate must chain to; None: the system's.
    trust: tuple[x509.Certificate, ...] | None = None
    #: Where the trust came from (for messages), None with the system's.
    trust_location: str | None = None
    #: The node's own certificate, for brokers that ask for one (mTLS).
    key_store: KeyStore | None = None
    #: Whether the broker's host name must be in its certificate (Kafka's C{https}).
    verify_host: bool = True
    _creators: dict[str, IOpenSSLClientConnectionCreator] = field(default_factory=dict, repr=False)

    def creator(self, host: str) -> IOpenSSLClientConnectionCreator:
        """The TLS options for a connection to C{host} (kept, so each context is made once)."""
        creator = self._creators.get(host)
        if creator is None:
            if len(self._creators) >= MAX_HOSTS:
                self._creators.clear()
            creator = self._creators[host] = self._make_creator(host)
        return creator

    def wrap(self, address: HostPort, endpoint: IStreamClientEndpoint) -> IStreamClientEndpoint:
        """C{endpoint} (a TCP connection to C{address}) with TLS on top."""
        return wrapClientTLS(self.creator(address.host), endpoint)

    def _make_creator(self, host: str) -> IOpenSSLClientConnectionCreator:
        trust = (
            platformTrust()
            if self.trust is None
            else trustRootFromCertificates([_certificate(c) for c in self.trust])
        )
        extra: dict[str, Any] = {}
        client = None
        if self.key_store is not None:
            chain = [X509.from_cryptography(c) for c in self.key_store.chain]
            client = PrivateCertificate.fromCertificateAndKeyPair(
                Certificate(chain[0]),
                KeyPair(PKey.from_cryptography_key(self.key_store.private_key)),  # type: ignore[arg-type]
            )
            extra["extraCertChain"] = chain[1:]
        if self.verify_host:
            return optionsForClientTLS(
                host, trustRoot=trust, clientCertificate=client, extraCertificateOptions=extra
            )
        if client is not None:
            extra.update(privateKey=client.privateKey.original, certificate=client.original)
        return _ServerNameOnly(CertificateOptions(trustRoot=trust, **extra), host)

    def refusal_hint(self) -> str:
        """What to check when a broker refuses the node's TLS (its certificate, or none)."""
        location = self.names.keystore.location
        if self.key_store is None:
            return f"does the broker require a client certificate? set {location}"
        return f"is the certificate in {location} signed by a CA the broker trusts?"


def _certificate(certificate: x509.Certificate) -> Certificate:
    return Certificate(X509.from_cryptography(certificate))


@implementer(IOpenSSLClientConnectionCreator)
class _ServerNameOnly:
    """The chain is verified, the host name is not; SNI is still sent, as Kafka's clients do."""

    def __init__(self, options: CertificateOptions, host: str) -> None:
        self._options = options
        self._server_name = (
            None if isIPAddress(host) or isIPv6Address(host) else host.encode("idna")
        )

    def clientConnectionForTLS(self, tlsProtocol: Any) -> SSL.Connection:
        connection = self._options.clientConnectionForTLS(tlsProtocol)
        if self._server_name is not None:
            connection.set_tlsext_host_name(self._server_name)
        return connection


def tls_reasons(failure: Failure) -> list[str]:
    """OpenSSL's reasons in a failure (empty when it is not a TLS error)."""
    error = failure.value
    if not isinstance(error, SSL.Error):
        return []
    reasons = []
    for item in error.args[0] if error.args and isinstance(error.args[0], list) else []:
        if isinstance(item, tuple) and item:
            reasons.append(str(item[-1]))
    return reasons or [str(error)]


def is_tls_failure(failure: Failure) -> bool:
    """Whether a connection was lost to TLS (a handshake, an alert, a host name check)."""
    return bool(tls_reasons(failure)) or failure.check(VerificationError) is not None


def describe_tls_failure(failure: Failure, address: HostPort, tls: BrokerTls) -> str:
    """
    One line on why TLS with the broker at C{address} failed, and what to set
    (without the address: whoever logs it names the broker).
    """
    names = tls.names
    if failure.check(VerificationError):
        return (
            f"TLS: the broker's certificate is not for {address.host!r}: "
            f"list that host in its subjectAltName, or set {names.identification}= (empty) "
            "to skip the host name check"
        )
    reasons = tls_reasons(failure)
    said = ", ".join(reasons)
    lowered = said.lower()
    if "certificate verify failed" in lowered:
        if tls.trust_location is None:
            source = f"a CA the system trusts; set {names.truststore.location} to the CA file"
        else:
            source = f"a CA in {names.truststore.location}={tls.trust_location!r}"
        return (
            "TLS: certificate verify failed: the broker's certificate is not "
            f"signed by {source} (or it has expired)"
        )
    if any(
        word in lowered
        for word in ("certificate required", "bad certificate", "unknown ca", "handshake failure")
    ):
        return f"TLS: the broker refused the handshake ({said}): {tls.refusal_hint()}"
    if any(word in lowered for word in ("wrong version number", "packet length", "record layer")):
        return f"TLS failed ({said}): is it a TLS listener? check {names.protocol} and the port"
    return f"TLS failed: {said}"
