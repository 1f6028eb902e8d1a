"""produce-policy: acks, compression, idempotence and transactions read from real requests."""

from __future__ import annotations

from typing import Any

from kafka.protocol.producer import ProduceResponse
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from kgateway.interceptors.api import InterceptorContext, InvalidConfig, Respond
from kgateway.interceptors.builtin.produce_policy import (
    BatchHeader,
    MalformedRecords,
    ProducePolicy,
    batch_headers,
)
from kgateway.interceptors.registry import InterceptorSet
from kgateway.interceptors.spec import InterceptorSpec
from kgateway.plugins.kgateway_builtins import produce_policy
from kgateway.protocol.codec import decode_response
from kgateway.relay.client_protocol import ClientConnectionFactory
from kgateway.routing.mapping import FixedHostMapper
from kgateway.routing.ports import PortPlan
from tests.unit.interceptors.messages import batch, call, context, produce
from tests.unit.relay.fakes import ClientSide, FakeBrokers, FixedRouter


def policy(config: dict[str, Any]) -> tuple[ProducePolicy, list[Any]]:
    ctx, events = context()
    return ProducePolicy.from_config(config, ctx), events


def codes(outcome: Any) -> dict[tuple[str, int], tuple[int, str]]:
    assert isinstance(outcome, Respond)
    return {
        (t.name, p.index): (p.error_code, p.error_message)
        for t in outcome.message.responses
        for p in t.partition_responses
    }


class BatchHeaderTests(SynchronousTestCase):
    def test_every_codec_read_without_decompressing(self) -> None:
        """The codec of each batch comes from its attribute bits; batches are walked in turn."""
        for codec in ("none", "gzip", "snappy", "lz4", "zstd"):
            records = batch(codec, producer_id=9) + batch(codec)
            self.assertEqual(
                list(batch_headers(records)),
                [BatchHeader(2, codec, 9, False), BatchHeader(2, codec, -1, False)],
            )
        self.assertEqual(
            list(batch_headers(batch(producer_id=4, transactional=True)))[0],
            BatchHeader(2, "none", 4, True),
        )
        self.assertEqual(list(batch_headers(None)), [])

    def test_malformed(self) -> None:
        """A truncated batch or an old message format is reported, not misread."""
        self.assertRaises(MalformedRecords, list, batch_headers(batch()[:40]))
        old = bytearray(batch())
        old[16] = 1
        error = self.assertRaises(MalformedRecords, list, batch_headers(bytes(old)))
        self.assertEqual(str(error), "record batch format v1 (only v2 is accepted)")


class ConfigTests(SynchronousTestCase):
    def test_errors(self) -> None:
        """Bad values and empty configs get one line naming the key and what is valid."""
        cases = {
            "config.acks has '2'; valid: all, -1, 0, 1": {"acks": ["2"]},
            "config.compressionTypes has 'brotli'; valid: none, gzip, snappy, lz4, zstd": {
                "compressionTypes": ["brotli"]
            },
            "config.acks is empty, so every request would be refused": {"acks": []},
            "config sets no rule; give acks, compressionTypes, idempotenceRequired or "
            "transactionRequired": {},
            "config.idempotenceRequired must be true or false, got 1": {"idempotenceRequired": 1},
        }
        for message, config in cases.items():
            self.assertEqual(str(self.assertRaises(InvalidConfig, policy, config)), message)


class ProducePolicyTests(SynchronousTestCase):
    def test_acks_all_required(self) -> None:
        """acks=1 is refused on every partition when only all is allowed; acks=-1 passes."""
        interceptor, events = policy({"acks": ["all"]})
        request = call(produce({"orders": [batch(), batch()]}, acks=1))
        self.assertEqual(
            codes(interceptor.on_request(request)),
            {
                ("orders", 0): (44, "acks=1 is not allowed (acks: all)"),
                ("orders", 1): (44, "acks=1 is not allowed (acks: all)"),
            },
        )
        (event,) = events
        self.assertEqual(
            (event.plugin, event.api_key, event.decision, event.reason, event.details),
            (
                "produce-policy",
                0,
                "denied",
                "acks=1 is not allowed (acks: all)",
                {"acks": 1, "topics": ["orders"]},
            ),
        )
        self.assertIsNone(interceptor.on_request(call(produce({"orders": [batch()]}, acks=-1))))
        self.assertEqual(len(events), 1)  # passing requests are not audited

    def test_compression(self) -> None:
        """gzip is refused when only zstd and lz4 are allowed; zstd passes."""
        interceptor, events = policy({"compressionTypes": ["zstd", "lz4"]})
        outcome = interceptor.on_request(call(produce({"t": [batch("gzip")]})))
        self.assertEqual(
            codes(outcome),
            {("t", 0): (44, "compression gzip is not allowed (compressionTypes: lz4, zstd)")},
        )
        self.assertEqual(events[0].details["compression"], "gzip")
        self.assertIsNone(interceptor.on_request(call(produce({"t": [batch("zstd")]}))))
        self.assertIsNone(interceptor.on_request(call(produce({"t": [None]}))))

    def test_idempotence_and_transactions(self) -> None:
        """A batch without a producer id, or outside a transaction, is refused as configured."""
        idempotent, _ = policy({"idempotenceRequired": True})
        self.assertEqual(
            codes(idempotent.on_request(call(produce({"t": [batch()]})))),
            {("t", 0): (44, "an idempotent producer is required (enable.idempotence=true)")},
        )
        self.assertIsNone(idempotent.on_request(call(produce({"t": [batch(producer_id=5)]}))))
        transactional, _ = policy({"transactionRequired": True})
        self.assertEqual(
            codes(transactional.on_request(call(produce({"t": [batch(producer_id=5)]})))),
            {("t", 0): (44, "a transactional producer is required (transactional.id)")},
        )
        accepted = call(produce({"t": [batch(producer_id=5, transactional=True)]}))
        self.assertIsNone(transactional.on_request(accepted))

    def test_unreadable_records_refused(self) -> None:
        """Records the policy cannot check are refused rather than let through."""
        interceptor, _ = policy({"compressionTypes": ["zstd"]})
        outcome = interceptor.on_request(call(produce({"t": [b"\x00" * 10]})))
        self.assertEqual(
            codes(outcome)[("t", 0)],
            (44, "cannot check the records: 10 bytes are too few for a batch header"),
        )

    def test_acks_zero_gets_no_answer_but_is_audited(self) -> None:
        """On the data path: an acks=0 refusal sends nothing either way; the audit records it."""
        clock = Clock()
        events: list[Any] = []
        interceptors = InterceptorSet(
            {"produce-policy": produce_policy},
            lambda name: InterceptorContext(clock, name, audit=events.append),
        )
        interceptors.apply(
            [
                InterceptorSpec.parse(
                    {"name": "p", "plugin": "produce-policy", "config": {"acks": ["all"]}}
                )
            ]
        )
        brokers = FakeBrokers()
        factory = ClientConnectionFactory(
            FixedRouter(1),
            FixedHostMapper("gw", PortPlan(start=7000, count=5, min_broker_id=0)),
            brokers.connect,
            interceptors=interceptors,
        )
        client = ClientSide(factory)
        request = produce({"t": [batch()]}, acks=0)
        request.with_header(correlation_id=1, client_id="app")
        client.send(bytes(request.encode(header=True, framed=True)))
        refused = produce({"t": [batch()]}, acks=1)
        refused.with_header(correlation_id=2, client_id="app")
        client.send(bytes(refused.encode(header=True, framed=True)))
        self.assertEqual(brokers.opened[0].requests(), [])
        (answer,) = client.responses()  # only the acks=1 request is answered
        response = decode_response(ProduceResponse, answer, 9)
        self.assertEqual(response.header.correlation_id, 2)
        self.assertEqual([e.details["acks"] for e in events], [0, 1])
        self.assertTrue(client.open)
