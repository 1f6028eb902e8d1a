"""
topic-prefix-guard: an example kgateway interceptor, packaged on its own.

Refuses Produce (and, unless told otherwise, CreateTopics) for any topic whose
name does not start with one of the configured prefixes: a team's clients can
write only to the team's topics.  Configuration::

    {"plugin": "topic-prefix-guard", "priority": 50,
     "config": {"prefixes": ["team-a."], "refuseCreate": true}}

It shows the parts of an interceptor a plugin author needs: config read with
L{Options} (one-line errors, unknown keys refused), the API keys it wants (so
the rest of the traffic stays on the zero-decode relay), a broker-shaped
refusal built with L{error_response}, and an audit event for every refusal.

Produce v13 names topics by id only (KIP-516), which a name policy cannot
check; the guard therefore also wants ApiVersions responses and offers its
clients Produce up to v12, where every partition's topic is named.
"""

from __future__ import annotations

from collections.abc import Mapping
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
    Respond,
    ResponseCall,
)
from kgateway.interceptors.options import Options
from kgateway.interceptors.plugin import InterceptorPlugin
from kgateway.interceptors.responses import error_response
from kgateway.protocol.error_codes import ErrorCode

#: The last Produce version that names its topics; v13 carries only topic ids.
PRODUCE_BY_NAME = 12

PLUGIN_NAME = "topic-prefix-guard"


@implementer(IInterceptor)
class TopicPrefixGuard:
    """Refuses writes to topics outside the allowed prefixes; passes everything else."""

    def __init__(
        self, context: InterceptorContext, prefixes: tuple[str, ...], refuse_create: bool
    ) -> None:
        self.context = context
        self.prefixes = prefixes
        #: Only these requests are decoded; every other request is relayed untouched.
        self.requests = frozenset(
            {ApiKey.Produce, ApiKey.CreateTopics} if refuse_create else {ApiKey.Produce}
        )
        self.responses = frozenset({ApiKey.ApiVersions})
        #: Requests refused so far (for tests and curious operators).
        self.refused = 0

    @classmethod
    def from_config(
        cls, config: Mapping[str, Any], context: InterceptorContext
    ) -> TopicPrefixGuard:
        """Build from C{config}; L{InvalidConfig} names the bad setting in one line."""
        options = Options(config)
        prefixes = options.strings("prefixes")
        refuse_create = options.boolean("refuseCreate", True)
        options.done()
        if not prefixes:
            raise InvalidConfig("config.prefixes must list at least one topic prefix")
        if any(not prefix for prefix in prefixes):
            raise InvalidConfig(
                "config.prefixes must not contain an empty prefix (it would allow every topic)"
            )
        return cls(context, tuple(prefixes), refuse_create)

    def on_request(self, call: RequestCall) -> HookResult:
        """Refuse a Produce or CreateTopics naming a topic outside the prefixes."""
        if call.api_key == ApiKey.Produce:
            names = [topic.name for topic in call.message.topic_data]
            code = ErrorCode.TOPIC_AUTHORIZATION_FAILED
        else:
            names = [topic.name for topic in call.message.topics]
            code = ErrorCode.POLICY_VIOLATION
        outside = sorted({name or "(a topic id)" for name in names if not self._allowed(name)})
        if not outside:
            return None
        self.refused += 1
        # The whole request is refused, even its allowed topics: answering part of a
        # request means splitting it and merging the broker's answer, which an example
        # should not need.  Clients see every partition fail with the same reason.
        reason = (
            f"topic(s) {', '.join(outside)} outside the allowed prefixes {', '.join(self.prefixes)}"
        )
        self.context.audit(
            AuditEvent(
                self.context.name,
                PLUGIN_NAME,
                call.client,
                call.api_key,
                "denied",
                reason,
                {"topics": outside},
            )
        )
        return Respond(error_response(call, code, reason))

    def on_response(self, call: ResponseCall) -> HookResult:
        """Offer Produce only up to the last version that names topics."""
        for api in call.message.api_keys:
            if api.api_key == ApiKey.Produce and api.max_version > PRODUCE_BY_NAME:
                api.max_version = PRODUCE_BY_NAME
                call.changed = True
        return None

    def stop(self) -> None:
        """Nothing to release: the guard keeps no timers."""

    def _allowed(self, name: str | None) -> bool:
        return bool(name) and name.startswith(self.prefixes)  # type: ignore[union-attr]


topic_prefix_guard = InterceptorPlugin(
    PLUGIN_NAME,
    "Refuse Produce and CreateTopics for topics outside the configured name prefixes",
    TopicPrefixGuard.from_config,
)
