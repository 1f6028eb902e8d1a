"""
header-injection: every record of every v2 batch gets the headers, the batch
otherwise as the producer wrote it (codec, producer state, offsets, times), and
kafka-python reads it back with a valid CRC.
"""

from __future__ import annotations

import uuid
from typing import Any

from kafka.protocol.metadata import MetadataResponse
from kafka.record.default_records import DefaultRecordBatch
from kafka.record.legacy_records import LegacyRecordBatchBuilder
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from kgateway.interceptors.api import Close, InterceptorContext, InvalidConfig
from kgateway.interceptors.builtin.header_injection import HeaderInjection
from kgateway.interceptors.builtin.record_batches import BadBatch, LegacyRecords, add_headers
from kgateway.interceptors.registry import InterceptorSet
from kgateway.interceptors.spec import InterceptorSpec
from kgateway.plugins.kgateway_builtins import header_injection
from kgateway.protocol.codec import decode_request, encode_request, encode_response
from kgateway.relay.client_protocol import ClientConnectionFactory
from kgateway.routing.mapping import FixedHostMapper
from kgateway.routing.ports import PortPlan
from tests.unit.interceptors.builtin.messages import (
    batch,
    batches,
    client,
    produce,
    request_call,
    reseal,
    response_call,
)
from tests.unit.relay.fakes import ClientSide, FakeBrokers, FixedRouter

CODECS = {"none": 0, "gzip": 1, "snappy": 2, "lz4": 3, "zstd": 4}


def build(config: dict[str, Any], cluster_id: str = "east") -> HeaderInjection:
    return HeaderInjection.from_config(config, InterceptorContext(Clock(), "hi", cluster_id))


def injected(interceptor: HeaderInjection, frame: bytes, version: int = 9) -> Any:
    """The request the broker gets, decoded (after the data path's re-encode)."""
    call = request_call(frame, 0, version)
    self_outcome = interceptor.on_request(call)
    assert self_outcome is None, self_outcome
    sent = encode_request(call.message) if call.changed else frame
    return decode_request(0, sent, version), call.changed


class RecordBatchTests(SynchronousTestCase):
    def assert_same_batch(self, before: DefaultRecordBatch, after: DefaultRecordBatch) -> None:
        for name in (
            "base_offset",
            "leader_epoch",
            "magic",
            "compression_type",
            "timestamp_type",
            "is_transactional",
            "is_control_batch",
            "first_timestamp",
            "max_timestamp",
            "last_offset_delta",
            "producer_id",
            "producer_epoch",
            "base_sequence",
            "records_count",
        ):
            self.assertEqual(getattr(after, name), getattr(before, name), name)

    def test_every_codec_round_trips(self) -> None:
        """Each codec: same codec back, CRC valid, producer state and records kept, headers in."""
        for codec_name, codec in CODECS.items():
            original = batch(codec, headers=[("trace", b"t1"), ("x-client", b"forged")])
            rewritten = add_headers(original, [("x-client", b"app-7"), ("x-host", b"10.0.0.7")])
            before, after = DefaultRecordBatch(original), DefaultRecordBatch(rewritten)
            self.assertTrue(after.validate_crc(), codec_name)
            self.assert_same_batch(before, after)
            old, new = list(DefaultRecordBatch(original)), list(after)
            self.assertEqual(
                [(r.offset, r.timestamp, r.key, r.value) for r in new],
                [(r.offset, r.timestamp, r.key, r.value) for r in old],
                codec_name,
            )
            # The forged x-client is replaced; other headers stay, in order, before ours.
            self.assertEqual(
                [r.headers for r in new],
                [[("trace", b"t1"), ("x-client", b"app-7"), ("x-host", b"10.0.0.7")]] * 3,
                codec_name,
            )

    def test_compressed_even_when_it_does_not_pay(self) -> None:
        """A tiny gzip batch stays gzip (kafka-python's builder would send it uncompressed)."""
        original = batch(1, records=1, value=b"")
        self.assertEqual(DefaultRecordBatch(original).compression_type, 1)
        after = DefaultRecordBatch(add_headers(original, [("h", b"v")]))
        self.assertEqual(after.compression_type, 1)
        self.assertTrue(after.validate_crc())

    def test_header_fields_kept_exactly(self) -> None:
        """Base offset, leader epoch, log-append-time type and transactional flag survive."""
        original = reseal(
            batch(4, transactional=True), attributes_or=0x08, base_offset=42, leader_epoch=9
        )
        after = DefaultRecordBatch(add_headers(original, [("h", b"v")]))
        self.assertTrue(after.validate_crc())
        self.assertEqual((after.base_offset, after.leader_epoch), (42, 9))
        self.assertEqual(after.timestamp_type, 1)
        self.assertTrue(after.is_transactional)
        self.assert_same_batch(DefaultRecordBatch(original), after)

    def test_several_batches_and_control_batches(self) -> None:
        """Every batch of a blob is rewritten; a control batch is copied byte for byte."""
        control = reseal(batch(0, records=1), attributes_or=0x20)
        blob = batch(0) + control + batch(3)
        out = batches(add_headers(blob, [("h", b"v")]))
        self.assertEqual(len(out), 3)
        self.assertTrue(all(b.validate_crc() for b in out))
        self.assertEqual(out[1]._buffer, control)
        self.assertEqual([r.headers for r in out[2]], [[("h", b"v")]] * 3)

    def test_keep_existing_when_not_replacing(self) -> None:
        """replace=False appends: both values stay, the gateway's last."""
        original = batch(0, records=1, headers=[("h", b"old")])
        after = DefaultRecordBatch(add_headers(original, [("h", b"new")], replace=False))
        self.assertEqual([r.headers for r in after], [[("h", b"old"), ("h", b"new")]])

    def test_legacy_and_corrupt(self) -> None:
        """v0/v1 messages raise LegacyRecords; a truncated batch raises BadBatch."""
        legacy = LegacyRecordBatchBuilder(1, 0, 1 << 20)
        legacy.append(0, 1000, b"k", b"v")
        self.assertRaises(LegacyRecords, add_headers, bytes(legacy.build()), [("h", b"v")])
        self.assertRaises(BadBatch, add_headers, batch(0)[:-3], [("h", b"v")])
        self.assertRaises(BadBatch, add_headers, batch(0)[:30], [("h", b"v")])


class HeaderInjectionTests(SynchronousTestCase):
    def test_placeholders(self) -> None:
        """clientId, clientHost, username, brokerId and clusterId are filled per client."""
        interceptor = build(
            {
                "headers": {
                    "via": "{clusterId}/{brokerId}",
                    "who": "{clientId}@{clientHost}",
                    "user": "{username}",
                    "literal": "{{x}}",
                }
            }
        )
        frame = produce({"orders": [(0, batch(2))]})
        request, changed = injected(interceptor, frame)
        self.assertTrue(changed)
        records = request.topic_data[0].partition_data[0].records
        self.assertEqual(
            [r.headers for r in batches(records)[0]],
            [[("literal", b"{x}"), ("user", b""), ("via", b"east/1"), ("who", b"app-7@10.0.0.7")]]
            * 3,
        )
        self.assertEqual(interceptor.rewritten, 1)

    def test_topics_limit(self) -> None:
        """Only topics matching the whole pattern are rewritten."""
        interceptor = build({"headers": {"h": "v"}, "topics": "orders"})
        original = batch(0)
        frame = produce({"orders": [(0, original)], "orders-dlq": [(0, original)]})
        request, _ = injected(interceptor, frame)
        orders, dlq = request.topic_data
        self.assertEqual(
            [r.headers for r in batches(orders.partition_data[0].records)[0]], [[("h", b"v")]] * 3
        )
        self.assertEqual(dlq.partition_data[0].records, original)

    def test_untouched_frame_when_nothing_matches(self) -> None:
        """No wanted topic: the call is not changed, so the frame goes on as it came."""
        interceptor = build({"headers": {"h": "v"}, "topics": "nothing"})
        call = request_call(produce({"orders": [(0, batch(0))]}), 0, 9)
        self.assertIsNone(interceptor.on_request(call))
        self.assertFalse(call.changed)

    def test_topic_ids_learnt_from_metadata(self) -> None:
        """Produce v13 names topics by id; the name comes from a Metadata response seen earlier."""
        interceptor = build({"headers": {"h": "v"}, "topics": "orders"})
        self.assertEqual(interceptor.responses, {3})
        orders_id = uuid.uuid4()
        frame = produce({"orders": [(0, batch(0))]}, version=13, topic_ids={"orders": orders_id})
        _, changed = injected(interceptor, frame, version=13)
        self.assertFalse(changed)  # not yet known: not rewritten
        cls = MetadataResponse[12]
        metadata = cls(
            throttle_time_ms=0,
            brokers=[],
            cluster_id="c",
            controller_id=1,
            topics=[
                cls.MetadataResponseTopic(
                    error_code=0,
                    name="orders",
                    topic_id=orders_id,
                    is_internal=False,
                    partitions=[],
                )
            ],
        )
        self.assertIsNone(
            interceptor.on_response(response_call(encode_response(metadata, 5, 12), 3, 12))
        )
        request, changed = injected(interceptor, frame, version=13)
        self.assertTrue(changed)
        records = request.topic_data[0].partition_data[0].records
        self.assertEqual([r.headers for r in batches(records)[0]], [[("h", b"v")]] * 3)

    def test_legacy_left_alone(self) -> None:
        """A Produce v2 with v1 messages passes unchanged (no headers exist there)."""
        legacy = LegacyRecordBatchBuilder(1, 0, 1 << 20)
        legacy.append(0, 1000, b"k", b"v")
        records = bytes(legacy.build())
        interceptor = build({"headers": {"h": "v"}})
        request, changed = injected(
            interceptor, produce({"t": [(0, records)]}, version=2), version=2
        )
        self.assertFalse(changed)
        self.assertEqual(request.topic_data[0].partition_data[0].records, records)
        self.assertEqual(interceptor.legacy, 1)

    def test_corrupt_batch_closes(self) -> None:
        """A batch the gateway cannot read closes the connection rather than pass half-done."""
        interceptor = build({"headers": {"h": "v"}})
        outcome = interceptor.on_request(request_call(produce({"t": [(0, batch(0)[:-2])]}), 0, 9))
        assert isinstance(outcome, Close)
        self.assertIn("cannot read a record batch", outcome.reason)

    def test_config_errors(self) -> None:
        """Each bad config gets a one-line reason naming the setting."""
        cases: dict[str, dict[str, Any]] = {
            "config.headers is required": {},
            "config.headers must be an object of strings": {"headers": {"h": 1}},
            "config.headers must name at least one header": {"headers": {}},
            "config.headers.h uses {nodeId}": {"headers": {"h": "{nodeId}"}},
            "config.headers.h '{' is not a template": {"headers": {"h": "{"}},
            "config.topics '(' is not a regular expression": {"headers": {"h": "v"}, "topics": "("},
            "unknown config key(s) topic": {"headers": {"h": "v"}, "topic": "x"},
        }
        for expected, config in cases.items():
            with self.assertRaises(InvalidConfig) as raised:
                build(config)
            message = str(raised.exception)
            self.assertTrue(message.startswith(expected), message)
            self.assertNotIn("\n", message)

    def test_on_the_data_path(self) -> None:
        """Through a client leg: the broker receives the rewritten batch, CRC valid."""
        interceptors = InterceptorSet(
            {"header-injection": header_injection}, lambda name: InterceptorContext(Clock(), name)
        )
        interceptors.apply(
            [
                InterceptorSpec.parse(
                    {
                        "name": "hi",
                        "plugin": "header-injection",
                        "config": {"headers": {"c": "{clientId}"}},
                    }
                )
            ]
        )
        brokers = FakeBrokers()
        leg = ClientConnectionFactory(
            FixedRouter(1),
            FixedHostMapper("gw", PortPlan(start=7000, count=5, min_broker_id=0)),
            brokers.connect,
            interceptors=interceptors,
        )
        ClientSide(leg).send(produce({"t": [(0, batch(3))]}))
        sent = decode_request(0, brokers.opened[0].transport.value(), 9)
        (out,) = batches(sent.topic_data[0].partition_data[0].records)
        self.assertTrue(out.validate_crc())
        self.assertEqual([r.headers for r in out], [[("c", b"app-7")]] * 3)
        self.assertEqual((out.producer_id, out.producer_epoch, out.base_sequence), (77, 3, 100))
        self.assertEqual(client().client_id, "app-7")
