"""
rate-limit: hold each client id to a produce and/or consume byte rate on this node.

Config::

    {"produceBytesPerSecond": 1048576, "consumeBytesPerSecond": 1048576,
     "burstSeconds": 1, "idleSeconds": 300}

Throttling, not errors: a Produce request waits (the connection's later
requests wait behind it and the gateway stops reading the socket) and a
Fetch response waits, for as long as a token bucket per client id says.
Every connection of one client id on this node draws from the same bucket;
a client without a client id shares the bucket of the empty id.  A bucket
holds up to C{burstSeconds} of the rate, so a client that was quiet may send
that much at once; buckets idle for C{idleSeconds} are forgotten.

Frames are counted whole (record bytes plus protocol overhead), so no
message is decoded.  C{throttle_time_ms} is left as the broker set it: the
gateway already delayed the message, and a KIP-219 client that also got a
throttle time would back off a second time on top of the delay.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from kafka.protocol.api_key import ApiKey
from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IDelayedCall
from zope.interface import implementer

from kgateway.interceptors.api import (
    AuditEvent,
    HookResult,
    IInterceptor,
    InterceptorContext,
    InvalidConfig,
    Outcome,
    RequestCall,
    ResponseCall,
)
from kgateway.interceptors.options import Options

#: Client ids remembered at most, should many come and go faster than they idle out.
BUCKETS_KEPT = 100_000


@dataclass
class TokenBucket:
    """Bytes a client may move now; negative when it owes (and must wait)."""

    rate: float
    burst: float
    tokens: float
    updated: float

    def take(self, size: int, now: float) -> float:
        """Take C{size} bytes; the seconds to wait before they may go."""
        self.tokens = min(self.burst, self.tokens + (now - self.updated) * self.rate)
        self.updated = now
        self.tokens -= size
        return -self.tokens / self.rate if self.tokens < 0 else 0.0


@dataclass
class Buckets:
    """One bucket per client id, the least recently used forgotten first."""

    rate: float
    burst: float
    idle_seconds: float
    by_client: OrderedDict[str, TokenBucket] = field(default_factory=OrderedDict)

    def take(self, client_id: str, size: int, now: float) -> float:
        """The delay for C{client_id} moving C{size} bytes at C{now}."""
        by_client = self.by_client
        bucket = by_client.get(client_id)
        if bucket is None:
            bucket = by_client[client_id] = TokenBucket(self.rate, self.burst, self.burst, now)
        else:
            by_client.move_to_end(client_id)
        delay = bucket.take(size, now)
        # Forget idle ones from the oldest end: their buckets would be full again anyway.
        while by_client:
            oldest_id, oldest = next(iter(by_client.items()))
            if len(by_client) <= BUCKETS_KEPT and now - oldest.updated < self.idle_seconds:
                break
            if oldest is bucket:
                break
            del by_client[oldest_id]
        return delay


@dataclass
class RateLimitCounters:
    """What the limiter did, for tests and the log."""

    throttled: int = 0
    delayed_seconds: float = 0.0


@implementer(IInterceptor)
@dataclass
class RateLimit:
    """Delays Produce requests and Fetch responses to keep each client id within its rates."""

    context: InterceptorContext
    produce: Buckets | None
    consume: Buckets | None
    requests: frozenset[int] = frozenset()
    responses: frozenset[int] = frozenset()
    counters: RateLimitCounters = field(default_factory=RateLimitCounters)
    #: Held messages and the timers that release them.
    _waiting: dict[Deferred[Outcome], IDelayedCall] = field(default_factory=dict)

    @classmethod
    def from_config(cls, config: Mapping[str, Any], context: InterceptorContext) -> RateLimit:
        """Build from the config described in the module docstring."""
        options = Options(config)
        produce = options.number("produceBytesPerSecond", None, minimum=1)
        consume = options.number("consumeBytesPerSecond", None, minimum=1)
        burst = options.number("burstSeconds", 1.0, minimum=0.001, maximum=3600)
        idle = options.number("idleSeconds", 300.0, minimum=1)
        options.done()
        if produce is None and consume is None:
            raise InvalidConfig("config needs produceBytesPerSecond and/or consumeBytesPerSecond")
        limit = cls(
            context,
            Buckets(produce, produce * burst, idle) if produce else None,
            Buckets(consume, consume * burst, idle) if consume else None,
        )
        limit.requests = frozenset({ApiKey.Produce}) if produce else frozenset()
        limit.responses = frozenset({ApiKey.Fetch}) if consume else frozenset()
        return limit

    def _delay(self, buckets: Buckets, call: RequestCall | ResponseCall, what: str) -> HookResult:
        client_id = call.client.client_id or ""
        delay = buckets.take(client_id, len(call.frame), self.context.clock.seconds())
        if delay <= 0:
            return None
        self.counters.throttled += 1
        self.counters.delayed_seconds += delay
        self.context.audit(
            AuditEvent(
                self.context.name,
                "rate-limit",
                call.client,
                call.api_key,
                "throttled",
                f"{what} over {buckets.rate:.0f} bytes/s",
                {"delayMs": round(delay * 1000)},
            )
        )
        waiting: Deferred[Outcome] = Deferred()
        timer = self.context.clock.callLater(delay, self._release, waiting)
        self._waiting[waiting] = timer
        return waiting

    def _release(self, waiting: Deferred[Outcome]) -> None:
        self._waiting.pop(waiting, None)
        waiting.callback(None)

    def on_request(self, call: RequestCall) -> HookResult:
        """Hold a Produce request until the client's produce bucket allows it."""
        if call.api_key == ApiKey.Produce and self.produce is not None:
            return self._delay(self.produce, call, "produce")
        return None

    def on_response(self, call: ResponseCall) -> HookResult:
        """Hold a Fetch response until the client's consume bucket allows it."""
        if call.api_key == ApiKey.Fetch and self.consume is not None:
            return self._delay(self.consume, call, "consume")
        return None

    def stop(self) -> None:
        """Release every held message at once (the limit no longer applies) and forget buckets."""
        waiting, self._waiting = self._waiting, {}
        for pending, timer in waiting.items():
            timer.cancel()
            pending.callback(None)
        for buckets in (self.produce, self.consume):
            if buckets is not None:
                buckets.by_client.clear()
