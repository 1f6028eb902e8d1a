"""
Error responses an interceptor answers with, shaped like a broker's.

A broker refusing a request answers every topic and partition the request
named with an error code; clients read those, not a top-level code, for
most APIs.  L{ENTRY_SHAPES} says, per API whose request lists entries
(topics, resources), where the entries are and how one entry is answered
with an error; L{error_response} answers them all, and the per-topic
policies (L{kgateway.interceptors.builtin.partial}) answer some.  Any other
API gets its top-level C{error_code} where its response has one.

The codes are L{ErrorCode}'s, or any other C{kafka.errors} class's C{errno}.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from kafka.protocol.api_key import ApiKey

from kgateway.interceptors.api import RequestCall
from kgateway.protocol.codec import has_field
from kgateway.protocol.error_codes import ErrorCode


class NoErrorResponse(Exception):
    """The API's response has no place for an error code; close the connection instead."""


@dataclass(frozen=True)
class EntryShape:
    """Where one API's request lists its entries, and how the response answers one with an error."""

    #: The request attribute listing the entries, by request version.
    entries: Callable[[int], str]
    #: The response attribute listing the results.
    results: str
    #: A result for one refused entry: (response class, entry, code, message).
    refused: Callable[[Any, Any, int, str | None], Any]
    #: Other top-level fields of a response that refuses the whole request.
    top: Mapping[str, Any] = field(default_factory=dict)

    def request_entries(self, call: RequestCall) -> list[Any]:
        """The entries of C{call}'s request."""
        return list(getattr(call.message, self.entries(call.api_version)))

    def response(self, cls: Any, results: list[Any]) -> Any:
        """A whole response carrying C{results}."""
        return cls(throttle_time_ms=0, **self.top, **{self.results: results})


def error_response(call: RequestCall, error_code: int, message: str | None = None) -> Any:
    """
    The response a broker would give if it refused C{call}'s request with C{error_code}.

    Every topic and partition of the request gets the code (and C{message}
    where the response has room for one).  Raises L{NoErrorResponse} for an
    API with nowhere to put it.
    """
    cls = call.response_class()
    shape = ENTRY_SHAPES.get(call.api_key)
    if shape is None:
        return _top_level(call, cls, error_code, message)
    return shape.response(
        cls, [shape.refused(cls, e, error_code, message) for e in shape.request_entries(call)]
    )


def _produce_topic(cls: Any, topic: Any, code: int, message: str | None) -> Any:
    partition = cls.TopicProduceResponse.PartitionProduceResponse
    return cls.TopicProduceResponse(
        name=topic.name,
        topic_id=topic.topic_id,
        partition_responses=[
            partition(
                index=p.index,
                error_code=code,
                base_offset=-1,
                log_append_time_ms=-1,
                log_start_offset=-1,
                error_message=message,
                record_errors=[],
            )
            for p in topic.partition_data
        ],
    )


def _fetch_topic(cls: Any, topic: Any, code: int, message: str | None) -> Any:
    data = cls.FetchableTopicResponse.PartitionData
    return cls.FetchableTopicResponse(
        topic=topic.topic,
        topic_id=topic.topic_id,
        partitions=[
            data(
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
        ],
    )


def _created_topic(cls: Any, topic: Any, code: int, message: str | None) -> Any:
    return cls.CreatableTopicResult(
        name=topic.name,
        error_code=code,
        error_message=message,
        num_partitions=-1,
        replication_factor=-1,
        configs=None,
    )


def _deleted_topic(cls: Any, topic: Any, code: int, message: str | None) -> Any:
    if isinstance(topic, str):  # v0-5 name the topics as plain strings
        return cls.DeletableTopicResult(name=topic, error_code=code, error_message=message)
    return cls.DeletableTopicResult(
        name=topic.name, topic_id=topic.topic_id, error_code=code, error_message=message
    )


def _deleted_records(cls: Any, topic: Any, code: int, message: str | None) -> Any:
    result = cls.DeleteRecordsTopicResult
    return result(
        name=topic.name,
        partitions=[
            result.DeleteRecordsPartitionResult(
                partition_index=p.partition_index, low_watermark=-1, error_code=code
            )
            for p in topic.partitions
        ],
    )


def _created_partitions(cls: Any, topic: Any, code: int, message: str | None) -> Any:
    return cls.CreatePartitionsTopicResult(name=topic.name, error_code=code, error_message=message)


def _altered_configs(cls: Any, resource: Any, code: int, message: str | None) -> Any:
    return cls.AlterConfigsResourceResponse(
        error_code=code,
        error_message=message,
        resource_type=resource.resource_type,
        resource_name=resource.resource_name,
    )


def _top_level(call: RequestCall, cls: Any, code: int, message: str | None) -> Any:
    if not has_field(cls, "error_code", call.api_version):
        raise NoErrorResponse(f"{cls.name} v{call.api_version} has no top-level error code")
    fields: dict[str, Any] = {"error_code": code}
    if message is not None and has_field(cls, "error_message", call.api_version):
        fields["error_message"] = message
    return cls(**fields)


#: By API key: the APIs whose requests list topics or resources.
ENTRY_SHAPES: dict[int, EntryShape] = {
    ApiKey.Produce: EntryShape(lambda v: "topic_data", "responses", _produce_topic),
    # session_id 0: the client starts a new fetch session with its next request.
    ApiKey.Fetch: EntryShape(
        lambda v: "topics",
        "responses",
        _fetch_topic,
        {"error_code": ErrorCode.NONE, "session_id": 0},
    ),
    ApiKey.CreateTopics: EntryShape(lambda v: "topics", "topics", _created_topic),
    ApiKey.DeleteTopics: EntryShape(
        lambda v: "topics" if v >= 6 else "topic_names", "responses", _deleted_topic
    ),
    ApiKey.DeleteRecords: EntryShape(lambda v: "topics", "topics", _deleted_records),
    # The two AlterConfigs answer one result per resource.
    ApiKey.AlterConfigs: EntryShape(lambda v: "resources", "responses", _altered_configs),
    ApiKey.CreatePartitions: EntryShape(lambda v: "topics", "results", _created_partitions),
    ApiKey.IncrementalAlterConfigs: EntryShape(
        lambda v: "resources", "responses", _altered_configs
    ),
}
