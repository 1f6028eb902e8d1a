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

import re

from twisted.trial.unittest import TestCase

from harness.kafka.secured import MTLS, OAUTH, SASL_SSL, SSL
from tests.integration.secured_environment import (
    AUTHENTICATION_REFUSED,
    CERTIFICATE_REFUSED,
    FAMILIES,
    SecuredEnvironment,
    secured,
)


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


class DirectRefusalScenarios:
    """What each family does when the brokers refuse it: what the gateway tests then expect
    to see, unchanged, through a gateway."""

    family: str
    env: SecuredEnvironment

    def setUp(self) -> None:
        self.env = secured()

    def assertRefused(self, listener: str, security: object, patterns: dict[str, str]) -> None:
        env = self.env
        topic = env.create_topic(f"refused-{self.family}")
        route = env.direct(listener, security)  # type: ignore[arg-type]
        failed_before = env.failed_logins()
        result, seconds = env.refusal(self.family, route, topic)
        assert isinstance(self, TestCase)
        output = result.stdout + result.stderr
        self.assertNotEqual(result.returncode, 0, output[-3000:])
        if patterns is AUTHENTICATION_REFUSED:
            missing = env.login_refusal_missing(self.family, output, failed_before)
            if missing is not None:
                self.fail(f"{missing}:\n{output[-3000:]}")
        elif not re.search(patterns[self.family], output):
            self.fail(f"{patterns[self.family]!r} not in the output:\n{output[-3000:]}")
        if self.family == "java":
            self.assertLess(seconds, 45, "the Java admin client should give up at once")

    def test_wrong_password(self) -> None:
        """A wrong SCRAM password: the broker refuses the login."""
        security = self.env.sasl("SCRAM-SHA-512", password="not-the-password")
        self.assertRefused(SASL_SSL, security, AUTHENTICATION_REFUSED)

    def test_missing_client_certificate(self) -> None:
        """No client certificate on the listener that requires one."""
        self.assertRefused(MTLS, self.env.tls(), CERTIFICATE_REFUSED)


class JavaDirectRefusalTests(DirectRefusalScenarios, TestCase):
    family = "java"


class LibrdkafkaDirectRefusalTests(DirectRefusalScenarios, TestCase):
    family = "librdkafka"


class KafkaPythonDirectRefusalTests(DirectRefusalScenarios, TestCase):
    family = "kafka-python"


class FranzGoDirectRefusalTests(DirectRefusalScenarios, TestCase):
    family = "franz-go"


assert {c.family for c in DirectScenarios.__subclasses__()} == set(FAMILIES)
assert {c.family for c in DirectRefusalScenarios.__subclasses__()} == set(FAMILIES)
