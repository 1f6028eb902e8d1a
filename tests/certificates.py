"""
Certificates the tests make with C{cryptography}: a CA, a gateway's server
certificate (for localhost and 127.0.0.1), clients' certificates, and the
key and trust stores made of them (PEM, PKCS12).
"""

from __future__ import annotations

import datetime
import ipaddress
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import pkcs12
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

#: The organisation every test certificate names.
ORGANISATION = "kgateway tests"


@dataclass(frozen=True)
class Issued:
    """A key and the certificate issued for it."""

    key: ec.EllipticCurvePrivateKey
    certificate: x509.Certificate

    @property
    def subject(self) -> str:
        """The subject as Kafka and kgateway write principals: C{CN=...,O=...}."""
        return self.certificate.subject.rfc4514_string()

    def key_pem(self, password: str | None = None) -> bytes:
        """The private key, PKCS#8 PEM (encrypted with C{password} if given)."""
        encryption: serialization.KeySerializationEncryption = (
            serialization.BestAvailableEncryption(password.encode())
            if password
            else serialization.NoEncryption()
        )
        return self.key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption
        )

    def certificate_pem(self) -> bytes:
        """The certificate, PEM."""
        return self.certificate.public_bytes(serialization.Encoding.PEM)


def _name(common_name: str) -> x509.Name:
    # Most general first, as CAs write them; RFC 4514 (and Kafka) print them reversed.
    return x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, ORGANISATION),
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
        ]
    )


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


class Authority:
    """A CA that issues the tests' certificates."""

    def __init__(self, common_name: str = "kgateway test CA") -> None:
        key = ec.generate_private_key(ec.SECP256R1())
        name = _name(common_name)
        certificate = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(_now() - datetime.timedelta(days=1))
            .not_valid_after(_now() + datetime.timedelta(days=30))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256())
        )
        self.issued = Issued(key, certificate)

    def pem(self) -> bytes:
        """The CA's certificate, PEM (a trust store)."""
        return self.issued.certificate_pem()

    def issue(
        self,
        common_name: str,
        hosts: tuple[str, ...] = ("localhost", "127.0.0.1"),
        valid_days: float = 30,
        starts_in_days: float = -1,
        server: bool = True,
    ) -> Issued:
        """A certificate for C{common_name}, valid for C{hosts}, from now + C{starts_in_days}."""
        key = ec.generate_private_key(ec.SECP256R1())
        start = _now() + datetime.timedelta(days=starts_in_days)
        names: list[x509.GeneralName] = []
        for host in hosts:
            try:
                names.append(x509.IPAddress(ipaddress.ip_address(host)))
            except ValueError:
                names.append(x509.DNSName(host))
        usage = ExtendedKeyUsageOID.SERVER_AUTH if server else None
        builder = (
            x509.CertificateBuilder()
            .subject_name(_name(common_name))
            .issuer_name(self.issued.certificate.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(start)
            .not_valid_after(start + datetime.timedelta(days=valid_days))
        )
        if names:
            builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
        if usage is not None:
            builder = builder.add_extension(
                x509.ExtendedKeyUsage(
                    [usage, ExtendedKeyUsageOID.CLIENT_AUTH],
                ),
                critical=False,
            )
        certificate = builder.sign(self.issued.key, hashes.SHA256())
        return Issued(key, certificate)


def write_pem_key_store(
    path: Path, issued: Issued, authority: Authority, password: str | None = None
) -> Path:
    """A PEM key store: the key, then the certificate and the CA (Kafka's layout)."""
    path.write_bytes(issued.key_pem(password) + issued.certificate_pem() + authority.pem())
    return path


def write_pkcs12_key_store(
    path: Path, issued: Issued, authority: Authority, password: str | None
) -> Path:
    """A PKCS12 key store with one key entry and its chain."""
    encryption: serialization.KeySerializationEncryption = (
        serialization.BestAvailableEncryption(password.encode())
        if password
        else serialization.NoEncryption()
    )
    data = pkcs12.serialize_key_and_certificates(
        b"gateway", issued.key, issued.certificate, [authority.issued.certificate], encryption
    )
    path.write_bytes(data)
    return path


def write_pkcs12_trust_store(path: Path, authority: Authority, password: str) -> Path:
    """A PKCS12 trust store holding the CA's certificate alone."""
    data = pkcs12.serialize_java_truststore(
        [pkcs12.PKCS12Certificate(authority.issued.certificate, b"ca")],
        serialization.BestAvailableEncryption(password.encode()),
    )
    path.write_bytes(data)
    return path
