"""
A broker's side of SASL, for the fake brokers in tests: SaslHandshake and
SaslAuthenticate answered with kafka-python's response classes, PLAIN and
OAUTHBEARER checked here, SCRAM by C{scramp} (a SCRAM implementation that is
not kafka-python's, so the client's SCRAM is checked against another one).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from kafka.protocol.sasl import SaslAuthenticateResponse, SaslHandshakeResponse
from scramp import ScramException, ScramMechanism

from kgateway.protocol.error_codes import ErrorCode

ITERATIONS = 4096


@dataclass
class _Session:
    mechanism: str | None = None
    scram: Any = None
    refused_token: bool = False
    authenticated: bool = False


@dataclass
class FakeSaslServer:
    """The SASL side of one fake broker: its users, tokens and mechanisms."""

    users: dict[str, str] = field(default_factory=dict)
    tokens: set[str] = field(default_factory=set)
    mechanisms: tuple[str, ...] = ("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512", "OAUTHBEARER")
    #: Every login that succeeded: (mechanism, user or token).
    logins: list[tuple[str, str]] = field(default_factory=list)
    #: The SASL extensions of OAUTHBEARER logins.
    extensions: list[dict[str, str]] = field(default_factory=list)
    _sessions: dict[int, _Session] = field(default_factory=dict)

    def authenticated(self, connection: object) -> bool:
        """Whether C{connection} has logged in."""
        return self._session(connection).authenticated

    def _session(self, connection: object) -> _Session:
        return self._sessions.setdefault(id(connection), _Session())

    def answer(self, connection: object, request: Any, version: int) -> Any:
        """The answer to a SaslHandshake or SaslAuthenticate request on C{connection}."""
        session = self._session(connection)
        if type(request).__name__ == "SaslHandshakeRequest":
            if request.mechanism not in self.mechanisms:
                return SaslHandshakeResponse(
                    error_code=ErrorCode.UNSUPPORTED_SASL_MECHANISM,
                    mechanisms=list(self.mechanisms),
                )
            session.mechanism = request.mechanism
            return SaslHandshakeResponse(
                error_code=ErrorCode.NONE, mechanisms=list(self.mechanisms)
            )
        return self._authenticate(session, bytes(request.auth_bytes))

    def _authenticate(self, session: _Session, data: bytes) -> Any:
        mechanism = session.mechanism
        if mechanism == "PLAIN":
            _, user, password = data.decode().split("\0")
            if self.users.get(user) == password:
                return self._welcome(session, user)
            return _refused(mechanism)
        if mechanism == "OAUTHBEARER":
            if data == b"\x01":
                return _refused(mechanism)
            fields = dict(item.split("=", 1) for item in data.decode().split("\x01") if "=" in item)
            token = fields.pop("auth", "").removeprefix("Bearer ")
            if token in self.tokens:
                self.extensions.append(fields)
                return self._welcome(session, token)
            return _answer(b'{"status":"invalid_token"}')
        if mechanism is not None and mechanism.startswith("SCRAM-"):
            try:
                if session.scram is None:
                    session.scram = self._scram_server(mechanism)
                    session.scram.set_client_first(data.decode())
                    return _answer(session.scram.get_server_first().encode())
                session.scram.set_client_final(data.decode())
                final = session.scram.get_server_final().encode()
            except (ScramException, KeyError):
                return _refused(mechanism)
            return self._welcome(session, session.scram.user, final)
        return SaslAuthenticateResponse(
            error_code=ErrorCode.ILLEGAL_SASL_STATE,
            error_message="SaslAuthenticate before SaslHandshake",
            auth_bytes=b"",
            session_lifetime_ms=0,
        )

    def _scram_server(self, mechanism: str) -> Any:
        scram = ScramMechanism(mechanism)
        users = {
            name: scram.make_auth_info(password, iteration_count=ITERATIONS)
            for name, password in self.users.items()
        }

        def auth(username: str) -> Any:
            server.user = username
            return users[username]

        server = scram.make_server(auth)
        return server

    def _welcome(self, session: _Session, who: str, final: bytes = b"") -> Any:
        session.authenticated = True
        self.logins.append((session.mechanism or "", who))
        return _answer(final)


def _answer(data: bytes) -> Any:
    return SaslAuthenticateResponse(
        error_code=ErrorCode.NONE, error_message=None, auth_bytes=data, session_lifetime_ms=0
    )


def _refused(mechanism: str) -> Any:
    # Kafka's own words for a wrong password.
    return SaslAuthenticateResponse(
        error_code=ErrorCode.SASL_AUTHENTICATION_FAILED,
        error_message=(
            "Authentication failed during authentication due to invalid credentials with "
            f"SASL mechanism {mechanism}"
        ),
        auth_bytes=b"",
        session_lifetime_ms=0,
    )
