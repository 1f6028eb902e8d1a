"""
Real Kafka requests for interceptor tests, built with kafka-python's classes.

Each helper returns a L{RequestCall} over the framed bytes a client would
send, so an interceptor decodes them exactly as on the data path.
"""

from __future__ import annotations

from typing import Any

from kafka.protocol.admin import (
    AlterConfigsRequest,
    CreatePartitionsRequest,
    CreateTopicsRequest,
    DeleteRecordsRequest,
    DeleteTopicsRequest,
    IncrementalAlterConfigsRequest,
)
from kafka.protocol.producer import ProduceRequest
from kafka.record.memory_records import MemoryRecordsBuilder
from twisted.internet.task import Clock

from kgateway.interceptors.api import (
    AuditEvent,
    ClientInfo,
    InterceptorContext,
    RequestCall,
    ResponseCall,
)
from kgateway.protocol.codec import encode_response

#: kafka-python's compression_type numbers: none, gzip, snappy, lz4, zstd.
CODECS = {"none": 0, "gzip": 1, "snappy": 2, "lz4": 3, "zstd": 4}


def client() -> ClientInfo:
    """A client as the data path describes one."""
    return ClientInfo("10.1.2.3:50000", 1, client_id="app-1", username="alice")


def context(clock: Clock | None = None) -> tuple[InterceptorContext, list[AuditEvent]]:
    """A context whose audit events land in the returned list."""
    events: list[AuditEvent] = []
    ctx = InterceptorContext(
        clock or Clock(), "policy", cluster_id="gw", audit=events.append, node="gw1:6969"
    )
    return ctx, events


def call(message: Any, correlation_id: int = 7, who: ClientInfo | None = None) -> RequestCall:
    """The call the data path makes for a request message."""
    message.with_header(correlation_id=correlation_id, client_id="app-1")
    frame = bytes(message.encode(header=True, framed=True))
    return RequestCall(who or client(), message.API_KEY, message.API_VERSION, correlation_id, frame)


def response_call(request: RequestCall, response: Any) -> ResponseCall:
    """The call the data path makes for the broker's answer to C{request}."""
    frame = encode_response(response, request.correlation_id, request.api_version)
    return ResponseCall(
        request.client, request.api_key, request.api_version, request.correlation_id, frame
    )


def batch(
    codec: str = "none", producer_id: int = -1, transactional: bool = False, count: int = 3
) -> bytes:
    """A real v2 record batch, as a producer would write it."""
    builder = MemoryRecordsBuilder(
        2,
        CODECS[codec],
        1 << 20,
        transactional=transactional,
        producer_id=producer_id,
        producer_epoch=0 if producer_id >= 0 else -1,
        base_sequence=0 if producer_id >= 0 else -1,
    )
    for n in range(count):
        # Repetitive values: kafka-python sends a batch uncompressed when that is smaller.
        builder.append(1000 + n, b"k", b"value " * 50, [])
    builder.close()
    return bytes(builder.buffer())


def produce(
    topics: dict[str, list[bytes | None]],
    acks: int = -1,
    version: int = 9,
    transactional_id: str | None = None,
) -> Any:
    """A Produce request: topic -> the records of partitions 0, 1, ..."""
    cls = ProduceRequest[version]
    data = cls.TopicProduceData
    return cls(
        transactional_id=transactional_id,
        acks=acks,
        timeout_ms=30000,
        topic_data=[
            data(
                name=name,
                partition_data=[
                    data.PartitionProduceData(index=i, records=records)
                    for i, records in enumerate(parts)
                ],
            )
            for name, parts in topics.items()
        ],
    )


def create_topics(
    topics: list[tuple[str, int, int]], version: int = 7, assignments: Any = None
) -> Any:
    """A CreateTopics request for (name, partitions, replication factor) triples."""
    cls = CreateTopicsRequest[version]
    topic = cls.CreatableTopic
    return cls(
        topics=[
            topic(
                name=name,
                num_partitions=partitions,
                replication_factor=factor,
                assignments=(assignments or {}).get(name, []),
                configs=[],
            )
            for name, partitions, factor in topics
        ],
        timeout_ms=30000,
        validate_only=False,
    )


def create_partitions(topics: dict[str, int], version: int = 3) -> Any:
    """A CreatePartitions request growing topics to the given counts."""
    cls = CreatePartitionsRequest[version]
    return cls(
        topics=[
            cls.CreatePartitionsTopic(name=name, count=count, assignments=None)
            for name, count in topics.items()
        ],
        timeout_ms=30000,
        validate_only=False,
    )


def delete_topics(names: list[str], version: int = 5) -> Any:
    """A DeleteTopics request (v0-5 list names, v6 lists name/id pairs)."""
    cls = DeleteTopicsRequest[version]
    if version >= 6:
        return cls(topics=[cls.DeleteTopicState(name=name) for name in names], timeout_ms=30000)
    return cls(topic_names=names, timeout_ms=30000)


def delete_records(topics: dict[str, int], version: int = 2) -> Any:
    """A DeleteRecords request deleting up to an offset in partition 0 of each topic."""
    cls = DeleteRecordsRequest[version]
    topic = cls.DeleteRecordsTopic
    return cls(
        topics=[
            topic(
                name=name,
                partitions=[topic.DeleteRecordsPartition(partition_index=0, offset=offset)],
            )
            for name, offset in topics.items()
        ],
        timeout_ms=30000,
    )


def alter_configs(resources: list[tuple[int, str]], incremental: bool = False) -> Any:
    """An (Incremental)AlterConfigs request setting retention.ms on (type, name) resources."""
    if incremental:
        cls = IncrementalAlterConfigsRequest[1]
        config = cls.AlterConfigsResource.AlterableConfig(
            name="retention.ms", config_operation=0, value="1000"
        )
    else:
        cls = AlterConfigsRequest[2]
        config = cls.AlterConfigsResource.AlterableConfig(name="retention.ms", value="1000")
    return cls(
        resources=[
            cls.AlterConfigsResource(resource_type=kind, resource_name=name, configs=[config])
            for kind, name in resources
        ],
        validate_only=False,
    )
