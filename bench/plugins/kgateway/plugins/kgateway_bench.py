"""
Interceptors that exist only to measure what the interceptor path costs.

On the benchmark nodes' path (C{python -m bench --interceptors}), found like
any third-party plugin: this directory has no C{__init__.py}.

- C{bench-idle} wants CreateTopics requests only, so produce traffic must stay
  on the zero-decode relay: its cost is the per-request "does anyone want
  this?" check.
- C{bench-reencode} reads every Produce request and marks it changed, so the
  gateway decodes it and encodes it again: the cost of any interceptor that
  edits produce requests (header injection, record rewriting).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from twisted.logger import Logger
from zope.interface import implementer

from kgateway.interceptors.api import (
    HookResult,
    IInterceptor,
    InterceptorContext,
    RequestCall,
    ResponseCall,
)
from kgateway.interceptors.options import Options
from kgateway.interceptors.plugin import InterceptorPlugin

log = Logger()
PRODUCE = 0
CREATE_TOPICS = 19


@implementer(IInterceptor)
class Idle:
    """Wants CreateTopics requests, and lets them through."""

    requests = frozenset({CREATE_TOPICS})
    responses: frozenset[int] = frozenset()

    @classmethod
    def from_config(cls, config: Mapping[str, Any], context: InterceptorContext) -> Idle:
        Options(config).done()
        return cls()

    def on_request(self, call: RequestCall) -> HookResult:
        return None

    def on_response(self, call: ResponseCall) -> HookResult:
        return None

    def stop(self) -> None:
        pass


@implementer(IInterceptor)
class Reencode:
    """Decodes every Produce request and has the gateway encode it again."""

    requests = frozenset({PRODUCE})
    responses: frozenset[int] = frozenset()

    def __init__(self, name: str) -> None:
        self.name = name
        self.seen = 0

    @classmethod
    def from_config(cls, config: Mapping[str, Any], context: InterceptorContext) -> Reencode:
        Options(config).done()
        return cls(context.name)

    def on_request(self, call: RequestCall) -> HookResult:
        call.message  # noqa: B018 - reading it is what decodes it
        call.changed = True
        self.seen += 1
        if self.seen == 1:
            # The benchmark reads this line as proof the decode path was taken.
            log.info(
                "bench-reencode {name}: re-encoding Produce v{version} requests",
                name=self.name,
                version=call.api_version,
            )
        return None

    def on_response(self, call: ResponseCall) -> HookResult:
        return None

    def stop(self) -> None:
        log.info(
            "bench-reencode {name}: re-encoded {seen} requests",
            name=self.name,
            seen=self.seen,
        )


bench_idle = InterceptorPlugin(
    "bench-idle", "Benchmark: wants CreateTopics only (produce stays zero-decode)", Idle.from_config
)
bench_reencode = InterceptorPlugin(
    "bench-reencode",
    "Benchmark: decode and re-encode every Produce request",
    Reencode.from_config,
)
