"""Certificates made by the tests: a test CA, broker, gateway and client certificates.

Nothing here is for production. A L{CertificateAuthority} signs L{Identity}s (a key and its
certificate) with chosen subjects, SANs and validity, so a test can have a broker certificate
for C{IP:127.0.0.1, DNS:localhost}, a client certificate whose subject is the principal it
expects, an expired one, or one signed by another CA. Each identity is written in the format a
consumer reads: PEM (Kafka's own C{PEM} key store: a PKCS#8 key followed by the certificate;
OpenSSL's separate key and certificate files), PKCS#12, or JKS (made by the JDK's C{keytool},
which the Kafka harness needs anyway). Keys are ECDSA P-256 by default: quick to make, and
every client family (Java, librdkafka, kafka-python, franz-go) speaks it; C{key_type="rsa"}
gives RSA 2048.
"""

from __future__ import annotations

import datetime
import ipaddress
import shutil
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.serialization import pkcs12
from cryptography.x509.oid import ExtendedKeyUsageOID

PrivateKey = ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey

LOOPBACK_SANS: tuple[str, ...] = ("IP:127.0.0.1", "DNS:localhost")
"""The SANs a broker or gateway certificate needs for clients that verify host names on
loopback (librdkafka >= 2.0 and Java's C{https} do by default)."""

_DAY = datetime.timedelta(days=1)


class CertificateError(RuntimeError):
    """A certificate could not be made or written as asked; the message says why."""


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


def _new_key(key_type: str) -> PrivateKey:
    if key_type == "ec":
        return ec.generate_private_key(ec.SECP256R1())
    if key_type == "rsa":
        return rsa.generate_private_key(public_exponent=65537, key_size=2048)
    raise ValueError(f"key_type={key_type!r}: use 'ec' or 'rsa'")


def parse_subject(subject: str) -> x509.Name:
    """C{"CN=alice,OU=tests,O=kgateway"} as an X.509 name (RFC 4514, as Kafka prints it)."""
    try:
        return x509.Name.from_rfc4514_string(subject)
    except ValueError as error:
        raise ValueError(f"subject {subject!r}: {error}") from None


def general_name(san: str) -> x509.GeneralName:
    """C{"IP:127.0.0.1"} or C{"DNS:localhost"} (OpenSSL's notation) as a SAN entry."""
    kind, _, value = san.partition(":")
    if kind.upper() == "IP":
        return x509.IPAddress(ipaddress.ip_address(value))
    if kind.upper() == "DNS":
        return x509.DNSName(value)
    raise ValueError(f"SAN {san!r}: write IP:<address> or DNS:<name>")


def host_sans(hosts: Sequence[str]) -> list[str]:
    """Host names and IP addresses (C{"localhost"}, C{"127.0.0.1"}) as SANs (C{"IP:127.0.0.1"})."""
    sans = []
    for host in hosts:
        try:
            ipaddress.ip_address(host)
        except ValueError:
            sans.append(f"DNS:{host}")
        else:
            sans.append(f"IP:{host}")
    return sans


@dataclass(frozen=True)
class PemFiles:
    """Where L{Identity.write_pem} put one identity's files."""

    key: Path
    """The unencrypted PKCS#8 private key."""
    certificate: Path
    """The certificate, then the CA that signed it (a chain for servers to send)."""
    key_store: Path
    """Kafka's C{PEM} key store: the key followed by the certificate chain, one file."""
    ca: Path
    """The issuing CA's certificate: what a peer puts in its trust store."""


@dataclass(frozen=True)
class Identity:
    """A private key and the certificate a L{CertificateAuthority} issued for it."""

    key: PrivateKey
    certificate: x509.Certificate
    issuer: CertificateAuthority

    @property
    def subject(self) -> str:
        """The certificate's subject as RFC 4514 text (C{CN=alice,O=kgateway})."""
        return self.certificate.subject.rfc4514_string()

    @property
    def sans(self) -> list[str]:
        """The subject alternative names, in OpenSSL's notation (C{IP:127.0.0.1})."""
        try:
            extension = self.certificate.extensions.get_extension_for_class(
                x509.SubjectAlternativeName
            )
        except x509.ExtensionNotFound:
            return []
        names = [f"DNS:{name}" for name in extension.value.get_values_for_type(x509.DNSName)]
        names += [f"IP:{ip}" for ip in extension.value.get_values_for_type(x509.IPAddress)]
        return names

    def key_pem(self, password: str | None = None) -> bytes:
        """The key as PKCS#8 PEM, encrypted when C{password} is given."""
        encryption: serialization.KeySerializationEncryption = (
            serialization.BestAvailableEncryption(password.encode())
            if password
            else serialization.NoEncryption()
        )
        return self.key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption
        )

    def certificate_pem(self) -> bytes:
        """The certificate alone, PEM."""
        return self.certificate.public_bytes(serialization.Encoding.PEM)

    def chain_pem(self) -> bytes:
        """The certificate followed by its issuer's: what a server sends."""
        return self.certificate_pem() + self.issuer.certificate_pem()

    def write_pem(self, directory: Path, name: str, key_password: str | None = None) -> PemFiles:
        """Write C{<name>.key}, C{<name>.crt} (chain), C{<name>.keystore.pem}, C{<name>.ca.pem}.

        With C{key_password} the key (in both key files) is encrypted, as Kafka's
        C{ssl.key.password} and librdkafka's C{ssl.key.password} expect.
        """
        directory.mkdir(parents=True, exist_ok=True)
        key = self.key_pem(key_password)
        files = PemFiles(
            key=directory / f"{name}.key",
            certificate=directory / f"{name}.crt",
            key_store=directory / f"{name}.keystore.pem",
            ca=directory / f"{name}.ca.pem",
        )
        _write_private(files.key, key)
        files.certificate.write_bytes(self.chain_pem())
        _write_private(files.key_store, key + self.chain_pem())
        files.ca.write_bytes(self.issuer.certificate_pem())
        return files

    def pkcs12_bytes(self, password: str | None, alias: str = "kgateway") -> bytes:
        """The key, certificate and issuer as PKCS#12, protected unless C{password} is None."""
        encryption: serialization.KeySerializationEncryption = (
            serialization.BestAvailableEncryption(password.encode())
            if password is not None
            else serialization.NoEncryption()
        )
        return pkcs12.serialize_key_and_certificates(
            alias.encode(), self.key, self.certificate, [self.issuer.certificate], encryption
        )

    def write_pkcs12(self, path: Path, password: str, alias: str = "kgateway") -> Path:
        """Write L{pkcs12_bytes} to C{path}."""
        path.parent.mkdir(parents=True, exist_ok=True)
        _write_private(path, self.pkcs12_bytes(password, alias))
        return path

    def write_jks(self, path: Path, password: str, alias: str = "kgateway") -> Path:
        """Write a JKS key store (key password = store password, as Kafka assumes by default).

        JKS has no maintained Python writer in our dependencies, so the JDK's C{keytool}
        converts the PKCS#12 store.
        """
        path.parent.mkdir(parents=True, exist_ok=True)
        source = path.with_name(path.name + ".p12.tmp")
        self.write_pkcs12(source, password, alias)
        try:
            path.unlink(missing_ok=True)
            _keytool(
                "-importkeystore",
                "-srckeystore",
                str(source),
                "-srcstoretype",
                "PKCS12",
                "-srcstorepass",
                password,
                "-destkeystore",
                str(path),
                "-deststoretype",
                "JKS",
                "-deststorepass",
                password,
                "-destkeypass",
                password,
            )
        finally:
            source.unlink(missing_ok=True)
        return path


class CertificateAuthority:
    """A self-signed test CA that issues server and client certificates.

    C{valid_from}/C{valid_until} default to a day ago and a year ahead.
    """

    def __init__(
        self,
        name: str = "CN=kgateway test CA,O=kgateway tests",
        *,
        key_type: str = "ec",
        valid_from: datetime.datetime | None = None,
        valid_until: datetime.datetime | None = None,
    ) -> None:
        """A new CA with a fresh key."""
        self.key_type = key_type
        self.key = _new_key(key_type)
        subject = parse_subject(name)
        now = _now()
        self.certificate = (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(subject)
            .public_key(self.key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(valid_from or now - _DAY)
            .not_valid_after(valid_until or now + 365 * _DAY)
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
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
            .add_extension(
                x509.SubjectKeyIdentifier.from_public_key(self.key.public_key()), critical=False
            )
            .sign(self.key, hashes.SHA256())
        )

    @property
    def subject(self) -> str:
        """The CA's subject as RFC 4514 text."""
        return self.certificate.subject.rfc4514_string()

    def certificate_pem(self) -> bytes:
        """The CA certificate, PEM: a PEM trust store."""
        return self.certificate.public_bytes(serialization.Encoding.PEM)

    def issue(
        self,
        subject: str,
        sans: Sequence[str] = (),
        *,
        server: bool = True,
        client: bool = True,
        valid_from: datetime.datetime | None = None,
        valid_until: datetime.datetime | None = None,
        key_type: str | None = None,
    ) -> Identity:
        """A certificate for C{subject} (C{"CN=broker"}) with C{sans} (C{"IP:127.0.0.1"}).

        C{server}/C{client} set the extended key usages (both by default, as Kafka's brokers
        are clients of each other). An expired certificate is C{valid_until} in the past.
        """
        key = _new_key(key_type or self.key_type)
        now = _now()
        start = valid_from or now - _DAY
        end = valid_until or now + 90 * _DAY
        if end <= start:
            raise ValueError(f"valid_until {end} is not after valid_from {start}")
        usages = ([ExtendedKeyUsageOID.SERVER_AUTH] if server else []) + (
            [ExtendedKeyUsageOID.CLIENT_AUTH] if client else []
        )
        builder = (
            x509.CertificateBuilder()
            .subject_name(parse_subject(subject))
            .issuer_name(self.certificate.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(start)
            .not_valid_after(end)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(self.key.public_key()),
                critical=False,
            )
        )
        if usages:
            builder = builder.add_extension(x509.ExtendedKeyUsage(usages), critical=False)
        if sans:
            builder = builder.add_extension(
                x509.SubjectAlternativeName([general_name(san) for san in sans]), critical=False
            )
        return Identity(key, builder.sign(self.key, hashes.SHA256()), self)

    def write_pem(self, path: Path) -> Path:
        """Write the CA certificate as a PEM trust store."""
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(self.certificate_pem())
        return path

    def truststore_pkcs12_bytes(self, password: str, alias: str = "kgateway-ca") -> bytes:
        """A PKCS#12 trust store holding this CA, marked trusted the way Java reads it."""
        return pkcs12.serialize_java_truststore(
            [pkcs12.PKCS12Certificate(self.certificate, alias.encode())],
            serialization.BestAvailableEncryption(password.encode()),
        )

    def write_truststore_pkcs12(self, path: Path, password: str) -> Path:
        """Write L{truststore_pkcs12_bytes} to C{path}."""
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(self.truststore_pkcs12_bytes(password))
        return path

    def write_truststore_jks(self, path: Path, password: str) -> Path:
        """Write a JKS trust store holding this CA (with C{keytool})."""
        path.parent.mkdir(parents=True, exist_ok=True)
        pem = self.write_pem(path.with_name(path.name + ".ca.tmp"))
        try:
            path.unlink(missing_ok=True)
            _keytool(
                "-importcert",
                "-noprompt",
                "-alias",
                "kgateway-ca",
                "-file",
                str(pem),
                "-keystore",
                str(path),
                "-storetype",
                "JKS",
                "-storepass",
                password,
            )
        finally:
            pem.unlink(missing_ok=True)
        return path


def _write_private(path: Path, data: bytes) -> None:
    """Write a file holding a key so only its owner can read it."""
    path.touch(mode=0o600, exist_ok=True)
    path.chmod(0o600)
    path.write_bytes(data)


def _keytool(*args: str) -> None:
    keytool = shutil.which("keytool")
    if keytool is None:
        raise CertificateError("keytool (the JDK's) is not on PATH; it writes JKS stores")
    result = subprocess.run(
        [keytool, *args], capture_output=True, text=True, check=False, stdin=subprocess.DEVNULL
    )
    if result.returncode != 0:
        raise CertificateError(
            f"keytool {args[0]} failed (exit {result.returncode}): "
            f"{(result.stdout + result.stderr).strip()[-500:]}"
        )
