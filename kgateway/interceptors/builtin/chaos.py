"""
chaos: make the cluster look slow or unhealthy, to test that clients recover.

Config (every key optional)::

    {"latencyMs": 50, "jitterMs": 20,
     "brokenBrokerRate": 0.2, "errorCodes": [7, 19],
     "leaderElectionRate": 0.1,
     "apiKeys": [0, 1]}

- C{latencyMs} (+ up to C{jitterMs} more, uniformly) delays each request.
- C{brokenBrokerRate}: that share of Produce/Fetch requests is answered by the
  gateway, every partition with one error code, as a broker that lost its
  followers or a disk would answer.  The broker never sees the request, so
  nothing was written.  C{errorCodes} picks the codes (one at random each
  time) for both APIs; by default Produce gets REQUEST_TIMED_OUT or
  NOT_ENOUGH_REPLICAS and Fetch KAFKA_STORAGE_ERROR or REPLICA_NOT_AVAILABLE:
  codes brokers really send for those APIs and clients retry.  (Not
  NETWORK_EXCEPTION: clients make that one up for a dropped connection, no
  broker sends it, and librdkafka fails a produce that gets it for good.)
- C{leaderElectionRate}: each partition of a Produce/Fetch, with that chance,
  gets NOT_LEADER_OR_FOLLOWER (or LEADER_NOT_AVAILABLE), as during a leader
  election.  Produce: those partitions are taken out of the request before
  it goes on (they are not written, as with a real election) and their
  errors added to the broker's answer.  Fetch, which writes nothing: the
  partitions' data in the broker's answer is replaced with the error.
- C{apiKeys}: the requests the latency applies to (default Produce and Fetch);
  errors are only ever made for Produce and Fetch.

Chance comes from C{context.random}, so tests are deterministic.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from kafka.protocol.api_key import ApiKey
from twisted.internet.task import deferLater
from zope.interface import implementer

from kgateway.interceptors.api import (
    AuditEvent,
    HookResult,
    IInterceptor,
    InterceptorContext,
    InvalidConfig,
    Outcome,
    RequestCall,
    Respond,
    ResponseCall,
)
from kgateway.interceptors.options import Options
from kgateway.interceptors.responses import error_response
from kgateway.protocol.error_codes import ErrorCode
from kgateway.protocol.headers import produce_acks

#: A broken broker's answers, per API, that clients retry (Java's fetcher rejects
#: error codes a Fetch cannot carry, so the two lists differ).
DEFAULT_ERROR_CODES = {
    ApiKey.Produce: [ErrorCode.REQUEST_TIMED_OUT, ErrorCode.NOT_ENOUGH_REPLICAS],
    ApiKey.Fetch: [ErrorCode.KAFKA_STORAGE_ERROR, ErrorCode.REPLICA_NOT_AVAILABLE],
}
LEADER_ERRORS = (ErrorCode.NOT_LEADER_OR_FOLLOWER, ErrorCode.LEADER_NOT_AVAILABLE)
#: Pending Produce partitions to fail in the answer, bounded should answers never come.
PENDING_KEPT = 100_000


@dataclass
class ChaosCounters:
    """What the chaos did, for tests and the log."""

    delayed: int = 0
    broken: int = 0
    leader_errors: int = 0


@implementer(IInterceptor)
@dataclass
class Chaos:
    """Delays requests and answers some Produce/Fetch with the errors of an unhealthy cluster."""

    context: InterceptorContext
    latency_ms: float = 0.0
    jitter_ms: float = 0.0
    broken_rate: float = 0.0
    error_codes: dict[int, list[int]] = field(default_factory=lambda: dict(DEFAULT_ERROR_CODES))
    leader_rate: float = 0.0
    requests: frozenset[int] = frozenset({ApiKey.Produce, ApiKey.Fetch})
    responses: frozenset[int] = frozenset()
    counters: ChaosCounters = field(default_factory=ChaosCounters)
    #: Produce partitions taken out of a request, by (connection, correlation id).
    _failed: dict[tuple[str, int, int], list[tuple[Any, int, int]]] = field(default_factory=dict)
    _stopped: bool = False

    @classmethod
    def from_config(cls, config: Mapping[str, Any], context: InterceptorContext) -> Chaos:
        """Build from the config described in the module docstring."""
        options = Options(config)
        latency = options.number("latencyMs", 0.0, minimum=0)
        jitter = options.number("jitterMs", 0.0, minimum=0)
        broken = options.number("brokenBrokerRate", 0.0, minimum=0, maximum=1)
        codes = options.integers("errorCodes", None, 1, 32767)
        leader = options.number("leaderElectionRate", 0.0, minimum=0, maximum=1)
        api_keys = options.integers("apiKeys", [ApiKey.Produce, ApiKey.Fetch], 0, 32767)
        options.done()
        if codes is not None and not codes:
            raise InvalidConfig("config.errorCodes must name at least one error code")
        by_api = (
            {ApiKey.Produce: list(codes), ApiKey.Fetch: list(codes)}
            if codes
            else dict(DEFAULT_ERROR_CODES)
        )
        chaos = cls(context, latency, jitter, broken, by_api, leader)
        chaos.requests = frozenset(api_keys)
        if leader and ApiKey.Fetch in chaos.requests:
            chaos.responses = frozenset({ApiKey.Produce, ApiKey.Fetch})
        elif leader:
            chaos.responses = frozenset({ApiKey.Produce})
        return chaos

    def _chance(self, rate: float) -> bool:
        return rate > 0 and self.context.random() < rate

    def on_request(self, call: RequestCall) -> HookResult:
        """Decide the request's fate now, then apply the delay (if any) before it goes on."""
        outcome: Outcome = None
        if call.api_key in (ApiKey.Produce, ApiKey.Fetch):
            if self._chance(self.broken_rate):
                codes = self.error_codes[call.api_key]
                code = codes[int(self.context.random() * len(codes))]
                self.counters.broken += 1
                self._audit(call, "failed", f"broken broker: error {code}", {"errorCode": code})
                outcome = Respond(error_response(call, code, "chaos: broken broker"))
            elif call.api_key == ApiKey.Produce and self.leader_rate:
                outcome = self._elect_produce_leaders(call)
        delay = self.latency_ms
        if self.jitter_ms:
            delay += self.context.random() * self.jitter_ms
        if delay <= 0:
            return outcome
        self.counters.delayed += 1
        return deferLater(self.context.clock, delay / 1000.0, lambda: outcome)

    def _elect_produce_leaders(self, call: RequestCall) -> Outcome:
        """Take the 'electing' partitions out of the request; answer alone if none are left."""
        request = call.message
        failed: list[tuple[Any, int, int]] = []
        kept_topics = []
        for topic in request.topic_data:
            kept = []
            for partition in topic.partition_data:
                if self._chance(self.leader_rate):
                    code = LEADER_ERRORS[int(self.context.random() * len(LEADER_ERRORS))]
                    failed.append((topic, partition.index, code))
                else:
                    kept.append(partition)
            if kept:
                topic.partition_data = kept
                kept_topics.append(topic)
        if not failed:
            return None
        self.counters.leader_errors += len(failed)
        self._audit(call, "failed", f"leader election on {len(failed)} partition(s)", {})
        if not kept_topics:
            # Nothing left for the broker (the request is still as it came): answer it here.
            answer = error_response(
                call, ErrorCode.NOT_LEADER_OR_FOLLOWER, "chaos: leader election"
            )
            codes = iter(code for _, _, code in failed)
            for topic_response in answer.responses:
                for partition_response in topic_response.partition_responses:
                    partition_response.error_code = next(codes)
            return Respond(answer)
        request.topic_data = kept_topics
        call.changed = True
        if produce_acks(call.frame, call.api_version) != 0:
            if len(self._failed) >= PENDING_KEPT:
                self._failed.clear()
            self._failed[_key(call)] = failed
        return None

    def on_response(self, call: ResponseCall) -> HookResult:
        """Add the Produce partitions taken out; fail the chosen Fetch partitions."""
        if call.api_key == ApiKey.Produce:
            failed = self._failed.pop(_key(call), None)
            if failed:
                _add_produce_errors(call, failed)
            return None
        if call.api_key == ApiKey.Fetch and self.leader_rate:
            self._elect_fetch_leaders(call)
        return None

    def _elect_fetch_leaders(self, call: ResponseCall) -> None:
        response = call.message
        if getattr(response, "error_code", ErrorCode.NONE) != ErrorCode.NONE:
            return
        hit = 0
        for topic in response.responses:
            for partition in topic.partitions:
                if partition.error_code == ErrorCode.NONE and self._chance(self.leader_rate):
                    partition.error_code = LEADER_ERRORS[
                        int(self.context.random() * len(LEADER_ERRORS))
                    ]
                    partition.high_watermark = -1
                    partition.last_stable_offset = -1
                    partition.log_start_offset = -1
                    partition.aborted_transactions = None
                    partition.preferred_read_replica = -1
                    # Empty, not null: librdkafka cannot parse a null record set.
                    partition.records = b""
                    hit += 1
        if hit:
            self.counters.leader_errors += hit
            call.changed = True

    def _audit(
        self, call: RequestCall, decision: str, reason: str, details: dict[str, Any]
    ) -> None:
        self.context.audit(
            AuditEvent(
                self.context.name, "chaos", call.client, call.api_key, decision, reason, details
            )
        )

    def stop(self) -> None:
        """Forget pending partitions (their answers pass through unchanged)."""
        self._stopped = True
        self._failed.clear()


def _key(call: RequestCall | ResponseCall) -> tuple[str, int, int]:
    # A connection is its client's address on one broker port; correlation ids are per connection.
    return (call.client.peer, call.client.broker_id, call.correlation_id)


def _add_produce_errors(call: ResponseCall, failed: list[tuple[Any, int, int]]) -> None:
    response = call.message
    cls = type(response)
    by_topic = {(t.name, str(t.topic_id)): t for t in response.responses}
    for topic, index, code in failed:
        key = (topic.name, str(topic.topic_id))
        entry = by_topic.get(key)
        if entry is None:
            entry = cls.TopicProduceResponse(
                name=topic.name, topic_id=topic.topic_id, partition_responses=[]
            )
            response.responses.append(entry)
            by_topic[key] = entry
        entry.partition_responses.append(
            cls.TopicProduceResponse.PartitionProduceResponse(
                index=index,
                error_code=code,
                base_offset=-1,
                log_append_time_ms=-1,
                log_start_offset=-1,
                error_message="chaos: leader election",
                record_errors=[],
            )
        )
    call.changed = True
