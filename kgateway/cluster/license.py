"""
The license topic: every node keeps polling it, as the members of a consumer
group do, and holds its latest records in memory.

The topic is compacted with one partition; a record's key names an entry and
its value is the entry (a license, or any cluster-wide setting a later
feature stores there).  Nothing reads or writes it on disk.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from kafka.protocol.consumer import FetchRequest
from kafka.protocol.metadata import MetadataRequest
from kafka.record import MemoryRecords
from twisted.application.service import Service
from twisted.internet.defer import Deferred, ensureDeferred
from twisted.internet.interfaces import IReactorTime
from twisted.internet.task import LoopingCall
from twisted.logger import Logger

from kgateway.cluster.kafka_client import KafkaClientProtocol, KafkaRequestError, open_client
from kgateway.interfaces import Endpoint
from kgateway.proxy.broker_leg import Connector

log = Logger()

OFFSET_OUT_OF_RANGE = 1


@dataclass(eq=False)
class LicenseTopicReader(Service):
    """Polls partition 0 of the license topic from its leader and keeps the latest entries."""

    topic: str
    brokers: Callable[[], Sequence[Endpoint]]
    connect: Connector
    clock: IReactorTime
    interval_seconds: float = 5.0
    timeout_seconds: float = 10.0
    entries: dict[bytes, bytes] = field(default_factory=dict)
    offset: int = 0
    polls: int = 0
    _client: KafkaClientProtocol | None = None
    _loop: LoopingCall | None = None
    _busy: bool = False
    _failing: bool = False

    def startService(self) -> None:
        super().startService()
        self._loop = LoopingCall(self.poll)
        self._loop.clock = self.clock
        self._loop.start(self.interval_seconds, now=True)

    def stopService(self) -> None:
        super().stopService()
        if self._loop is not None and self._loop.running:
            self._loop.stop()
        if self._client is not None:
            self._client.close()
            self._client = None

    def poll(self) -> Deferred[None]:
        """Fetch what is new in the topic (one round trip when nothing is)."""
        return ensureDeferred(self._poll())

    async def _poll(self) -> None:
        if self._busy:
            return
        self._busy = True
        try:
            if self._client is None:
                self._client = await self._leader()
            await self._fetch(self._client)
            self.polls += 1
            if self._failing:
                log.info("Reading the license topic {topic} again", topic=self.topic)
                self._failing = False
        except Exception as e:
            if self._client is not None:
                self._client.close()
                self._client = None
            if not self._failing:
                log.warn(
                    "Cannot read the license topic {topic}: {reason}; retrying",
                    topic=self.topic,
                    reason=str(e) or type(e).__name__,
                )
                self._failing = True
        finally:
            self._busy = False

    async def _leader(self) -> KafkaClientProtocol:
        for endpoint in self.brokers():
            try:
                client = await open_client(self.connect, endpoint, self.clock, self.timeout_seconds)
            except Exception:
                continue
            try:
                version = client.version_for(MetadataRequest.API_KEY, 12, 4)
                request = MetadataRequest[version]
                answer = client.request(
                    request(
                        topics=[request.MetadataRequestTopic(name=self.topic, topic_id=None)],
                        allow_auto_topic_creation=False,
                    )
                )
                answer.addTimeout(self.timeout_seconds, self.clock)
                metadata = await answer
            finally:
                client.close()
            brokers = {b.node_id: Endpoint(b.host, b.port) for b in metadata.brokers}
            for topic in metadata.topics:
                for partition in topic.partitions:
                    if partition.partition_index == 0 and partition.leader_id in brokers:
                        return await open_client(
                            self.connect,
                            brokers[partition.leader_id],
                            self.clock,
                            self.timeout_seconds,
                        )
            raise KafkaRequestError(f"no leader for {self.topic} partition 0 yet")
        raise KafkaRequestError("no broker answered")

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
        answer.addTimeout(self.timeout_seconds, self.clock)
        response = await answer
        for topic_response in response.responses:
            for partition in topic_response.partitions:
                if partition.error_code == OFFSET_OUT_OF_RANGE:
                    self.offset = 0
                    continue
                if partition.error_code:
                    raise KafkaRequestError(
                        f"Fetch: error {partition.error_code}", partition.error_code
                    )
                self._read(bytes(partition.records or b""))

    def _read(self, data: bytes) -> None:
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
                    self.entries.pop(record.key, None)
                elif self.entries.get(record.key) != record.value:
                    self.entries[record.key] = record.value
                    log.info(
                        "License topic entry {key} updated at offset {offset}",
                        key=record.key.decode(errors="replace"),
                        offset=record.offset,
                    )
