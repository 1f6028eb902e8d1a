"""
The client side's TLS settings: their rows (listed in L{kgateway.config}'s
C{SETTINGS} under issue 13), and the checked result: the node's key store
(what it serves), its trust store (whose client certificates it accepts, for
mTLS), and how often it looks for a renewed key store on disk.

One key store serves every TLS listener of a node; each listener says
whether it asks clients for a certificate (C{_SSL_CLIENT_AUTH}).  Also the
start-time refusal of listeners whose clients do not log in in front of
brokers that require SASL (L{client_login_refusal}).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar

from kgateway.listener import Listener, client_auth, security_protocol
from kgateway.security.stores import STORE_TYPES, StoreSettings, StoreType
from kgateway.setting import ConfigError, Setting, milliseconds_as_seconds, path

KEY_STORE_PATH = "GATEWAY_SSL_KEY_STORE_PATH"
KEY_STORE_PASSWORD = "GATEWAY_SSL_KEY_STORE_PASSWORD"
KEY_PASSWORD = "GATEWAY_SSL_KEY_PASSWORD"
KEY_TYPE = "GATEWAY_SSL_KEY_TYPE"
TRUST_STORE_PATH = "GATEWAY_SSL_TRUST_STORE_PATH"
TRUST_STORE_PASSWORD = "GATEWAY_SSL_TRUST_STORE_PASSWORD"
TRUST_STORE_TYPE = "GATEWAY_SSL_TRUST_STORE_TYPE"
CLIENT_AUTH = "GATEWAY_SSL_CLIENT_AUTH"
UPDATE_INTERVAL = "GATEWAY_SSL_UPDATE_INTERVAL_MS"
SECURITY_PROTOCOL = "GATEWAY_SECURITY_PROTOCOL"

T = TypeVar("T")


class Given(Protocol):
    """A row's checked value as given, or None when it is unset."""

    def __call__(self, row: Setting[T]) -> T | None: ...


#: The names of the settings of each store, for the stores' messages.
KEY_STORE = StoreSettings(KEY_STORE_PATH, KEY_TYPE, KEY_STORE_PASSWORD, KEY_PASSWORD)
TRUST_STORE = StoreSettings(TRUST_STORE_PATH, TRUST_STORE_TYPE, TRUST_STORE_PASSWORD)


def store_type(name: str, value: str) -> StoreType:
    """pkcs12, jks or pem (any case, as Conduktor's and Kafka's settings write them)."""
    text = value.strip().upper().replace("#", "")
    for known in STORE_TYPES:
        if text == known:
            return known
    raise ConfigError(f"{name}={value!r}: valid: {', '.join(t.lower() for t in STORE_TYPES)}")


def password(name: str, value: str) -> str:
    """A password, as given; never repeated in a message."""
    return value


SECURITY_PROTOCOL_ROW = Setting(
    SECURITY_PROTOCOL,
    "security-protocol",
    "security_protocol",
    security_protocol,
    None,
    "What clients speak to the node: PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL (a client's "
    "SASL is relayed to the brokers; SSL needs a key store)",
    unset="KAFKA_SECURITY_PROTOCOL, else PLAINTEXT",
)
KEY_STORE_PATH_ROW = Setting(
    KEY_STORE_PATH,
    "ssl-key-store-path",
    None,
    path,
    None,
    "Key store with the node's private key and certificate (chain), for TLS listeners",
)
KEY_STORE_PASSWORD_ROW = Setting(
    KEY_STORE_PASSWORD,
    "ssl-key-store-password",
    None,
    password,
    None,
    "The key store's password (prefer the environment: a command line is visible)",
    secret=True,
)
KEY_PASSWORD_ROW = Setting(
    KEY_PASSWORD,
    "ssl-key-password",
    None,
    password,
    None,
    "The private key's own password (PEM: an encrypted key; JKS: the key entry's)",
    secret=True,
)
KEY_TYPE_ROW = Setting(
    KEY_TYPE,
    "ssl-key-type",
    None,
    store_type,
    None,
    "The key store's type: pkcs12, jks, or pem (the key, then the certificates, in one file)",
    unset="found from the file",
)
TRUST_STORE_PATH_ROW = Setting(
    TRUST_STORE_PATH,
    "ssl-trust-store-path",
    None,
    path,
    None,
    "Trust store of the CAs whose client certificates are accepted (mTLS)",
)
TRUST_STORE_PASSWORD_ROW = Setting(
    TRUST_STORE_PASSWORD,
    "ssl-trust-store-password",
    None,
    password,
    None,
    "The trust store's password",
    secret=True,
)
TRUST_STORE_TYPE_ROW = Setting(
    TRUST_STORE_TYPE,
    "ssl-trust-store-type",
    None,
    store_type,
    None,
    "The trust store's type: pkcs12, jks or pem",
    unset="found from the file",
)
CLIENT_AUTH_ROW = Setting(
    CLIENT_AUTH,
    "ssl-client-auth",
    "ssl_client_auth",
    client_auth,
    "NONE",
    "Client certificates on TLS listeners: NONE, REQUEST (checked if sent) or REQUIRE; "
    "the certificate's subject is the connection's principal",
)
UPDATE_INTERVAL_ROW = Setting(
    UPDATE_INTERVAL,
    "ssl-update-interval-ms",
    None,
    milliseconds_as_seconds,
    "600000",
    "How often the key and trust stores are read again: a renewed store serves new "
    "connections, open ones keep theirs; 0: never",
)

#: The rows, in the order --help and the README list them.
ROWS: tuple[Setting[Any], ...] = (
    SECURITY_PROTOCOL_ROW,
    KEY_STORE_PATH_ROW,
    KEY_STORE_PASSWORD_ROW,
    KEY_PASSWORD_ROW,
    KEY_TYPE_ROW,
    TRUST_STORE_PATH_ROW,
    TRUST_STORE_PASSWORD_ROW,
    TRUST_STORE_TYPE_ROW,
    CLIENT_AUTH_ROW,
    UPDATE_INTERVAL_ROW,
)


@dataclass(frozen=True)
class StoreFile:
    """One store on disk: its path, its type and its password (never in a repr)."""

    path: str
    #: None: found from the file's first bytes.
    type: StoreType | None = None
    password: str | None = field(default=None, repr=False)


@dataclass(frozen=True)
class ServerTls:
    """What a node's TLS listeners serve and whom they trust."""

    key_store: StoreFile
    #: The private key's own password (PEM: an encrypted key; JKS: the key entry).
    key_password: str | None = field(default=None, repr=False)
    #: The CAs whose client certificates are accepted; None: no mTLS.
    trust_store: StoreFile | None = None
    #: How often the key and trust stores are read again for a renewal; 0: never.
    update_interval_seconds: float = 600.0


def server_tls(
    given: Given, listeners: Sequence[Listener], protocol_from: str = SECURITY_PROTOCOL
) -> ServerTls | None:
    """
    The TLS settings the listeners need, from the rows' checked values
    (C{given(row)}; None when unset), checked against the listeners: a TLS
    listener needs a key store, and a listener that asks for client
    certificates needs a trust store.  None when no listener speaks TLS.
    C{protocol_from}: the setting the DEFAULT listener's protocol came from.
    """
    key_path, trust_path = given(KEY_STORE_PATH_ROW), given(TRUST_STORE_PATH_ROW)
    for secret, store, where in (
        (KEY_STORE_PASSWORD_ROW, key_path, KEY_STORE_PATH),
        (KEY_PASSWORD_ROW, key_path, KEY_STORE_PATH),
        (TRUST_STORE_PASSWORD_ROW, trust_path, TRUST_STORE_PATH),
    ):
        if given(secret) is not None and store is None:
            raise ConfigError(f"{secret.env} is set but {where} is not: set both, or neither")
    tls = [each for each in listeners if each.tls]
    mtls = [each for each in tls if each.client_auth != "NONE"]
    if not tls:
        return None
    if key_path is None:
        first = tls[0]
        where = (
            f"{first.setting('SECURITY_PROTOCOL')}={first.security_protocol}"
            if first.name != "DEFAULT"
            else f"{protocol_from}={first.security_protocol}"
        )
        if protocol_from != SECURITY_PROTOCOL and first.name == "DEFAULT":
            where += f" (the default of {SECURITY_PROTOCOL})"
        raise ConfigError(
            f"{where} needs a key store for the node's certificate: set {KEY_STORE_PATH} "
            f"(and {KEY_TYPE}, {KEY_STORE_PASSWORD}), or use PLAINTEXT or SASL_PLAINTEXT"
        )
    if mtls and trust_path is None:
        first = mtls[0]
        where = first.setting("SSL_CLIENT_AUTH") if first.name != "DEFAULT" else CLIENT_AUTH
        raise ConfigError(
            f"{where}={first.client_auth} needs the CAs of the clients' certificates: set "
            f"{TRUST_STORE_PATH} (and {TRUST_STORE_TYPE}, {TRUST_STORE_PASSWORD})"
        )

    interval = given(UPDATE_INTERVAL_ROW)
    return ServerTls(
        StoreFile(key_path, given(KEY_TYPE_ROW), given(KEY_STORE_PASSWORD_ROW)),
        given(KEY_PASSWORD_ROW),
        None
        if trust_path is None
        else StoreFile(trust_path, given(TRUST_STORE_TYPE_ROW), given(TRUST_STORE_PASSWORD_ROW)),
        UPDATE_INTERVAL_ROW.initial() if interval is None else interval,
    )


def client_login_refusal(listeners: Sequence[Listener], kafka_protocol: str) -> str | None:
    """
    Why the node must not start: a listener whose clients do not log in
    (PLAINTEXT or SSL) in front of brokers that require SASL would need the
    gateway to log in on their behalf, which it does not do (yet).
    """
    if not kafka_protocol.upper().startswith("SASL_"):
        return None
    for each in listeners:
        if not each.sasl:
            where = (
                f"{each.setting('SECURITY_PROTOCOL')}"
                if each.name != "DEFAULT"
                else SECURITY_PROTOCOL
            )
            return (
                f"{where}={each.security_protocol} in front of KAFKA_SECURITY_PROTOCOL="
                f"{kafka_protocol.upper()}: clients that do not log in would need the gateway "
                "to log in for them, which it does not do yet; use SASL_PLAINTEXT or SASL_SSL "
                "so each client logs in to the brokers as itself"
            )
    return None
