"""
read-only-topics: topics clients may read but not write or change.

Config::

    {"topics": ["audit\\\\..*", "_schemas"]}

Each entry is a regular expression matched against the whole topic name.
Refused, topic by topic with POLICY_VIOLATION (44) and a message naming the
pattern: Produce (0), DeleteTopics (20), DeleteRecords (21),
CreatePartitions (37), and AlterConfigs (33) / IncrementalAlterConfigs (44)
on a topic resource.  The other topics and resources of the same request go
on to the broker and their answers are merged with the refusals.  Reads
(Fetch, Metadata, ListOffsets, consumer groups) are not looked at.

Newer clients name topics by id (Produce v13, DeleteTopics v6).  The policy
learns ids from the Metadata responses it passes (a client learns an id the
same way, so it has asked for it first); an id it has not seen is refused
with UNKNOWN_TOPIC_ID, which makes the client refresh its metadata and retry
- failing open would let a write to a read-only topic through.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from uuid import UUID

from kafka.protocol.api_key import ApiKey
from zope.interface import implementer

from kgateway.interceptors.api import (
    AuditEvent,
    HookResult,
    IInterceptor,
    InterceptorContext,
    InvalidConfig,
    RequestCall,
    ResponseCall,
)
from kgateway.interceptors.builtin.partial import Refusal, entries, merge, refuse
from kgateway.interceptors.options import Options
from kgateway.interceptors.patterns import TextPattern, compile_pattern
from kgateway.protocol.error_codes import ErrorCode

PLUGIN = "read-only-topics"
#: The writes the policy refuses, by API key.
WRITES = frozenset(
    {
        ApiKey.Produce,
        ApiKey.DeleteTopics,
        ApiKey.DeleteRecords,
        ApiKey.AlterConfigs,
        ApiKey.CreatePartitions,
        ApiKey.IncrementalAlterConfigs,
    }
)
#: ConfigResource type of a topic in AlterConfigs / IncrementalAlterConfigs.
TOPIC_RESOURCE = 2
_ZERO = UUID(int=0)


@implementer(IInterceptor)
class ReadOnlyTopics:
    """Refuses writes and admin changes to topics whose names match a pattern."""

    requests = WRITES
    responses = WRITES | {ApiKey.Metadata}

    def __init__(self, context: InterceptorContext, patterns: list[TextPattern]) -> None:
        self.context = context
        self.patterns = patterns
        #: Topic names by id, learnt from Metadata responses.
        self.names: dict[UUID, str] = {}

    @classmethod
    def from_config(cls, config: Mapping[str, Any], context: InterceptorContext) -> ReadOnlyTopics:
        """Read and compile the patterns."""
        options = Options(config)
        raw = options.strings("topics")
        options.done()
        if not raw:
            raise InvalidConfig("config.topics is empty; list the read-only topic patterns")
        return cls(context, [compile_pattern(value, "config.topics") for value in raw])

    def read_only(self, topic: str) -> TextPattern | None:
        """The pattern that makes C{topic} read-only, if one does."""
        for pattern in self.patterns:
            if pattern.fullmatch(topic):
                return pattern
        return None

    def on_request(self, call: RequestCall) -> HookResult:
        """Refuse the entries that touch a read-only topic; send the rest on."""
        refusals: dict[int, Refusal] = {}
        for index, entry in enumerate(entries(call)):
            refusal, details = self._judge(call.api_key, entry)
            if refusal is not None:
                refusals[index] = refusal
                self.context.audit(
                    AuditEvent(
                        self.context.name,
                        PLUGIN,
                        call.client,
                        call.api_key,
                        "denied",
                        refusal[1],
                        details,
                    )
                )
        return refuse(call, refusals)

    def on_response(self, call: ResponseCall) -> HookResult:
        """Learn topic ids from Metadata; merge refusals into the answers to writes."""
        if call.api_key == ApiKey.Metadata:
            for topic in call.message.topics:
                topic_id = getattr(topic, "topic_id", None)
                if topic.name and topic_id is not None and topic_id != _ZERO:
                    self.names[topic_id] = topic.name
            # Reading the message does not change it: the response goes on as it came.
            return None
        merge(call)
        return None

    def stop(self) -> None:
        """Forget the topic ids (refusals in flight live with their connections)."""
        self.names.clear()

    def _judge(self, api_key: int, entry: Any) -> tuple[Refusal | None, dict[str, Any]]:
        """The refusal of one entry (None: it may go on), and what the audit record says of it."""
        if api_key in (ApiKey.AlterConfigs, ApiKey.IncrementalAlterConfigs):
            if entry.resource_type != TOPIC_RESOURCE:
                return None, {}
            name: str | None = entry.resource_name
            details: dict[str, Any] = {"topic": name}
        else:
            name = _name(entry)
            details = {"topic": name}
            if not name:
                # Named by id alone (Produce v13, DeleteTopics v6).
                topic_id = getattr(entry, "topic_id", None)
                name = self.names.get(topic_id) if topic_id is not None else None
                details = {"topic": name, "topicId": str(topic_id)}
                if name is None:
                    return (
                        ErrorCode.UNKNOWN_TOPIC_ID,
                        f"topic id {topic_id} is not known to the gateway yet; "
                        f"refresh metadata and retry",
                    ), details
        assert name is not None
        pattern = self.read_only(name)
        if pattern is None:
            return None, details
        reason = f"topic {name!r} is read-only (matches {pattern.pattern!r})"
        return (ErrorCode.POLICY_VIOLATION, reason), details


def _name(entry: Any) -> str | None:
    if isinstance(entry, str):  # DeleteTopics v0-5 lists plain names
        return entry
    return getattr(entry, "name", None) or None
