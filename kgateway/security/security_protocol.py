"""
Kafka's four security protocols, as C{security.protocol} names them.

Both sides use them: C{KAFKA_SECURITY_PROTOCOL} (how the node reaches the
brokers) and C{GATEWAY_SECURITY_PROTOCOL} (what the listeners speak).
"""

from __future__ import annotations

from enum import StrEnum

from kgateway.setting import ConfigError


class SecurityProtocol(StrEnum):
    """C{PLAINTEXT}, C{SSL}, C{SASL_PLAINTEXT} or C{SASL_SSL}."""

    PLAINTEXT = "PLAINTEXT"
    SSL = "SSL"
    SASL_PLAINTEXT = "SASL_PLAINTEXT"
    SASL_SSL = "SASL_SSL"

    @property
    def uses_tls(self) -> bool:
        """Whether connections are TLS (C{SSL}, C{SASL_SSL})."""
        return self in (SecurityProtocol.SSL, SecurityProtocol.SASL_SSL)

    @property
    def uses_sasl(self) -> bool:
        """Whether a SASL login follows the connection (C{SASL_*})."""
        return self in (SecurityProtocol.SASL_PLAINTEXT, SecurityProtocol.SASL_SSL)


def security_protocol(name: str, value: str) -> SecurityProtocol:
    """A L{SecurityProtocol}, in any case (Kafka's clients accept C{sasl_ssl})."""
    text = value.strip().upper()
    try:
        return SecurityProtocol(text)
    except ValueError:
        raise ConfigError(
            f"{name}={value!r}: not a security protocol; valid: "
            + ", ".join(protocol.value for protocol in SecurityProtocol)
        ) from None
