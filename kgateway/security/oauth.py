"""
OAUTHBEARER tokens for the node's own logins: OAuth 2 client credentials.

A L{TokenSource} asks the token endpoint (C{KAFKA_SASL_OAUTHBEARER_TOKEN_ENDPOINT_URL})
for a token the way Kafka's C{OAuthBearerLoginCallbackHandler} does: an
HTTP POST of C{grant_type=client_credentials} (and C{scope}), the client id
and secret as HTTP Basic authentication.  The token is kept and used until
80% of its lifetime (C{expires_in}, else the JWT's C{exp}) has passed; the
next login then fetches a new one, and while the endpoint fails a token
that has not yet expired keeps serving.  Neither the secret nor a token is
ever part of a repr, a log line or an error.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import treq
from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger

from kgateway.setting import ConfigError

log = Logger()

#: Used this share of a token's lifetime before fetching a new one.
REFRESH_AT = 0.8

#: A token whose lifetime neither C{expires_in} nor C{exp} gives is used this long.
UNKNOWN_LIFETIME_SECONDS = 300.0

#: The most of a token endpoint's answer read (a token is a few KiB).
MAX_ANSWER_BYTES = 1 << 20


class TokenError(Exception):
    """The token endpoint gave no token; the message says why, without secrets."""


@dataclass(frozen=True)
class OAuthSettings:
    """Client credentials and where to trade them for a token."""

    token_endpoint: str
    client_id: str
    client_secret: str = field(repr=False)
    scope: str | None = None
    #: SASL extensions sent with the token (JAAS options C{extension_<name>}).
    extensions: Mapping[str, str] = field(default_factory=dict)

    @property
    def shown_endpoint(self) -> str:
        """The endpoint as messages show it: no user information, query or fragment."""
        return shown_url(self.token_endpoint)


def shown_url(url: str) -> str:
    """C{url} without what may hold a secret (user information, query, fragment)."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if parts.port is not None:
        host = f"{host}:{parts.port}"
    return f"{parts.scheme}://{host}{parts.path}"


def token_endpoint(name: str, value: str) -> str:
    """An C{http://} or C{https://} URL with a host: the token endpoint."""
    text = value.strip()
    try:
        parts = urlsplit(text)
        valid = parts.scheme in ("http", "https") and bool(parts.hostname)
        parts.port  # noqa: B018 - raises on a port that is not a number
    except ValueError:
        valid = False
    if not valid:
        # The whole value, unless a part of it might be a secret (user:password@, a query).
        shown = shown_url(text) if any(c in text for c in "@?#") else value
        raise ConfigError(
            f"{name}={shown!r}: not an http:// or https:// URL with a host; give "
            "the OAuth token endpoint, e.g. https://login.example.com/oauth2/token"
        )
    return text


#: treq's C{post} (or a C{treq.testing.StubTreq}'s): fires with a response treq can read.
HttpPost = Callable[..., "Deferred[Any]"]


@dataclass
class _Token:
    value: str = field(repr=False)
    refresh_at: float
    expires_at: float


class TokenSource:
    """Fetches, keeps and renews one OAuth token (see the module's docstring)."""

    def __init__(
        self,
        settings: OAuthSettings,
        clock: IReactorTime,
        post: HttpPost,
        timeout_seconds: float = 10.0,
    ) -> None:
        self.settings = settings
        self._clock = clock
        self._post = post
        self._timeout = timeout_seconds
        self._token: _Token | None = None
        self._fetching: list[Deferred[str]] | None = None
        #: How many tokens were fetched (for tests and the curious).
        self.fetched = 0

    def __repr__(self) -> str:
        return f"<TokenSource {self.settings.shown_endpoint} client {self.settings.client_id}>"

    def extensions(self) -> Mapping[str, str]:
        """The SASL extensions to send along with the token."""
        return self.settings.extensions

    def token(self) -> Deferred[str]:
        """A token fresh enough to log in with: the kept one, or a new one."""
        now = self._clock.seconds()
        kept = self._token
        if kept is not None and now < kept.refresh_at:
            return Deferred.fromCoroutine(_value(kept.value))
        waiter: Deferred[str] = Deferred()
        if self._fetching is None:
            self._fetching = [waiter]
            Deferred.fromCoroutine(self._fetch())
        else:
            self._fetching.append(waiter)
        return waiter

    async def _fetch(self) -> None:
        try:
            value = await self._ask()
        except Exception as e:
            error = e if isinstance(e, TokenError) else TokenError(f"{type(e).__name__}: {e}")
            kept = self._token
            if kept is not None and self._clock.seconds() < kept.expires_at:
                # The endpoint failed, but the token still works: use it, say so.
                log.warn(
                    "OAuth token endpoint {endpoint} failed ({reason}); using the current "
                    "token until it expires",
                    endpoint=self.settings.shown_endpoint,
                    reason=str(error),
                )
                self._release(kept.value, None)
            else:
                self._release(None, error)
            return
        self._release(value, None)

    def _release(self, value: str | None, error: Exception | None) -> None:
        waiting, self._fetching = self._fetching or [], None
        for waiter in waiting:
            if value is not None:
                waiter.callback(value)
            else:
                waiter.errback(error or TokenError("no token"))

    async def _ask(self) -> str:
        settings = self.settings
        form = {"grant_type": "client_credentials"}
        if settings.scope:
            form["scope"] = settings.scope
        asking = self._post(
            settings.token_endpoint,
            data=form,
            auth=(settings.client_id, settings.client_secret),
            headers={"Accept": ["application/json"]},
        )
        asking.addTimeout(self._timeout, self._clock)
        response = await asking
        body = await _body(response, self._timeout, self._clock)
        where = f"the OAuth token endpoint {settings.shown_endpoint}"
        try:
            answer = json.loads(body)
        except ValueError:
            answer = None
        if response.code // 100 != 2:
            raise TokenError(f"{where} answered HTTP {response.code}{_oauth_error(answer)}")
        if not isinstance(answer, dict) or not isinstance(answer.get("access_token"), str):
            raise TokenError(f"{where} answered without an access_token")
        value: str = answer["access_token"]
        now = self._clock.seconds()
        lifetime = _lifetime(answer.get("expires_in"), value, now)
        self._token = _Token(value, now + lifetime * REFRESH_AT, now + lifetime)
        self.fetched += 1
        log.info(
            "OAuth token from {endpoint} for {client}, valid {lifetime:.0f}s",
            endpoint=settings.shown_endpoint,
            client=settings.client_id,
            lifetime=lifetime,
        )
        return value


async def _value(value: str) -> str:
    return value


async def _body(response: Any, timeout: float, clock: IReactorTime) -> bytes:
    reading: Deferred[bytes] = treq.content(response)
    reading.addTimeout(timeout, clock)
    body = await reading
    return body[:MAX_ANSWER_BYTES]


def _oauth_error(answer: object) -> str:
    # RFC 6749 5.2: "error" and "error_description" are meant to be shown.
    if not isinstance(answer, dict) or not isinstance(answer.get("error"), str):
        return ""
    error = answer["error"][:100]
    description = answer.get("error_description")
    if isinstance(description, str) and description:
        return f" ({error}: {description[:200]})"
    return f" ({error})"


def _lifetime(expires_in: object, token: str, now: float) -> float:
    if isinstance(expires_in, int | float) and not isinstance(expires_in, bool) and expires_in > 0:
        return float(expires_in)
    expires = _jwt_claim(token, "exp")
    if isinstance(expires, int | float) and expires > now:
        return float(expires) - now
    return UNKNOWN_LIFETIME_SECONDS


def _jwt_claim(token: str, claim: str) -> object:
    """A claim of a JWT's payload, read without checking it (the broker checks it)."""
    parts = token.split(".")
    if len(parts) != 3:
        return None
    try:
        payload = json.loads(base64.urlsafe_b64decode(parts[1] + "=" * (-len(parts[1]) % 4)))
    except ValueError:
        return None
    return payload.get(claim) if isinstance(payload, dict) else None
