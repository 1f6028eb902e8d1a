"""
Certificates made by the tests: a CA, certificates it signs, and the stores
(PEM, PKCS12, JKS) Kafka's settings name, all with C{cryptography} (and
pyjks for JKS).  Nothing here is read from the repository.
"""

from __future__ import annotations

import datetime
import ipaddress
from dataclasses import dataclass
from pathlib import Path

import jks
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import (
    BestAvailableEncryption,
    Encoding,
    NoEncryption,
    PrivateFormat,
    pkcs12,
)
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

UTC = datetime.UTC


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


@dataclass(frozen=True)
class Issued:
    """A private key and its certificate (and the CA chain above it)."""

    key: ec.EllipticCurvePrivateKey
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

    issued: Issued

    @classmethod
    def make(cls, name: str = "kgateway test CA") -> CertificateAuthority:
        """A new CA, valid from yesterday for a year."""
        key = ec.generate_private_key(ec.SECP256R1())
        now = datetime.datetime.now(UTC)
        certificate = (
            x509.CertificateBuilder()
            .subject_name(_name(name))
            .issuer_name(_name(name))
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=365))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=True,
                    content_commitment=False,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=False,
                    key_cert_sign=True,
                    crl_sign=True,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .sign(key, hashes.SHA256())
        )
        return cls(Issued(key, certificate))

    @property
    def certificate(self) -> x509.Certificate:
        """The CA's certificate."""
        return self.issued.certificate

    def issue(
        self,
        common_name: str,
        hosts: tuple[str, ...] = ("localhost", "127.0.0.1"),
        *,
        expired: bool = False,
    ) -> Issued:
        """A certificate for C{hosts} (names and IP addresses), for servers and clients."""
        key = ec.generate_private_key(ec.SECP256R1())
        now = datetime.datetime.now(UTC)
        if expired:
            start, end = now - datetime.timedelta(days=30), now - datetime.timedelta(days=1)
        else:
            start, end = now - datetime.timedelta(days=1), now + datetime.timedelta(days=30)
        names: list[x509.GeneralName] = []
        for host in hosts:
            try:
                names.append(x509.IPAddress(ipaddress.ip_address(host)))
            except ValueError:
                names.append(x509.DNSName(host))
        builder = (
            x509.CertificateBuilder()
            .subject_name(_name(common_name))
            .issuer_name(self.certificate.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(start)
            .not_valid_after(end)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(
                x509.ExtendedKeyUsage(
                    [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]
                ),
                critical=False,
            )
        )
        if names:
            builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
        certificate = builder.sign(self.issued.key, hashes.SHA256())
        return Issued(key, certificate, (self.certificate,))

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
