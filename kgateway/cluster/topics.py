"""
The cluster's own compacted topics (the license, the interceptors): one
partition each, a record's key names an entry and its value is the entry, a
null value (a tombstone) removes it.

L{CompactedTopicReader} keeps polling partition 0 from its leader, holds the
latest value of every key in memory and tells a listener when they change;
L{TopicWriter} produces one record at a time to a partition's leader with
C{acks=all}; L{ensure_topic} creates a one-partition topic when it is missing.
Nothing is kept on disk: a restarted node reads the topic from the start.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from kafka.protocol.admin import CreateTopicsRequest
from kafka.protocol.consumer import FetchRequest
from kafka.protocol.metadata import MetadataRequest
from kafka.protocol.producer import ProduceRequest
from kafka.record import MemoryRecords, MemoryRecordsBuilder
from twisted.application.service import MultiService
from twisted.internet.defer import CancelledError, Deferred, succeed
from twisted.internet.task import deferLater
from twisted.logger import Logger

from kgateway.cluster.kafka_client import KafkaClientProtocol, KafkaRequestError
from kgateway.cluster.link import KafkaLink
from kgateway.cluster.polling import PollService
from kgateway.interfaces import IBrokerDirectory, Listener
from kgateway.net import HostPort
from kgateway.protocol.error_codes import ErrorCode

log = Logger()


def replication_for(directory: IBrokerDirectory) -> int:
    """For the cluster's own topics: 3, or fewer on a smaller Kafka cluster."""
    return max(1, min(3, len(directory.brokers())))


async def ensure_topic(
    client: KafkaClientProtocol,
    topic: str,
    replication_factor: int,
    what: str = "topic",
    compacted: bool = True,
) -> bool:
    """
    Create C{topic} (one partition; compacted, or with the delete policy) unless it exists.

    Returns whether it was created.  C{what} names the topic in the log and
    the error ("license topic").
    """
    version = client.version_for(CreateTopicsRequest.API_KEY, 5, 2)
    request = CreateTopicsRequest[version]
    creatable = request.CreatableTopic(
        name=topic,
        num_partitions=1,
        replication_factor=replication_factor,
        assignments=[],
        configs=[
            request.CreatableTopic.CreatableTopicConfig(
                name="cleanup.policy", value="compact" if compacted else "delete"
            )
        ],
    )
    response = await client.request(
        request(topics=[creatable], timeout_ms=10000, validate_only=False)
    )
    result = response.topics[0]
    if result.error_code == ErrorCode.NONE:
        log.info("Created the {what} {topic}", what=what, topic=topic)
        return True
    if result.error_code != ErrorCode.TOPIC_ALREADY_EXISTS:
        raise KafkaRequestError(
            f"cannot create the {what} {topic}: error {result.error_code} "
            f"{result.error_message or ''}".strip(),
            result.error_code,
        )
    return False


async def partition_leader(
    client: KafkaClientProtocol, topic: str, link: KafkaLink
) -> HostPort | None:
    """Where partition 0 of C{topic} is led, per the broker C{client} talks to; None if nowhere."""
    version = client.version_for(MetadataRequest.API_KEY, 12, 4)
    request = MetadataRequest[version]
    answer = client.request(
        request(
            topics=[request.MetadataRequestTopic(name=topic, topic_id=None)],
            allow_auto_topic_creation=False,
        )
    )
    answer.addTimeout(link.timeout_seconds, link.clock)
    metadata = await answer
    brokers = {b.node_id: HostPort(b.host, b.port) for b in metadata.brokers}
    for found in metadata.topics:
        for partition in found.partitions:
            if partition.partition_index == 0 and partition.leader_id in brokers:
                return brokers[partition.leader_id]
    return None


#: How often a finder asks for the leader of a topic it just created.
LEADER_POLL_SECONDS = 0.1


@dataclass(frozen=True)
class NewTopic:
    """How a L{LeaderFinder} creates a topic that is missing."""

    #: What the log calls the topic it creates ("interceptors topic").
    what: str
    #: Asked at creation time: the cluster may have grown since the node started.
    replication_factor: Callable[[], int]
    #: Compacted (the cluster's own topics) or not (an interceptor's audit log).
    compacted: bool = True


@dataclass(eq=False)
class LeaderFinder:
    """Finds partition 0's leader through any broker, creating the topic first if asked to."""

    link: KafkaLink
    #: How to create a missing topic; None: never create one.
    create: NewTopic | None = None

    async def leader(self, topic: str) -> HostPort:
        """The leader's address; L{KafkaRequestError} if no broker knows one."""
        for address in self.link.addresses():
            try:
                client = await self.link.open(address)
            except CancelledError:
                raise
            except Exception:
                continue
            try:
                found = await partition_leader(client, topic, self.link)
                if found is None and self.create is not None:
                    create = self.create
                    await ensure_topic(
                        client, topic, create.replication_factor(), create.what, create.compacted
                    )
                    found = await self._elected(client, topic)
            finally:
                client.close()
            if found is None:
                raise KafkaRequestError(f"no leader for {topic} partition 0 yet")
            return found
        raise KafkaRequestError("no broker answered")

    async def _elected(self, client: KafkaClientProtocol, topic: str) -> HostPort | None:
        """
        The leader of a topic just created (by us or by a write racing us): the
        controller elects one a moment after CreateTopics answers, and a first
        write that gave up then would be lost (an audit record, say).
        """
        link = self.link
        waited = 0.0
        while True:
            found = await partition_leader(client, topic, link)
            if found is not None or waited >= link.timeout_seconds:
                return found
            await deferLater(link.clock, LEADER_POLL_SECONDS, lambda: None)
            waited += LEADER_POLL_SECONDS

    async def open_leader(self, topic: str) -> KafkaClientProtocol:
        """A connection to the leader of partition 0 of C{topic}."""
        return await self.link.open(await self.leader(topic))


@dataclass(eq=False)
class CompactedTopicReader(MultiService):
    """Polls partition 0 of a compacted topic and keeps the latest value of every key."""

    topic: str
    finder: LeaderFinder
    #: Between polls.  Each poll is one Fetch with max_wait_ms=0, so a change is
    #: seen at most this long (plus a round trip) after it is written; a short
    #: interval buys propagation within a second or two at the cost of a small
    #: request per interval, which an idle broker answers from memory.
    interval_seconds: float = 5.0
    #: Told the whole content after every poll that changed it.
    listener: Listener | None = None
    #: What the log calls the topic ("license topic").
    description: str = "topic"
    entries: dict[bytes, bytes] = field(default_factory=dict)
    offset: int = 0
    polls: int = 0
    _client: KafkaClientProtocol | None = None
    _busy: bool = False
    _failing: bool = False
    _waiting: list[tuple[int, Deferred[None]]] = field(default_factory=list)
    _loaded_waiters: list[Deferred[None]] = field(default_factory=list)
    #: The content read again from the log's start after OFFSET_OUT_OF_RANGE.
    _rebuilt: dict[bytes, bytes] | None = None

    def __post_init__(self) -> None:
        MultiService.__init__(self)
        PollService(self.interval_seconds, self.poll, self.finder.link.clock).setServiceParent(self)

    def stopService(self) -> Deferred[Any]:
        stopped: Deferred[Any] = super().stopService()
        if self._client is not None:
            self._client.close()
            self._client = None
        return stopped

    def loaded(self) -> Deferred[None]:
        """Fires once the topic has been read to its end at least once."""
        if self.polls:
            return succeed(None)
        waiter: Deferred[None] = Deferred()
        self._loaded_waiters.append(waiter)
        return waiter

    def seen(self, offset: int) -> Deferred[None]:
        """Fires once the reader has read the record at C{offset} (or beyond)."""
        done: Deferred[None] = Deferred()
        if self.offset > offset:
            done.callback(None)
        else:
            self._waiting.append((offset, done))
        return done

    def poll(self) -> Deferred[None]:
        """Fetch what is new in the topic (one round trip when nothing is)."""
        return Deferred.fromCoroutine(self._poll())

    async def _poll(self) -> None:
        if self._busy:
            return
        self._busy = True
        try:
            if self._client is None or self._client.closed.called:
                self._client = await self.finder.open_leader(self.topic)
            await self._fetch(self._client)
            self.polls += 1
            waiters, self._loaded_waiters = self._loaded_waiters, []
            for waiter in waiters:
                waiter.callback(None)
            if self._failing:
                log.info(
                    "Reading the {what} {topic} again", what=self.description, topic=self.topic
                )
                self._failing = False
        except CancelledError:
            raise  # stopped
        except Exception as e:
            if self._client is not None:
                self._client.close()
                self._client = None
            if not self._failing:
                log.warn(
                    "Cannot read the {what} {topic}: {reason}; retrying",
                    what=self.description,
                    topic=self.topic,
                    reason=str(e) or type(e).__name__,
                )
                self._failing = True
        finally:
            self._busy = False

    async def _fetch(self, client: KafkaClientProtocol) -> None:
        version = client.version_for(FetchRequest.API_KEY, 12, 4)
        request = FetchRequest[version]
        topic = request.FetchTopic
        answer = client.request(
            request(
                replica_id=-1,
                max_wait_ms=0,
                min_bytes=1,
                max_bytes=1024 * 1024,
                isolation_level=1,
                session_id=0,
                session_epoch=-1,
                topics=[
                    topic(
                        topic=self.topic,
                        partitions=[
                            topic.FetchPartition(
                                partition=0,
                                fetch_offset=self.offset,
                                log_start_offset=-1,
                                partition_max_bytes=1024 * 1024,
                            )
                        ],
                    )
                ],
                forgotten_topics_data=[],
                rack_id="",
            )
        )
        link = self.finder.link
        answer.addTimeout(link.timeout_seconds, link.clock)
        response = await answer
        changed = False
        for topic_response in response.responses:
            for partition in topic_response.partitions:
                if partition.error_code == ErrorCode.OFFSET_OUT_OF_RANGE:
                    # Records before our offset are gone, tombstones with them:
                    # rebuild the content from the log's start, and swap it in
                    # only once caught up, so no listener sees a half-read topic.
                    self.offset = max(0, partition.log_start_offset)
                    self._rebuilt = {}
                    continue
                if partition.error_code:
                    raise KafkaRequestError(
                        f"Fetch: error {partition.error_code}", partition.error_code
                    )
                records = bytes(partition.records or b"")
                if self._rebuilt is None:
                    changed |= self._read(records, self.entries)
                    continue
                self._read(records, self._rebuilt)
                if self.offset >= partition.high_watermark:
                    changed = self._rebuilt != self.entries
                    self.entries, self._rebuilt = self._rebuilt, None
        if changed and self.listener is not None:
            try:
                self.listener(dict(self.entries))
            except Exception:
                log.failure("The {what} listener failed", what=self.description)
        self._wake()

    def _read(self, data: bytes, entries: dict[bytes, bytes]) -> bool:
        changed = False
        records = MemoryRecords(data)
        while records.has_next():
            batch = records.next_batch()
            if batch is None:
                break
            for record in batch:
                self.offset = record.offset + 1
                if record.key is None:
                    continue
                if record.value is None:
                    if entries.pop(record.key, None) is not None:
                        changed = True
                        log.info(
                            "{what} entry {key} removed at offset {offset}",
                            what=self.description.capitalize(),
                            key=record.key.decode(errors="replace"),
                            offset=record.offset,
                        )
                elif entries.get(record.key) != record.value:
                    entries[record.key] = record.value
                    changed = True
                    log.info(
                        "{what} entry {key} updated at offset {offset}",
                        what=self.description.capitalize(),
                        key=record.key.decode(errors="replace"),
                        offset=record.offset,
                    )
        return changed

    def _wake(self) -> None:
        waiting, self._waiting = self._waiting, []
        for offset, done in waiting:
            if self.offset > offset:
                done.callback(None)
            else:
                self._waiting.append((offset, done))


def record_batch(key: bytes | None, value: bytes | None, timestamp_ms: int) -> bytes:
    """One record as a v2 record batch (kafka-python's builder)."""
    builder = MemoryRecordsBuilder(magic=2, compression_type=0, batch_size=1024 * 1024)
    builder.append(timestamp=timestamp_ms, key=key, value=value)
    builder.close()
    return bytes(builder.buffer())


@dataclass(eq=False)
class TopicWriter:
    """Produces single records to partition 0 of a topic, through its leader, with acks=all."""

    finder: LeaderFinder
    #: The wall clock for record timestamps (a parameter for tests).
    now: Callable[[], float] = time.time
    _leaders: dict[str, KafkaClientProtocol] = field(default_factory=dict)

    def produce(self, topic: str, key: bytes | None, value: bytes | None) -> Deferred[int]:
        """Write one record (C{value} None: a tombstone); fires with its offset."""
        return Deferred.fromCoroutine(self._produce(topic, key, value))

    async def _produce(self, topic: str, key: bytes | None, value: bytes | None) -> int:
        client = self._leaders.get(topic)
        if client is None or client.transport is None or client.closed.called:
            client = self._leaders[topic] = await self.finder.open_leader(topic)
        try:
            return await self._send(client, topic, key, value)
        except Exception:
            # The leader moved or the connection broke: find it again next time.
            if self._leaders.get(topic) is client:
                del self._leaders[topic]
            client.close()
            raise

    async def _send(
        self, client: KafkaClientProtocol, topic: str, key: bytes | None, value: bytes | None
    ) -> int:
        link = self.finder.link
        version = client.version_for(ProduceRequest.API_KEY, 12, 3)
        request = ProduceRequest[version]
        data = request.TopicProduceData
        answer: Deferred[Any] = client.request(
            request(
                transactional_id=None,
                acks=-1,
                timeout_ms=int(link.timeout_seconds * 1000),
                topic_data=[
                    data(
                        name=topic,
                        partition_data=[
                            data.PartitionProduceData(
                                index=0,
                                records=record_batch(key, value, int(self.now() * 1000)),
                            )
                        ],
                    )
                ],
            )
        )
        answer.addTimeout(link.timeout_seconds, link.clock)
        response = await answer
        for topic_response in response.responses:
            for partition in topic_response.partition_responses:
                if partition.error_code:
                    message = getattr(partition, "error_message", None) or ""
                    raise KafkaRequestError(
                        f"cannot write to {topic}: error {partition.error_code} {message}".strip(),
                        partition.error_code,
                    )
                return int(partition.base_offset)
        raise KafkaRequestError(f"cannot write to {topic}: the broker answered for no partition")

    def close(self) -> None:
        """Hang up every leader connection."""
        leaders, self._leaders = self._leaders, {}
        for client in leaders.values():
            client.close()
