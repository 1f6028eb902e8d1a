"""
Error responses an interceptor answers with, shaped like a broker's.

A broker refusing a request answers every topic and partition the request
named with an error code; clients read those, not a top-level code, for
most APIs.  One builder per API whose request lists topics; any other API
gets its top-level C{error_code} where its response has one.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from kgateway.interceptors.api import RequestCall

#: Kafka error codes the built-in interceptors use.
LEADER_NOT_AVAILABLE = 5
NOT_LEADER_OR_FOLLOWER = 6
REQUEST_TIMED_OUT = 7
NETWORK_EXCEPTION = 13
NOT_ENOUGH_REPLICAS = 19
TOPIC_AUTHORIZATION_FAILED = 29
INVALID_PARTITIONS = 37
INVALID_REPLICATION_FACTOR = 38
INVALID_REQUIRED_ACKS = 21
INVALID_TOPIC_EXCEPTION = 17
POLICY_VIOLATION = 44
UNSUPPORTED_COMPRESSION_TYPE = 76
INVALID_RECORD = 87
UNKNOWN_TOPIC_ID = 100
REPLICA_NOT_AVAILABLE = 9
KAFKA_STORAGE_ERROR = 56


class NoErrorResponse(Exception):
    """The API's response has no place for an error code; close the connection instead."""


def error_response(call: RequestCall, error_code: int, message: str | None = None) -> Any:
    """
    The response a broker would give if it refused C{call}'s request with C{error_code}.

    Every topic and partition of the request gets the code (and C{message}
    where the response has room for one).  Raises L{NoErrorResponse} for an
    API with nowhere to put it.
    """
    builder = _BUILDERS.get(call.api_key, _top_level)
    return builder(call, call.response_class(), error_code, message)


def _has(cls: Any, name: str, version: int) -> bool:
    field = cls._struct.fields.get(name)
    return field is not None and bool(field.for_version_q(version))


def _produce(call: RequestCall, cls: Any, code: int, message: str | None) -> Any:
    topics = []
    for topic in call.message.topic_data:
        partitions = [
            cls.TopicProduceResponse.PartitionProduceResponse(
                index=p.index,
                error_code=code,
                base_offset=-1,
                log_append_time_ms=-1,
                log_start_offset=-1,
                error_message=message,
                record_errors=[],
            )
            for p in topic.partition_data
        ]
        topics.append(
            cls.TopicProduceResponse(
                name=topic.name, topic_id=topic.topic_id, partition_responses=partitions
            )
        )
    return cls(responses=topics, throttle_time_ms=0)


def _fetch(call: RequestCall, cls: Any, code: int, message: str | None) -> Any:
    topics = []
    for topic in call.message.topics:
        partitions = [
            cls.FetchableTopicResponse.PartitionData(
                partition_index=p.partition,
                error_code=code,
                high_watermark=-1,
                last_stable_offset=-1,
                log_start_offset=-1,
                aborted_transactions=None,
                preferred_read_replica=-1,
                # Empty, not null: librdkafka cannot parse a null record set in Fetch v12+.
                records=b"",
            )
            for p in topic.partitions
        ]
        topics.append(
            cls.FetchableTopicResponse(
                topic=topic.topic, topic_id=topic.topic_id, partitions=partitions
            )
        )
    # session_id 0: the client starts a new fetch session with its next request.
    return cls(throttle_time_ms=0, error_code=0, session_id=0, responses=topics)


def _create_topics(call: RequestCall, cls: Any, code: int, message: str | None) -> Any:
    results = [
        cls.CreatableTopicResult(
            name=t.name,
            error_code=code,
            error_message=message,
            num_partitions=-1,
            replication_factor=-1,
            configs=None,
        )
        for t in call.message.topics
    ]
    return cls(throttle_time_ms=0, topics=results)


def _delete_topics(call: RequestCall, cls: Any, code: int, message: str | None) -> Any:
    request = call.message
    if call.api_version >= 6:
        names = [(t.name, t.topic_id) for t in request.topics]
    else:
        names = [(name, None) for name in request.topic_names]
    results = [
        cls.DeletableTopicResult(
            name=name, topic_id=topic_id, error_code=code, error_message=message
        )
        for name, topic_id in names
    ]
    return cls(throttle_time_ms=0, responses=results)


def _delete_records(call: RequestCall, cls: Any, code: int, message: str | None) -> Any:
    topics = [
        cls.DeleteRecordsTopicResult(
            name=t.name,
            partitions=[
                cls.DeleteRecordsTopicResult.DeleteRecordsPartitionResult(
                    partition_index=p.partition_index, low_watermark=-1, error_code=code
                )
                for p in t.partitions
            ],
        )
        for t in call.message.topics
    ]
    return cls(throttle_time_ms=0, topics=topics)


def _create_partitions(call: RequestCall, cls: Any, code: int, message: str | None) -> Any:
    results = [
        cls.CreatePartitionsTopicResult(name=t.name, error_code=code, error_message=message)
        for t in call.message.topics
    ]
    return cls(throttle_time_ms=0, results=results)


def _alter_configs(call: RequestCall, cls: Any, code: int, message: str | None) -> Any:
    # AlterConfigs (33) and IncrementalAlterConfigs (44) answer one result per resource.
    results = [
        cls.AlterConfigsResourceResponse(
            error_code=code,
            error_message=message,
            resource_type=r.resource_type,
            resource_name=r.resource_name,
        )
        for r in call.message.resources
    ]
    return cls(throttle_time_ms=0, responses=results)


def _top_level(call: RequestCall, cls: Any, code: int, message: str | None) -> Any:
    if not _has(cls, "error_code", call.api_version):
        raise NoErrorResponse(f"{cls.name} v{call.api_version} has no top-level error code")
    fields: dict[str, Any] = {"error_code": code}
    if message is not None and _has(cls, "error_message", call.api_version):
        fields["error_message"] = message
    return cls(**fields)


_BUILDERS: dict[int, Callable[[RequestCall, Any, int, str | None], Any]] = {
    0: _produce,
    1: _fetch,
    19: _create_topics,
    20: _delete_topics,
    21: _delete_records,
    37: _create_partitions,
    33: _alter_configs,
    44: _alter_configs,
}
