"""HTTP Basic against the configured users: constant-time, and never logged."""

from __future__ import annotations

import base64
import hmac
from typing import Any, cast
from unittest import mock

from twisted.logger import ILogObserver, globalLogPublisher
from twisted.trial.unittest import SynchronousTestCase
from twisted.web.server import Request
from zope.interface.verify import verifyObject

from kgateway.api.auth import BasicAuth, IAdminAuth, OpenOnLoopback
from kgateway.config import AdminUser

from .fakes import OPS, USERS, VIEWER, make_api_node


def request(authorization: bytes | None) -> Request:
    """A request with this Authorization header (twisted.web parses Basic itself)."""
    from twisted.web.test.requesthelper import DummyChannel

    real = Request(DummyChannel())
    if authorization is not None:
        real.requestHeaders.setRawHeaders(b"authorization", [authorization])
    return real


def basic(user: str, password: str) -> bytes:
    return b"Basic " + base64.b64encode(f"{user}:{password}".encode())


class BasicAuthTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.auth = BasicAuth(USERS)

    def test_interface(self) -> None:
        self.assertTrue(verifyObject(IAdminAuth, self.auth))
        self.assertTrue(verifyObject(IAdminAuth, OpenOnLoopback()))

    def test_users(self) -> None:
        self.assertEqual(self.auth.user(request(basic(OPS.username, OPS.password))), OPS)
        self.assertEqual(self.auth.user(request(basic(VIEWER.username, VIEWER.password))), VIEWER)

    def test_rejected(self) -> None:
        for header in (
            None,
            basic("ops", "nope"),
            basic("ops", OPS.password + " "),
            basic("OPS", OPS.password),
            basic("viewer", OPS.password),
            basic("", ""),
            b"Basic %%%",
            b"Digest abc",
        ):
            self.assertFalse(self.auth.allows(request(header)), header)

    def test_password_with_a_colon(self) -> None:
        colon = BasicAuth([AdminUser("u", "a:b:c")])
        self.assertTrue(colon.allows(request(basic("u", "a:b:c"))))

    def test_every_user_compared_in_full_whatever_matches(self) -> None:
        """Both digests of every user are compared, first user or last, hit or miss."""
        calls: list[tuple[bytes, bytes]] = []
        real = hmac.compare_digest

        def recording(a: Any, b: Any) -> bool:
            calls.append((a, b))
            return real(a, b)

        with mock.patch.object(hmac, "compare_digest", recording):
            for header in (basic(OPS.username, OPS.password), basic("x", "y"), None):
                del calls[:]
                self.auth.allows(request(header))
                self.assertEqual(len(calls), 2 * len(USERS))
                # Fixed-length digests: the time does not depend on the lengths either.
                self.assertEqual({len(a) for pair in calls for a in pair}, {32})


class NeverLoggedTests(SynchronousTestCase):
    def test_passwords_never_reach_the_log(self) -> None:
        events: list[dict[str, Any]] = []
        globalLogPublisher.addObserver(cast(ILogObserver, events.append))
        self.addCleanup(globalLogPublisher.removeObserver, cast(ILogObserver, events.append))
        api = make_api_node(self)
        for credentials in ((OPS.username, OPS.password), ("ops", "typo-" + OPS.password)):
            for path in ("/api/v1/cluster", "/metrics", "/nothing"):
                self.successResultOf(api.get(path, auth=credentials))
        api.node.stopService()
        self.assertTrue(events)
        everything = repr(events) + repr(api.node.settings)
        for user in USERS:
            self.assertNotIn(user.password, everything)
