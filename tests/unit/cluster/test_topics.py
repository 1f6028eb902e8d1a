"""
The compacted-topic reader and writer against a fake broker that speaks the
Kafka protocol (kafka-python's own classes) over in-memory connections.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import cast

from twisted.internet.task import Clock
from twisted.logger import ILogObserver, LogEvent, formatEvent, globalLogPublisher
from twisted.trial.unittest import SynchronousTestCase

from kgateway.cluster.kafka_client import KafkaRequestError
from kgateway.cluster.license import license_topic_reader
from kgateway.cluster.link import KafkaLink
from kgateway.cluster.topics import CompactedTopicReader, LeaderFinder, NewTopic, TopicWriter

from .fake_topic_broker import ADDRESS, NOT_LEADER_OR_FOLLOWER, FakeTopicBroker

TOPIC = "_kgateway_prod_interceptors"


class TopicTestCase(SynchronousTestCase):
    def setUp(self) -> None:
        self.broker = FakeTopicBroker()
        self.clock = Clock()
        self.changes: list[dict[bytes, bytes]] = []
        self.events: list[LogEvent] = []
        globalLogPublisher.addObserver(cast(ILogObserver, self.events.append))
        self.addCleanup(globalLogPublisher.removeObserver, cast(ILogObserver, self.events.append))

    def logs(self) -> str:
        return "\n".join(formatEvent(e) for e in self.events)

    def link(self) -> KafkaLink:
        return KafkaLink((ADDRESS,), self.broker.connect, self.clock)

    def finder(self, create: bool = False) -> LeaderFinder:
        return LeaderFinder(
            self.link(), NewTopic("interceptors topic", lambda: 3) if create else None
        )

    def listen(self, entries: Mapping[bytes, bytes]) -> None:
        self.changes.append(dict(entries))

    def reader(self, create: bool = False) -> CompactedTopicReader:
        reader = CompactedTopicReader(
            topic=TOPIC,
            finder=self.finder(create),
            interval_seconds=0.5,
            listener=self.listen,
            description="interceptors topic",
        )
        reader.startService()
        self.addCleanup(reader.stopService)
        self.broker.flush()
        return reader

    def tick(self) -> None:
        self.clock.advance(0.5)
        self.broker.flush()


class ReaderTests(TopicTestCase):
    def test_reads_the_latest_value_of_every_key_and_tells_the_listener(self) -> None:
        self.broker.topics[TOPIC] = []
        self.broker.append(TOPIC, b"a", b"1")
        self.broker.append(TOPIC, b"b", b"2")
        self.broker.append(TOPIC, b"a", b"3")
        reader = self.reader()
        self.assertEqual(reader.entries, {b"a": b"3", b"b": b"2"})
        self.assertEqual(self.changes, [{b"a": b"3", b"b": b"2"}])
        self.assertEqual(reader.offset, 3)
        # Nothing new: one Fetch, no call.
        self.tick()
        self.assertEqual(len(self.changes), 1)
        self.assertEqual(self.broker.seen[-1], ("Fetch", TOPIC))
        # A tombstone removes a key.
        self.broker.append(TOPIC, b"b", None)
        self.broker.append(TOPIC, None, b"keyless")
        self.tick()
        self.assertEqual(self.changes[-1], {b"a": b"3"})
        self.assertIn("Interceptors topic entry b removed at offset 3", self.logs())
        # The same value again is no change.
        self.broker.append(TOPIC, b"a", b"3")
        self.tick()
        self.assertEqual(len(self.changes), 2)
        self.assertEqual(reader.offset, 6)

    def test_polls_every_interval_on_one_connection(self) -> None:
        self.broker.topics[TOPIC] = []
        reader = self.reader()
        for _ in range(4):
            self.tick()
        self.assertEqual(reader.polls, 5)
        self.assertEqual([api for api, _ in self.broker.seen].count("Metadata"), 1)
        self.assertEqual(len(self.broker.servers), 2)  # the bootstrap lookup, then the leader

    def test_creates_a_missing_topic_compacted_with_one_partition(self) -> None:
        reader = self.reader(create=True)
        self.assertEqual(self.broker.created[TOPIC], (1, 3, {"cleanup.policy": "compact"}))
        self.assertIn(f"Created the interceptors topic {TOPIC}", self.logs())
        self.broker.append(TOPIC, b"a", b"1")
        self.tick()
        self.assertEqual(reader.entries, {b"a": b"1"})

    def test_a_missing_topic_without_create_is_retried_and_logged_once(self) -> None:
        reader = self.reader()
        self.tick()
        self.tick()
        self.assertNotIn(TOPIC, self.broker.created)
        warnings = [line for line in self.logs().splitlines() if "Cannot read" in line]
        self.assertEqual(
            warnings,
            [
                f"Cannot read the interceptors topic {TOPIC}: no leader for {TOPIC} "
                "partition 0 yet; retrying"
            ],
        )
        self.broker.topics[TOPIC] = []
        self.broker.append(TOPIC, b"a", b"1")
        self.tick()
        self.assertEqual(reader.entries, {b"a": b"1"})
        self.assertIn(f"Reading the interceptors topic {TOPIC} again", self.logs())

    def test_a_new_leader_is_looked_up_after_an_error(self) -> None:
        self.broker.topics[TOPIC] = []
        reader = self.reader()
        self.broker.fetch_error = NOT_LEADER_OR_FOLLOWER
        self.tick()
        self.assertIsNone(reader._client)
        self.broker.append(TOPIC, b"a", b"1")
        self.tick()
        self.assertEqual(reader.entries, {b"a": b"1"})
        self.assertEqual([api for api, _ in self.broker.seen].count("Metadata"), 2)

    def test_a_dropped_connection_is_reopened(self) -> None:
        self.broker.topics[TOPIC] = []
        reader = self.reader()
        self.broker.drop()
        self.tick()
        self.broker.append(TOPIC, b"a", b"1")
        self.tick()
        self.assertEqual(reader.entries, {b"a": b"1"})

    def test_compaction_past_the_offset_reads_again_from_the_start(self) -> None:
        self.broker.topics[TOPIC] = []
        self.broker.append(TOPIC, b"a", b"1")
        reader = self.reader()
        self.broker.append(TOPIC, b"a", None)
        self.broker.append(TOPIC, b"b", b"2")
        self.broker.append(TOPIC, b"b", b"3")
        self.broker.compact(TOPIC)  # offsets 0-2 gone; reader is at 1
        self.tick()  # out of range: start again
        self.tick()
        self.assertEqual(reader.entries, {b"b": b"3"})
        # The listener saw the old content, then the rebuilt one; never a half-read topic.
        self.assertEqual(self.changes, [{b"a": b"1"}, {b"b": b"3"}])

    def test_stop_cancels_a_poll_in_flight(self) -> None:
        """A node stops at once even while a poll waits on its broker, and says nothing of it."""
        self.broker.topics[TOPIC] = []
        reader = CompactedTopicReader(topic=TOPIC, finder=self.finder(), interval_seconds=0.5)
        reader.startService()  # the first poll is out; the broker has not answered yet
        self.successResultOf(reader.stopService())
        self.broker.flush()
        self.clock.advance(5)
        self.broker.flush()
        self.assertEqual(reader.polls, 0)
        self.assertNotIn("Cannot read", self.logs())
        self.assertEqual(self.clock.getDelayedCalls(), [])
        self.assertTrue(all(server.wire.disconnected for server in self.broker.servers))

    def test_seen_fires_once_the_offset_is_read(self) -> None:
        self.broker.topics[TOPIC] = []
        reader = self.reader()
        offset = self.broker.append(TOPIC, b"a", b"1")
        seen = reader.seen(offset)
        self.assertNoResult(seen)
        self.tick()
        self.successResultOf(seen)
        self.successResultOf(reader.seen(offset))  # already read: at once

    def test_the_license_reader_is_this_reader(self) -> None:
        self.broker.topics["_kgateway_prod_license"] = []
        self.broker.append("_kgateway_prod_license", b"license", b"demo-1")
        reader = license_topic_reader("_kgateway_prod_license", self.link())
        reader.startService()
        self.addCleanup(reader.stopService)
        self.broker.flush()
        self.assertEqual(reader.entries, {b"license": b"demo-1"})
        self.assertEqual(reader.interval_seconds, 5.0)
        self.assertIn("License topic entry license updated at offset 0", self.logs())


class WriterTests(TopicTestCase):
    def writer(self) -> TopicWriter:
        writer = TopicWriter(self.finder(), now=lambda: 1700000000.5)
        self.addCleanup(writer.close)
        return writer

    def produce(self, writer: TopicWriter, key: bytes | None, value: bytes | None) -> object:
        result = writer.produce(TOPIC, key, value)
        self.broker.flush()
        return result

    def test_one_record_with_acks_all_then_a_tombstone(self) -> None:
        self.broker.topics[TOPIC] = []
        self.broker.append(TOPIC, b"old", b"x")
        writer = self.writer()
        self.assertEqual(self.successResultOf(self.produce(writer, b"a", b"1")), 1)  # type: ignore[arg-type]
        self.assertEqual(self.successResultOf(self.produce(writer, b"a", None)), 2)  # type: ignore[arg-type]
        self.assertEqual(
            [(r.offset, r.key, r.value) for r in self.broker.topics[TOPIC]],
            [(0, b"old", b"x"), (1, b"a", b"1"), (2, b"a", None)],
        )
        self.assertEqual(self.broker.acks, [-1, -1])
        # The leader's connection is kept for the next record.
        self.assertEqual([api for api, _ in self.broker.seen].count("Metadata"), 1)

    def test_an_error_is_reported_and_the_leader_looked_up_again(self) -> None:
        self.broker.topics[TOPIC] = []
        writer = self.writer()
        self.broker.produce_error = NOT_LEADER_OR_FOLLOWER
        failure = self.failureResultOf(self.produce(writer, b"a", b"1"), KafkaRequestError)
        self.assertEqual(failure.value.error_code, NOT_LEADER_OR_FOLLOWER)
        self.assertIn(f"cannot write to {TOPIC}: error 6", str(failure.value))
        self.successResultOf(self.produce(writer, b"a", b"1"))  # type: ignore[arg-type]
        self.assertEqual([api for api, _ in self.broker.seen].count("Metadata"), 2)

    def test_a_created_topic_is_written_once_its_leader_is_elected(self) -> None:
        """
        The controller elects a new topic's leader a moment after CreateTopics
        answers: the first write waits for it instead of failing (and being lost).
        """
        self.broker.leader_at_once = False
        writer = TopicWriter(
            LeaderFinder(self.link(), NewTopic("audit topic", lambda: 3, compacted=False)),
            now=lambda: 1700000000.5,
        )
        self.addCleanup(writer.close)
        written = writer.produce(TOPIC, b"a", b"1")
        self.broker.flush()
        self.assertIn(TOPIC, self.broker.created)
        for _ in range(3):
            self.clock.advance(0.1)
            self.broker.flush()
        self.assertNoResult(written)
        self.broker.leaderless.discard(TOPIC)  # elected
        self.clock.advance(0.1)
        self.broker.flush()
        self.assertEqual(self.successResultOf(written), 0)
        self.assertEqual([(r.key, r.value) for r in self.broker.topics[TOPIC]], [(b"a", b"1")])

    def test_a_created_topic_without_a_leader_in_time_fails(self) -> None:
        self.broker.leader_at_once = False
        writer = TopicWriter(LeaderFinder(self.link(), NewTopic("audit topic", lambda: 3)))
        self.addCleanup(writer.close)
        written = writer.produce(TOPIC, b"a", b"1")
        for _ in range(110):  # the link's 10 s timeout, in polls
            self.broker.flush()
            self.clock.advance(0.1)
        self.broker.flush()
        failure = self.failureResultOf(written, KafkaRequestError)
        self.assertIn(f"no leader for {TOPIC} partition 0 yet", str(failure.value))

    def test_a_missing_topic_is_not_created(self) -> None:
        writer = self.writer()
        failure = self.failureResultOf(self.produce(writer, b"a", b"1"), KafkaRequestError)
        self.assertIn("no leader for", str(failure.value))
        self.assertEqual(self.broker.created, {})

    def test_no_broker(self) -> None:
        self.broker.refusing = True
        writer = self.writer()
        failure = self.failureResultOf(self.produce(writer, b"a", b"1"), KafkaRequestError)
        self.assertEqual(str(failure.value), "no broker answered")
