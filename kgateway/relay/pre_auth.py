"""
The frame limit before a client has authenticated, as Kafka's brokers apply it.

A broker that requires SASL reads at most C{sasl.server.max.receive.size}
(512 KiB) per frame until the client's login succeeded, so a stranger
cannot make it hold 100 MiB frames.  A gateway in front of such a broker
applies the same limit to what it reads from the client, and lifts it once
the broker accepted the login: the SaslAuthenticate answer, with no error,
of the round that completes the mechanism (the second for SCRAM, whose
first round answers any known user; the first for the others).

Whether the broker requires SASL is the listener's to say (its security
protocol): L{PreAuthLimit} is given it as C{requires_sasl}.
"""

from __future__ import annotations

from kafka.protocol.api_key import ApiKey

from kgateway.protocol.codec import decode_response, response_class
from kgateway.protocol.error_codes import ErrorCode
from kgateway.protocol.framing import FrameStream

#: Kafka's default C{sasl.server.max.receive.size}.
DEFAULT_MAX_PRE_AUTH_FRAME_BYTES = 512 * 1024

_SASL_AUTHENTICATE = int(ApiKey.SaslAuthenticate)


def rounds_to_login(mechanism: str | None) -> int:
    """How many accepted SaslAuthenticate rounds complete a login with C{mechanism}."""
    return 2 if mechanism is not None and mechanism.startswith("SCRAM-") else 1


class PreAuthLimit:
    """Holds a client reader to the pre-authentication limit until the broker accepts a login."""

    __slots__ = ("_reader", "_max_frame_bytes", "watching", "_accepted")

    def __init__(
        self,
        reader: FrameStream,
        requires_sasl: bool,
        pre_auth_bytes: int = DEFAULT_MAX_PRE_AUTH_FRAME_BYTES,
    ) -> None:
        self._reader = reader
        self._max_frame_bytes = reader.max_frame_bytes
        #: Whether the limit applies (the broker requires SASL, and no login succeeded yet).
        self.watching = requires_sasl
        self._accepted = 0
        if requires_sasl:
            reader.limit(
                min(pre_auth_bytes, self._max_frame_bytes),
                "GATEWAY_MAX_PRE_AUTH_FRAME_BYTES, before the client authenticated",
            )

    def answered(self, api_version: int, frame: bytes, mechanism: str | None) -> bool:
        """
        The broker's whole SaslAuthenticate answer C{frame}: whether it
        completed the login (and lifted the limit).
        """
        if not self.watching:
            return False
        try:
            answer = decode_response(response_class(_SASL_AUTHENTICATE), frame, api_version)
        except Exception:
            return False  # the client reads it and fails; the limit stays
        if answer.error_code != ErrorCode.NONE:
            return False
        self._accepted += 1
        if self._accepted < rounds_to_login(mechanism):
            return False
        self.watching = False
        self._reader.limit(self._max_frame_bytes, "GATEWAY_MAX_FRAME_BYTES")
        return True
