"""
header-injection: add record headers to every record produced through the gateway.

Config::

    {"headers": {"x-client": "{clientId}", "x-via": "kgateway {clusterId}"},
     "topics": "orders\\..*"}

Values may use the placeholders C{{clientId}}, C{{clientHost}},
C{{username}}, C{{brokerId}} and C{{clusterId}} (an unknown one is a config
error; C{{{}} and C{}}} write a literal brace).  C{topics}, a regular
expression matched against whole topic names, limits the topics (default:
all).  The headers are added after the record's own, in name order.  A
record's existing headers of the same names are replaced, so a
client cannot forge the gateway's provenance headers.

Produce v13 names topics by id: with C{topics} set, the interceptor learns
ids from the Metadata responses it sees; a topic whose id it has not seen
is left as it is until then.  Message format v0/v1
batches (Produce v0-v2) have no headers and are left as they are (logged
once), as are control batches.
"""

from __future__ import annotations

import string
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from kafka.protocol.api_key import ApiKey
from twisted.logger import Logger
from zope.interface import implementer

from kgateway.interceptors.api import (
    AuditEvent,
    ClientInfo,
    Close,
    HookResult,
    IInterceptor,
    InterceptorContext,
    InvalidConfig,
    RequestCall,
    ResponseCall,
)
from kgateway.interceptors.builtin.record_batches import BadBatch, LegacyRecords, add_headers
from kgateway.interceptors.options import Options

log = Logger()

PLACEHOLDERS = ("clientId", "clientHost", "username", "brokerId", "clusterId")
#: How many topic ids to remember for the C{topics} filter on Produce v13.
TOPIC_IDS_KEPT = 100_000


def _check_template(name: str, template: str) -> None:
    try:
        fields = [f for _, f, _, _ in string.Formatter().parse(template) if f is not None]
    except ValueError as e:
        raise InvalidConfig(f"config.headers.{name} {template!r} is not a template: {e}") from e
    for placeholder in fields:
        if placeholder not in PLACEHOLDERS:
            raise InvalidConfig(
                f"config.headers.{name} uses {{{placeholder}}}; "
                f"known placeholders: {', '.join('{' + p + '}' for p in PLACEHOLDERS)}"
            )


@implementer(IInterceptor)
@dataclass
class HeaderInjection:
    """Re-encodes produced record batches with the configured headers added."""

    context: InterceptorContext
    templates: dict[str, str]
    topics: Any = None
    responses: frozenset[int] = frozenset()
    requests: frozenset[int] = frozenset({ApiKey.Produce})
    #: Topic id (bytes of the UUID's string form) to name, learnt from Metadata responses.
    topic_names: OrderedDict[str, str] = field(default_factory=OrderedDict)
    #: Batches rewritten, and record batches left alone because they were v0/v1.
    rewritten: int = 0
    legacy: int = 0
    _legacy_logged: bool = False

    @classmethod
    def from_config(cls, config: Mapping[str, Any], context: InterceptorContext) -> HeaderInjection:
        """Build from C{{"headers": {...}, "topics": regex}}."""
        options = Options(config)
        templates = options.mapping("headers")
        topics = options.pattern("topics", None)
        options.done()
        if not templates:
            raise InvalidConfig("config.headers must name at least one header")
        for name, template in templates.items():
            if not name:
                raise InvalidConfig("config.headers has an empty header name")
            _check_template(name, template)
        # Name order: the stored configuration is JSON whose key order is not kept.
        injection = cls(context, dict(sorted(templates.items())), topics)
        if topics is not None:
            injection.responses = frozenset({ApiKey.Metadata})
        return injection

    def headers_for(self, client: ClientInfo) -> list[tuple[str, bytes]]:
        """The headers one client's records get."""
        values = {
            "clientId": client.client_id or "",
            "clientHost": client.host,
            "username": client.username or "",
            "brokerId": str(client.broker_id),
            "clusterId": self.context.cluster_id,
        }
        return [(name, t.format_map(values).encode()) for name, t in self.templates.items()]

    def _wanted(self, topic: Any, version: int) -> bool:
        if self.topics is None:
            return True
        name = topic.name if version < 13 else self.topic_names.get(str(topic.topic_id))
        return name is not None and self.topics.fullmatch(name) is not None

    def on_request(self, call: RequestCall) -> HookResult:
        """Rewrite every v2 batch of every wanted topic; a corrupt batch closes the connection."""
        headers = self.headers_for(call.client)
        request = call.message
        changed = False
        for topic in request.topic_data:
            if not self._wanted(topic, call.api_version):
                continue
            for partition in topic.partition_data:
                if not partition.records:
                    continue
                try:
                    partition.records = add_headers(partition.records, headers)
                except LegacyRecords:
                    self._note_legacy(call)
                    continue
                except BadBatch as e:
                    return Close(f"header-injection cannot read a record batch: {e}")
                self.rewritten += 1
                changed = True
        if changed:
            call.changed = True
        return None

    def _note_legacy(self, call: RequestCall) -> None:
        self.legacy += 1
        if not self._legacy_logged:
            self._legacy_logged = True
            log.warn(
                "{name}: client {client} produces message format v0/v1 (Produce v{version}), "
                "which has no record headers; its records pass without them",
                name=self.context.name,
                client=call.client.peer,
                version=call.api_version,
            )
            self.context.audit(
                AuditEvent(
                    self.context.name,
                    "header-injection",
                    call.client,
                    call.api_key,
                    "allowed",
                    "message format v0/v1 has no record headers",
                )
            )

    def on_response(self, call: ResponseCall) -> HookResult:
        """Learn topic ids from Metadata, for the C{topics} filter of Produce v13."""
        if call.api_key != ApiKey.Metadata:
            return None
        names = self.topic_names
        for topic in call.message.topics:
            topic_id = getattr(topic, "topic_id", None)
            if topic_id is not None and topic.name:
                names[str(topic_id)] = topic.name
                names.move_to_end(str(topic_id))
        while len(names) > TOPIC_IDS_KEPT:
            names.popitem(last=False)
        return None

    def stop(self) -> None:
        """Nothing to cancel."""
