"""
How the node reaches its brokers, checked once at start: L{BrokerSecurity}.

Made by L{kgateway.config.Settings.load} from the C{KAFKA_SECURITY_PROTOCOL},
C{KAFKA_SSL_*} and C{KAFKA_SASL_*} rows: the stores are read and the JAAS
entry parsed here, so every mistake is one line at start.  Settings that
belong to the other protocols (a key store with C{PLAINTEXT}) are refused
rather than ignored: a user who set them expected them to work.
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass

from kgateway.security.client_tls import BrokerTls, TlsNames
from kgateway.security.sasl import SaslNames, SaslSettings, sasl_settings
from kgateway.security.security_protocol import SecurityProtocol
from kgateway.security.stores import (
    StoreType,
    load_key_store,
    load_trust_store,
    refuse_expired,
)
from kgateway.setting import ConfigError


@dataclass(frozen=True)
class StoreGiven:
    """What the settings say about one store (None: not given)."""

    location: str | None = None
    type: StoreType | None = None
    password: str | None = None
    key_password: str | None = None

    def __repr__(self) -> str:
        return f"<StoreGiven {self.location!r} {self.type}>"


@dataclass(frozen=True)
class BrokerSecurity:
    """The security protocol to the brokers, with its TLS and SASL login when it has them."""

    protocol: SecurityProtocol = SecurityProtocol.PLAINTEXT
    tls: BrokerTls | None = None
    sasl: SaslSettings | None = None


def broker_security(
    protocol: SecurityProtocol,
    *,
    tls_names: TlsNames,
    truststore: StoreGiven,
    keystore: StoreGiven,
    identification: str,
    sasl_names: SaslNames,
    mechanism: str | None,
    jaas: str | None,
    token_endpoint: str | None,
    now: datetime.datetime | None = None,
) -> BrokerSecurity:
    """Check the broker-side settings together and read what they name."""
    given_tls: list[str] = [
        name
        for name, value in (
            (tls_names.truststore.location, truststore.location),
            (tls_names.truststore.type, truststore.type),
            (tls_names.truststore.password, truststore.password),
            (tls_names.keystore.location, keystore.location),
            (tls_names.keystore.type, keystore.type),
            (tls_names.keystore.password, keystore.password),
            (tls_names.keystore.key_password, keystore.key_password),
        )
        if value is not None and name is not None
    ]
    given_sasl = [
        name
        for name, value in (
            (sasl_names.mechanism, mechanism),
            (sasl_names.jaas, jaas),
            (sasl_names.token_endpoint, token_endpoint),
        )
        if value is not None
    ]
    if given_tls and not protocol.uses_tls:
        raise ConfigError(
            f"{', '.join(given_tls)} set, but {tls_names.protocol}={protocol} does not use TLS; "
            f"set {tls_names.protocol}=SSL or SASL_SSL, or unset them"
        )
    if given_sasl and not protocol.uses_sasl:
        raise ConfigError(
            f"{', '.join(given_sasl)} set, but {tls_names.protocol}={protocol} does not log in; "
            f"set {tls_names.protocol}=SASL_SSL or SASL_PLAINTEXT, or unset them"
        )
    tls = None
    if protocol.uses_tls:
        tls = _tls(tls_names, truststore, keystore, identification, now)
    sasl = None
    if protocol.uses_sasl:
        sasl = sasl_settings(mechanism, jaas, token_endpoint, sasl_names)
    return BrokerSecurity(protocol, tls, sasl)


def secret(name: str, value: str) -> str:
    """A password or a JAAS entry, as given; checked where it is used, never repeated."""
    return value


def endpoint_identification(name: str, value: str) -> str:
    """C{https} (check the broker's host name) or empty (do not), as Kafka's setting says."""
    text = value.strip().lower()
    if text not in ("https", ""):
        raise ConfigError(
            f"{name}={value!r}: valid: https (the broker's host name is checked against its "
            "certificate) or empty (not checked)"
        )
    return text


def _refuse_without(
    location: str, settings: tuple[tuple[str | None, object], ...], fix: str
) -> None:
    """Refuse a store's settings given without its C{location} setting: one line, C{fix}."""
    unused = [name for name, value in settings if value is not None and name is not None]
    if unused:
        raise ConfigError(f"{', '.join(unused)} set without {location}: {fix}")


def _tls(
    names: TlsNames,
    truststore: StoreGiven,
    keystore: StoreGiven,
    identification: str,
    now: datetime.datetime | None,
) -> BrokerTls:
    trust = None
    if truststore.location is not None:
        trust = load_trust_store(
            names.truststore, truststore.location, truststore.type, truststore.password
        )
    else:
        _refuse_without(
            names.truststore.location,
            (
                (names.truststore.type, truststore.type),
                (names.truststore.password, truststore.password),
            ),
            "set the trust store's location too (unset, the system's CA certificates are trusted)",
        )
    key_store = None
    if keystore.location is not None:
        key_store = load_key_store(
            names.keystore,
            keystore.location,
            keystore.type,
            keystore.password,
            keystore.key_password,
        )
        refuse_expired(
            names.keystore,
            keystore.location,
            key_store,
            now or datetime.datetime.now(datetime.UTC),
        )
    else:
        _refuse_without(
            names.keystore.location,
            (
                (names.keystore.type, keystore.type),
                (names.keystore.password, keystore.password),
                (names.keystore.key_password, keystore.key_password),
            ),
            "set the key store's location too, or unset them",
        )
    return BrokerTls(
        names,
        trust=trust,
        trust_location=truststore.location,
        key_store=key_store,
        verify_host=identification == "https",
    )
