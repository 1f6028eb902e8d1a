"""Tests for a secured harness cluster's settings and the clients' settings, without a JVM."""

from __future__ import annotations

from pathlib import Path

from twisted.trial.unittest import TestCase

from harness.certs import CertificateAuthority
from harness.client_security import ClientSecurity
from harness.kafka.properties import render
from harness.kafka.secured import (
    MTLS,
    OAUTH,
    SASL_SSL,
    SSL,
    SecuredKafkaCluster,
    User,
    plain_jaas,
    scram_format_args,
)


def parse(text: str) -> dict[str, str]:
    """A C{.properties} file's settings."""
    return dict(line.split("=", 1) for line in text.splitlines())


class SecuredClusterTests(TestCase):
    """What every broker of a L{SecuredKafkaCluster} is configured and formatted with."""

    def setUp(self) -> None:
        self.cluster = SecuredKafkaCluster(size=2, base_dir=Path(self.mktemp()))
        self.settings = parse(render(self.cluster.server_properties(1)))

    def test_listeners(self) -> None:
        """PLAINTEXT and CONTROLLER stay; SSL, MTLS, SASL_SSL and OAUTH are added and mapped."""
        info = self.cluster.brokers[0]
        listeners = self.settings["listeners"].split(",")
        for name in ("PLAINTEXT", SSL, MTLS, SASL_SSL, OAUTH):
            self.assertIn(f"{name}://127.0.0.1:{info.port_of(name)}", listeners)
        self.assertEqual(self.settings["inter.broker.listener.name"], "PLAINTEXT")
        mapping = dict(
            p.split(":") for p in self.settings["listener.security.protocol.map"].split(",")
        )
        self.assertEqual(
            mapping,
            {
                "PLAINTEXT": "PLAINTEXT",
                "CONTROLLER": "PLAINTEXT",
                SSL: "SSL",
                MTLS: "SSL",
                SASL_SSL: "SASL_SSL",
                OAUTH: "SASL_SSL",
            },
        )
        self.assertEqual(self.cluster.bootstrap_for(SASL_SSL).count(","), 1)

    def test_tls_stores(self) -> None:
        """Every TLS listener reads the broker's PEM key store and the CA; only MTLS asks
        clients for a certificate."""
        store = self.cluster.broker_files.key_store
        for name in ("ssl", "mtls", "sasl_ssl", "oauth"):
            prefix = f"listener.name.{name}."
            self.assertEqual(self.settings[prefix + "ssl.keystore.type"], "PEM")
            self.assertEqual(self.settings[prefix + "ssl.keystore.location"], str(store))
            self.assertEqual(
                self.settings[prefix + "ssl.truststore.location"], str(self.cluster.ca_file)
            )
        self.assertEqual(self.settings["listener.name.mtls.ssl.client.auth"], "required")
        self.assertEqual(self.settings["listener.name.ssl.ssl.client.auth"], "none")
        self.assertTrue(store.is_file())
        self.assertEqual(
            sorted(self.cluster.broker_identity.sans), ["DNS:localhost", "IP:127.0.0.1"]
        )

    def test_sasl(self) -> None:
        """SCRAM and PLAIN on SASL_SSL, OAUTHBEARER on OAUTH, a login line per mechanism."""
        prefix = "listener.name.sasl_ssl."
        self.assertEqual(
            self.settings[prefix + "sasl.enabled.mechanisms"], "SCRAM-SHA-512,SCRAM-SHA-256,PLAIN"
        )
        self.assertIn(
            "ScramLoginModule required;", self.settings[prefix + "scram-sha-512.sasl.jaas.config"]
        )
        self.assertIn('user_alice="alice-secret"', self.settings[prefix + "plain.sasl.jaas.config"])
        self.assertEqual(
            self.settings["listener.name.oauth.sasl.enabled.mechanisms"], "OAUTHBEARER"
        )

    def test_scram_users_formatted(self) -> None:
        """Every user gets SCRAM-SHA-512 and -256 credentials when storage is formatted."""
        args = self.cluster.format_arguments(1)
        self.assertIn("SCRAM-SHA-512=[name=alice,password=alice-secret]", args)
        self.assertIn("SCRAM-SHA-256=[name=kgateway,password=kgateway-secret]", args)
        self.assertEqual(args.count("--add-scram"), 2 * len(self.cluster.users))

    def test_shared_ca(self) -> None:
        """A CA given in signs the broker certificate, so other certificates share it."""
        ca = CertificateAuthority()
        cluster = SecuredKafkaCluster(
            size=1, base_dir=Path(self.mktemp()), ca=ca, oauth=False, mtls=False
        )
        cluster.broker_identity.certificate.verify_directly_issued_by(ca.certificate)
        names = [listener.name for listener in cluster.listeners]
        self.assertEqual(names, [SSL, SASL_SSL])

    def test_temporary_folder_removed(self) -> None:
        """Without a base_dir the certificates go in a temporary folder stop() removes."""
        cluster = SecuredKafkaCluster(size=1)
        self.assertTrue(cluster.tls_dir.is_dir())
        cluster.stop()
        self.assertFalse(cluster.base_dir.exists())

    def test_users(self) -> None:
        """Users are looked up by name; a name that a JAAS line would misread is refused."""
        self.assertEqual(self.cluster.user("bob").password, "bob-secret")
        with self.assertRaises(KeyError):
            self.cluster.user("mallory")
        with self.assertRaises(ValueError):
            User("a b", "x")
        with self.assertRaises(ValueError):
            User("a", 'x"; evil')
        self.assertEqual(
            scram_format_args([User("u", "p")]),
            [
                "--add-scram",
                "SCRAM-SHA-512=[name=u,password=p]",
                "--add-scram",
                "SCRAM-SHA-256=[name=u,password=p]",
            ],
        )
        self.assertEqual(
            plain_jaas([User("u", "p")]),
            'org.apache.kafka.common.security.plain.PlainLoginModule required user_u="p";',
        )


class ClientSecurityTests(TestCase):
    """One client's settings, as each client family reads them."""

    ca = Path("/tls/ca.pem")

    def test_scram(self) -> None:
        """SASL_SSL with SCRAM: Java, librdkafka and the scripts' options agree."""
        security = ClientSecurity("SASL_SSL", ca=self.ca, mechanism="SCRAM-SHA-512").with_login(
            "alice", "pw"
        )
        self.assertEqual(
            security.java_properties(),
            {
                "security.protocol": "SASL_SSL",
                "ssl.truststore.type": "PEM",
                "ssl.truststore.location": "/tls/ca.pem",
                "sasl.mechanism": "SCRAM-SHA-512",
                "sasl.jaas.config": "org.apache.kafka.common.security.scram.ScramLoginModule "
                'required username="alice" password="pw";',
            },
        )
        self.assertEqual(
            security.rdkafka_config(),
            {
                "security.protocol": "sasl_ssl",
                "ssl.ca.location": "/tls/ca.pem",
                "sasl.mechanisms": "SCRAM-SHA-512",
                "sasl.username": "alice",
                "sasl.password": "pw",
            },
        )
        self.assertEqual(
            security.script_args(),
            [
                "--security-protocol", "SASL_SSL",
                "--ssl-ca", "/tls/ca.pem",
                "--sasl-mechanism", "SCRAM-SHA-512",
                "--sasl-username", "alice",
                "--sasl-password", "pw",
            ],
        )  # fmt: skip

    def test_mtls(self) -> None:
        """A client certificate: the key store for Java, the two files for the others."""
        files = (
            CertificateAuthority()
            .issue("CN=alice", server=False)
            .write_pem(Path(self.mktemp()), "alice")
        )
        security = ClientSecurity("SSL", ca=self.ca).with_client_certificate(files)
        self.assertEqual(security.java_properties()["ssl.keystore.location"], str(files.key_store))
        self.assertEqual(security.rdkafka_config()["ssl.key.location"], str(files.key))
        self.assertIn(str(files.certificate), security.script_args())
        self.assertIsNone(security.jaas_config())
        self.assertEqual(security.kcat_args()[:2], ["-X", "security.protocol=ssl"])

    def test_oauth(self) -> None:
        """OAUTHBEARER: an unsecured token whose subject is the user."""
        security = ClientSecurity("SASL_SSL", ca=self.ca, mechanism="OAUTHBEARER", username="svc")
        self.assertIn('unsecuredLoginStringClaim_sub="svc"', security.jaas_config() or "")
        self.assertEqual(security.rdkafka_config()["sasl.oauthbearer.config"], "principal=svc")

    def test_refused(self) -> None:
        """Unknown protocols and mechanisms, and SASL without a mechanism."""
        with self.assertRaises(ValueError):
            ClientSecurity("TLS")
        with self.assertRaises(ValueError):
            ClientSecurity("SASL_SSL")
        with self.assertRaises(ValueError):
            ClientSecurity("SASL_SSL", mechanism="GSSAPI")

    def test_properties_file(self) -> None:
        """The Java properties file holds a password, so only its owner reads it."""
        path = ClientSecurity("SSL", ca=self.ca).write_java_properties(
            Path(self.mktemp()) / "c.properties", {"acks": "all"}
        )
        self.assertEqual(
            parse(path.read_text()),
            {
                "security.protocol": "SSL",
                "ssl.truststore.type": "PEM",
                "ssl.truststore.location": "/tls/ca.pem",
                "acks": "all",
            },
        )
        self.assertEqual(path.stat().st_mode & 0o777, 0o600)
