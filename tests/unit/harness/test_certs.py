"""Tests for the harness's test certificates (L{harness.certs}): SANs, validity, formats."""

from __future__ import annotations

import datetime
import shutil
import ssl
import subprocess
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.serialization import pkcs12
from twisted.trial.unittest import TestCase

from harness.certs import LOOPBACK_SANS, CertificateAuthority, general_name, parse_subject

UTC = datetime.UTC


class CertificateAuthorityTests(TestCase):
    """What a test CA issues."""

    def setUp(self) -> None:
        self.ca = CertificateAuthority()
        self.dir = Path(self.mktemp())

    def test_server_certificate_sans(self) -> None:
        """A broker certificate carries the loopback SANs and names its issuer."""
        broker = self.ca.issue("CN=broker", LOOPBACK_SANS)
        self.assertEqual(sorted(broker.sans), ["DNS:localhost", "IP:127.0.0.1"])
        self.assertEqual(broker.subject, "CN=broker")
        self.assertEqual(broker.certificate.issuer, self.ca.certificate.subject)
        broker.certificate.verify_directly_issued_by(self.ca.certificate)

    def test_client_subject(self) -> None:
        """A client certificate's subject is the one asked for, in Kafka's RFC 4514 text."""
        client = self.ca.issue("CN=alice,OU=tests,O=kgateway", server=False)
        self.assertEqual(client.subject, "CN=alice,OU=tests,O=kgateway")
        usage = client.certificate.extensions.get_extension_for_class(x509.ExtendedKeyUsage)
        self.assertEqual(list(usage.value), [x509.oid.ExtendedKeyUsageOID.CLIENT_AUTH])
        self.assertEqual(client.sans, [])

    def test_expired(self) -> None:
        """An expired certificate's validity ended before now."""
        now = datetime.datetime.now(UTC)
        old = self.ca.issue(
            "CN=old",
            LOOPBACK_SANS,
            valid_from=now - datetime.timedelta(days=10),
            valid_until=now - datetime.timedelta(days=1),
        )
        self.assertLess(old.certificate.not_valid_after_utc, now)

    def test_validity_order(self) -> None:
        """An end before the start is refused."""
        now = datetime.datetime.now(UTC)
        with self.assertRaises(ValueError):
            self.ca.issue("CN=x", valid_from=now, valid_until=now - datetime.timedelta(hours=1))

    def test_wrong_ca_does_not_verify(self) -> None:
        """A certificate of another CA does not verify against this one (OpenSSL says so)."""
        other = CertificateAuthority("CN=another CA")
        stranger = other.issue("CN=stranger", LOOPBACK_SANS).write_pem(self.dir, "stranger")
        context = ssl.create_default_context(cafile=str(self.ca.write_pem(self.dir / "ca.pem")))
        with self.assertRaises(ssl.SSLCertVerificationError):
            _handshake(context, stranger.certificate, stranger.key)

    def test_trusted_handshake(self) -> None:
        """A server certificate of this CA passes OpenSSL's verification and host check."""
        files = self.ca.issue("CN=broker", LOOPBACK_SANS).write_pem(self.dir, "broker")
        context = ssl.create_default_context(cafile=str(files.ca))
        _handshake(context, files.certificate, files.key)

    def test_rsa(self) -> None:
        """RSA keys on request."""
        ca = CertificateAuthority(key_type="rsa")
        identity = ca.issue("CN=rsa")
        self.assertEqual(identity.key.key_size, 2048)

    def test_names(self) -> None:
        """OpenSSL-style SANs and RFC 4514 subjects; anything else is refused."""
        self.assertEqual(general_name("DNS:gw.test"), x509.DNSName("gw.test"))
        with self.assertRaises(ValueError):
            general_name("URI:x")
        with self.assertRaises(ValueError):
            parse_subject("not a subject")
        with self.assertRaises(ValueError):
            CertificateAuthority(key_type="dsa")


class FormatTests(TestCase):
    """The files an identity is written as."""

    def setUp(self) -> None:
        self.ca = CertificateAuthority()
        self.identity = self.ca.issue("CN=gateway", LOOPBACK_SANS)
        self.dir = Path(self.mktemp())

    def test_pem_files(self) -> None:
        """Kafka's PEM key store is the PKCS#8 key then the chain; keys are owner-only."""
        files = self.identity.write_pem(self.dir, "gw")
        store = files.key_store.read_bytes()
        self.assertTrue(store.startswith(b"-----BEGIN PRIVATE KEY-----"))
        self.assertEqual(store.count(b"BEGIN CERTIFICATE"), 2)
        self.assertEqual(files.key.stat().st_mode & 0o777, 0o600)
        self.assertEqual(files.key_store.stat().st_mode & 0o777, 0o600)
        chain = x509.load_pem_x509_certificates(files.certificate.read_bytes())
        self.assertEqual(chain, [self.identity.certificate, self.ca.certificate])
        self.assertEqual(files.ca.read_bytes(), self.ca.certificate_pem())

    def test_encrypted_key(self) -> None:
        """With a key password the PEM key is encrypted and opens with that password."""
        files = self.identity.write_pem(self.dir, "gw", key_password="pw")
        data = files.key.read_bytes()
        self.assertIn(b"ENCRYPTED PRIVATE KEY", data)
        serialization.load_pem_private_key(data, b"pw")

    def test_pkcs12(self) -> None:
        """The PKCS#12 store opens with its password and holds key, certificate and CA."""
        path = self.identity.write_pkcs12(self.dir / "gw.p12", "store-pw")
        key, certificate, extra = pkcs12.load_key_and_certificates(path.read_bytes(), b"store-pw")
        self.assertEqual(certificate, self.identity.certificate)
        self.assertEqual(extra, [self.ca.certificate])
        assert key is not None
        self.assertEqual(key.public_key(), self.identity.key.public_key())
        with self.assertRaises(ValueError):
            pkcs12.load_key_and_certificates(path.read_bytes(), b"wrong")

    def test_truststore_pkcs12(self) -> None:
        """The PKCS#12 trust store holds the CA alone."""
        path = self.ca.write_truststore_pkcs12(self.dir / "trust.p12", "pw")
        loaded = pkcs12.load_pkcs12(path.read_bytes(), b"pw")
        self.assertIsNone(loaded.key)
        self.assertEqual([c.certificate for c in loaded.additional_certs], [self.ca.certificate])

    def test_jks(self) -> None:
        """keytool writes JKS key and trust stores that keytool reads back."""
        keytool = shutil.which("keytool")
        if keytool is None:
            self.skipTest("no keytool (JDK) on PATH")
        keys = self.identity.write_jks(self.dir / "gw.jks", "store-pw")
        trust = self.ca.write_truststore_jks(self.dir / "trust.jks", "store-pw")
        for path, entry in ((keys, "PrivateKeyEntry"), (trust, "trustedCertEntry")):
            listing = subprocess.run(
                [keytool, "-list", "-keystore", str(path), "-storepass", "store-pw"],
                capture_output=True,
                text=True,
                check=True,
            ).stdout
            self.assertIn("Keystore type: JKS", listing)
            self.assertIn(entry, listing)
        self.assertEqual(list(self.dir.glob("*.tmp")), [])


def _handshake(client: ssl.SSLContext, certificate: Path, key: Path) -> None:
    """A TLS handshake in memory between C{client} and a server with these files."""
    server = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server.load_cert_chain(certificate, key)
    c_in, c_out, s_in, s_out = ssl.MemoryBIO(), ssl.MemoryBIO(), ssl.MemoryBIO(), ssl.MemoryBIO()
    client_side = client.wrap_bio(c_in, c_out, server_hostname="127.0.0.1")
    server_side = server.wrap_bio(s_in, s_out, server_side=True)
    for _ in range(10):
        done = 0
        for side, outgoing, peer_in in ((client_side, c_out, s_in), (server_side, s_out, c_in)):
            try:
                side.do_handshake()
                done += 1
            except ssl.SSLWantReadError:
                pass
            peer_in.write(outgoing.read())
        if done == 2:
            return
    raise AssertionError("handshake did not finish")
