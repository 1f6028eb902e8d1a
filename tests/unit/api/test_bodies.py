"""
Request bodies the admin API cannot use are 400 (or 413 when too large),
with a JSON reason, never a 500: hand-picked cases, then a small fuzz.
"""

from __future__ import annotations

import json
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from twisted.test.proto_helpers import StringTransport
from twisted.trial.unittest import SynchronousTestCase
from twisted.web.http import HTTPChannel
from twisted.web.server import Site

from kgateway.api.web import MAX_BODY_BYTES, MAX_JSON_DEPTH, BoundedRequest, ErrorResource

from .fakes import ApiNode, conforms, make_api_node

ITEM = "/api/v1/interceptors/{name}"
IDS = {"plugin": "client-id-required", "config": {"pattern": "app-.*"}}


def nested(depth: int) -> bytes:
    return b"[" * depth + b"]" * depth


class BodyTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.api: ApiNode = make_api_node(self)

    def put(self, data: bytes) -> Any:
        return self.successResultOf(self.api.send("PUT", "/api/v1/interceptors/ids", data))

    def refused(self, data: bytes, code: int = 400) -> str:
        """The answer's message; the answer is C{code}, documented, and nothing was stored."""
        before = list(self.api.topic.records)
        response = self.put(data)
        self.assertEqual(response.code, code, data[:80])
        answer = conforms(self, ITEM, response, "put")
        self.assertNotIn("\n", answer["message"])
        self.assertEqual(self.api.topic.records, before)
        return str(answer["message"])

    def test_deeply_nested_is_400(self) -> None:
        """Nesting that overflows Python's json (a RecursionError, a 500 before) is a 400."""
        for depth in (MAX_JSON_DEPTH + 1, 5000, 100_000):
            message = self.refused(nested(depth))
            self.assertIn(f"nests deeper than {MAX_JSON_DEPTH} levels", message)
        deep_config = {**IDS, "config": {"pattern": "x", "deep": json.loads(nested(70))}}
        self.assertIn("nests deeper", self.refused(json.dumps(deep_config).encode()))

    def test_nesting_within_the_limit_is_judged_by_the_plugin(self) -> None:
        config = {**IDS, "config": {"pattern": "x", "deep": json.loads(nested(MAX_JSON_DEPTH - 3))}}
        self.assertIn("unknown config key(s) deep", self.refused(json.dumps(config).encode()))

    def test_too_large_is_413(self) -> None:
        data = json.dumps({**IDS, "pad": "x" * MAX_BODY_BYTES}).encode()
        self.assertIn(f"larger than {MAX_BODY_BYTES} bytes", self.refused(data, 413))

    def test_not_json(self) -> None:
        cases = {
            b"": "not JSON",
            b"\xff\xfe\x00garbage": "not JSON",
            b'{"plugin": "client-id-required", "priority": NaN}': "NaN is not a JSON number",
            b'{"plugin": Infinity}': "Infinity is not a JSON number",
            b"[" * 10: "not JSON",
            b'{"a": "\\ud800"}': "",
        }
        for data, reason in cases.items():
            self.assertIn(reason, self.refused(data))

    def test_pattern_refused_with_the_reason(self) -> None:
        """A scope RE2 cannot run in linear time: 400 naming the field and why."""
        message = self.refused(json.dumps({**IDS, "scope": {"clientId": r"(a+)\1"}}).encode())
        self.assertIn("scope.clientId", message)
        self.assertIn("backreferences", message)
        message = self.refused(json.dumps({**IDS, "config": {"pattern": "(?!x)y"}}).encode())
        self.assertIn("config.pattern", message)
        self.assertIn("lookahead", message)

    @settings(
        max_examples=60,
        deadline=None,
        database=None,
        derandomize=True,
        suppress_health_check=list(HealthCheck),
    )
    @given(
        st.one_of(
            st.binary(max_size=200),
            st.recursive(
                st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
                lambda inner: (
                    st.lists(inner, max_size=4)
                    | st.dictionaries(
                        st.sampled_from(["name", "plugin", "priority", "config", "scope", "x"]),
                        inner,
                        max_size=4,
                    )
                ),
                max_leaves=30,
            ).map(lambda value: json.dumps(value).encode()),
        )
    )
    def test_fuzz_never_500(self, data: bytes) -> None:
        """Whatever the body, the answer is documented JSON: never a crash."""
        response = self.put(data)
        self.assertIn(response.code, (200, 201, 400, 413), data[:80])
        conforms(self, ITEM, response, "put")


class BoundedRequestTests(SynchronousTestCase):
    """The server's requests drop a body past the limit instead of buffering it."""

    def request(self) -> BoundedRequest:
        channel = HTTPChannel()
        channel.site = Site(ErrorResource(404, "x", "y"))  # type: ignore[attr-defined]
        channel.makeConnection(StringTransport())
        return BoundedRequest(channel)

    def content(self, request: BoundedRequest) -> Any:
        """The body so far (the request has one once its length is known)."""
        assert request.content is not None
        return request.content

    def test_declared_length(self) -> None:
        request = self.request()
        request.gotLength(MAX_BODY_BYTES + 1)
        request.handleContentChunk(b"x" * 1000)
        self.assertTrue(request.body_too_large)
        self.assertEqual(self.content(request).tell(), 0)

    def test_chunked(self) -> None:
        request = self.request()
        request.gotLength(None)
        chunk = b"x" * (64 * 1024)
        for _ in range(MAX_BODY_BYTES // len(chunk)):
            request.handleContentChunk(chunk)
        self.assertFalse(request.body_too_large)
        request.handleContentChunk(b"x")
        self.assertTrue(request.body_too_large)
        self.assertEqual(self.content(request).tell(), MAX_BODY_BYTES)
        request.handleContentChunk(chunk)
        self.assertEqual(self.content(request).tell(), MAX_BODY_BYTES)

    def test_within(self) -> None:
        request = self.request()
        request.gotLength(10)
        request.handleContentChunk(b"0123456789")
        self.assertFalse(request.body_too_large)
        self.assertEqual(self.content(request).getvalue(), b"0123456789")

    def test_server_uses_it(self) -> None:
        api = make_api_node(self)
        assert api.node.admin_api is not None
        self.assertIs(api.node.admin_api.site.requestFactory, BoundedRequest)
