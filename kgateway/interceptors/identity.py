"""
Learn a client's SASL username from the authentication it relays.

The gateway passes SASL through to the broker untouched; for the PLAIN
mechanism the username is in the clear in the SaslAuthenticate request
(C{authzid NUL authcid NUL password}), so a connection's username is known
once the broker accepted it.  Scopes by username use it.  Other mechanisms
(SCRAM, OAUTHBEARER, GSSAPI) keep the username out of reach of a relay that
does not terminate SASL, so their connections have none.  The password is
never kept.
"""

from __future__ import annotations

from dataclasses import dataclass

from kafka.protocol.api_key import ApiKey

from kgateway.protocol.codec import decode_request, decode_response, response_class
from kgateway.protocol.error_codes import ErrorCode


@dataclass
class SaslObserver:
    """Follows one connection's SASL exchange."""

    mechanism: str | None = None
    #: The username of the SaslAuthenticate request awaiting its answer.
    offered: str | None = None

    def request(self, api_key: int, api_version: int, frame: bytes) -> None:
        """A client request; only SASL ones are read."""
        if api_key == ApiKey.SaslHandshake:
            self.mechanism = str(decode_request(api_key, frame, api_version).mechanism).upper()
        elif api_key == ApiKey.SaslAuthenticate and self.mechanism == "PLAIN":
            auth = bytes(decode_request(api_key, frame, api_version).auth_bytes or b"")
            parts = auth.split(b"\0")
            self.offered = parts[1].decode(errors="replace") if len(parts) == 3 else None

    def response(self, api_key: int, api_version: int, frame: bytes) -> str | None:
        """The broker's answer; the username if it just accepted a PLAIN login."""
        if api_key != ApiKey.SaslAuthenticate or self.offered is None:
            return None
        offered, self.offered = self.offered, None
        answer = decode_response(response_class(api_key), frame, api_version)
        return offered if answer.error_code == ErrorCode.NONE else None
