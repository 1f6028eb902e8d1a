"""
produce-policy: rules on how clients produce (acks, compression, idempotence, transactions).

Config (every key optional)::

    {"acks": ["all"], "compressionTypes": ["zstd", "lz4"],
     "idempotenceRequired": true, "transactionRequired": false}

C{acks} lists the allowed values ("all" and "-1" are the same); compression
is read from each record batch's header (attribute bits 0-2) and
idempotence and transactions from its producer id and attribute bit 4,
without decompressing or copying the records.

A request that breaks a rule is refused whole: every partition gets
POLICY_VIOLATION (44) with a message naming the rule.  A broker has its own
codes for some of these (INVALID_REQUIRED_ACKS, UNSUPPORTED_COMPRESSION_TYPE),
but they say "this broker cannot", and clients and operators reading them
would look for a broker problem; POLICY_VIOLATION says a rule refused it.
The settings are a producer's, the same for all its batches, so refusing
partition by partition would tell the client nothing more.

A refusal is audited ("denied"); a request that passes is not (one per
produce request would drown the audit log).  An acks=0 request gets no
answer (the client expects none), but its refusal is still audited.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from struct import Struct
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
from kgateway.interceptors.responses import error_response
from kgateway.protocol.error_codes import ErrorCode

PLUGIN = "produce-policy"

#: Compression codecs by the value of attribute bits 0-2 of a v2 record batch.
COMPRESSION = ("none", "gzip", "snappy", "lz4", "zstd")
_ACKS = {"all": -1, "-1": -1, "0": 0, "1": 1}

# A v2 record batch header: baseOffset int64, batchLength int32,
# partitionLeaderEpoch int32, magic int8, crc uint32, attributes int16,
# lastOffsetDelta int32, baseTimestamp int64, maxTimestamp int64,
# producerId int64 ... 61 bytes in all.
_HEADER = Struct(">qiibIhiqqq")
_BATCH_HEADER_BYTES = 61
_LOG_OVERHEAD = 12  # baseOffset and batchLength precede what batchLength counts
_TRANSACTIONAL = 0x10


@dataclass(frozen=True)
class BatchHeader:
    """What the policy reads from one record batch."""

    magic: int
    compression: str
    producer_id: int
    transactional: bool


class MalformedRecords(Exception):
    """A records field the policy cannot read as v2 record batches."""


def batch_headers(records: bytes | memoryview | None) -> Iterator[BatchHeader]:
    """The headers of the record batches in a partition's records field (none for null)."""
    if not records:
        return
    view = memoryview(records)
    position = 0
    while position < len(view):
        if len(view) - position < _BATCH_HEADER_BYTES:
            raise MalformedRecords(f"{len(view) - position} bytes are too few for a batch header")
        _, length, _, magic, _, attributes, _, _, _, producer_id = _HEADER.unpack_from(
            view, position
        )
        if magic != 2:
            raise MalformedRecords(f"record batch format v{magic} (only v2 is accepted)")
        codec = attributes & 0x07
        if codec >= len(COMPRESSION):
            raise MalformedRecords(f"unknown compression codec {codec}")
        yield BatchHeader(magic, COMPRESSION[codec], producer_id, bool(attributes & _TRANSACTIONAL))
        position += _LOG_OVERHEAD + length


@dataclass(frozen=True)
class ProduceRules:
    """The rules (None or False: not checked)."""

    acks: frozenset[int] | None = None
    compression: frozenset[str] | None = None
    idempotence_required: bool = False
    transaction_required: bool = False

    def judge(self, request: Any) -> tuple[str | None, dict[str, Any]]:
        """Why the request breaks a rule (None: it does not), and what was seen."""
        seen: dict[str, Any] = {"acks": request.acks}
        if self.acks is not None and request.acks not in self.acks:
            allowed = ", ".join(_acks_name(a) for a in sorted(self.acks))
            return f"acks={_acks_name(request.acks)} is not allowed (acks: {allowed})", seen
        if self.compression is None and not (
            self.idempotence_required or self.transaction_required
        ):
            return None, seen
        for topic in request.topic_data:
            for partition in topic.partition_data:
                try:
                    headers = list(batch_headers(partition.records))
                except MalformedRecords as e:
                    return f"cannot check the records: {e}", seen
                for header in headers:
                    reason = self._batch(header, seen)
                    if reason is not None:
                        return reason, seen
        return None, seen

    def _batch(self, header: BatchHeader, seen: dict[str, Any]) -> str | None:
        seen["compression"] = header.compression
        seen["producerId"] = header.producer_id
        if self.compression is not None and header.compression not in self.compression:
            allowed = ", ".join(sorted(self.compression))
            return f"compression {header.compression} is not allowed (compressionTypes: {allowed})"
        if self.idempotence_required and header.producer_id < 0:
            return "an idempotent producer is required (enable.idempotence=true)"
        if self.transaction_required and not header.transactional:
            return "a transactional producer is required (transactional.id)"
        return None


def _acks_name(acks: int) -> str:
    return "all" if acks == -1 else str(acks)


@implementer(IInterceptor)
class ProducePolicy:
    """Refuses Produce requests whose acks, compression or producer kind break the rules."""

    requests = frozenset({ApiKey.Produce})
    responses: frozenset[int] = frozenset()

    def __init__(self, context: InterceptorContext, rules: ProduceRules) -> None:
        self.context = context
        self.rules = rules

    @classmethod
    def from_config(cls, config: Mapping[str, Any], context: InterceptorContext) -> ProducePolicy:
        """Read the rules; a config that checks nothing is refused (it is likely a mistake)."""
        options = Options(config)
        acks = options.strings("acks", None, choices=tuple(_ACKS))
        compression = options.strings("compressionTypes", None, choices=COMPRESSION)
        rules = ProduceRules(
            acks=frozenset(_ACKS[a] for a in acks) if acks is not None else None,
            compression=frozenset(compression) if compression is not None else None,
            idempotence_required=options.boolean("idempotenceRequired", False),
            transaction_required=options.boolean("transactionRequired", False),
        )
        options.done()
        if rules == ProduceRules():
            raise InvalidConfig(
                "config sets no rule; give acks, compressionTypes, idempotenceRequired "
                "or transactionRequired"
            )
        for key, value in (("acks", rules.acks), ("compressionTypes", rules.compression)):
            if value is not None and not value:
                raise InvalidConfig(f"config.{key} is empty, so every request would be refused")
        return cls(context, rules)

    def on_request(self, call: RequestCall) -> HookResult:
        """Judge the request; refuse it whole when it breaks a rule."""
        reason, seen = self.rules.judge(call.message)
        if reason is None:
            return None
        # Only for a refusal: the passing path stays as short as it can.
        seen["topics"] = sorted({t.name or str(t.topic_id) for t in call.message.topic_data})
        self.context.audit(
            AuditEvent(self.context.name, PLUGIN, call.client, call.api_key, "denied", reason, seen)
        )
        # For acks=0 the data path drops this answer: the client expects none.
        return Respond(error_response(call, ErrorCode.POLICY_VIOLATION, reason))

    def on_response(self, call: ResponseCall) -> HookResult:
        """Not used: the policy wants no responses."""
        return None

    def stop(self) -> None:
        """Nothing to stop."""
