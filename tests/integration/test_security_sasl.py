"""
Issue 13 through a gateway: SASL_SSL with SCRAM and PLAIN, each client logged in as itself.

The node's ports speak SASL_SSL (C{GATEWAY_SECURITY_PROTOCOL=SASL_SSL}) in front of the brokers'
SASL_SSL listener; the node's own connections log in as C{kgateway} with SCRAM-SHA-512
(C{KAFKA_SASL_MECHANISM}, C{KAFKA_SASL_JAAS_CONFIG}), and each client's own SASL exchange is
relayed to the broker, so a wrong password is refused by the broker and reaches the client as
the broker's answer: each family reacts as it does straight to the brokers
(L{tests.integration.test_security_direct}). No password ever reaches the node's log or its
admin API. Every run is under strace and fails if the client touched a broker port.
"""

from __future__ import annotations

import json

from twisted.trial.unittest import TestCase

from tests.integration.secured_environment import (
    FAMILIES,
    SecuredEnvironment,
    secured,
)

WRONG_PASSWORD = "wrong-password-7f3a"


class GatewaySaslScenarios:
    """The scenarios; a subclass per family sets C{family}."""

    family: str
    env: SecuredEnvironment

    def setUp(self) -> None:
        self.env = secured()

    def check(self, mechanism: str, user: str = "alice") -> None:
        env = self.env
        route = env.through(env.sasl_gateway(), env.sasl(mechanism, user=user))
        topic = env.create_topic(f"gw-{mechanism.lower()}-{self.family}")
        result = env.roundtrip(self.family, route, topic)
        assert isinstance(self, TestCase)
        self.assertEqual((result["produced"], result["consumed"]), (30, 30), result)
        self.assertEqual(result["duplicates"], [])

    def test_scram_sha_512(self) -> None:
        self.check("SCRAM-SHA-512")

    def test_scram_sha_256(self) -> None:
        """Another mechanism than the node's own (SCRAM-SHA-512), another user."""
        self.check("SCRAM-SHA-256", user="bob")

    def test_plain(self) -> None:
        self.check("PLAIN")

    def test_wrong_password(self) -> None:
        """The broker refuses the login; the client sees the broker's refusal, as it would
        straight to the broker, and the password is in no log line of the node."""
        env = self.env
        gateway = env.sasl_gateway()
        route = env.through(gateway, env.sasl("SCRAM-SHA-512", password=WRONG_PASSWORD))
        topic = env.create_topic("gw-wrong-password")
        failed_before = env.failed_logins()
        result, seconds = env.refusal(self.family, route, topic)
        output = result.stdout + result.stderr
        assert isinstance(self, TestCase)
        self.assertNotEqual(result.returncode, 0, output[-3000:])
        missing = env.login_refusal_missing(self.family, output, failed_before)
        if missing is not None:
            self.fail(f"{missing}:\n{output[-3000:]}")
        if self.family == "java":
            self.assertLess(seconds, 45, "the Java admin client should give up at once")
        log = gateway.log_text()
        self.assertNotIn(WRONG_PASSWORD, log)
        self.assertNotIn(env.cluster.user("alice").password, log)


class JavaGatewaySaslTests(GatewaySaslScenarios, TestCase):
    family = "java"


class LibrdkafkaGatewaySaslTests(GatewaySaslScenarios, TestCase):
    family = "librdkafka"


class KafkaPythonGatewaySaslTests(GatewaySaslScenarios, TestCase):
    family = "kafka-python"


class FranzGoGatewaySaslTests(GatewaySaslScenarios, TestCase):
    family = "franz-go"


assert {c.family for c in GatewaySaslScenarios.__subclasses__()} == set(FAMILIES)


class GatewaySecretsTests(TestCase):
    """The node's own credentials stay out of what it shows."""

    def setUp(self) -> None:
        self.env = secured()

    def test_no_secret_in_log_or_api(self) -> None:
        """The node's SCRAM password and key store password appear in no log line and no
        admin API answer, though the node logged in with them."""
        env = self.env
        gateway = env.sasl_gateway()
        env.roundtrip(
            "librdkafka", env.through(gateway, env.sasl("PLAIN")), env.create_topic("gw-s")
        )
        secrets = [env.cluster.user("kgateway").password, "store-secret"]
        texts = [gateway.log_text()]
        for path in ("/api/v1/cluster", "/api/v1/connections", "/metrics"):
            status, answer = gateway.api("GET", path)
            self.assertEqual(status, 200, f"{path}: {answer}")
            texts.append(answer if isinstance(answer, str) else json.dumps(answer))
        for secret in secrets:
            for text in texts:
                self.assertNotIn(secret, text)
