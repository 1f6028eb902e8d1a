"""
The broker side's settings (issue 13): how the node's own connections and
every client's broker leg reach Kafka, as the Java client's properties named
as C{KAFKA_*} variables.  They fill one field, C{Settings.broker_security},
once checked together (and the stores read) by L{kgateway.security.broker_side}.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from kgateway.security.broker_side import (
    BrokerSecurity,
    StoreGiven,
    broker_security,
    endpoint_identification,
    secret,
)
from kgateway.security.client_tls import TlsNames
from kgateway.security.oauth import token_endpoint
from kgateway.security.sasl import SaslNames, sasl_mechanism
from kgateway.security.security_protocol import security_protocol
from kgateway.security.stores import StoreSettings, store_type
from kgateway.setting import Setting, path

KAFKA_SECURITY_PROTOCOL = Setting(
    "KAFKA_SECURITY_PROTOCOL",
    "kafka-security-protocol",
    None,
    security_protocol,
    "PLAINTEXT",
    "How the node and every client's broker leg reach the brokers: PLAINTEXT, SSL, "
    "SASL_PLAINTEXT or SASL_SSL",
)
KAFKA_SSL_TRUSTSTORE_LOCATION = Setting(
    "KAFKA_SSL_TRUSTSTORE_LOCATION",
    "kafka-ssl-truststore-location",
    None,
    path,
    None,
    "Trust store file: the CA certificates the brokers' certificates must chain to",
    unset="the system's CA certificates",
)
KAFKA_SSL_TRUSTSTORE_TYPE = Setting(
    "KAFKA_SSL_TRUSTSTORE_TYPE",
    "kafka-ssl-truststore-type",
    None,
    store_type,
    None,
    "PEM, PKCS12 or JKS",
    unset="read from the file",
)
KAFKA_SSL_TRUSTSTORE_PASSWORD = Setting(
    "KAFKA_SSL_TRUSTSTORE_PASSWORD",
    "kafka-ssl-truststore-password",
    None,
    secret,
    None,
    "The trust store's password (PKCS12, JKS; a JKS trust store is read without one too)",
    secret=True,
)
KAFKA_SSL_KEYSTORE_LOCATION = Setting(
    "KAFKA_SSL_KEYSTORE_LOCATION",
    "kafka-ssl-keystore-location",
    None,
    path,
    None,
    "Key store file: the node's private key and certificate, for brokers that require "
    "client certificates (mTLS)",
)
KAFKA_SSL_KEYSTORE_TYPE = Setting(
    "KAFKA_SSL_KEYSTORE_TYPE",
    "kafka-ssl-keystore-type",
    None,
    store_type,
    None,
    "PEM (the key, then its certificate chain), PKCS12 or JKS",
    unset="read from the file",
)
KAFKA_SSL_KEYSTORE_PASSWORD = Setting(
    "KAFKA_SSL_KEYSTORE_PASSWORD",
    "kafka-ssl-keystore-password",
    None,
    secret,
    None,
    "The key store's password (PKCS12, JKS)",
    secret=True,
)
KAFKA_SSL_KEY_PASSWORD = Setting(
    "KAFKA_SSL_KEY_PASSWORD",
    "kafka-ssl-key-password",
    None,
    secret,
    None,
    "The private key's password (an encrypted PEM key; a JKS key with a password of its own)",
    secret=True,
)
KAFKA_SSL_ENDPOINT_IDENTIFICATION_ALGORITHM = Setting(
    "KAFKA_SSL_ENDPOINT_IDENTIFICATION_ALGORITHM",
    "kafka-ssl-endpoint-identification-algorithm",
    None,
    endpoint_identification,
    "https",
    "https: a broker's host name must be in its certificate; empty: it is not checked (the "
    "chain still is)",
)
KAFKA_SASL_MECHANISM = Setting(
    "KAFKA_SASL_MECHANISM",
    "kafka-sasl-mechanism",
    None,
    sasl_mechanism,
    None,
    "The node's SASL login: PLAIN, SCRAM-SHA-256, SCRAM-SHA-512 or OAUTHBEARER (clients "
    "still log in as themselves)",
)
KAFKA_SASL_JAAS_CONFIG = Setting(
    "KAFKA_SASL_JAAS_CONFIG",
    "kafka-sasl-jaas-config",
    None,
    secret,
    None,
    "The node's credentials as a JAAS login module entry, e.g. "
    'org.apache.kafka.common.security.scram.ScramLoginModule required username="..." '
    'password="..."; (prefer the environment)',
    secret=True,
)
KAFKA_SASL_OAUTHBEARER_TOKEN_ENDPOINT_URL = Setting(
    "KAFKA_SASL_OAUTHBEARER_TOKEN_ENDPOINT_URL",
    "kafka-sasl-oauthbearer-token-endpoint-url",
    None,
    token_endpoint,
    None,
    "OAUTHBEARER: the OAuth token endpoint the JAAS entry's clientId and clientSecret are "
    "traded at (client credentials)",
)

#: The protocol row, which the client side's default and refusal read too.
SECURITY_PROTOCOL = KAFKA_SECURITY_PROTOCOL

#: The broker side's rows, in the order C{--help} and the README list them.
ROWS: tuple[Setting[Any], ...] = (
    KAFKA_SECURITY_PROTOCOL,
    KAFKA_SSL_TRUSTSTORE_LOCATION,
    KAFKA_SSL_TRUSTSTORE_TYPE,
    KAFKA_SSL_TRUSTSTORE_PASSWORD,
    KAFKA_SSL_KEYSTORE_LOCATION,
    KAFKA_SSL_KEYSTORE_TYPE,
    KAFKA_SSL_KEYSTORE_PASSWORD,
    KAFKA_SSL_KEY_PASSWORD,
    KAFKA_SSL_ENDPOINT_IDENTIFICATION_ALGORITHM,
    KAFKA_SASL_MECHANISM,
    KAFKA_SASL_JAAS_CONFIG,
    KAFKA_SASL_OAUTHBEARER_TOKEN_ENDPOINT_URL,
)

#: The names the broker side's settings are known by in its messages.
BROKER_TLS_NAMES = TlsNames(
    truststore=StoreSettings(
        KAFKA_SSL_TRUSTSTORE_LOCATION.env,
        KAFKA_SSL_TRUSTSTORE_TYPE.env,
        KAFKA_SSL_TRUSTSTORE_PASSWORD.env,
    ),
    keystore=StoreSettings(
        KAFKA_SSL_KEYSTORE_LOCATION.env,
        KAFKA_SSL_KEYSTORE_TYPE.env,
        KAFKA_SSL_KEYSTORE_PASSWORD.env,
        KAFKA_SSL_KEY_PASSWORD.env,
    ),
    identification=KAFKA_SSL_ENDPOINT_IDENTIFICATION_ALGORITHM.env,
    protocol=KAFKA_SECURITY_PROTOCOL.env,
)
BROKER_SASL_NAMES = SaslNames(
    KAFKA_SASL_MECHANISM.env,
    KAFKA_SASL_JAAS_CONFIG.env,
    KAFKA_SASL_OAUTHBEARER_TOKEN_ENDPOINT_URL.env,
)


def broker_security_from(given: Mapping[Setting[Any], Any]) -> BrokerSecurity:
    """The broker side's rows, checked together (issue 13)."""
    return broker_security(
        given[KAFKA_SECURITY_PROTOCOL] or KAFKA_SECURITY_PROTOCOL.initial(),
        tls_names=BROKER_TLS_NAMES,
        truststore=StoreGiven(
            given[KAFKA_SSL_TRUSTSTORE_LOCATION],
            given[KAFKA_SSL_TRUSTSTORE_TYPE],
            given[KAFKA_SSL_TRUSTSTORE_PASSWORD],
        ),
        keystore=StoreGiven(
            given[KAFKA_SSL_KEYSTORE_LOCATION],
            given[KAFKA_SSL_KEYSTORE_TYPE],
            given[KAFKA_SSL_KEYSTORE_PASSWORD],
            given[KAFKA_SSL_KEY_PASSWORD],
        ),
        identification=(
            KAFKA_SSL_ENDPOINT_IDENTIFICATION_ALGORITHM.initial()
            if given[KAFKA_SSL_ENDPOINT_IDENTIFICATION_ALGORITHM] is None
            else given[KAFKA_SSL_ENDPOINT_IDENTIFICATION_ALGORITHM]
        ),
        sasl_names=BROKER_SASL_NAMES,
        mechanism=given[KAFKA_SASL_MECHANISM],
        jaas=given[KAFKA_SASL_JAAS_CONFIG],
        token_endpoint=given[KAFKA_SASL_OAUTHBEARER_TOKEN_ENDPOINT_URL],
    )
