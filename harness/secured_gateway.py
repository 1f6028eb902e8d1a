"""The settings that put a gateway node in front of a secured cluster, named in one place.

L{BrokerSide} is how the node reaches the brokers (issue 13 item 1: C{KAFKA_*} variables with
the Java client's property names); L{ClientSide} is what its ports offer clients (item 3:
C{GATEWAY_SECURITY_PROTOCOL}, C{GATEWAY_SSL_*}). Each gives the environment variables of a
L{harness.gateway_process.GatewayProcess}; the tests and the TLS benchmark use nothing else, so
a renamed setting is changed here once.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from harness.kafka.secured import MTLS, OAUTH, SASL_SSL, SSL, SecuredKafkaCluster, User

_LOGIN_MODULES = {
    "PLAIN": "org.apache.kafka.common.security.plain.PlainLoginModule",
    "SCRAM-SHA-256": "org.apache.kafka.common.security.scram.ScramLoginModule",
    "SCRAM-SHA-512": "org.apache.kafka.common.security.scram.ScramLoginModule",
}


def jaas_config(mechanism: str, user: User) -> str:
    """The C{sasl.jaas.config} line a Java client would log in to C{mechanism} with."""
    return (
        f'{_LOGIN_MODULES[mechanism]} required username="{user.name}" password="{user.password}";'
    )


@dataclass(frozen=True)
class BrokerSide:
    """How the node connects to the brokers: a listener of a L{SecuredKafkaCluster}.

    C{listener} is C{SSL}, C{MTLS} (then C{key_store}, a PEM key store, is the node's client
    certificate), C{SASL_SSL} (then C{mechanism} and C{user} log the node in; clients log in
    as themselves through it) or C{PLAINTEXT}. C{verify_host} off sets
    C{KAFKA_SSL_ENDPOINT_IDENTIFICATION_ALGORITHM} to empty, as Java clients spell it.
    """

    listener: str = SSL
    mechanism: str | None = None
    user: User | None = None
    key_store: Path | None = None
    verify_host: bool = True

    @property
    def protocol(self) -> str:
        """The Kafka security protocol of the listener."""
        return {MTLS: SSL, OAUTH: SASL_SSL}.get(self.listener, self.listener)

    def env(self, cluster: SecuredKafkaCluster) -> dict[str, str]:
        """The C{KAFKA_*} variables for C{cluster}."""
        env = {
            "KAFKA_BOOTSTRAP_SERVERS": cluster.bootstrap_for(self.listener),
            "KAFKA_SECURITY_PROTOCOL": self.protocol,
        }
        if self.protocol in (SSL, SASL_SSL):
            env["KAFKA_SSL_TRUSTSTORE_LOCATION"] = str(cluster.ca_file)
            env["KAFKA_SSL_TRUSTSTORE_TYPE"] = "PEM"
            if not self.verify_host:
                env["KAFKA_SSL_ENDPOINT_IDENTIFICATION_ALGORITHM"] = ""
        if self.key_store is not None:
            env["KAFKA_SSL_KEYSTORE_LOCATION"] = str(self.key_store)
            env["KAFKA_SSL_KEYSTORE_TYPE"] = "PEM"
        if self.protocol.startswith("SASL_"):
            if self.mechanism is None or self.user is None:
                raise ValueError(f"{self.listener}: give the node a mechanism and a user")
            env["KAFKA_SASL_MECHANISM"] = self.mechanism
            env["KAFKA_SASL_JAAS_CONFIG"] = jaas_config(self.mechanism, self.user)
        return env


@dataclass(frozen=True)
class ClientSide:
    """What the node's ports offer clients.

    C{protocol} is C{GATEWAY_SECURITY_PROTOCOL}; C{key_store} (type C{key_store_type}:
    C{pkcs12}, C{jks} or C{pem}) holds the node's server certificate; C{trust_store} the CA
    client certificates are checked against, with C{client_auth} (C{NONE}, C{REQUEST},
    C{REQUIRE}); C{update_interval_ms} how often a renewed key store on disk is looked for.
    """

    protocol: str = SSL
    key_store: Path | None = None
    key_store_password: str | None = None
    key_store_type: str = "pkcs12"
    key_password: str | None = None
    trust_store: Path | None = None
    trust_store_password: str | None = None
    trust_store_type: str = "pem"
    client_auth: str | None = None
    update_interval_ms: int | None = None

    def env(self) -> dict[str, str]:
        """The C{GATEWAY_SECURITY_PROTOCOL} and C{GATEWAY_SSL_*} variables."""
        env = {"GATEWAY_SECURITY_PROTOCOL": self.protocol}
        for name, value in (
            ("GATEWAY_SSL_KEY_STORE_PATH", self.key_store),
            ("GATEWAY_SSL_KEY_STORE_PASSWORD", self.key_store_password),
            ("GATEWAY_SSL_KEY_PASSWORD", self.key_password),
            ("GATEWAY_SSL_TRUST_STORE_PATH", self.trust_store),
            ("GATEWAY_SSL_TRUST_STORE_PASSWORD", self.trust_store_password),
            ("GATEWAY_SSL_CLIENT_AUTH", self.client_auth),
            ("GATEWAY_SSL_UPDATE_INTERVAL_MS", self.update_interval_ms),
        ):
            if value is not None:
                env[name] = str(value)
        if self.key_store is not None:
            env["GATEWAY_SSL_KEY_TYPE"] = self.key_store_type
        if self.trust_store is not None:
            env["GATEWAY_SSL_TRUST_STORE_TYPE"] = self.trust_store_type
        return env
