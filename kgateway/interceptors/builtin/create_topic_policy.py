"""
create-topic-policy: limits on the topics clients create, judged topic by topic.

Config (every key optional)::

    {"minPartitions": 1, "maxPartitions": 64,
     "minReplicationFactor": 3, "maxReplicationFactor": 3,
     "namePattern": "[a-z][a-z0-9._-]*", "allowBrokerDefaults": false}

CreateTopics (19) is judged per topic, as a broker's own C{CreateTopicPolicy}
would: a topic that breaks a limit gets POLICY_VIOLATION (44) with a message
naming the limit, and the other topics of the same request are still
created (the request goes on without the refused ones and their errors are
merged into the broker's answer).

A request may leave the partition count or replication factor at -1, "the
broker's default".  The gateway cannot know that default, so while a limit
on that number is set a -1 is refused, unless C{allowBrokerDefaults} says
the platform trusts the broker's defaults.  A topic with an explicit replica
assignment is judged by the assignment: its number of partitions, and the
largest replica list.

CreatePartitions (37) is judged against C{maxPartitions} (its C{count} is
the topic's new total).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

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
from kgateway.interceptors.builtin.partial import Refusal, merge, refuse
from kgateway.interceptors.options import Options
from kgateway.protocol.error_codes import ErrorCode

PLUGIN = "create-topic-policy"


@dataclass(frozen=True)
class TopicLimits:
    """What a new topic must look like (None: no limit)."""

    min_partitions: int | None = None
    max_partitions: int | None = None
    min_replication_factor: int | None = None
    max_replication_factor: int | None = None
    name_pattern: Any = None
    allow_broker_defaults: bool = False

    def partitions(self, count: int, what: str = "partitions") -> str | None:
        """Why C{count} partitions break the limits (None: they do not); -1 is the default."""
        low, high = self.min_partitions, self.max_partitions
        return self._judge(count, low, high, what, "minPartitions", "maxPartitions")

    def replication(self, factor: int) -> str | None:
        """Why a replication factor breaks the limits (None: it does not)."""
        low, high = self.min_replication_factor, self.max_replication_factor
        return self._judge(
            factor,
            low,
            high,
            "replication factor",
            "minReplicationFactor",
            "maxReplicationFactor",
        )

    def name(self, topic: str) -> str | None:
        """Why a topic name breaks the pattern (None: it matches, or there is none)."""
        if self.name_pattern is None or self.name_pattern.fullmatch(topic):
            return None
        return f"topic name {topic!r} does not match namePattern {self.name_pattern.pattern!r}"

    def _judge(
        self, value: int, low: int | None, high: int | None, what: str, low_key: str, high_key: str
    ) -> str | None:
        if value == -1:
            if (low is None and high is None) or self.allow_broker_defaults:
                return None
            keys = "/".join(k for k, v in ((low_key, low), (high_key, high)) if v is not None)
            return (
                f"{what} -1 (the broker's default) is not allowed while {keys} is set; "
                f"name the number"
            )
        if low is not None and value < low:
            return f"{what} {value} is below {low_key} {low}"
        if high is not None and value > high:
            return f"{what} {value} is above {high_key} {high}"
        return None


@implementer(IInterceptor)
class CreateTopicPolicy:
    """Refuses the topics of CreateTopics (and the growth of CreatePartitions) that break limits."""

    requests = frozenset({ApiKey.CreateTopics, ApiKey.CreatePartitions})
    responses = frozenset({ApiKey.CreateTopics, ApiKey.CreatePartitions})

    def __init__(self, context: InterceptorContext, limits: TopicLimits) -> None:
        self.context = context
        self.limits = limits

    @classmethod
    def from_config(
        cls, config: Mapping[str, Any], context: InterceptorContext
    ) -> CreateTopicPolicy:
        """Read the limits; a minimum above its maximum is refused."""
        options = Options(config)
        limits = TopicLimits(
            min_partitions=options.integer("minPartitions", None, minimum=1),
            max_partitions=options.integer("maxPartitions", None, minimum=1),
            min_replication_factor=options.integer("minReplicationFactor", None, minimum=1),
            max_replication_factor=options.integer("maxReplicationFactor", None, minimum=1),
            name_pattern=options.pattern("namePattern", None),
            allow_broker_defaults=options.boolean("allowBrokerDefaults", False),
        )
        options.done()
        for low, high, what in (
            (limits.min_partitions, limits.max_partitions, "Partitions"),
            (limits.min_replication_factor, limits.max_replication_factor, "ReplicationFactor"),
        ):
            if low is not None and high is not None and low > high:
                raise InvalidConfig(
                    f"config.min{what} {low} is above config.max{what} {high}; nothing could pass"
                )
        return cls(context, limits)

    def on_request(self, call: RequestCall) -> HookResult:
        """Judge every topic; refuse the bad ones and send the rest on."""
        if call.api_key == ApiKey.CreateTopics:
            judged = [(t.name, self._create(t), _created(t)) for t in call.message.topics]
        else:
            judged = [(t.name, self._grow(t), {"count": t.count}) for t in call.message.topics]
        refusals: dict[int, Refusal] = {}
        for index, (topic, reason, details) in enumerate(judged):
            if reason is not None:
                refusals[index] = (ErrorCode.POLICY_VIOLATION, reason)
            self._audit(call, topic, reason, details)
        return refuse(call, refusals)

    def on_response(self, call: ResponseCall) -> HookResult:
        """Merge the refused topics into the broker's answer for the rest."""
        merge(call)
        return None

    def stop(self) -> None:
        """Nothing runs in the background (refusals in flight live with their connections)."""

    def _create(self, topic: Any) -> str | None:
        limits = self.limits
        partitions, factor = topic.num_partitions, topic.replication_factor
        if topic.assignments:
            # An explicit assignment says both numbers itself.
            partitions = len(topic.assignments)
            factor = max(len(a.broker_ids) for a in topic.assignments)
        return (
            limits.name(topic.name) or limits.partitions(partitions) or limits.replication(factor)
        )

    def _grow(self, topic: Any) -> str | None:
        high = self.limits.max_partitions
        if high is not None and topic.count > high:
            return f"partitions {topic.count} is above maxPartitions {high}"
        return None

    def _audit(self, call: RequestCall, topic: str, reason: str | None, details: Any) -> None:
        decision = "allowed" if reason is None else "denied"
        self.context.audit(
            AuditEvent(
                self.context.name,
                PLUGIN,
                call.client,
                call.api_key,
                decision,
                reason or "within the limits",
                {"topic": topic, **details},
            )
        )


def _created(topic: Any) -> dict[str, Any]:
    return {"partitions": topic.num_partitions, "replicationFactor": topic.replication_factor}
