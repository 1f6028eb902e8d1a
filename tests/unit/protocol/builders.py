"""
Kafka messages for the protocol tests, built with kafka-python's own classes.

Brokers 1-3 are on the port plan, broker 7 is not.  Every real broker host
ends in C{.broker.internal}, so a test can prove that none reached a client
by looking for that text in the bytes the gateway would send.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable, Sequence
from struct import unpack_from
from typing import Any

from kafka.protocol.admin import DescribeClusterResponse
from kafka.protocol.api_message import ApiMessage
from kafka.protocol.consumer import FetchResponse
from kafka.protocol.metadata import ApiVersionsResponse, FindCoordinatorResponse, MetadataResponse
from kafka.protocol.producer import ProduceResponse

# Installs the encoder that keeps unknown tagged fields, as the gateway does.
import kgateway.protocol.rewrite  # noqa: F401
from kgateway.protocol.codec import decode_response, encode_response, fields_at, has_field
from kgateway.routing.mapping import FixedHostMapper
from kgateway.routing.ports import PortPlan

GATEWAY_HOST = "gateway.test"
PLAN = PortPlan(start=19092, count=3, min_broker_id=1)
IN_PLAN = (1, 2, 3)
OFF_PLAN = 7
BROKER_PORT = 9092
BROKER_HOST_MARK = b".broker.internal"
CORRELATION_ID = 0x1234ABCD
TOPIC_ID = uuid.UUID("6ba7b810-9dad-11d1-80b4-00c04fd430c8")
RECORDS = bytes(range(256)) * 40

#: Tags no version of the codec knows, put where a newer broker might.
TOP_TAG = {"_99": b"xyz"}
NESTED_TAG = {"_98": b"\x00nested\xff"}


def mapper() -> FixedHostMapper:
    """A fresh mapper onto the gateway host (fresh, so it logs each broker again)."""
    return FixedHostMapper(GATEWAY_HOST, PLAN)


def broker_host(node_id: int) -> str:
    """The real, internal host of a broker: must never reach a client."""
    return f"b{node_id}.broker.internal"


def gateway_port(node_id: int) -> int:
    """The gateway port that stands for a broker on the plan."""
    port = PLAN.port_for(node_id)
    assert port is not None, node_id
    return port


def framed(message: ApiMessage, version: int, correlation_id: int = CORRELATION_ID) -> bytes:
    """Encode a response the way a broker sends it: length prefix, header, body."""
    # The version goes first: kafka-python's version setter assumes a request header.
    message.API_VERSION = version
    message.with_header(correlation_id=correlation_id)
    return bytes(message.encode(header=True, framed=True))


def decode_frame(cls: Any, frame: bytes, version: int) -> Any:
    """Decode a framed response, after checking its length prefix."""
    (size,) = unpack_from(">i", frame, 0)
    if size != len(frame) - 4:
        raise AssertionError(f"length prefix {size} for a frame of {len(frame) - 4} bytes")
    return cls.decode(frame[4:], version=version, header=True)


def addresses(message: Any) -> list[tuple[int, str, int]]:
    """Every (node id, host, port) a decoded message carries, wherever it sits."""
    found: list[tuple[int, str, int]] = []

    def walk(item: Any) -> None:
        if has_field(item, "host", item.version):
            node = item.broker_id if has_field(item, "broker_id", item.version) else item.node_id
            found.append((node, item.host, item.port))
        for field in fields_at(item, item.version):
            value = getattr(item, field.name)
            if value is None:
                continue
            if field.is_struct():
                walk(value)
            elif field.is_struct_array():
                for element in value:
                    walk(element)

    walk(message)
    return found


def with_unknown_tags(
    cls: Any, frame: bytes, version: int, nested: Callable[[Any], Iterable[Any]]
) -> bytes:
    """
    The same response with unknown tags added at top level and in nested structs.

    C{nested} picks the structs (from the decoded message) that get a tag.
    """
    message = decode_response(cls, frame, version)
    message.unknown_tags = dict(TOP_TAG)
    for item in nested(message):
        item.unknown_tags = dict(NESTED_TAG)
    return encode_response(message, message.header.correlation_id, version)


def metadata_response(
    version: int, broker_ids: Sequence[int] = (1, 2, 3, OFF_PLAN), extra_topics: int = 0
) -> bytes:
    """
    A Metadata response naming these brokers, with a topic led by broker 7
    (and C{extra_topics} more of three partitions each, for size).
    """
    cls = MetadataResponse[version]
    broker = cls.MetadataResponseBroker
    topic = cls.MetadataResponseTopic
    partition = topic.MetadataResponsePartition
    message = cls(
        throttle_time_ms=25,
        brokers=[
            broker(node_id=n, host=broker_host(n), port=BROKER_PORT + n, rack=f"rack-{n}")
            for n in broker_ids
        ],
        cluster_id="cluster-A",
        controller_id=2,
        topics=[
            topic(
                error_code=0,
                name="orders",
                topic_id=TOPIC_ID,
                is_internal=False,
                partitions=[
                    partition(
                        error_code=0,
                        partition_index=0,
                        leader_id=OFF_PLAN,
                        leader_epoch=4,
                        replica_nodes=[OFF_PLAN, 1, 2],
                        isr_nodes=[OFF_PLAN, 1],
                        offline_replicas=[2],
                    ),
                    partition(
                        error_code=9,
                        partition_index=1,
                        leader_id=1,
                        leader_epoch=3,
                        replica_nodes=[1, 2],
                        isr_nodes=[1],
                        offline_replicas=[],
                    ),
                ],
            ),
            topic(error_code=3, name="missing", topic_id=None, is_internal=False, partitions=[]),
            *(
                topic(
                    error_code=0,
                    name=f"topic-{t}",
                    topic_id=uuid.UUID(int=t + 1),
                    is_internal=False,
                    partitions=[
                        partition(
                            error_code=0,
                            partition_index=p,
                            leader_id=1 + (t + p) % 3,
                            leader_epoch=t,
                            replica_nodes=[1, 2, 3],
                            isr_nodes=[1, 2, 3],
                            offline_replicas=[],
                        )
                        for p in range(3)
                    ],
                )
                for t in range(extra_topics)
            ),
        ],
        error_code=0,
    )
    return framed(message, version)


def find_coordinator_response(version: int, node_id: int = 1, error_code: int = 0) -> bytes:
    """A FindCoordinator response: one coordinator (v0-3) or a batch of keys (v4+)."""
    cls = FindCoordinatorResponse[version]
    if version < 4:
        host, port = (broker_host(node_id), BROKER_PORT) if node_id >= 0 else ("", -1)
        message = cls(
            throttle_time_ms=11,
            error_code=error_code,
            error_message=None if error_code == 0 else "not yet",
            node_id=node_id,
            host=host,
            port=port,
        )
    else:
        coordinator = cls.Coordinator
        message = cls(
            throttle_time_ms=11,
            coordinators=[
                coordinator(
                    key="group-a",
                    node_id=1,
                    host=broker_host(1),
                    port=BROKER_PORT,
                    error_code=0,
                    error_message=None,
                ),
                coordinator(
                    key="group-b",
                    node_id=OFF_PLAN,
                    host=broker_host(OFF_PLAN),
                    port=BROKER_PORT,
                    error_code=0,
                    error_message=None,
                ),
                coordinator(
                    key="group-c",
                    node_id=-1,
                    host="",
                    port=-1,
                    error_code=15,
                    error_message="loading",
                ),
                coordinator(
                    key="group-d",
                    node_id=3,
                    host=broker_host(3),
                    port=BROKER_PORT,
                    error_code=0,
                    error_message=None,
                ),
            ],
        )
    return framed(message, version)


def describe_cluster_response(version: int, broker_ids: Sequence[int] = (1, 2, OFF_PLAN)) -> bytes:
    """A DescribeCluster response naming these brokers."""
    cls = DescribeClusterResponse[version]
    broker = cls.DescribeClusterBroker
    message = cls(
        throttle_time_ms=13,
        error_code=0,
        error_message=None,
        endpoint_type=1,
        cluster_id="cluster-A",
        controller_id=OFF_PLAN,
        brokers=[
            broker(
                broker_id=n,
                host=broker_host(n),
                port=BROKER_PORT + n,
                rack=None,
                is_fenced=(n == 2),
            )
            for n in broker_ids
        ],
        authorized_operations={1, 3},
    )
    return framed(message, version)


def _leader(cls: Any, leader_id: int) -> Any:
    return cls.LeaderIdAndEpoch(leader_id=leader_id, leader_epoch=9)


def produce_response(version: int, node_ids: Sequence[int] = (1, 2, OFF_PLAN)) -> bytes:
    """A Produce response with a NOT_LEADER partition and its KIP-951 leader hints."""
    cls = ProduceResponse[version]
    topic = cls.TopicProduceResponse
    partition = topic.PartitionProduceResponse
    hinted = {}
    if version >= 10:
        hinted = {"current_leader": _leader(partition, 2)}
    message = cls(
        responses=[
            topic(
                name="orders",
                topic_id=TOPIC_ID,
                partition_responses=[
                    partition(
                        index=0,
                        error_code=6,
                        base_offset=-1,
                        error_message="moved",
                        record_errors=[],
                        **hinted,
                    ),
                    partition(index=1, error_code=0, base_offset=4711, record_errors=[]),
                ],
            )
        ],
        throttle_time_ms=17,
    )
    if version >= 10:
        message.node_endpoints = [
            cls.NodeEndpoint(node_id=n, host=broker_host(n), port=BROKER_PORT + n, rack="r")
            for n in node_ids
        ]
    return framed(message, version)


def fetch_response(version: int, node_ids: Sequence[int] = (1, 2, OFF_PLAN)) -> bytes:
    """A Fetch response with records, an aborted transaction and KIP-951 leader hints."""
    cls = FetchResponse[version]
    topic = cls.FetchableTopicResponse
    partition = topic.PartitionData
    hinted = {}
    if version >= 12:
        hinted = {"current_leader": _leader(partition, 2)}
    message = cls(
        throttle_time_ms=19,
        error_code=0,
        session_id=123,
        responses=[
            topic(
                topic="orders",
                topic_id=TOPIC_ID,
                partitions=[
                    partition(
                        partition_index=0,
                        error_code=0,
                        high_watermark=100,
                        last_stable_offset=90,
                        log_start_offset=1,
                        aborted_transactions=[
                            partition.AbortedTransaction(producer_id=5, first_offset=3)
                        ],
                        preferred_read_replica=-1,
                        records=RECORDS,
                    ),
                    partition(
                        partition_index=1,
                        error_code=6,
                        high_watermark=-1,
                        aborted_transactions=None,
                        records=None,
                        **hinted,
                    ),
                ],
            )
        ],
    )
    if version >= 16:
        message.node_endpoints = [
            cls.NodeEndpoint(node_id=n, host=broker_host(n), port=BROKER_PORT + n, rack=None)
            for n in node_ids
        ]
    return framed(message, version)


def api_versions_response(
    version: int, api_keys: Iterable[tuple[int, int, int]], error_code: int = 0
) -> bytes:
    """An ApiVersions response offering (key, min, max) for each key."""
    cls = ApiVersionsResponse[version]
    message = cls(
        error_code=error_code,
        api_keys=[
            cls.ApiVersion(api_key=k, min_version=lo, max_version=hi) for k, lo, hi in api_keys
        ],
        throttle_time_ms=21,
        supported_features=[
            cls.SupportedFeatureKey(name="metadata.version", min_version=1, max_version=20)
        ],
        finalized_features_epoch=77,
        finalized_features=[
            cls.FinalizedFeatureKey(
                name="metadata.version", max_version_level=20, min_version_level=20
            )
        ],
    )
    return framed(message, version)
