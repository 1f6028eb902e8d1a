"""
Every client family straight to the secured cluster: the harness and the client scripts
proven before a gateway is put between them.

Four families (Kafka's Java console tools, librdkafka, kafka-python, franz-go) produce and
consume in a group over the brokers' SSL, MTLS (client certificate required), SASL_SSL
(SCRAM-SHA-512, SCRAM-SHA-256, PLAIN) and OAUTH (unsecured OAUTHBEARER) listeners. Each run is
under strace and may reach only the listener it was given: the PLAINTEXT, controller and other
listeners' ports are forbidden.
"""

from __future__ import annotations

from twisted.trial.unittest import TestCase

from harness.kafka.secured import MTLS, OAUTH, SASL_SSL, SSL
from tests.integration.secured_environment import FAMILIES, SecuredEnvironment, secured


class DirectScenarios:
    """The scenarios; a subclass per family sets C{family}."""

    family: str
    env: SecuredEnvironment

    def setUp(self) -> None:
        self.env = secured()

    def check(self, listener: str, security: object, prefix: str) -> None:
        env = self.env
        topic = env.create_topic(f"direct-{prefix}-{self.family}")
        result = env.roundtrip(self.family, env.direct(listener, security), topic)  # type: ignore[arg-type]
        assert isinstance(self, TestCase)
        self.assertEqual((result["produced"], result["consumed"]), (30, 30), result)
        self.assertEqual(result["duplicates"], [])

    def test_ssl(self) -> None:
        """TLS, the broker's name (IP SAN 127.0.0.1) verified."""
        self.check(SSL, self.env.tls(), "ssl")

    def test_mtls(self) -> None:
        """TLS with a client certificate on the listener that requires one."""
        files = self.env.client_certificate("CN=alice,O=kgateway tests")
        self.check(MTLS, self.env.tls().with_client_certificate(files), "mtls")

    def test_scram_sha_512(self) -> None:
        self.check(SASL_SSL, self.env.sasl("SCRAM-SHA-512"), "scram512")

    def test_scram_sha_256(self) -> None:
        self.check(SASL_SSL, self.env.sasl("SCRAM-SHA-256", user="bob"), "scram256")

    def test_plain(self) -> None:
        self.check(SASL_SSL, self.env.sasl("PLAIN"), "plain")

    def test_oauthbearer(self) -> None:
        """An unsecured OAUTHBEARER token, as the OAUTH listener validates them."""
        security = self.env.tls(SASL_SSL, mechanism="OAUTHBEARER", username="svc-tests")
        self.check(OAUTH, security, "oauth")


class JavaDirectTests(DirectScenarios, TestCase):
    family = "java"


class LibrdkafkaDirectTests(DirectScenarios, TestCase):
    family = "librdkafka"


class KafkaPythonDirectTests(DirectScenarios, TestCase):
    family = "kafka-python"


class FranzGoDirectTests(DirectScenarios, TestCase):
    family = "franz-go"


assert {c.family for c in DirectScenarios.__subclasses__()} == set(FAMILIES)
