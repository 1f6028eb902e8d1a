"""client-id-required: refuse requests from clients that send no client id (or a wrong one)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from kafka.protocol.api_key import ApiKey
from zope.interface import implementer

from kgateway.interceptors.api import (
    ALL_APIS,
    AuditEvent,
    Close,
    HookResult,
    IInterceptor,
    InterceptorContext,
    RequestCall,
    Respond,
    ResponseCall,
)
from kgateway.interceptors.options import Options
from kgateway.interceptors.responses import NoErrorResponse, error_response
from kgateway.protocol.error_codes import ErrorCode


@implementer(IInterceptor)
@dataclass
class ClientIdRequired:
    """Answers POLICY_VIOLATION to any request whose client id is empty or does not match."""

    context: InterceptorContext
    pattern: Any = None
    requests = ALL_APIS
    responses: frozenset[int] = frozenset()

    @classmethod
    def from_config(
        cls, config: Mapping[str, Any], context: InterceptorContext
    ) -> ClientIdRequired:
        options = Options(config)
        pattern = options.pattern("pattern", None)
        options.done()
        return cls(context, pattern)

    def on_request(self, call: RequestCall) -> HookResult:
        # ApiVersions comes first and goes before any policy: a client must
        # learn what it can send before it can be told no.
        if call.api_key == ApiKey.ApiVersions:
            return None
        client_id = call.client.client_id
        if client_id and (self.pattern is None or self.pattern.fullmatch(client_id)):
            return None
        if not client_id:
            reason = "a client id is required"
        else:
            reason = f"client id {client_id!r} does not match {self.pattern.pattern!r}"
        self.context.audit(
            AuditEvent(
                self.context.name, "client-id-required", call.client, call.api_key, "denied", reason
            )
        )
        try:
            return Respond(error_response(call, ErrorCode.POLICY_VIOLATION, reason))
        except NoErrorResponse:
            return Close(reason)

    def on_response(self, call: ResponseCall) -> HookResult:
        return None

    def stop(self) -> None:
        pass
