"""How a test client connects: its security protocol, TLS files and SASL login, once.

One L{ClientSecurity} is turned into what each client family reads: command-line options for
the client scripts in C{tests/integration/clients} (Python and Go alike), a Java client
properties file (C{--command-config}, C{--producer.config}), librdkafka settings (kcat's
C{-X}), and Kafka's own JAAS line.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

from harness.certs import PemFiles

PROTOCOLS = ("PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL")
MECHANISMS = ("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512", "OAUTHBEARER")

_LOGIN_MODULES = {
    "PLAIN": "org.apache.kafka.common.security.plain.PlainLoginModule",
    "SCRAM-SHA-256": "org.apache.kafka.common.security.scram.ScramLoginModule",
    "SCRAM-SHA-512": "org.apache.kafka.common.security.scram.ScramLoginModule",
    "OAUTHBEARER": "org.apache.kafka.common.security.oauthbearer.OAuthBearerLoginModule",
}


@dataclass(frozen=True)
class ClientSecurity:
    """A client's security settings; C{None} fields are not set.

    C{ca} is the PEM file of the CA that signed the server (gateway or broker) certificate;
    C{certificate}/C{key} (PEM, the key unencrypted PKCS#8) are the client's for mTLS, and
    C{key_store} is both in one file, as Java's PEM key store wants. For OAUTHBEARER the
    C{username} is the unsecured token's subject and C{password} is not used.
    """

    protocol: str = "PLAINTEXT"
    ca: Path | None = None
    certificate: Path | None = None
    key: Path | None = None
    key_store: Path | None = None
    mechanism: str | None = None
    username: str | None = None
    password: str | None = None

    def __post_init__(self) -> None:
        if self.protocol not in PROTOCOLS:
            raise ValueError(f"protocol {self.protocol!r}: use one of {PROTOCOLS}")
        if self.mechanism is not None and self.mechanism not in MECHANISMS:
            raise ValueError(f"mechanism {self.mechanism!r}: use one of {MECHANISMS}")
        if self.sasl and self.mechanism is None:
            raise ValueError(f"{self.protocol} needs a SASL mechanism")

    @property
    def tls(self) -> bool:
        """Whether the connection is TLS."""
        return self.protocol in ("SSL", "SASL_SSL")

    @property
    def sasl(self) -> bool:
        """Whether the client logs in with SASL."""
        return self.protocol.startswith("SASL_")

    def with_client_certificate(self, files: PemFiles) -> ClientSecurity:
        """The same settings, presenting the certificate in C{files} (mTLS)."""
        return replace(
            self, certificate=files.certificate, key=files.key, key_store=files.key_store
        )

    def with_login(self, username: str, password: str) -> ClientSecurity:
        """The same settings with another SASL user or password."""
        return replace(self, username=username, password=password)

    # -- what each family reads -----------------------------------------------------------

    def script_args(self) -> list[str]:
        """Options for the scripts in C{tests/integration/clients} (see C{sec_common.py})."""
        args = ["--security-protocol", self.protocol]
        for flag, value in (
            ("--ssl-ca", self.ca),
            ("--ssl-cert", self.certificate),
            ("--ssl-key", self.key),
            ("--sasl-mechanism", self.mechanism),
            ("--sasl-username", self.username),
            ("--sasl-password", self.password),
        ):
            if value is not None:
                args += [flag, str(value)]
        return args

    def jaas_config(self) -> str | None:
        """Kafka's C{sasl.jaas.config} line for this login, or C{None} without SASL."""
        if not self.sasl or self.mechanism is None:
            return None
        module = _LOGIN_MODULES[self.mechanism]
        if self.mechanism == "OAUTHBEARER":
            return f'{module} required unsecuredLoginStringClaim_sub="{self.username}";'
        return f'{module} required username="{self.username}" password="{self.password}";'

    def java_properties(self) -> dict[str, str]:
        """Java client settings (C{security.protocol}, PEM stores, C{sasl.jaas.config})."""
        settings = {"security.protocol": self.protocol}
        if self.tls and self.ca is not None:
            settings["ssl.truststore.type"] = "PEM"
            settings["ssl.truststore.location"] = str(self.ca)
        if self.tls and self.key_store is not None:
            settings["ssl.keystore.type"] = "PEM"
            settings["ssl.keystore.location"] = str(self.key_store)
        jaas = self.jaas_config()
        if jaas is not None:
            assert self.mechanism is not None
            settings["sasl.mechanism"] = self.mechanism
            settings["sasl.jaas.config"] = jaas
        return settings

    def write_java_properties(self, path: Path, extra: dict[str, str] | None = None) -> Path:
        """Write L{java_properties} (and C{extra}) as a properties file for the Java tools."""
        path.parent.mkdir(parents=True, exist_ok=True)
        settings = {**self.java_properties(), **(extra or {})}
        path.write_text("".join(f"{key}={value}\n" for key, value in settings.items()))
        path.chmod(0o600)
        return path

    def rdkafka_config(self) -> dict[str, str]:
        """librdkafka settings (confluent-kafka's config, kcat's C{-X})."""
        settings = {"security.protocol": self.protocol.lower()}
        for name, value in (
            ("ssl.ca.location", self.ca),
            ("ssl.certificate.location", self.certificate),
            ("ssl.key.location", self.key),
        ):
            if self.tls and value is not None:
                settings[name] = str(value)
        if self.sasl and self.mechanism is not None:
            settings["sasl.mechanisms"] = self.mechanism
            if self.mechanism == "OAUTHBEARER":
                settings["enable.sasl.oauthbearer.unsecure.jwt"] = "true"
                settings["sasl.oauthbearer.config"] = f"principal={self.username}"
            else:
                settings["sasl.username"] = self.username or ""
                settings["sasl.password"] = self.password or ""
        return settings

    def kcat_args(self) -> list[str]:
        """L{rdkafka_config} as kcat's C{-X name=value} options."""
        return [
            arg for key, value in self.rdkafka_config().items() for arg in ("-X", f"{key}={value}")
        ]
