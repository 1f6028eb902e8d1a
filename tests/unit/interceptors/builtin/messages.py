"""Produce and Fetch messages with real record batches, for the built-in interceptors' tests."""

from __future__ import annotations

import struct
import uuid

from kafka.protocol.consumer import FetchRequest, FetchResponse
from kafka.protocol.producer import ProduceRequest, ProduceResponse
from kafka.record.default_records import DefaultRecordBatch, DefaultRecordBatchBuilder
from kafka.record.util import calc_crc32c

from kgateway.interceptors.api import ClientInfo, RequestCall, ResponseCall
from kgateway.interceptors.builtin.record_batches import _COMPRESS
from kgateway.protocol.codec import encode_response

CLIENT_ID = "app-7"
HEADER = DefaultRecordBatch.HEADER_STRUCT


def client(peer: str = "10.0.0.7:50000", client_id: str | None = CLIENT_ID) -> ClientInfo:
    """A client as the data path describes it."""
    return ClientInfo(peer, 1, client_id)


def batch(
    compression: int = 0,
    records: int = 3,
    producer: tuple[int, int, int] = (77, 3, 100),
    transactional: bool = False,
    headers: list[tuple[str, bytes]] | None = None,
    value: bytes = b"value-",
) -> bytes:
    """
    A v2 batch as a producer writes it, compressed with C{compression} even
    if that does not pay (kafka-python's builder would fall back to none).
    """
    builder = DefaultRecordBatchBuilder(2, 0, transactional, *producer, 1 << 24)
    for i in range(records):
        builder.append(
            i, 1_700_000_000_000 + 5 * i, b"key-%d" % i, value + b"%d" % i, headers or []
        )
    raw = bytearray(builder.build())
    if compression:
        body = _COMPRESS[compression](bytes(raw[HEADER.size :]))
        raw = raw[: HEADER.size] + body
    return reseal(raw, attributes_or=compression, base_offset=0, leader_epoch=-1)


def reseal(
    raw: bytes | bytearray,
    attributes_or: int = 0,
    base_offset: int | None = None,
    leader_epoch: int | None = None,
) -> bytes:
    """C{raw} with header fields changed, its length and CRC made right again."""
    out = bytearray(raw)
    fields = list(HEADER.unpack_from(out, 0))
    if base_offset is not None:
        fields[0] = base_offset
    fields[1] = len(out) - 12
    if leader_epoch is not None:
        fields[2] = leader_epoch
    fields[5] |= attributes_or
    HEADER.pack_into(out, 0, *fields)
    struct.pack_into(">I", out, DefaultRecordBatch.CRC_OFFSET, calc_crc32c(memoryview(out)[21:]))
    return bytes(out)


def produce(
    partitions: dict[str, list[tuple[int, bytes | None]]],
    version: int = 9,
    acks: int = -1,
    correlation_id: int = 11,
    topic_ids: dict[str, uuid.UUID] | None = None,
) -> bytes:
    """A framed Produce request: topic -> [(partition, records)]."""
    cls = ProduceRequest[version]
    topics = [
        cls.TopicProduceData(
            name=name,
            topic_id=(topic_ids or {}).get(name),
            partition_data=[
                cls.TopicProduceData.PartitionProduceData(index=index, records=records)
                for index, records in parts
            ],
        )
        for name, parts in partitions.items()
    ]
    message = cls(transactional_id=None, acks=acks, timeout_ms=1000, topic_data=topics)
    message.with_header(correlation_id=correlation_id, client_id=CLIENT_ID)
    return bytes(message.encode(header=True, framed=True))


def produce_answer(
    partitions: dict[str, list[int]], correlation_id: int = 11, version: int = 9
) -> bytes:
    """A framed Produce response, every partition written at offset 0."""
    cls = ProduceResponse[version]
    topics = [
        cls.TopicProduceResponse(
            name=name,
            partition_responses=[
                cls.TopicProduceResponse.PartitionProduceResponse(
                    index=index,
                    error_code=0,
                    base_offset=0,
                    log_append_time_ms=-1,
                    log_start_offset=0,
                    record_errors=[],
                )
                for index in parts
            ],
        )
        for name, parts in partitions.items()
    ]
    return encode_response(cls(responses=topics, throttle_time_ms=0), correlation_id, version)


def fetch(partitions: dict[str, list[int]], version: int = 12, correlation_id: int = 21) -> bytes:
    """A framed Fetch request."""
    cls = FetchRequest[version]
    topics = [
        cls.FetchTopic(
            topic=name,
            partitions=[
                cls.FetchTopic.FetchPartition(
                    partition=index, fetch_offset=0, partition_max_bytes=1 << 20
                )
                for index in parts
            ],
        )
        for name, parts in partitions.items()
    ]
    message = cls(
        replica_id=-1,
        max_wait_ms=500,
        min_bytes=1,
        max_bytes=1 << 20,
        isolation_level=0,
        session_id=0,
        session_epoch=-1,
        topics=topics,
        forgotten_topics_data=[],
        rack_id="",
    )
    message.with_header(correlation_id=correlation_id, client_id=CLIENT_ID)
    return bytes(message.encode(header=True, framed=True))


def fetch_answer(
    partitions: dict[str, list[int]], records: bytes, version: int = 12, correlation_id: int = 21
) -> bytes:
    """A framed Fetch response carrying C{records} for every partition."""
    cls = FetchResponse[version]
    topics = [
        cls.FetchableTopicResponse(
            topic=name,
            partitions=[
                cls.FetchableTopicResponse.PartitionData(
                    partition_index=index,
                    error_code=0,
                    high_watermark=3,
                    last_stable_offset=3,
                    log_start_offset=0,
                    aborted_transactions=None,
                    preferred_read_replica=-1,
                    records=records,
                )
                for index in parts
            ],
        )
        for name, parts in partitions.items()
    ]
    message = cls(throttle_time_ms=0, error_code=0, session_id=0, responses=topics)
    return encode_response(message, correlation_id, version)


def request_call(
    frame: bytes, api_key: int, version: int, who: ClientInfo | None = None
) -> RequestCall:
    """The call an interceptor gets for C{frame}."""
    correlation_id = struct.unpack_from(">i", frame, 8)[0]
    return RequestCall(who or client(), api_key, version, correlation_id, frame)


def response_call(
    frame: bytes, api_key: int, version: int, who: ClientInfo | None = None
) -> ResponseCall:
    """The call an interceptor gets for a response C{frame}."""
    correlation_id = struct.unpack_from(">i", frame, 4)[0]
    return ResponseCall(who or client(), api_key, version, correlation_id, frame)


def batches(records: bytes) -> list[DefaultRecordBatch]:
    """The batches in a records blob, read by kafka-python."""
    out = []
    pos = 0
    while pos < len(records):
        length = struct.unpack_from(">i", records, pos + 8)[0]
        out.append(DefaultRecordBatch(records[pos : pos + 12 + length]))
        pos += 12 + length
    return out
