"""
The interceptor resources over a real node's InterceptorStore and a fake
interceptors topic, with StubTreq; every JSON answer is checked against the
OpenAPI document.
"""

from __future__ import annotations

import json
from typing import Any

from twisted.trial.unittest import SynchronousTestCase

from kgateway.interceptors.spec import InterceptorSpec

from .fakes import VIEWER, ApiNode, body, conforms, make_api_node

ITEM = "/api/v1/interceptors/{name}"
IDS = {"plugin": "client-id-required", "priority": 10, "config": {"pattern": "app-.*"}}
STORED_IDS = {**IDS, "name": "ids", "scope": "global"}


class InterceptorApiTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.api: ApiNode = make_api_node(self)
        self.topic = self.api.topic

    def put(self, name: str, raw: Any, **kwargs: Any) -> Any:
        data = raw if isinstance(raw, bytes) else json.dumps(raw).encode()
        return self.successResultOf(
            self.api.send("PUT", f"/api/v1/interceptors/{name}", data, **kwargs)
        )

    def delete(self, name: str, **kwargs: Any) -> Any:
        return self.successResultOf(
            self.api.send("DELETE", f"/api/v1/interceptors/{name}", **kwargs)
        )

    def listed(self) -> Any:
        response = self.successResultOf(self.api.get("/api/v1/interceptors"))
        self.assertEqual(response.code, 200)
        return conforms(self, "/api/v1/interceptors", response)

    def assertRejected(self, name: str, raw: Any, reason: str) -> None:
        """400 with a one-line reason, and nothing written to the topic."""
        before = list(self.topic.records)
        response = self.put(name, raw)
        self.assertEqual(response.code, 400, raw)
        data = conforms(self, ITEM, response, "put")
        self.assertEqual(data["title"], "Invalid interceptor")
        self.assertIn(reason, data["message"])
        self.assertNotIn("\n", data["message"])
        self.assertEqual(self.topic.records, before)

    def test_empty(self) -> None:
        self.assertEqual(self.listed(), {"interceptors": [], "failed": {}})

    def test_put_creates_then_replaces_and_the_node_runs_it(self) -> None:
        created = self.put("ids", IDS)
        self.assertEqual(created.code, 201)
        self.assertEqual(conforms(self, ITEM, created, "put"), STORED_IDS)
        self.assertEqual(self.topic.records, [(b"ids", InterceptorSpec.parse(STORED_IDS).encode())])
        # Read back before the answer: visible at once, and running on this node.
        got = self.successResultOf(self.api.get("/api/v1/interceptors/ids"))
        self.assertEqual(conforms(self, ITEM, got), STORED_IDS)
        self.assertEqual([a.name for a in self.api.node.parts.interceptors.active], ["ids"])

        replaced = self.put("ids", {**IDS, "scope": {"clientId": "batch-.*"}})
        self.assertEqual(replaced.code, 200)
        self.assertEqual(body(self, replaced)["scope"], {"clientId": "batch-.*"})
        self.assertEqual(len(self.topic.records), 2)

    def test_list_is_in_priority_order(self) -> None:
        self.put("zz-first", {**IDS, "priority": 1})
        self.put("aa-later", {**IDS, "priority": 50})
        self.put("mm-middle", {**IDS, "priority": 20})
        names = [spec["name"] for spec in self.listed()["interceptors"]]
        self.assertEqual(names, ["zz-first", "mm-middle", "aa-later"])

    def test_invalid_is_400_and_nothing_is_stored(self) -> None:
        self.assertRejected("ids", b"{not json", "the body is not JSON")
        self.assertRejected("ids", [1, 2], "an interceptor is a JSON object")
        self.assertRejected("ids", {**IDS, "plugin": "nope"}, "no interceptor plugin named 'nope'")
        self.assertRejected("ids", {**IDS, "config": {"pattern": "("}}, "pattern")
        self.assertRejected("ids", {**IDS, "config": {"colour": "red"}}, "colour")
        self.assertRejected("ids", {**IDS, "name": "other"}, "the URL names 'ids'")
        self.assertRejected("ids", {**IDS, "scope": {"who": "x"}}, "scope must be")
        self.assertRejected("ids", {**IDS, "extra": 1}, "unknown field(s) extra")
        self.assertRejected("-bad", IDS, "name must be")
        self.assertEqual(self.topic.writes, [])
        self.assertEqual(self.listed()["interceptors"], [])

    def test_writes_need_an_admin_user(self) -> None:
        viewer = (VIEWER.username, VIEWER.password)
        forbidden = self.put("ids", IDS, auth=viewer)
        self.assertEqual(forbidden.code, 403)
        self.assertEqual(conforms(self, ITEM, forbidden, "put")["title"], "Forbidden")
        self.put("ids", IDS)
        self.assertEqual(self.delete("ids", auth=viewer).code, 403)
        self.assertEqual(len(self.topic.records), 1)
        # Reading stays open to every user.
        self.assertEqual(
            self.successResultOf(self.api.get(ITEM.format(name="ids"), auth=viewer)).code, 200
        )
        self.assertEqual(self.put("ids", IDS, auth=None).code, 401)

    def test_delete(self) -> None:
        self.put("ids", IDS)
        removed = self.delete("ids")
        self.assertEqual(removed.code, 204)
        self.assertEqual(self.topic.records[-1], (b"ids", None))
        self.assertEqual(self.api.node.parts.interceptors.active, ())
        missing = self.successResultOf(self.api.get("/api/v1/interceptors/ids"))
        self.assertEqual(missing.code, 404)
        again = self.delete("ids")
        self.assertEqual(again.code, 404)
        self.assertEqual(
            conforms(self, ITEM, again, "delete")["message"], "no interceptor named 'ids'"
        )
        self.assertEqual(len(self.topic.records), 2)

    def test_topic_unavailable_is_503_with_the_reason(self) -> None:
        self.topic.broken = "no leader for the topic partition 0 yet"
        response = self.put("ids", IDS)
        self.assertEqual(response.code, 503)
        self.assertIn("no leader for the topic", conforms(self, ITEM, response, "put")["message"])
        self.flushLoggedErrors()

    def test_what_this_node_cannot_build_is_listed_as_failed(self) -> None:
        # Written by a node that has a plugin this one lacks.
        other = {"name": "elsewhere", "plugin": "only-there", "priority": 5}
        self.topic.produce(self.topic.name, b"elsewhere", json.dumps(other).encode())
        self.api.reactor.advance(1)
        self.api.node.parts.interceptor_store.reader.poll()
        listed = self.listed()
        self.assertEqual([s["name"] for s in listed["interceptors"]], ["elsewhere"])
        self.assertIn("no interceptor plugin named 'only-there'", listed["failed"]["elsewhere"])
        self.flushLoggedErrors()

    def test_below_a_name_is_not_found(self) -> None:
        response = self.successResultOf(self.api.get("/api/v1/interceptors/ids/more"))
        self.assertEqual(response.code, 404)

    def test_plugins(self) -> None:
        response = self.successResultOf(self.api.get("/api/v1/plugins"))
        data = conforms(self, "/api/v1/plugins", response)
        names = {plugin["name"]: plugin["description"] for plugin in data["plugins"]}
        self.assertIn("client id is empty", names["client-id-required"])

    def test_not_ready_before_listening(self) -> None:
        api = make_api_node(self, brokers_known=False)
        for path in ("/api/v1/interceptors", "/api/v1/plugins", "/api/v1/interceptors/x"):
            response = self.successResultOf(api.get(path))
            self.assertEqual(response.code, 503, path)
        self.assertEqual(
            self.successResultOf(api.send("PUT", "/api/v1/interceptors/x", b"{}")).code, 503
        )
