"""Key stores and trust stores from PEM, PKCS12 and JKS files, and every way they fail."""

from __future__ import annotations

import datetime
from pathlib import Path

from twisted.trial.unittest import SynchronousTestCase

from kgateway.security.stores import (
    StoreSettings,
    load_key_store,
    load_trust_store,
    refuse_expired,
    store_type,
)
from kgateway.setting import ConfigError
from tests.unit.security.certificates import CertificateAuthority

KEY = StoreSettings(
    "KAFKA_SSL_KEYSTORE_LOCATION",
    "KAFKA_SSL_KEYSTORE_TYPE",
    "KAFKA_SSL_KEYSTORE_PASSWORD",
    "KAFKA_SSL_KEY_PASSWORD",
)
TRUST = StoreSettings(
    "KAFKA_SSL_TRUSTSTORE_LOCATION", "KAFKA_SSL_TRUSTSTORE_TYPE", "KAFKA_SSL_TRUSTSTORE_PASSWORD"
)
SECRET = "canary-s3cret"

CA = CertificateAuthority.make()
ME = CA.issue("gateway")


class StoreTestCase(SynchronousTestCase):
    def setUp(self) -> None:
        self.folder = Path(self.mktemp())
        self.folder.mkdir()

    def path(self, name: str) -> Path:
        return self.folder / name

    def refused(self, call: object, *args: object, **kwargs: object) -> str:
        error = self.assertRaises(ConfigError, call, *args, **kwargs)
        message = str(error)
        self.assertNotIn("\n", message)
        self.assertNotIn(SECRET, message)
        return message


class KeyStoreTests(StoreTestCase):
    def test_pem(self) -> None:
        """A PEM key store: the key and its chain, the key's certificate first."""
        path = ME.write_pem(self.path("me.pem"))
        for declared in (None, "PEM"):
            store = load_key_store(KEY, str(path), declared)
            self.assertEqual(store.certificate, ME.certificate)
            self.assertEqual(store.chain, (ME.certificate, CA.certificate))
            self.assertNotIn("PRIVATE", repr(store))

    def test_pem_chain_in_any_order(self) -> None:
        """The CA first and the key's certificate second still gives the key's first."""
        path = self.path("me.pem")
        path.write_bytes(ME.key_pem() + CA.issued.certificate_pem() + ME.certificate_pem())
        store = load_key_store(KEY, str(path))
        self.assertEqual(store.certificate, ME.certificate)

    def test_pem_encrypted_key(self) -> None:
        """An encrypted PKCS#8 key opens with the key password, or the store password."""
        path = ME.write_pem(self.path("me.pem"), password=SECRET)
        self.assertEqual(
            load_key_store(KEY, str(path), key_password=SECRET).certificate, ME.certificate
        )
        store = load_key_store(KEY, str(path), password=SECRET)
        self.assertEqual(store.certificate, ME.certificate)

    def test_pem_encrypted_key_without_password(self) -> None:
        path = ME.write_pem(self.path("me.pem"), password=SECRET)
        self.assertEqual(
            self.refused(load_key_store, KEY, str(path)),
            f"KAFKA_SSL_KEYSTORE_LOCATION={str(path)!r}: its private key is encrypted (or "
            "unreadable); set KAFKA_SSL_KEY_PASSWORD to the key's password",
        )

    def test_pem_wrong_key_password(self) -> None:
        path = ME.write_pem(self.path("me.pem"), password="right")
        self.assertEqual(
            self.refused(load_key_store, KEY, str(path), key_password=SECRET),
            "KAFKA_SSL_KEY_PASSWORD does not decrypt the private key in "
            f"KAFKA_SSL_KEYSTORE_LOCATION={str(path)!r} (or the key is unreadable); set the "
            "key's password",
        )

    def test_pem_password_for_a_plain_key(self) -> None:
        """A password given for a key that is not encrypted does no harm."""
        path = ME.write_pem(self.path("me.pem"))
        self.assertEqual(
            load_key_store(KEY, str(path), key_password=SECRET).certificate, ME.certificate
        )

    def test_pem_without_key(self) -> None:
        path = self.path("me.pem")
        path.write_bytes(ME.certificate_pem())
        self.assertEqual(
            self.refused(load_key_store, KEY, str(path)),
            f"KAFKA_SSL_KEYSTORE_LOCATION={str(path)!r}: holds 0 private keys; a PEM key store "
            "is one private key followed by its certificate chain",
        )

    def test_pem_without_certificate(self) -> None:
        path = self.path("me.pem")
        path.write_bytes(ME.key_pem())
        self.assertEqual(
            self.refused(load_key_store, KEY, str(path)),
            f"KAFKA_SSL_KEYSTORE_LOCATION={str(path)!r}: holds a private key but no "
            "certificate; add the key's certificate (and its chain) to the store",
        )

    def test_key_does_not_match_certificate(self) -> None:
        other = CA.issue("someone else")
        path = self.path("me.pem")
        path.write_bytes(other.key_pem() + ME.certificate_pem())
        self.assertEqual(
            self.refused(load_key_store, KEY, str(path)),
            f"KAFKA_SSL_KEYSTORE_LOCATION={str(path)!r}: the private key does not match its "
            "certificate (CN=gateway); put the key and its own certificate in the store",
        )

    def test_pkcs12(self) -> None:
        path = ME.write_pkcs12(self.path("me.p12"), SECRET)
        for declared in (None, "PKCS12", "JKS"):  # Java reads a PKCS12 file declared JKS
            store = load_key_store(KEY, str(path), declared, password=SECRET)
            self.assertEqual(store.chain, (ME.certificate, CA.certificate))

    def test_pkcs12_key_password(self) -> None:
        """PKCS12 has one password: the key password opens it when the store password is unset."""
        path = ME.write_pkcs12(self.path("me.p12"), SECRET)
        self.assertEqual(
            load_key_store(KEY, str(path), key_password=SECRET).certificate, ME.certificate
        )

    def test_pkcs12_wrong_password(self) -> None:
        path = ME.write_pkcs12(self.path("me.p12"), "right")
        self.assertEqual(
            self.refused(load_key_store, KEY, str(path), password=SECRET),
            "KAFKA_SSL_KEYSTORE_PASSWORD does not open "
            f"KAFKA_SSL_KEYSTORE_LOCATION={str(path)!r} (a PKCS12 store: a wrong password, or "
            "a damaged file); set the store's password",
        )

    def test_pkcs12_without_password(self) -> None:
        path = ME.write_pkcs12(self.path("me.p12"), "right")
        self.assertEqual(
            self.refused(load_key_store, KEY, str(path)),
            f"KAFKA_SSL_KEYSTORE_LOCATION={str(path)!r} is a PKCS12 store that needs a "
            "password (or is damaged); set KAFKA_SSL_KEYSTORE_PASSWORD",
        )

    def test_pkcs12_without_key(self) -> None:
        path = CA.write_pkcs12_trust(self.path("ca.p12"), SECRET)
        self.assertEqual(
            self.refused(load_key_store, KEY, str(path), password=SECRET),
            f"KAFKA_SSL_KEYSTORE_LOCATION={str(path)!r}: the PKCS12 store holds no private key; "
            "a key store holds the private key and its certificate",
        )

    def test_jks(self) -> None:
        path = ME.write_jks(self.path("me.jks"), SECRET)
        for declared in (None, "JKS", "PKCS12"):
            store = load_key_store(KEY, str(path), declared, password=SECRET)
            self.assertEqual(store.chain, (ME.certificate, CA.certificate))

    def test_jks_key_password(self) -> None:
        path = ME.write_jks(self.path("me.jks"), "store-pw", key_password=SECRET)
        store = load_key_store(KEY, str(path), password="store-pw", key_password=SECRET)
        self.assertEqual(store.certificate, ME.certificate)

    def test_jks_wrong_key_password(self) -> None:
        path = ME.write_jks(self.path("me.jks"), "store-pw", key_password="right")
        self.assertEqual(
            self.refused(load_key_store, KEY, str(path), password="store-pw", key_password=SECRET),
            "KAFKA_SSL_KEY_PASSWORD does not decrypt the private key 'kgateway' in "
            f"KAFKA_SSL_KEYSTORE_LOCATION={str(path)!r}; set KAFKA_SSL_KEY_PASSWORD to the "
            "key's password",
        )

    def test_jks_key_password_missing(self) -> None:
        path = ME.write_jks(self.path("me.jks"), "store-pw", key_password="other")
        self.assertEqual(
            self.refused(load_key_store, KEY, str(path), password="store-pw"),
            "KAFKA_SSL_KEYSTORE_PASSWORD (as key password) does not decrypt the private key "
            f"'kgateway' in KAFKA_SSL_KEYSTORE_LOCATION={str(path)!r}; set "
            "KAFKA_SSL_KEY_PASSWORD to the key's password",
        )

    def test_jks_wrong_password(self) -> None:
        path = ME.write_jks(self.path("me.jks"), "right")
        self.assertEqual(
            self.refused(load_key_store, KEY, str(path), password=SECRET),
            "KAFKA_SSL_KEYSTORE_PASSWORD does not open "
            f"KAFKA_SSL_KEYSTORE_LOCATION={str(path)!r} (a JKS store: the integrity check "
            "failed); set the store's password",
        )

    def test_jks_without_password(self) -> None:
        path = ME.write_jks(self.path("me.jks"), "right")
        self.assertEqual(
            self.refused(load_key_store, KEY, str(path)),
            "KAFKA_SSL_KEYSTORE_PASSWORD is not set: a JKS key store is opened with its "
            "password; set it",
        )

    def test_missing_file(self) -> None:
        path = self.path("nothing.pem")
        self.assertEqual(
            self.refused(load_key_store, KEY, str(path)),
            f"KAFKA_SSL_KEYSTORE_LOCATION={str(path)!r}: cannot read it (No such file or "
            "directory); give the path of a readable key store",
        )

    def test_not_a_store(self) -> None:
        path = self.path("notes.txt")
        path.write_text("hello")
        self.assertEqual(
            self.refused(load_key_store, KEY, str(path)),
            f"KAFKA_SSL_KEYSTORE_LOCATION={str(path)!r}: neither PEM, PKCS12 nor JKS; give a "
            "store in one of those formats (and KAFKA_SSL_KEYSTORE_TYPE)",
        )

    def test_declared_type_is_not_the_file(self) -> None:
        pem = ME.write_pem(self.path("me.pem"))
        self.assertEqual(
            self.refused(load_key_store, KEY, str(pem), "PKCS12"),
            f"KAFKA_SSL_KEYSTORE_LOCATION={str(pem)!r} is not a PKCS12 store (it reads as PEM); "
            "set KAFKA_SSL_KEYSTORE_TYPE=PEM",
        )
        p12 = ME.write_pkcs12(self.path("me.p12"), SECRET)
        self.assertEqual(
            self.refused(load_key_store, KEY, str(p12), "PEM", password=SECRET),
            f"KAFKA_SSL_KEYSTORE_LOCATION={str(p12)!r} is not a PEM store (it reads as PKCS12); "
            "set KAFKA_SSL_KEYSTORE_TYPE=PKCS12",
        )


class ExpiryTests(StoreTestCase):
    def test_expired_is_refused(self) -> None:
        old = CA.issue("old", expired=True)
        path = old.write_pem(self.path("old.pem"))
        store = load_key_store(KEY, str(path))
        message = self.refused(
            refuse_expired, KEY, str(path), store, datetime.datetime.now(datetime.UTC)
        )
        ended = old.certificate.not_valid_after_utc
        self.assertEqual(
            message,
            f"KAFKA_SSL_KEYSTORE_LOCATION={str(path)!r}: its certificate (CN=old) expired on "
            f"{ended:%Y-%m-%d %H:%M} UTC; renew it",
        )

    def test_valid_is_kept(self) -> None:
        path = ME.write_pem(self.path("me.pem"))
        store = load_key_store(KEY, str(path))
        refuse_expired(KEY, str(path), store, datetime.datetime.now(datetime.UTC))


class TrustStoreTests(StoreTestCase):
    def test_pem(self) -> None:
        path = CA.write_pem(self.path("ca.pem"))
        self.assertEqual(load_trust_store(TRUST, str(path)), (CA.certificate,))

    def test_pem_bundle(self) -> None:
        other = CertificateAuthority.make("other CA")
        path = self.path("bundle.pem")
        path.write_bytes(CA.issued.certificate_pem() + other.issued.certificate_pem())
        self.assertEqual(
            load_trust_store(TRUST, str(path), "PEM"), (CA.certificate, other.certificate)
        )

    def test_pkcs12(self) -> None:
        path = CA.write_pkcs12_trust(self.path("ca.p12"), SECRET)
        self.assertEqual(load_trust_store(TRUST, str(path), "PKCS12", SECRET), (CA.certificate,))

    def test_pkcs12_wrong_password(self) -> None:
        path = CA.write_pkcs12_trust(self.path("ca.p12"), "right")
        self.assertEqual(
            self.refused(load_trust_store, TRUST, str(path), None, SECRET),
            "KAFKA_SSL_TRUSTSTORE_PASSWORD does not open "
            f"KAFKA_SSL_TRUSTSTORE_LOCATION={str(path)!r} (a PKCS12 store: a wrong password, "
            "or a damaged file); set the store's password",
        )

    def test_jks(self) -> None:
        path = CA.write_jks_trust(self.path("ca.jks"), SECRET)
        self.assertEqual(load_trust_store(TRUST, str(path), "JKS", SECRET), (CA.certificate,))

    def test_jks_without_password(self) -> None:
        """As Java does, a JKS trust store is read without its password (no integrity check)."""
        path = CA.write_jks_trust(self.path("ca.jks"), "unknown")
        self.assertEqual(load_trust_store(TRUST, str(path)), (CA.certificate,))

    def test_jks_wrong_password(self) -> None:
        path = CA.write_jks_trust(self.path("ca.jks"), "right")
        self.assertEqual(
            self.refused(load_trust_store, TRUST, str(path), None, SECRET),
            "KAFKA_SSL_TRUSTSTORE_PASSWORD does not open "
            f"KAFKA_SSL_TRUSTSTORE_LOCATION={str(path)!r} (a JKS store: the integrity check "
            "failed); set the store's password",
        )

    def test_empty(self) -> None:
        path = self.path("empty.pem")
        path.write_bytes(ME.key_pem())
        self.assertEqual(
            self.refused(load_trust_store, TRUST, str(path)),
            f"KAFKA_SSL_TRUSTSTORE_LOCATION={str(path)!r}: holds no certificate; a trust store "
            "holds the CA certificates that signed the peers' certificates",
        )

    def test_missing_file(self) -> None:
        self.assertEqual(
            self.refused(load_trust_store, TRUST, "/nonexistent/ca.pem"),
            "KAFKA_SSL_TRUSTSTORE_LOCATION='/nonexistent/ca.pem': cannot read it (No such file "
            "or directory); give the path of a readable trust store",
        )


class StoreTypeTests(SynchronousTestCase):
    def test_any_case(self) -> None:
        self.assertEqual(store_type("KAFKA_SSL_KEYSTORE_TYPE", "pkcs12"), "PKCS12")
        self.assertEqual(store_type("KAFKA_SSL_KEYSTORE_TYPE", " jks "), "JKS")

    def test_unknown(self) -> None:
        error = self.assertRaises(ConfigError, store_type, "KAFKA_SSL_KEYSTORE_TYPE", "P12")
        self.assertEqual(
            str(error), "KAFKA_SSL_KEYSTORE_TYPE='P12': not a store type; valid: PEM, PKCS12, JKS"
        )
