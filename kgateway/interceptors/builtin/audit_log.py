"""
audit-log: every policy decision, one JSON record each, appended to a Kafka topic.

Config (optional)::

    {"topic": "_kgateway_<cluster id>_audit", "maxQueued": 10000, "maxInFlight": 16}

It is an L{IAuditSink}: the node hands it the L{AuditEvent} of every other
interceptor's decision.  A record is::

    {"time": "2026-11-29T18:40:00.123Z", "node": "gw1:6969", "cluster": "gateway",
     "interceptor": "topics", "plugin": "create-topic-policy",
     "client": {"peer": "10.0.0.5:51234", "clientId": "app", "username": null},
     "apiKey": 19, "decision": "denied", "reason": "...", "details": {...}}

keyed by the interceptor's name, so one interceptor's records stay in order.
The node creates a missing topic (one partition, C{cleanup.policy=delete});
an existing one must not be compacted, or only the last record of each
interceptor would be kept.  A write that fails is counted as failed.

Recording never blocks the data path: records wait in a bounded queue and
at most C{maxInFlight} are being produced at once.  When the queue is full
the oldest record is dropped; drops and failed writes are counted
(C{dropped}, C{failed}) and logged, the first at once and then at most once a
minute.  Until the node can produce (C{context.produce} is None) records are
dropped, with one log line saying why.
"""

from __future__ import annotations

import json
from collections import deque
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from twisted.logger import Logger
from twisted.python.failure import Failure
from zope.interface import implementer

from kgateway.interceptors.api import (
    AuditEvent,
    HookResult,
    IAuditSink,
    IInterceptor,
    InterceptorContext,
    InvalidConfig,
    RequestCall,
    ResponseCall,
)
from kgateway.interceptors.options import Options

log = Logger()

PLUGIN = "audit-log"
#: How often (seconds) drops and failures are logged after the first.
REPORT_EVERY = 60.0
#: A failed write is tried again this many times, this long (seconds) after it failed: the
#: node creates the audit topic with its first record, and a write racing the new topic's
#: leader election fails once.
RETRIES = 2
RETRY_AFTER = 1.0


def default_topic(cluster_id: str) -> str:
    """The audit topic of a gateway cluster."""
    return f"_kgateway_{cluster_id}_audit"


def audit_record(event: AuditEvent, seconds: float, node: str, cluster: str) -> bytes:
    """One decision as the JSON the audit topic holds."""
    when = datetime.fromtimestamp(seconds, UTC).isoformat(timespec="milliseconds")
    record = {
        "time": when.replace("+00:00", "Z"),
        "node": node,
        "cluster": cluster,
        "interceptor": event.interceptor,
        "plugin": event.plugin,
        "client": {
            "peer": event.client.peer,
            "clientId": event.client.client_id,
            "username": event.client.username,
        },
        "apiKey": event.api_key,
        "decision": event.decision,
        "reason": event.reason,
        "details": dict(event.details),
    }
    # default=str: a detail a plugin filled with a UUID or bytes must not lose the record.
    return json.dumps(record, default=str, separators=(",", ":")).encode()


@implementer(IInterceptor, IAuditSink)
class AuditLog:
    """Writes the decisions it is given to the audit topic, never holding up a request."""

    requests: frozenset[int] = frozenset()
    responses: frozenset[int] = frozenset()

    def __init__(
        self, context: InterceptorContext, topic: str, max_queued: int, max_in_flight: int
    ) -> None:
        self.context = context
        self.topic = topic
        self.max_in_flight = max_in_flight
        #: (key, value, retries left) of each record not yet sent.
        self.queue: deque[tuple[bytes, bytes, int]] = deque(maxlen=max_queued)
        self.in_flight = 0
        #: Records written (acknowledged), dropped (queue full or no producer), failed.
        self.written = 0
        self.dropped = 0
        self.failed = 0
        self._reported_at: float | None = None
        self._told_no_producer = False
        self._stopped = False

    @classmethod
    def from_config(cls, config: Mapping[str, Any], context: InterceptorContext) -> AuditLog:
        """Read the topic and the bounds."""
        options = Options(config)
        topic = options.string("topic", default_topic(context.cluster_id))
        max_queued = options.integer("maxQueued", 10_000, minimum=1, maximum=1_000_000)
        max_in_flight = options.integer("maxInFlight", 16, minimum=1, maximum=1000)
        options.done()
        if not topic or len(topic) > 249:
            raise InvalidConfig(f"config.topic {topic!r} is not a valid topic name")
        return cls(context, topic, max_queued, max_in_flight)

    def record(self, event: AuditEvent) -> None:
        """Queue one decision for the topic; never blocks or raises."""
        if self._stopped:
            return
        context = self.context
        if context.produce is None:
            self.dropped += 1
            if not self._told_no_producer:
                self._told_no_producer = True
                log.warn(
                    "audit-log {name}: this node cannot produce to Kafka yet; "
                    "audit records are dropped",
                    name=context.name,
                )
            return
        value = audit_record(event, context.clock.seconds(), context.node, context.cluster_id)
        if len(self.queue) == self.queue.maxlen:
            self.dropped += 1  # the deque drops the oldest on append
            self._report("queue full")
        self.queue.append((event.interceptor.encode(), value, RETRIES))
        self._pump()

    def _pump(self) -> None:
        produce = self.context.produce
        while produce is not None and self.queue and self.in_flight < self.max_in_flight:
            entry = self.queue.popleft()
            key, value, _ = entry
            self.in_flight += 1
            try:
                sent = produce(self.topic, key, value)
            except Exception:
                self.in_flight -= 1
                self.failed += 1
                log.failure("audit-log {name}: produce raised", name=self.context.name)
                continue
            sent.addCallbacks(self._written, self._failed, errbackArgs=(entry,))

    def _written(self, result: object) -> None:
        self.in_flight -= 1
        self.written += 1
        self._pump()

    def _failed(self, failure: Failure, entry: tuple[bytes, bytes, int]) -> None:
        self.in_flight -= 1
        key, value, retries = entry
        if retries > 0:
            # Ahead of newer records, once the wait is over; the queue's bound still holds.
            self.context.clock.callLater(RETRY_AFTER, self._again, (key, value, retries - 1))
        else:
            self.failed += 1
            self._report(f"write failed: {failure.getErrorMessage()}")
        self._pump()

    def _again(self, entry: tuple[bytes, bytes, int]) -> None:
        if len(self.queue) == self.queue.maxlen:
            self.dropped += 1
            self._report("queue full")
        else:
            self.queue.appendleft(entry)
        self._pump()

    def _report(self, why: str) -> None:
        now = self.context.clock.seconds()
        if self._reported_at is not None and now - self._reported_at < REPORT_EVERY:
            return
        self._reported_at = now
        log.warn(
            "audit-log {name}: {why}; {dropped} records dropped, {failed} failed so far",
            name=self.context.name,
            why=why,
            dropped=self.dropped,
            failed=self.failed,
        )

    def on_request(self, call: RequestCall) -> HookResult:
        """Not used: the audit log looks at no traffic."""
        return None

    def on_response(self, call: ResponseCall) -> HookResult:
        """Not used: the audit log looks at no traffic."""
        return None

    def stop(self) -> None:
        """Take no more records; the queued ones are still written (a config change loses none)."""
        self._stopped = True
        if self.queue:
            log.info(
                "audit-log {name} replaced or removed; writing its last {count} records",
                name=self.context.name,
                count=len(self.queue),
            )
