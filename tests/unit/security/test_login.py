"""
The node's SASL logins through L{KafkaLink.open}: kafka-python's mechanisms
against a fake broker whose SCRAM is scramp's, over in-memory connections;
and what the broker directory logs when a login is refused.
"""

from __future__ import annotations

from typing import Any, cast

from kafka.protocol.metadata import MetadataRequest
from twisted.internet.defer import Deferred, succeed
from twisted.internet.task import Clock
from twisted.logger import ILogObserver, LogEvent, formatEvent, globalLogPublisher
from twisted.trial.unittest import SynchronousTestCase

from kgateway.cluster.brokers import BrokerDirectory
from kgateway.cluster.kafka_client import KafkaClientProtocol
from kgateway.cluster.link import KafkaLink, LinkError
from kgateway.security.oauth import OAuthSettings
from kgateway.security.sasl import Credentials, SaslLogin, SaslSettings
from tests.unit.cluster.fake_topic_broker import ADDRESS, FakeTopicBroker
from tests.unit.security.fake_sasl import FakeSaslServer

SECRET = "canary-s3cret"
TOKEN = "eyJhbGciOiJub25lIn0.eyJzdWIiOiJnYXRld2F5In0."


def password_login(mechanism: str, password: str = SECRET) -> SaslLogin:
    return SaslLogin(SaslSettings(mechanism, Credentials("gateway", password)))


def oauth_login(token: str = TOKEN) -> SaslLogin:
    oauth = OAuthSettings(
        "https://idp.example/token", "gateway", SECRET, "kafka", extensions={"tenant": "t1"}
    )
    return SaslLogin(SaslSettings("OAUTHBEARER", oauth=oauth), lambda: succeed(token))


class LoginTestCase(SynchronousTestCase):
    def setUp(self) -> None:
        self.broker = FakeTopicBroker()
        self.broker.topics["t"] = []
        self.sasl = self.broker.sasl = FakeSaslServer(users={"gateway": SECRET}, tokens={TOKEN})
        self.clock = Clock()
        self.events: list[LogEvent] = []
        observer = cast(ILogObserver, self.events.append)
        globalLogPublisher.addObserver(observer)
        self.addCleanup(globalLogPublisher.removeObserver, observer)

    def link(self, login: SaslLogin) -> KafkaLink:
        return KafkaLink((ADDRESS,), self.broker.connect, self.clock, login=login)

    def opened(self, login: SaslLogin) -> KafkaClientProtocol:
        opening = self.link(login).open(ADDRESS, learn_versions=False)
        self.broker.flush()
        client: KafkaClientProtocol = self.successResultOf(opening)
        return client

    def refused(self, login: SaslLogin) -> str:
        opening = self.link(login).open(ADDRESS)
        self.broker.flush()
        failure = self.failureResultOf(opening, LinkError)
        message = str(failure.value)
        self.assertNotIn(SECRET, message)
        self.assertNotIn(TOKEN, message)
        return message

    def metadata(self, client: KafkaClientProtocol) -> Any:
        answer: Deferred[Any] = client.request(
            MetadataRequest[12](
                topics=[MetadataRequest[12].MetadataRequestTopic(topic_id=None, name="t")],
                allow_auto_topic_creation=False,
                include_topic_authorized_operations=False,
            )
        )
        self.broker.flush()
        return self.successResultOf(answer)


class PasswordTests(LoginTestCase):
    def test_each_mechanism_logs_in(self) -> None:
        """PLAIN and both SCRAMs log in, after ApiVersions; then requests are served."""
        for mechanism in ("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"):
            client = self.opened(password_login(mechanism))
            self.assertEqual(self.metadata(client).brokers[0].node_id, 1)
            self.assertEqual(self.sasl.logins[-1], (mechanism, "gateway"))
            client.close()
        # ApiVersions came first on every connection, though the directory skips it otherwise.
        self.assertEqual([name for name, _ in self.broker.seen].count("ApiVersions"), 3)

    def test_wrong_password(self) -> None:
        for mechanism in ("PLAIN", "SCRAM-SHA-512"):
            self.assertEqual(
                self.refused(password_login(mechanism, "wrong")),
                f"SASL {mechanism} login as user 'gateway' refused by the broker: "
                "Authentication failed during authentication due to invalid credentials with "
                f"SASL mechanism {mechanism}; check the credentials in KAFKA_SASL_JAAS_CONFIG",
            )

    def test_mechanism_the_broker_does_not_offer(self) -> None:
        self.sasl.mechanisms = ("PLAIN",)
        self.assertEqual(
            self.refused(password_login("SCRAM-SHA-256")),
            "the broker does not offer SASL SCRAM-SHA-256 (it offers PLAIN); set "
            "KAFKA_SASL_MECHANISM to one it offers",
        )

    def test_without_login_the_broker_hangs_up(self) -> None:
        """The fake broker, like Kafka, refuses requests before the login."""
        client = self.opened(None)  # type: ignore[arg-type]
        answer = client.request(MetadataRequest[12](topics=[], allow_auto_topic_creation=False))
        self.broker.flush()
        self.failureResultOf(answer)
        self.assertIn(("unauthenticated", "MetadataRequest"), self.broker.seen)

    def test_a_hung_login_times_out(self) -> None:
        """A broker that never answers SaslAuthenticate: the link's timeout, and a hang-up."""
        self.sasl.answer = lambda connection, request, version: None  # type: ignore[method-assign]
        opening = self.link(password_login("PLAIN")).open(ADDRESS)
        self.broker.flush()
        self.clock.advance(11)
        self.failureResultOf(opening)


class OAuthTests(LoginTestCase):
    def test_token_and_extensions(self) -> None:
        client = self.opened(oauth_login())
        self.assertEqual(self.sasl.logins[-1], ("OAUTHBEARER", TOKEN))
        self.assertEqual(self.sasl.extensions, [{"tenant": "t1"}])
        self.assertEqual(self.metadata(client).brokers[0].node_id, 1)

    def test_refused_token(self) -> None:
        self.assertEqual(
            self.refused(oauth_login("eyJ.not.known")),
            "SASL OAUTHBEARER login as OAuth client 'gateway' refused by the broker: "
            "Authentication failed during authentication due to invalid credentials with SASL "
            'mechanism OAUTHBEARER ({"status":"invalid_token"}); check the credentials in '
            "KAFKA_SASL_JAAS_CONFIG",
        )


class DirectoryTests(LoginTestCase):
    def test_refused_login_logged_once_with_the_reason(self) -> None:
        """Every refresh fails; the directory says so once, with the broker and the reason."""
        link = self.link(password_login("SCRAM-SHA-512", "wrong"))
        directory = BrokerDirectory(link, refresh_seconds=1.0)
        directory.startService()
        self.addCleanup(directory.stopService)
        for _ in range(3):
            self.broker.flush()
            self.clock.advance(1.0)
        self.broker.flush()
        lines = [formatEvent(e) for e in self.events if "Cannot reach" in formatEvent(e)]
        self.assertEqual(
            lines,
            [
                "Cannot reach any Kafka broker for metadata (k1:9092: SASL SCRAM-SHA-512 login as "
                "user 'gateway' refused by the broker: Authentication failed during "
                "authentication due to invalid credentials with SASL mechanism SCRAM-SHA-512; "
                "check the credentials in KAFKA_SASL_JAAS_CONFIG); still trying"
            ],
        )
        self.assertFalse(directory.has_brokers)
        logged = "\n".join(formatEvent(e) for e in self.events)
        self.assertNotIn(SECRET, logged)
