"""
The security tests' certificates: a CA and the certificates it signs, made by the harness's
CA (L{harness.certs}), and the stores (PEM, PKCS12, JKS) Kafka's settings name.  JKS is
written with pyjks, which also lets a key's password differ from its store's, with no JDK.
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass
from pathlib import Path

import jks
from cryptography import x509
from cryptography.hazmat.primitives.serialization import (
    BestAvailableEncryption,
    Encoding,
    NoEncryption,
    PrivateFormat,
    pkcs12,
)

from harness import certs

_DAY = datetime.timedelta(days=1)


@dataclass(frozen=True)
class Issued:
    """A private key and its certificate (and the CA chain above it)."""

    key: certs.PrivateKey
    certificate: x509.Certificate
    chain: tuple[x509.Certificate, ...] = ()

    def key_pem(self, password: str | None = None) -> bytes:
        """The key as PKCS#8 PEM, encrypted with C{password} if given."""
        encryption = BestAvailableEncryption(password.encode()) if password else NoEncryption()
        return self.key.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, encryption)

    def certificate_pem(self) -> bytes:
        """The certificate, then its chain, as PEM."""
        return b"".join(c.public_bytes(Encoding.PEM) for c in (self.certificate, *self.chain))

    def write_pem(self, path: Path, password: str | None = None) -> Path:
        """A PEM key store, as Kafka reads one: the key, then the certificate chain."""
        path.write_bytes(self.key_pem(password) + self.certificate_pem())
        return path

    def write_pkcs12(self, path: Path, password: str) -> Path:
        """A PKCS12 key store opened with C{password}."""
        path.write_bytes(
            pkcs12.serialize_key_and_certificates(
                b"kgateway",
                self.key,
                self.certificate,
                list(self.chain) or None,
                BestAvailableEncryption(password.encode()),
            )
        )
        return path

    def write_jks(self, path: Path, password: str, key_password: str | None = None) -> Path:
        """A JKS key store opened with C{password}, its key encrypted with C{key_password}."""
        pkcs8 = self.key.private_bytes(Encoding.DER, PrivateFormat.PKCS8, NoEncryption())
        entry = jks.PrivateKeyEntry.new(
            "kgateway",
            [c.public_bytes(Encoding.DER) for c in (self.certificate, *self.chain)],
            pkcs8,
            "pkcs8",
        )
        entry.encrypt(key_password or password)
        jks.KeyStore.new("jks", [entry]).save(str(path), password)
        return path


@dataclass(frozen=True)
class CertificateAuthority:
    """A self-signed CA that signs test certificates."""

    authority: certs.CertificateAuthority

    @classmethod
    def make(cls, name: str = "kgateway test CA") -> CertificateAuthority:
        """A new CA named C{CN=<name>}, valid from yesterday for a year."""
        return cls(certs.CertificateAuthority(f"CN={name}"))

    @property
    def issued(self) -> Issued:
        """The CA's own key and certificate."""
        return Issued(self.authority.key, self.authority.certificate)

    @property
    def certificate(self) -> x509.Certificate:
        """The CA's certificate."""
        return self.authority.certificate

    def issue(
        self,
        common_name: str,
        hosts: tuple[str, ...] = ("localhost", "127.0.0.1"),
        *,
        expired: bool = False,
    ) -> Issued:
        """A certificate for C{hosts} (names and IP addresses), for servers and clients."""
        now = datetime.datetime.now(datetime.UTC)
        start, end = (now - 30 * _DAY, now - _DAY) if expired else (now - _DAY, now + 30 * _DAY)
        identity = self.authority.issue(
            f"CN={common_name}", certs.host_sans(hosts), valid_from=start, valid_until=end
        )
        return Issued(identity.key, identity.certificate, (self.certificate,))

    def write_pem(self, path: Path) -> Path:
        """The CA certificate as a PEM trust store."""
        path.write_bytes(self.certificate.public_bytes(Encoding.PEM))
        return path

    def write_pkcs12_trust(self, path: Path, password: str) -> Path:
        """The CA certificate as a PKCS12 trust store (certificates only)."""
        path.write_bytes(
            pkcs12.serialize_key_and_certificates(
                None, None, None, [self.certificate], BestAvailableEncryption(password.encode())
            )
        )
        return path

    def write_jks_trust(self, path: Path, password: str) -> Path:
        """The CA certificate as a JKS trust store."""
        entry = jks.TrustedCertEntry.new("ca", self.certificate.public_bytes(Encoding.DER))
        jks.KeyStore.new("jks", [entry]).save(str(path), password)
        return path
