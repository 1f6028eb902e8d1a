"""
The node's SASL login to a broker: the settings it is made from, and the exchange.

The mechanisms are kafka-python's (C{kafka.net.sasl}): sans-IO objects
that give the bytes to send (C{auth_bytes}) and read the broker's answer
(C{receive}).  This module only carries those bytes in SaslHandshake and
SaslAuthenticate requests over the node's own connection (anything with
C{request} and C{versions}, see L{Requester}), and turns a refusal into a
L{SaslRefused} whose message says what to fix.  SCRAM is not written here.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from kafka.net.sasl import get_sasl_mechanism
from kafka.net.sasl.oauth import AbstractTokenProvider
from kafka.protocol.sasl import SaslAuthenticateRequest, SaslHandshakeRequest
from twisted.internet.defer import Deferred

from kgateway.net import HostPort
from kgateway.protocol.error_codes import ErrorCode
from kgateway.security.jaas import (
    OAUTHBEARER_MODULE,
    PLAIN_MODULE,
    SCRAM_MODULE,
    parse_jaas,
)
from kgateway.security.oauth import OAuthSettings
from kgateway.setting import ConfigError

#: The mechanisms the node can log in with, and the JAAS login module of each.
MECHANISMS: Mapping[str, str] = {
    "PLAIN": PLAIN_MODULE,
    "SCRAM-SHA-256": SCRAM_MODULE,
    "SCRAM-SHA-512": SCRAM_MODULE,
    "OAUTHBEARER": OAUTHBEARER_MODULE,
}

#: A login that needs more round trips than this is not one of the mechanisms above.
MAX_ROUNDS = 5


class SaslRefused(Exception):
    """The broker refused the login, or its answers did not verify; the message says why."""


@dataclass(frozen=True)
class SaslNames:
    """The settings a login is made from, for the messages about it."""

    mechanism: str = "KAFKA_SASL_MECHANISM"
    jaas: str = "KAFKA_SASL_JAAS_CONFIG"
    token_endpoint: str = "KAFKA_SASL_OAUTHBEARER_TOKEN_ENDPOINT_URL"


@dataclass(frozen=True)
class Credentials:
    """A user name and password (PLAIN, SCRAM)."""

    username: str
    password: str = field(repr=False)


@dataclass(frozen=True)
class SaslSettings:
    """A checked SASL login: the mechanism and its credentials or OAuth client."""

    mechanism: str
    credentials: Credentials | None = None
    oauth: OAuthSettings | None = None
    names: SaslNames = SaslNames()

    @property
    def who(self) -> str:
        """Who logs in, as messages say it (never a secret)."""
        if self.credentials is not None:
            return f"user {self.credentials.username!r}"
        if self.oauth is not None:
            return f"OAuth client {self.oauth.client_id!r}"
        return "nobody"


def sasl_mechanism(name: str, value: str) -> str:
    """One of L{MECHANISMS}, in any case."""
    text = value.strip().upper()
    if text not in MECHANISMS:
        raise ConfigError(
            f"{name}={value!r}: not a SASL mechanism kgateway logs in with; valid: "
            + ", ".join(MECHANISMS)
        )
    return text


def sasl_settings(
    mechanism: str | None,
    jaas: str | None,
    token_endpoint: str | None,
    names: SaslNames = SaslNames(),
) -> SaslSettings:
    """
    The login for C{mechanism} (checked by L{sasl_mechanism}) with the
    credentials of the JAAS entry C{jaas}; C{token_endpoint} for OAUTHBEARER.
    """
    if mechanism is None:
        raise ConfigError(
            f"{names.mechanism} is not set; a SASL security protocol needs one of "
            + ", ".join(MECHANISMS)
        )
    module = MECHANISMS[mechanism]
    if jaas is None:
        raise ConfigError(
            f"{names.jaas} is not set; {names.mechanism}={mechanism} needs the credentials: "
            f"{_example(mechanism)}"
        )
    entry = parse_jaas(names.jaas, jaas)
    if entry.module != module:
        raise ConfigError(
            f"{names.jaas} names login module {entry.module}, but {names.mechanism}="
            f"{mechanism} logs in with {module}: {_example(mechanism)}"
        )
    options = entry.options
    if mechanism != "OAUTHBEARER":
        _require(options, ("username", "password"), mechanism, names)
        return SaslSettings(
            mechanism, Credentials(options["username"], options["password"]), names=names
        )
    _require(options, ("clientId", "clientSecret"), mechanism, names)
    if token_endpoint is None:
        raise ConfigError(
            f"{names.token_endpoint} is not set; {names.mechanism}=OAUTHBEARER fetches "
            "tokens from it with the client credentials in " + names.jaas
        )
    oauth = OAuthSettings(
        token_endpoint=token_endpoint,
        client_id=options["clientId"],
        client_secret=options["clientSecret"],
        scope=options.get("scope") or None,
        extensions={
            key.removeprefix("extension_"): value
            for key, value in options.items()
            if key.startswith("extension_")
        },
    )
    return SaslSettings(mechanism, oauth=oauth, names=names)


def _example(mechanism: str) -> str:
    module = MECHANISMS[mechanism]
    if mechanism == "OAUTHBEARER":
        return f'{module} required clientId="..." clientSecret="..." scope="...";'
    return f'{module} required username="..." password="...";'


def _require(
    options: Mapping[str, str], required: tuple[str, ...], mechanism: str, names: SaslNames
) -> None:
    missing = [option for option in required if not options.get(option)]
    if missing:
        raise ConfigError(
            f"{names.jaas} has no {' or '.join(missing)} for {mechanism}: {_example(mechanism)}"
        )


class Requester(Protocol):
    """What a login needs of a connection (the node's C{KafkaClientProtocol})."""

    versions: dict[int, tuple[int, int]]

    def request(self, message: Any) -> Deferred[Any]:
        """Send a request; fires with the decoded response."""


#: Gives a token to log in with (a L{kgateway.security.oauth.TokenSource}'s C{token}).
TokenProvider = Callable[[], "Deferred[str]"]


class _GivenToken(AbstractTokenProvider):  # type: ignore[misc]
    """kafka-python's token provider interface over a token already fetched."""

    def __init__(self, token: str, extensions: Mapping[str, str]) -> None:
        self._token = token
        self._extensions = dict(extensions)

    def token(self) -> str:
        return self._token

    def extensions(self) -> dict[str, str]:
        return self._extensions


@dataclass(frozen=True)
class SaslLogin:
    """Logs a connection in, with a token source for OAUTHBEARER."""

    settings: SaslSettings
    token: TokenProvider | None = None

    async def authenticate(self, client: Requester, broker: HostPort) -> None:
        """SaslHandshake, then SaslAuthenticate until the mechanism is done."""
        settings = self.settings
        name = settings.mechanism
        handshake = await client.request(
            SaslHandshakeRequest[_version(client, SaslHandshakeRequest, 1)](mechanism=name)
        )
        if handshake.error_code == ErrorCode.UNSUPPORTED_SASL_MECHANISM:
            offered = ", ".join(handshake.mechanisms) or "none"
            raise SaslRefused(
                f"the broker does not offer SASL {name} (it offers {offered}); set "
                f"{settings.names.mechanism} to one it offers"
            )
        if handshake.error_code != ErrorCode.NONE:
            raise SaslRefused(f"SaslHandshake refused: {_error_name(handshake.error_code)}")
        mechanism = await self._mechanism(broker)
        version = _version(client, SaslAuthenticateRequest, 2, lowest=1)
        challenge = ""
        for _ in range(MAX_ROUNDS):
            if mechanism.is_done():
                break
            answer = await client.request(
                SaslAuthenticateRequest[version](auth_bytes=mechanism.auth_bytes())
            )
            if answer.error_code != ErrorCode.NONE:
                reason = answer.error_message or _error_name(answer.error_code)
                raise SaslRefused(
                    f"SASL {name} login as {settings.who} refused by the broker: {reason}"
                    f"{challenge}; check the credentials in {settings.names.jaas}"
                )
            if name == "OAUTHBEARER" and answer.auth_bytes:
                # RFC 7628's error challenge: JSON saying why the token was refused.
                challenge = f" ({bytes(answer.auth_bytes[:200]).decode(errors='replace')})"
            try:
                mechanism.receive(answer.auth_bytes)
            except Exception as e:
                raise SaslRefused(
                    f"SASL {name}: the broker's answer does not verify ({e}); is it the "
                    "broker it claims to be?"
                ) from None
        if not mechanism.is_authenticated():
            raise SaslRefused(f"SASL {name} login as {settings.who} did not complete")

    async def _mechanism(self, broker: HostPort) -> Any:
        settings = self.settings
        config: dict[str, Any] = {"sasl_mechanism": settings.mechanism, "host": broker.host}
        if settings.credentials is not None:
            config["sasl_plain_username"] = settings.credentials.username
            config["sasl_plain_password"] = settings.credentials.password
        if settings.oauth is not None:
            if self.token is None:
                raise SaslRefused("OAUTHBEARER without a token source")
            token = await self.token()
            config["sasl_oauth_token_provider"] = _GivenToken(token, settings.oauth.extensions)
        return get_sasl_mechanism(settings.mechanism)(**config)


def _version(client: Requester, request: Any, highest: int, lowest: int = 1) -> int:
    """The highest version both know; v1 when the broker's versions were not asked."""
    offered = client.versions.get(request.API_KEY)
    if offered is None:
        return 1
    version = min(offered[1], highest)
    return version if version >= max(offered[0], lowest) else max(offered[0], lowest)


def _error_name(code: int) -> str:
    try:
        return ErrorCode(code).name
    except ValueError:
        return f"error {code}"
