"""
A fake Kafka broker that holds single-partition topics, for the tests of
L{kgateway.cluster.topics}: it answers ApiVersions, Metadata, CreateTopics,
Fetch and Produce with kafka-python's own response classes over L{iosim}
connections, so the reader and writer are exercised against the bytes a
broker would send.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Any

from kafka import errors
from kafka.protocol.admin import CreateTopicsRequest, CreateTopicsResponse
from kafka.protocol.consumer import FetchRequest, FetchResponse
from kafka.protocol.metadata import (
    ApiVersionsRequest,
    ApiVersionsResponse,
    MetadataRequest,
    MetadataResponse,
)
from kafka.protocol.producer import ProduceRequest, ProduceResponse
from kafka.protocol.sasl import SaslAuthenticateRequest, SaslHandshakeRequest
from kafka.record import MemoryRecords, MemoryRecordsBuilder
from twisted.internet.defer import Deferred, fail, succeed
from twisted.internet.error import ConnectionRefusedError
from twisted.internet.protocol import Factory, Protocol
from twisted.test.iosim import FakeTransport, IOPump, connect

from kgateway.net import HostPort
from kgateway.protocol.codec import encode_response
from kgateway.protocol.framing import FrameReader
from kgateway.protocol.headers import request_info

NONE = errors.NoError.errno
OFFSET_OUT_OF_RANGE = errors.OffsetOutOfRangeError.errno
UNKNOWN_TOPIC_OR_PARTITION = errors.UnknownTopicOrPartitionError.errno
NOT_LEADER_OR_FOLLOWER = errors.NotLeaderForPartitionError.errno
TOPIC_ALREADY_EXISTS = errors.TopicAlreadyExistsError.errno

REQUESTS: dict[int, Any] = {
    cls.API_KEY: cls
    for cls in (
        ApiVersionsRequest,
        MetadataRequest,
        CreateTopicsRequest,
        FetchRequest,
        ProduceRequest,
        SaslHandshakeRequest,
        SaslAuthenticateRequest,
    )
}
_SASL = (SaslHandshakeRequest.API_KEY, SaslAuthenticateRequest.API_KEY)

#: The broker's address.
ADDRESS = HostPort("k1", 9092)


@dataclass
class StoredRecord:
    """One record of a topic."""

    offset: int
    key: bytes | None
    value: bytes | None


class BrokerConnection(Protocol):
    """The broker's side of one connection (an iosim one, or a real socket's)."""

    def __init__(self, broker: FakeTopicBroker) -> None:
        self.broker = broker
        self.reader = FrameReader()
        self.wire: Any
        self.lost: Deferred[None] = Deferred()

    def connectionMade(self) -> None:
        if not hasattr(self, "wire"):
            self.wire = self.transport

    def connectionLost(self, reason: object = None) -> None:
        if not self.lost.called:
            self.lost.callback(None)

    def dataReceived(self, data: bytes) -> None:
        for frame in self.reader.feed(data):
            info = request_info(frame)
            cls = REQUESTS[info.api_key]
            request = cls.decode(memoryview(frame)[4:], version=info.api_version, header=True)
            sasl = self.broker.sasl
            if sasl is not None and info.api_key in _SASL:
                answer = sasl.answer(self, request, info.api_version)
            elif sasl is not None and info.api_key != 18 and not sasl.authenticated(self):
                # As Kafka does: anything but ApiVersions before the login hangs up.
                self.broker.seen.append(("unauthenticated", type(request).__name__))
                self.wire.loseConnection()
                return
            else:
                answer = self.broker.answer(request, info.api_version)
            if answer is not None and not self.wire.disconnecting:  # None: never answer
                self.wire.write(encode_response(answer, info.correlation_id, info.api_version))


@dataclass
class FakeTopicBroker:
    """One broker leading partition 0 of every topic it has."""

    address: HostPort = ADDRESS
    topics: dict[str, list[StoredRecord]] = field(default_factory=dict)
    #: Created topics' settings: name → (partitions, replication factor, configs).
    created: dict[str, tuple[int, int, dict[str, str]]] = field(default_factory=dict)
    #: The first offset still in the log (compaction removed those before it).
    log_start: dict[str, int] = field(default_factory=dict)
    #: Every request, as (api name, topic), in arrival order.
    seen: list[tuple[str, str]] = field(default_factory=list)
    #: The acks of every Produce request.
    acks: list[int] = field(default_factory=list)
    #: Error code for the next Fetch / Produce of partition 0 (then cleared).
    fetch_error: int = NONE
    produce_error: int = NONE
    refusing: bool = False
    #: Whether a topic created by CreateTopics gets a leader at once.
    leader_at_once: bool = True
    leaderless: set[str] = field(default_factory=set)
    servers: list[BrokerConnection] = field(default_factory=list)
    pumps: list[IOPump] = field(default_factory=list)
    #: The broker's SASL side (a tests.unit.security.fake_sasl.FakeSaslServer), or None.
    sasl: Any = None

    def factory(self) -> Factory:
        """A factory for real sockets (a TLS listener's, say) speaking as this broker."""
        broker = self

        class _Connections(Factory):
            noisy = False

            def buildProtocol(self, addr: object) -> BrokerConnection:
                server = BrokerConnection(broker)
                broker.servers.append(server)
                return server

        return _Connections()

    def connect(self, endpoint: HostPort, factory: Factory) -> Deferred[Protocol]:
        """The L{Connector} seam."""
        if self.refusing:
            return fail(ConnectionRefusedError(str(endpoint)))
        client = factory.buildProtocol(None)
        assert isinstance(client, Protocol)
        server = BrokerConnection(self)
        server.wire = FakeTransport(server, isServer=True)
        self.servers.append(server)
        self.pumps.append(
            connect(server, server.wire, client, FakeTransport(client, isServer=False), greet=False)
        )
        return succeed(client)

    def flush(self) -> None:
        """Move bytes over every connection until nothing moves."""
        for _ in range(1000):
            if not any([pump.pump() for pump in self.pumps]):
                return
        raise AssertionError("the connections never went quiet")

    def drop(self) -> None:
        """Hang up on every connection."""
        for server in self.servers:
            server.wire.loseConnection()
        self.flush()

    def append(self, topic: str, key: bytes | None, value: bytes | None) -> int:
        """Another writer's record; its offset."""
        records = self.topics.setdefault(topic, [])
        offset = records[-1].offset + 1 if records else self.log_start.get(topic, 0)
        records.append(StoredRecord(offset, key, value))
        return offset

    def compact(self, topic: str) -> None:
        """Keep only the latest record of each key (tombstones go too), as the cleaner does."""
        records = self.topics[topic]
        latest = {r.key: r for r in records}
        kept = [r for r in records if latest[r.key] is r and r.value is not None]
        self.log_start[topic] = kept[0].offset if kept else (records[-1].offset + 1)
        self.topics[topic] = kept

    # Requests ---------------------------------------------------------------

    def answer(self, request: Any, version: int) -> Any:
        name = type(request).__name__.removesuffix("Request")
        return getattr(self, "_" + name)(request, version)

    def _ApiVersions(self, request: Any, version: int) -> Any:
        self.seen.append(("ApiVersions", ""))
        keys = [
            ApiVersionsResponse.ApiVersion(
                api_key=key, min_version=cls.min_version, max_version=cls.max_version
            )
            for key, cls in sorted(REQUESTS.items())
        ]
        return ApiVersionsResponse(error_code=NONE, api_keys=keys, throttle_time_ms=0)

    def _Metadata(self, request: Any, version: int) -> Any:
        if not request.topics:  # the broker directory's question: the brokers only
            self.seen.append(("Metadata", ""))
            answer = self._Metadata(
                MetadataRequest[version](
                    topics=[MetadataRequest[version].MetadataRequestTopic(name="")]
                ),
                version,
            )
            self.seen.pop()
            answer.topics = []
            return answer
        (asked,) = request.topics
        self.seen.append(("Metadata", asked.name))
        partitions = []
        error = UNKNOWN_TOPIC_OR_PARTITION
        if asked.name in self.topics:
            error = NONE
            leader = -1 if asked.name in self.leaderless else 1
            partitions = [
                MetadataResponse.MetadataResponseTopic.MetadataResponsePartition(
                    error_code=NONE,
                    partition_index=0,
                    leader_id=leader,
                    leader_epoch=0,
                    replica_nodes=[1],
                    isr_nodes=[1],
                    offline_replicas=[],
                )
            ]
        return MetadataResponse(
            throttle_time_ms=0,
            brokers=[
                MetadataResponse.MetadataResponseBroker(
                    node_id=1, host=self.address.host, port=self.address.port, rack=None
                )
            ],
            cluster_id="fake",
            controller_id=1,
            topics=[
                MetadataResponse.MetadataResponseTopic(
                    error_code=error,
                    name=asked.name,
                    topic_id=uuid.UUID(int=1),
                    is_internal=False,
                    partitions=partitions,
                )
            ],
        )

    def _CreateTopics(self, request: Any, version: int) -> Any:
        (topic,) = request.topics
        self.seen.append(("CreateTopics", topic.name))
        error = TOPIC_ALREADY_EXISTS if topic.name in self.topics else NONE
        if error == NONE:
            self.topics[topic.name] = []
            self.created[topic.name] = (
                topic.num_partitions,
                topic.replication_factor,
                {c.name: c.value for c in topic.configs},
            )
            if not self.leader_at_once:
                self.leaderless.add(topic.name)
        result = CreateTopicsResponse.CreatableTopicResult(
            name=topic.name,
            error_code=error,
            error_message=None,
            num_partitions=-1,
            replication_factor=-1,
            configs=None,
        )
        return CreateTopicsResponse(throttle_time_ms=0, topics=[result])

    def _Fetch(self, request: Any, version: int) -> Any:
        (topic,) = request.topics
        (partition,) = topic.partitions
        self.seen.append(("Fetch", topic.topic))
        records = self.topics.get(topic.topic)
        error, self.fetch_error = self.fetch_error, NONE
        data = b""
        start = self.log_start.get(topic.topic, 0)
        if records is None:
            error = error or UNKNOWN_TOPIC_OR_PARTITION
        elif partition.fetch_offset < start:
            error = error or OFFSET_OUT_OF_RANGE
        elif not error:
            data = b"".join(_batch_at(r) for r in records if r.offset >= partition.fetch_offset)
        end = records[-1].offset + 1 if records else start
        body = FetchResponse.FetchableTopicResponse
        return FetchResponse(
            throttle_time_ms=0,
            error_code=NONE,
            session_id=0,
            responses=[
                body(
                    topic=topic.topic,
                    partitions=[
                        body.PartitionData(
                            partition_index=0,
                            error_code=error,
                            high_watermark=end,
                            last_stable_offset=end,
                            log_start_offset=start,
                            aborted_transactions=[],
                            preferred_read_replica=-1,
                            records=data,
                        )
                    ],
                )
            ],
        )

    def _Produce(self, request: Any, version: int) -> Any:
        (topic,) = request.topic_data
        (partition,) = topic.partition_data
        self.seen.append(("Produce", topic.name))
        self.acks.append(request.acks)
        error, self.produce_error = self.produce_error, NONE
        offset = -1
        if topic.name not in self.topics:
            error = error or UNKNOWN_TOPIC_OR_PARTITION
        if not error:
            batches = MemoryRecords(bytes(partition.records))
            while batches.has_next():
                batch = batches.next_batch()
                if batch is None:
                    break
                for record in batch:
                    appended = self.append(topic.name, record.key, record.value)
                    offset = appended if offset < 0 else offset
        body = ProduceResponse.TopicProduceResponse
        return ProduceResponse(
            throttle_time_ms=0,
            responses=[
                body(
                    name=topic.name,
                    partition_responses=[
                        body.PartitionProduceResponse(
                            index=0,
                            error_code=error,
                            base_offset=offset,
                            log_append_time_ms=-1,
                            log_start_offset=0,
                            record_errors=[],
                            error_message=None,
                        )
                    ],
                )
            ],
        )


def _batch_at(record: StoredRecord) -> bytes:
    """One stored record as a batch at its own offset (as a broker serves a compacted log)."""
    builder = MemoryRecordsBuilder(
        magic=2, compression_type=0, batch_size=1024 * 1024, offset=record.offset
    )
    builder.append(timestamp=0, key=record.key, value=record.value)
    builder.close()
    return bytes(builder.buffer())
