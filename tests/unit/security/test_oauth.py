"""OAuth client credentials against a token endpoint in memory (twisted.web and StubTreq)."""

from __future__ import annotations

import base64
import json
from typing import Any, cast

from treq.testing import StubTreq
from twisted.internet.task import Clock
from twisted.logger import ILogObserver, LogEvent, formatEvent, globalLogPublisher
from twisted.trial.unittest import SynchronousTestCase
from twisted.web.resource import Resource
from twisted.web.server import Request

from kgateway.security.oauth import OAuthSettings, TokenError, TokenSource

SECRET = "canary-s3cret"
SETTINGS = OAuthSettings("https://idp.example/oauth2/token?tenant=x", "gateway", SECRET, "kafka")


class TokenEndpoint(Resource):
    """Issues numbered tokens to the right client, and remembers each request."""

    isLeaf = True

    def __init__(self) -> None:
        super().__init__()
        self.requests: list[dict[str, Any]] = []
        self.issued = 0
        self.expires_in: int | None = 100
        self.failing = False

    def render_POST(self, request: Request) -> bytes:
        authorization = (request.getHeader("authorization") or "").removeprefix("Basic ")
        form = {k.decode(): v[0].decode() for k, v in (request.args or {}).items()}
        self.requests.append({"auth": base64.b64decode(authorization).decode(), "form": form})
        request.setHeader("content-type", "application/json")
        if self.failing:
            request.setResponseCode(503)
            return b"{}"
        if self.requests[-1]["auth"] != f"gateway:{SECRET}":
            request.setResponseCode(401)
            return json.dumps(
                {"error": "invalid_client", "error_description": "bad client credentials"}
            ).encode()
        self.issued += 1
        answer: dict[str, Any] = {"access_token": f"token-{self.issued}", "token_type": "Bearer"}
        if self.expires_in is not None:
            answer["expires_in"] = self.expires_in
        return json.dumps(answer).encode()


class TokenSourceTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.endpoint = TokenEndpoint()
        # (StubTreq sets treq's functions on itself at run time, unseen by mypy.)
        self.http: Any = StubTreq(self.endpoint)
        self.clock = Clock()
        self.clock.advance(1_000_000)
        self.events: list[LogEvent] = []
        observer = cast(ILogObserver, self.events.append)
        globalLogPublisher.addObserver(observer)
        self.addCleanup(globalLogPublisher.removeObserver, observer)

    def source(self, settings: OAuthSettings = SETTINGS) -> TokenSource:
        return TokenSource(settings, self.clock, self.http.post)

    def token(self, source: TokenSource) -> str:
        asking = source.token()
        self.http.flush()
        value: str = self.successResultOf(asking)
        return value

    def logs(self) -> str:
        return "\n".join(formatEvent(e) for e in self.events)

    def test_client_credentials(self) -> None:
        """A POST of grant_type and scope, the client id and secret as Basic authentication."""
        self.assertEqual(self.token(self.source()), "token-1")
        self.assertEqual(
            self.endpoint.requests,
            [
                {
                    "auth": f"gateway:{SECRET}",
                    "form": {"tenant": "x", "grant_type": "client_credentials", "scope": "kafka"},
                }
            ],
        )

    def test_kept_until_80_percent_then_renewed(self) -> None:
        source = self.source()
        self.assertEqual(self.token(source), "token-1")
        self.clock.advance(79)
        self.assertEqual(self.token(source), "token-1")
        self.clock.advance(2)
        self.assertEqual(self.token(source), "token-2")
        self.assertEqual(source.fetched, 2)

    def test_one_request_for_many_logins(self) -> None:
        source = self.source()
        waiting = [source.token() for _ in range(5)]
        self.http.flush()
        self.assertEqual([self.successResultOf(w) for w in waiting], ["token-1"] * 5)
        self.assertEqual(len(self.endpoint.requests), 1)

    def test_lifetime_from_the_jwt(self) -> None:
        """Without expires_in, the JWT's exp claim says how long the token lives."""
        self.endpoint.expires_in = None
        source = self.source()
        claims = base64.urlsafe_b64encode(
            json.dumps({"sub": "gateway", "exp": self.clock.seconds() + 50}).encode()
        ).rstrip(b"=")
        jwt = f"eyJhbGciOiJub25lIn0.{claims.decode()}."
        self.endpoint.render_POST = lambda request: json.dumps(  # type: ignore[method-assign]
            {"access_token": jwt}
        ).encode()
        self.assertEqual(self.token(source), jwt)
        self.clock.advance(39)
        self.token(source)
        self.assertEqual(source.fetched, 1)
        self.clock.advance(2)
        self.token(source)
        self.assertEqual(source.fetched, 2)

    def test_endpoint_down_keeps_a_live_token(self) -> None:
        source = self.source()
        self.token(source)
        self.clock.advance(90)
        self.endpoint.failing = True
        self.assertEqual(self.token(source), "token-1")
        self.assertIn(
            "OAuth token endpoint https://idp.example/oauth2/token failed (the OAuth token "
            "endpoint https://idp.example/oauth2/token answered HTTP 503); using the current "
            "token until it expires",
            self.logs(),
        )
        self.clock.advance(11)
        asking = source.token()
        self.http.flush()
        self.failureResultOf(asking, TokenError)

    def test_wrong_secret(self) -> None:
        source = self.source(
            OAuthSettings("https://idp.example/oauth2/token", "gateway", "wrong", None)
        )
        asking = source.token()
        self.http.flush()
        failure = self.failureResultOf(asking, TokenError)
        self.assertEqual(
            str(failure.value),
            "the OAuth token endpoint https://idp.example/oauth2/token answered HTTP 401 "
            "(invalid_client: bad client credentials)",
        )

    def test_no_access_token(self) -> None:
        self.endpoint.render_POST = lambda request: b'{"token": "x"}'  # type: ignore[method-assign]
        asking = self.source().token()
        self.http.flush()
        failure = self.failureResultOf(asking, TokenError)
        self.assertEqual(
            str(failure.value),
            "the OAuth token endpoint https://idp.example/oauth2/token answered without an "
            "access_token",
        )

    def test_secret_and_tokens_never_shown(self) -> None:
        source = self.source()
        self.token(source)
        self.assertNotIn(SECRET, repr(source) + repr(SETTINGS))
        logged = self.logs()
        self.assertIn("OAuth token from https://idp.example/oauth2/token for gateway", logged)
        self.assertNotIn("token-1", logged)
        self.assertNotIn(SECRET, logged)
        self.assertNotIn("tenant=x", logged)
