"""
The broker side's settings through L{Settings.load}: what they give, and the
exact line each mistake gets (and never a secret, anywhere it could show).
"""

from __future__ import annotations

import io
import os
import sys
from collections.abc import Mapping
from pathlib import Path

from twisted.trial.unittest import SynchronousTestCase

from kgateway import tap
from kgateway.config import Settings
from kgateway.security.security_protocol import SecurityProtocol
from kgateway.setting import ConfigError
from tests.unit.security.certificates import CertificateAuthority

BOOTSTRAP = {"KAFKA_BOOTSTRAP_SERVERS": "k1:9093"}
SECRET = "canary-s3cret"
SCRAM = (
    "org.apache.kafka.common.security.scram.ScramLoginModule required "
    f'username="gateway" password="{SECRET}";'
)
OAUTH = (
    "org.apache.kafka.common.security.oauthbearer.OAuthBearerLoginModule required "
    f'clientId="gateway" clientSecret="{SECRET}" scope="kafka" extension_tenant="t1";'
)
CA = CertificateAuthority.make()
ME = CA.issue("gateway")


def clients_speak(environ: Mapping[str, str]) -> dict[str, str]:
    """
    What the node's clients speak, for a test about the broker side only: unset,
    GATEWAY_SECURITY_PROTOCOL is KAFKA_SECURITY_PROTOCOL (SSL would need the node's
    own key store, SASL_* in front of PLAINTEXT clients is refused).
    """
    if "GATEWAY_SECURITY_PROTOCOL" in environ:
        return {}
    broker = environ.get("KAFKA_SECURITY_PROTOCOL", "PLAINTEXT").upper()
    return {
        "GATEWAY_SECURITY_PROTOCOL": "SASL_PLAINTEXT" if broker.startswith("SASL") else "PLAINTEXT"
    }


class BrokerSettingsTestCase(SynchronousTestCase):
    def setUp(self) -> None:
        self.folder = Path(self.mktemp())
        self.folder.mkdir()
        self.ca = str(CA.write_pem(self.folder / "ca.pem"))

    def load(self, environ: Mapping[str, str]) -> Settings:
        return Settings.load({**BOOTSTRAP, **clients_speak(environ), **environ}, {})

    def refused(self, environ: Mapping[str, str]) -> str:
        error = self.assertRaises(ConfigError, self.load, environ)
        message = str(error)
        self.assertNotIn("\n", message)
        self.assertNotIn(SECRET, message)
        return message


class GivenTests(BrokerSettingsTestCase):
    def test_plaintext_by_default(self) -> None:
        security = self.load({}).broker_security
        self.assertEqual(security.protocol, SecurityProtocol.PLAINTEXT)
        self.assertIsNone(security.tls)
        self.assertIsNone(security.sasl)

    def test_ssl_with_the_system_trust(self) -> None:
        security = self.load({"KAFKA_SECURITY_PROTOCOL": "ssl"}).broker_security
        assert security.tls is not None
        self.assertIsNone(security.tls.trust)
        self.assertTrue(security.tls.verify_host)

    def test_sasl_ssl_scram(self) -> None:
        settings = self.load(
            {
                "KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
                "KAFKA_SSL_TRUSTSTORE_LOCATION": self.ca,
                "KAFKA_SSL_ENDPOINT_IDENTIFICATION_ALGORITHM": "",
                "KAFKA_SASL_MECHANISM": "scram-sha-512",
                "KAFKA_SASL_JAAS_CONFIG": SCRAM,
            }
        )
        security = settings.broker_security
        assert security.tls is not None and security.sasl is not None
        self.assertEqual(security.tls.trust, (CA.certificate,))
        self.assertFalse(security.tls.verify_host)
        self.assertEqual(security.sasl.mechanism, "SCRAM-SHA-512")
        assert security.sasl.credentials is not None
        self.assertEqual(security.sasl.credentials.username, "gateway")
        self.assertNotIn(SECRET, repr(settings))

    def test_mtls(self) -> None:
        store = ME.write_pkcs12(self.folder / "me.p12", SECRET)
        settings = self.load(
            {
                "KAFKA_SECURITY_PROTOCOL": "SSL",
                "KAFKA_SSL_KEYSTORE_LOCATION": str(store),
                "KAFKA_SSL_KEYSTORE_TYPE": "PKCS12",
                "KAFKA_SSL_KEYSTORE_PASSWORD": SECRET,
            }
        )
        tls = settings.broker_security.tls
        assert tls is not None and tls.key_store is not None
        self.assertEqual(tls.key_store.certificate, ME.certificate)
        self.assertNotIn(SECRET, repr(settings))

    def test_oauthbearer(self) -> None:
        settings = self.load(
            {
                "KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
                "KAFKA_SASL_MECHANISM": "OAUTHBEARER",
                "KAFKA_SASL_JAAS_CONFIG": OAUTH,
                "KAFKA_SASL_OAUTHBEARER_TOKEN_ENDPOINT_URL": "https://idp.example/token",
            }
        )
        sasl = settings.broker_security.sasl
        assert sasl is not None and sasl.oauth is not None
        self.assertEqual(sasl.oauth.client_id, "gateway")
        self.assertEqual(sasl.oauth.scope, "kafka")
        self.assertEqual(sasl.oauth.extensions, {"tenant": "t1"})
        self.assertNotIn(SECRET, repr(settings))

    def test_options_win(self) -> None:
        """A twistd option wins over its variable, as for every setting."""
        settings = Settings.load(
            {
                **BOOTSTRAP,
                "KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
                "GATEWAY_SECURITY_PROTOCOL": "PLAINTEXT",
            },
            {"kafka-security-protocol": "SSL"},
        )
        self.assertEqual(settings.broker_security.protocol, SecurityProtocol.SSL)


class RefusedTests(BrokerSettingsTestCase):
    def test_unknown_mechanism(self) -> None:
        self.assertEqual(
            self.refused({"KAFKA_SECURITY_PROTOCOL": "SASL_SSL", "KAFKA_SASL_MECHANISM": "GSSAPI"}),
            "KAFKA_SASL_MECHANISM='GSSAPI': not a SASL mechanism kgateway logs in with; valid: "
            "PLAIN, SCRAM-SHA-256, SCRAM-SHA-512, OAUTHBEARER",
        )

    def test_sasl_without_mechanism(self) -> None:
        self.assertEqual(
            self.refused({"KAFKA_SECURITY_PROTOCOL": "SASL_SSL", "KAFKA_SASL_JAAS_CONFIG": SCRAM}),
            "KAFKA_SASL_MECHANISM is not set; a SASL security protocol needs one of PLAIN, "
            "SCRAM-SHA-256, SCRAM-SHA-512, OAUTHBEARER",
        )

    def test_mechanism_without_credentials(self) -> None:
        self.assertEqual(
            self.refused({"KAFKA_SECURITY_PROTOCOL": "SASL_SSL", "KAFKA_SASL_MECHANISM": "PLAIN"}),
            "KAFKA_SASL_JAAS_CONFIG is not set; KAFKA_SASL_MECHANISM=PLAIN needs the "
            "credentials: org.apache.kafka.common.security.plain.PlainLoginModule required "
            'username="..." password="...";',
        )

    def test_wrong_login_module(self) -> None:
        self.assertEqual(
            self.refused(
                {
                    "KAFKA_SECURITY_PROTOCOL": "SASL_PLAINTEXT",
                    "KAFKA_SASL_MECHANISM": "PLAIN",
                    "KAFKA_SASL_JAAS_CONFIG": SCRAM,
                }
            ),
            "KAFKA_SASL_JAAS_CONFIG names login module "
            "org.apache.kafka.common.security.scram.ScramLoginModule, but "
            "KAFKA_SASL_MECHANISM=PLAIN logs in with "
            "org.apache.kafka.common.security.plain.PlainLoginModule: "
            "org.apache.kafka.common.security.plain.PlainLoginModule required "
            'username="..." password="...";',
        )

    def test_credentials_missing_a_password(self) -> None:
        self.assertEqual(
            self.refused(
                {
                    "KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
                    "KAFKA_SASL_MECHANISM": "SCRAM-SHA-256",
                    "KAFKA_SASL_JAAS_CONFIG": "org.apache.kafka.common.security.scram."
                    'ScramLoginModule required username="gateway";',
                }
            ),
            "KAFKA_SASL_JAAS_CONFIG has no password for SCRAM-SHA-256: "
            "org.apache.kafka.common.security.scram.ScramLoginModule required "
            'username="..." password="...";',
        )

    def test_unreadable_jaas(self) -> None:
        message = self.refused(
            {
                "KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
                "KAFKA_SASL_MECHANISM": "SCRAM-SHA-512",
                "KAFKA_SASL_JAAS_CONFIG": SCRAM.rstrip(";"),
            }
        )
        self.assertTrue(message.startswith("KAFKA_SASL_JAAS_CONFIG cannot be read: expected"))

    def test_oauth_without_endpoint(self) -> None:
        self.assertEqual(
            self.refused(
                {
                    "KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
                    "KAFKA_SASL_MECHANISM": "OAUTHBEARER",
                    "KAFKA_SASL_JAAS_CONFIG": OAUTH,
                }
            ),
            "KAFKA_SASL_OAUTHBEARER_TOKEN_ENDPOINT_URL is not set; "
            "KAFKA_SASL_MECHANISM=OAUTHBEARER fetches tokens from it with the client "
            "credentials in KAFKA_SASL_JAAS_CONFIG",
        )

    def test_oauth_endpoint_not_a_url(self) -> None:
        self.assertEqual(
            self.refused(
                {
                    "KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
                    "KAFKA_SASL_MECHANISM": "OAUTHBEARER",
                    "KAFKA_SASL_JAAS_CONFIG": OAUTH,
                    "KAFKA_SASL_OAUTHBEARER_TOKEN_ENDPOINT_URL": f"ftp://me:{SECRET}@idp/x?a=1",
                }
            ),
            "KAFKA_SASL_OAUTHBEARER_TOKEN_ENDPOINT_URL='ftp://idp/x': not an http:// or "
            "https:// URL with a host; give the OAuth token endpoint, e.g. "
            "https://login.example.com/oauth2/token",
        )

    def test_tls_settings_without_tls(self) -> None:
        self.assertEqual(
            self.refused(
                {"KAFKA_SSL_TRUSTSTORE_LOCATION": self.ca, "KAFKA_SSL_KEYSTORE_PASSWORD": SECRET}
            ),
            "KAFKA_SSL_TRUSTSTORE_LOCATION, KAFKA_SSL_KEYSTORE_PASSWORD set, but "
            "KAFKA_SECURITY_PROTOCOL=PLAINTEXT does not use TLS; set "
            "KAFKA_SECURITY_PROTOCOL=SSL or SASL_SSL, or unset them",
        )

    def test_sasl_settings_without_sasl(self) -> None:
        self.assertEqual(
            self.refused({"KAFKA_SECURITY_PROTOCOL": "SSL", "KAFKA_SASL_JAAS_CONFIG": SCRAM}),
            "KAFKA_SASL_JAAS_CONFIG set, but KAFKA_SECURITY_PROTOCOL=SSL does not log in; set "
            "KAFKA_SECURITY_PROTOCOL=SASL_SSL or SASL_PLAINTEXT, or unset them",
        )

    def test_password_without_its_store(self) -> None:
        self.assertEqual(
            self.refused({"KAFKA_SECURITY_PROTOCOL": "SSL", "KAFKA_SSL_KEY_PASSWORD": SECRET}),
            "KAFKA_SSL_KEY_PASSWORD set without KAFKA_SSL_KEYSTORE_LOCATION: set the key "
            "store's location too, or unset them",
        )
        self.assertEqual(
            self.refused({"KAFKA_SECURITY_PROTOCOL": "SSL", "KAFKA_SSL_TRUSTSTORE_TYPE": "JKS"}),
            "KAFKA_SSL_TRUSTSTORE_TYPE set without KAFKA_SSL_TRUSTSTORE_LOCATION: set the "
            "trust store's location too (unset, the system's CA certificates are trusted)",
        )

    def test_bad_identification_algorithm(self) -> None:
        self.assertEqual(
            self.refused(
                {
                    "KAFKA_SECURITY_PROTOCOL": "SSL",
                    "KAFKA_SSL_ENDPOINT_IDENTIFICATION_ALGORITHM": "ldaps",
                }
            ),
            "KAFKA_SSL_ENDPOINT_IDENTIFICATION_ALGORITHM='ldaps': valid: https (the broker's "
            "host name is checked against its certificate) or empty (not checked)",
        )

    def test_missing_truststore(self) -> None:
        self.assertEqual(
            self.refused(
                {"KAFKA_SECURITY_PROTOCOL": "SSL", "KAFKA_SSL_TRUSTSTORE_LOCATION": "/no/ca.pem"}
            ),
            "KAFKA_SSL_TRUSTSTORE_LOCATION='/no/ca.pem': cannot read it (No such file or "
            "directory); give the path of a readable trust store",
        )

    def test_wrong_keystore_password(self) -> None:
        store = str(ME.write_jks(self.folder / "me.jks", "right"))
        self.assertEqual(
            self.refused(
                {
                    "KAFKA_SECURITY_PROTOCOL": "SSL",
                    "KAFKA_SSL_KEYSTORE_LOCATION": store,
                    "KAFKA_SSL_KEYSTORE_PASSWORD": SECRET,
                }
            ),
            f"KAFKA_SSL_KEYSTORE_PASSWORD does not open KAFKA_SSL_KEYSTORE_LOCATION={store!r} "
            "(a JKS store: the integrity check failed); set the store's password",
        )

    def test_expired_keystore(self) -> None:
        old = CA.issue("old", expired=True)
        store = str(old.write_pem(self.folder / "old.pem"))
        message = self.refused(
            {"KAFKA_SECURITY_PROTOCOL": "SSL", "KAFKA_SSL_KEYSTORE_LOCATION": store}
        )
        self.assertIn(
            f"KAFKA_SSL_KEYSTORE_LOCATION={store!r}: its certificate (CN=old) expired", message
        )
        self.assertTrue(message.endswith("UTC; renew it"))

    def test_twistd_exits_with_one_line(self) -> None:
        """The plugin prints the line and exits 2; the secret is in neither --help nor it."""
        stderr = io.StringIO()
        self.patch(sys, "stderr", stderr)
        self.patch(
            os,
            "environ",
            {
                **BOOTSTRAP,
                "KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
                "KAFKA_SASL_MECHANISM": "PLAIN",
                "KAFKA_SASL_JAAS_CONFIG": SCRAM,
            },
        )
        options = tap.Options()
        options.parseOptions([])
        error = self.assertRaises(SystemExit, tap.makeService, options)
        self.assertEqual(error.code, 2)
        self.assertEqual(stderr.getvalue().count("\n"), 1)
        self.assertTrue(stderr.getvalue().startswith("kgateway: KAFKA_SASL_JAAS_CONFIG names"))
        self.assertNotIn(SECRET, stderr.getvalue())
        self.assertNotIn(SECRET, str(options))
