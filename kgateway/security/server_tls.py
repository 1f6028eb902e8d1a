"""
The TLS contexts a node's listeners serve, and their renewal without a restart.

L{load_material} reads the key store and trust store once and checks what a
person can fix (a key that is not its certificate's, a certificate expired
or not yet valid); L{build_context} turns it into an OpenSSL context for one
client-auth mode.  L{ServerContexts} holds the current context of each mode
and, every C{GATEWAY_SSL_UPDATE_INTERVAL_MS}, reads the stores again: new
content that loads replaces the contexts, so the next connection is served
the new certificate while open ones keep the context they were made with
(OpenSSL counts its references).  New content that does not load is logged
once and the old contexts stay.

L{ServerContexts.creator} is what a listener's C{TLSMemoryBIOFactory} asks
for each connection: an C{IOpenSSLServerConnectionCreator} that reads the
current context then.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from cryptography import x509
from OpenSSL import SSL, crypto
from twisted.application.internet import TimerService
from twisted.internet.interfaces import IOpenSSLServerConnectionCreator, IReactorTime
from twisted.internet.ssl import CertificateOptions
from twisted.logger import Logger
from zope.interface import implementer

from kgateway.security import server_config as names
from kgateway.security.server_config import ServerTls
from kgateway.security.stores import KeyStore, load_key_store, load_trust_store, refuse_expired
from kgateway.setting import ConfigError

log = Logger()


@dataclass(frozen=True)
class ServerMaterial:
    """What the stores held when they were read: the node's key and certificates, the CAs."""

    key: KeyStore
    trusted: tuple[x509.Certificate, ...]


def subject(certificate: x509.Certificate) -> str:
    """A certificate's subject as RFC 4514 writes it (and Kafka's principals): C{CN=a,O=b}."""
    return certificate.subject.rfc4514_string()


def load_material(tls: ServerTls, now: datetime | None = None) -> ServerMaterial:
    """Read and check the stores; a L{ConfigError} line naming the setting and the fix."""
    store = tls.key_store
    # The stores check that the key is its certificate's and that it has not expired.
    key = load_key_store(names.KEY_STORE, store.path, store.type, store.password, tls.key_password)
    moment = now or datetime.now(UTC)
    refuse_expired(names.KEY_STORE, store.path, key, moment)
    where = f"{names.KEY_STORE_PATH}={store.path!r}"
    cert = key.certificate
    if cert.not_valid_before_utc > moment:
        raise ConfigError(
            f"{where}: the certificate ({subject(cert)}) is not valid before "
            f"{cert.not_valid_before_utc:%Y-%m-%d %H:%M} UTC; check it, or this machine's clock"
        )
    trusted: tuple[x509.Certificate, ...] = ()
    if tls.trust_store is not None:
        trust = tls.trust_store
        trusted = load_trust_store(names.TRUST_STORE, trust.path, trust.type, trust.password)
    return ServerMaterial(key, trusted)


def build_context(material: ServerMaterial, client_auth: str) -> SSL.Context:
    """
    The OpenSSL context of one client-auth mode: NONE asks for no certificate,
    REQUEST verifies one if the client sends it, REQUIRE refuses a client
    without one.  TLS 1.2 or later, Twisted's ciphers.
    """
    key = material.key
    verify = client_auth != "NONE"
    trusted = [crypto.X509.from_cryptography(c) for c in material.trusted]
    options = CertificateOptions(
        privateKey=crypto.PKey.from_cryptography_key(key.private_key),  # type: ignore[arg-type]
        certificate=crypto.X509.from_cryptography(key.certificate),
        extraCertChain=[crypto.X509.from_cryptography(c) for c in key.chain[1:]],
        verify=verify,
        caCerts=trusted if verify else None,
        requireCertificate=client_auth == "REQUIRE",
    )
    context = options.getContext()
    if verify:
        # Name the acceptable CAs in the CertificateRequest: Java clients pick
        # the key store entry to send by them.
        for ca in trusted:
            context.add_client_ca(ca)
    return context


def _digest(paths: Iterable[str]) -> bytes:
    """What the store files hold now (a file that cannot be read counts as its error)."""
    hashed = hashlib.sha256()
    for path in paths:
        try:
            hashed.update(Path(path).read_bytes())
        except OSError as e:
            hashed.update(f"unreadable: {e.strerror}".encode())
        hashed.update(b"\0")
    return hashed.digest()


@implementer(IOpenSSLServerConnectionCreator)
class _CurrentContext:
    """Makes each new connection with the context current when it arrives."""

    def __init__(self, contexts: ServerContexts, client_auth: str) -> None:
        self._contexts = contexts
        self._client_auth = client_auth

    def serverConnectionForTLS(self, tlsProtocol: object) -> SSL.Connection:
        connection = SSL.Connection(self._contexts.context(self._client_auth), None)
        connection.set_app_data(tlsProtocol)
        return connection


class ServerContexts:
    """The current TLS context of each client-auth mode a node's listeners use."""

    def __init__(
        self,
        tls: ServerTls,
        client_auths: Iterable[str],
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.tls = tls
        self._modes = sorted(set(client_auths))
        self._now = now
        self._paths = [tls.key_store.path] + (
            [tls.trust_store.path] if tls.trust_store is not None else []
        )
        # The first read: a bad store is the node's ConfigError, raised here.
        self._digest = _digest(self._paths)
        self._refused: bytes | None = None
        self._expiry_logged = False
        #: What the contexts are made of now.
        self.material, self._contexts = self._load()
        #: Times the stores were renewed since the node started.
        self.renewals = 0

    def _load(self) -> tuple[ServerMaterial, dict[str, SSL.Context]]:
        material = load_material(self.tls, self._now())
        try:
            return material, {mode: build_context(material, mode) for mode in self._modes}
        except SSL.Error as e:
            raise ConfigError(
                f"{names.KEY_STORE_PATH}={self.tls.key_store.path!r}: OpenSSL refuses the key "
                f"or certificates ({e})"
            ) from None

    def context(self, client_auth: str) -> SSL.Context:
        """The context new connections of this mode get now."""
        return self._contexts[client_auth]

    def creator(self, client_auth: str) -> IOpenSSLServerConnectionCreator:
        """What a C{TLSMemoryBIOFactory} makes this mode's connections with."""
        return _CurrentContext(self, client_auth)

    def check(self) -> bool:
        """Read the stores again; True when new content was loaded and is served from now on."""
        digest = _digest(self._paths)
        if digest == self._digest:
            self._log_expired()
            return False
        if digest == self._refused:
            return False
        try:
            material, contexts = self._load()
        except ConfigError as e:
            self._refused = digest
            log.error(
                "The renewed TLS key or trust store cannot be used ({reason}); still serving "
                "the certificate {subject}",
                reason=str(e),
                subject=subject(self.material.key.certificate),
            )
            return False
        self.material, self._contexts = material, contexts
        self._digest, self._refused = digest, None
        self._expiry_logged = False
        self.renewals += 1
        log.info(
            "TLS key store renewed: new connections get {subject}, valid until {until} UTC; "
            "open connections keep theirs",
            subject=subject(self.material.key.certificate),
            until=f"{self.material.key.certificate.not_valid_after_utc:%Y-%m-%d %H:%M}",
        )
        return True

    def _log_expired(self) -> None:
        cert = self.material.key.certificate
        if not self._expiry_logged and cert.not_valid_after_utc < self._now():
            self._expiry_logged = True
            log.error(
                "The certificate served to clients ({subject}) expired on {when} UTC; "
                "renew {store} (it is read again every {interval}s)",
                subject=subject(cert),
                when=f"{cert.not_valid_after_utc:%Y-%m-%d %H:%M}",
                store=names.KEY_STORE_PATH,
                interval=self.tls.update_interval_seconds,
            )


def renewal_service(contexts: ServerContexts, clock: IReactorTime) -> TimerService | None:
    """Polls the stores every C{GATEWAY_SSL_UPDATE_INTERVAL_MS}; None when it is 0."""
    interval = contexts.tls.update_interval_seconds
    if interval <= 0:
        return None
    service = TimerService(interval, contexts.check)
    service.clock = clock
    return service
