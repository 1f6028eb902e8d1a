"""
The interceptor store: two nodes share one (fake) interceptors topic; what
one writes, the other runs after its next poll; invalid configurations never
reach the topic; a new node reads everything.
"""

from __future__ import annotations

import json
from typing import cast

from twisted.internet.task import Clock
from twisted.logger import ILogObserver, LogEvent, formatEvent, globalLogPublisher
from twisted.trial.unittest import SynchronousTestCase

from kgateway.interceptors.api import InterceptorContext, InvalidConfig
from kgateway.interceptors.registry import InterceptorSet, discover_plugins
from kgateway.interceptors.spec import InterceptorSpec
from kgateway.interceptors.store import InterceptorNotFound, InterceptorStore

from .fake_topic import FakeReader, FakeTopic

IDS = InterceptorSpec.parse(
    {"name": "ids", "plugin": "client-id-required", "config": {"pattern": "app-.*"}}
)


class Node:
    """One node's interceptor set and store over the shared topic."""

    def __init__(self, topic: FakeTopic) -> None:
        self.clock = Clock()
        self.interceptors = InterceptorSet(
            discover_plugins(), lambda name: InterceptorContext(clock=self.clock, name=name)
        )
        self.reader: FakeReader = topic.reader()
        self.store = InterceptorStore(topic.name, self.reader, topic, self.interceptors, self.clock)
        self.store.startService()

    def running(self) -> list[str]:
        return [a.name for a in self.interceptors.active]


class StoreTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.topic = FakeTopic()
        self.a = Node(self.topic)
        self.b = Node(self.topic)

    def test_a_write_runs_on_every_node(self) -> None:
        self.assertTrue(self.successResultOf(self.a.store.put(IDS)))
        self.assertEqual(self.a.running(), ["ids"])
        self.assertEqual(self.b.running(), [])
        self.b.reader.poll()
        self.assertEqual(self.b.running(), ["ids"])
        self.assertEqual(self.b.store.get("ids"), IDS)
        self.assertEqual(self.topic.records, [(b"ids", IDS.encode())])
        # A second write of the name replaces it.
        self.assertFalse(self.successResultOf(self.a.store.put(IDS)))

    def test_put_answers_once_this_node_has_read_it_back(self) -> None:
        self.a.reader.paused = True
        stored = self.a.store.put(IDS)
        self.assertNoResult(stored)
        self.assertEqual(len(self.topic.records), 1)
        self.a.reader.paused = False
        self.a.reader.poll()
        self.assertTrue(self.successResultOf(stored))
        self.assertEqual([s.name for s in self.a.store.specs()], ["ids"])

    def test_put_gives_up_waiting_after_the_timeout(self) -> None:
        self.a.reader.paused = True
        stored = self.a.store.put(IDS)
        self.a.clock.advance(self.a.store.timeout_seconds)
        self.failureResultOf(stored)

    def test_invalid_is_never_written(self) -> None:
        bad = InterceptorSpec.parse(
            {"name": "x", "plugin": "client-id-required", "config": {"no": 1}}
        )
        failure = self.failureResultOf(self.a.store.put(bad), InvalidConfig)
        self.assertIn("no", str(failure.value))
        unknown = InterceptorSpec.parse({"name": "x", "plugin": "nope"})
        self.failureResultOf(self.a.store.put(unknown), InvalidConfig)
        self.assertEqual(self.topic.records, [])
        self.assertEqual(self.topic.writes, [])

    def test_delete_writes_a_tombstone_everywhere(self) -> None:
        self.successResultOf(self.a.store.put(IDS))
        self.b.reader.poll()
        self.successResultOf(self.b.store.delete("ids"))
        self.assertEqual(self.topic.records[-1], (b"ids", None))
        self.assertEqual(self.b.running(), [])
        self.a.reader.poll()
        self.assertEqual(self.a.running(), [])
        self.failureResultOf(self.a.store.delete("ids"), InterceptorNotFound)
        self.assertEqual(len(self.topic.records), 2)

    def test_a_new_node_reads_everything(self) -> None:
        self.successResultOf(self.a.store.put(IDS))
        other = InterceptorSpec.parse({"name": "b", "plugin": "client-id-required", "priority": 1})
        self.successResultOf(self.a.store.put(other))
        self.successResultOf(self.a.store.delete("ids"))
        self.successResultOf(self.a.store.put(IDS))
        late = Node(self.topic)
        self.assertEqual(late.running(), ["b", "ids"])

    def test_an_undecodable_value_is_logged_once_and_ignored(self) -> None:
        events: list[LogEvent] = []
        globalLogPublisher.addObserver(cast(ILogObserver, events.append))
        self.addCleanup(globalLogPublisher.removeObserver, cast(ILogObserver, events.append))
        self.topic.produce(self.topic.name, b"junk", b"{not json")
        self.topic.produce(self.topic.name, b"wrong-key", IDS.encode())
        self.successResultOf(self.a.store.put(IDS))
        self.assertEqual(self.a.running(), ["ids"])
        # Another change re-applies the whole set; the bad values are not logged again.
        self.successResultOf(self.a.store.put(IDS.__class__(**{**IDS.__dict__, "priority": 7})))
        self.assertEqual([s.name for s in self.a.store.specs()], ["ids"])
        ignored = [formatEvent(e) for e in events if "Ignoring interceptor" in formatEvent(e)]
        self.assertEqual(len(ignored), 2, ignored)
        self.assertIn("Ignoring interceptor junk in", ignored[0])
        self.assertIn("not JSON", ignored[0])
        self.assertIn("the record's key is 'wrong-key' but it names 'ids'", ignored[1])

    def test_listener_receives_the_failed(self) -> None:
        value = json.dumps({"name": "elsewhere", "plugin": "only-there"}).encode()
        self.topic.produce(self.topic.name, b"elsewhere", value)
        self.a.reader.poll()
        self.assertEqual([s.name for s in self.a.store.specs()], ["elsewhere"])
        self.assertIn("only-there", self.a.store.failed()["elsewhere"])
        self.assertEqual(self.a.running(), [])
