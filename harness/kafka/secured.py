"""A Kafka cluster with secured client listeners: SSL, mTLS, SASL_SSL and OAUTHBEARER.

Inter-broker and controller traffic stay on C{PLAINTEXT} (what the readiness probe uses too);
clients get, on every broker, a port per listener:

  - C{SSL}: TLS, no client certificate;
  - C{MTLS} (security protocol SSL): TLS with C{ssl.client.auth=required}, so the principal
    is the client certificate's subject (C{User:CN=...});
  - C{SASL_SSL}: TLS, then SCRAM-SHA-512, SCRAM-SHA-256 or PLAIN;
  - C{OAUTH} (security protocol SASL_SSL): TLS, then OAUTHBEARER with Kafka's unsecured
    validator (an unsigned JWS whose C{sub} is the principal): what a test can do without
    an identity provider.

The broker certificates come from L{harness.certs} (a test CA made here unless one is given)
and are read by Kafka as C{PEM} key stores, so no keytool is needed. SCRAM users are created
when storage is formatted (C{--add-scram}), PLAIN users are JAAS options.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from harness.certs import LOOPBACK_SANS, CertificateAuthority, Identity, PemFiles
from harness.kafka.cluster import KafkaCluster
from harness.kafka.properties import Listener

SSL = "SSL"
"""TLS without client certificates."""
MTLS = "MTLS"
"""TLS that requires a client certificate (security protocol SSL)."""
SASL_SSL = "SASL_SSL"
"""TLS, then SCRAM or PLAIN."""
OAUTH = "OAUTH"
"""TLS, then OAUTHBEARER (unsecured JWS tokens)."""

SCRAM_MECHANISMS = ("SCRAM-SHA-512", "SCRAM-SHA-256")
"""The SCRAM mechanisms every user gets credentials for."""
SASL_MECHANISMS = (*SCRAM_MECHANISMS, "PLAIN")
"""What the C{SASL_SSL} listener accepts."""

_SCRAM_MODULE = "org.apache.kafka.common.security.scram.ScramLoginModule"
_PLAIN_MODULE = "org.apache.kafka.common.security.plain.PlainLoginModule"
_OAUTH_MODULE = "org.apache.kafka.common.security.oauthbearer.OAuthBearerLoginModule"


@dataclass(frozen=True)
class User:
    """A SASL user: known to SCRAM and PLAIN alike, with the same password."""

    name: str
    password: str

    def __post_init__(self) -> None:
        # The user goes into a StorageTool argument and a JAAS option unquoted or
        # double-quoted; keep it to what both read literally.
        for what, text in (("name", self.name), ("password", self.password)):
            if not text or any(c in text for c in '"\\,=[];\n '):
                raise ValueError(f"user {what} {text!r}: use letters, digits, '-', '_' or '.'")


DEFAULT_USERS = (
    User("alice", "alice-secret"),
    User("bob", "bob-secret"),
    User("kgateway", "kgateway-secret"),
)
"""Two client users, and one for a gateway node's own connections."""


def scram_format_args(users: Sequence[User]) -> list[str]:
    """The C{StorageTool format} arguments that create every user for every SCRAM mechanism."""
    return [
        arg
        for user in users
        for mechanism in SCRAM_MECHANISMS
        for arg in ("--add-scram", f"{mechanism}=[name={user.name},password={user.password}]")
    ]


def plain_jaas(users: Sequence[User]) -> str:
    """The broker's PLAIN login line, every user as a C{user_<name>} option."""
    options = " ".join(f'user_{user.name}="{user.password}"' for user in users)
    return f"{_PLAIN_MODULE} required {options};"


def _tls(key_store: Path, trust_store: Path) -> dict[str, object]:
    return {
        "ssl.keystore.type": "PEM",
        "ssl.keystore.location": key_store,
        "ssl.truststore.type": "PEM",
        "ssl.truststore.location": trust_store,
    }


def secured_listeners(
    key_store: Path,
    trust_store: Path,
    users: Sequence[User],
    *,
    mtls: bool = True,
    sasl: bool = True,
    oauth: bool = True,
) -> list[Listener]:
    """The listeners described in the module docstring, with the broker's PEM key store
    (key then certificate chain) and the CA file clients' certificates are checked against."""
    tls = _tls(key_store, trust_store)
    listeners = [Listener(SSL, properties={**tls, "ssl.client.auth": "none"})]
    if mtls:
        listeners.append(Listener(MTLS, SSL, {**tls, "ssl.client.auth": "required"}))
    if sasl:
        sasl_properties: dict[str, object] = {
            **tls,
            "ssl.client.auth": "none",
            "sasl.enabled.mechanisms": ",".join(SASL_MECHANISMS),
            "plain.sasl.jaas.config": plain_jaas(users),
        }
        for mechanism in SCRAM_MECHANISMS:
            sasl_properties[f"{mechanism.lower()}.sasl.jaas.config"] = f"{_SCRAM_MODULE} required;"
        listeners.append(Listener(SASL_SSL, properties=sasl_properties))
    if oauth:
        listeners.append(
            Listener(
                OAUTH,
                SASL_SSL,
                {
                    **tls,
                    "ssl.client.auth": "none",
                    "sasl.enabled.mechanisms": "OAUTHBEARER",
                    # No server callback handler: Kafka validates with its unsecured one.
                    "oauthbearer.sasl.jaas.config": f"{_OAUTH_MODULE} required;",
                },
            )
        )
    return listeners


SECURED_OVERRIDES: dict[str, object] = {
    # A refused login is answered, then the connection closed this much later (Kafka's
    # default is 100 ms). kafka-python sometimes saw the close before reading the answer and
    # reported a bare disconnect; a second lets every client read why it was refused.
    "connection.failed.authentication.delay.ms": 1000,
}
"""Broker settings every secured cluster gets (a caller's C{overrides} win)."""


class SecuredKafkaCluster(KafkaCluster):
    """A L{KafkaCluster} with the listeners of L{secured_listeners}, SCRAM users formatted in.

    C{ca} signs the broker certificate (a fresh test CA by default; pass your own so clients'
    and gateways' certificates share it); C{broker_sans} are the broker certificate's SANs.
    Certificates are written to C{tls_dir} (C{<base_dir>/tls}). The remaining arguments are
    L{KafkaCluster}'s; C{overrides} and C{format_args} are added to the secured ones.
    """

    def __init__(
        self,
        size: int = 3,
        base_dir: Path | str | None = None,
        *,
        users: Sequence[User] = DEFAULT_USERS,
        ca: CertificateAuthority | None = None,
        broker_sans: Sequence[str] = LOOPBACK_SANS,
        mtls: bool = True,
        sasl: bool = True,
        oauth: bool = True,
        format_args: Sequence[str] = (),
        overrides: dict[str, object] | None = None,
        **cluster_args: object,
    ) -> None:
        """A secured cluster (not started); see the class docstring."""
        owns = base_dir is None
        base = (
            Path(base_dir).absolute()
            if base_dir is not None
            else Path(tempfile.mkdtemp(prefix="kgateway-kafka-"))
        )
        self.users = tuple(users)
        self.ca = ca or CertificateAuthority()
        self.tls_dir = base / "tls"
        self.broker_identity: Identity = self.ca.issue(
            "CN=kafka-broker,O=kgateway tests", broker_sans
        )
        self.broker_files: PemFiles = self.broker_identity.write_pem(self.tls_dir, "broker")
        self.ca_file = self.ca.write_pem(self.tls_dir / "ca.pem")
        try:
            super().__init__(
                size,
                base,
                listeners=secured_listeners(
                    self.broker_files.key_store,
                    self.ca_file,
                    self.users,
                    mtls=mtls,
                    sasl=sasl,
                    oauth=oauth,
                ),
                format_args=[*scram_format_args(self.users), *format_args],
                overrides={**SECURED_OVERRIDES, **(overrides or {})},
                **cluster_args,  # type: ignore[arg-type]
            )
        except BaseException:
            if owns:
                shutil.rmtree(base, ignore_errors=True)
            raise
        # The folder was made here, not by KafkaCluster: stop() removes it all the same.
        self._owns_base_dir = owns

    def user(self, name: str) -> User:
        """The user called C{name}."""
        for user in self.users:
            if user.name == name:
                return user
        raise KeyError(f"no user {name!r}; the users are {[u.name for u in self.users]}")
