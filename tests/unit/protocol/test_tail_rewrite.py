"""
Tests for L{kgateway.protocol.tail_rewrite}: KIP-951 leader hints in
Produce and Fetch responses, whole and streamed.

Every rewritten frame is decoded with kafka-python; a streamed one must keep
its length to the byte, whatever the gateway's host names, and decode to the
same endpoints (or fewer, counted) at gateway addresses.
"""

from __future__ import annotations

from typing import Any

from kafka.protocol.consumer import FetchResponse
from kafka.protocol.producer import ProduceResponse

from kgateway.protocol.codec import decode_response
from kgateway.protocol.framing import FrameError
from kgateway.protocol.tail_rewrite import (
    FETCH,
    PAD_TAG,
    PRODUCE,
    HintsStream,
    fit_section,
    hinted,
    passes_unchanged,
    rewrite_fetch,
    rewrite_produce,
)
from kgateway.routing.mapping import FixedHostMapper

from .builders import (
    BROKER_HOST_MARK,
    CORRELATION_ID,
    GATEWAY_HOST,
    OFF_PLAN,
    PLAN,
    RECORDS,
    decode_frame,
    fetch_response,
    gateway_port,
    mapper,
    produce_response,
)
from .test_rewrite import RewriteTestCase, _at_gateway


class NodeEndpointsTests(RewriteTestCase):
    """L{rewrite_produce} and L{rewrite_fetch}: the KIP-951 leader hints."""

    def assertNodeEndpoints(self, rewriter: Any, cls: Any, frame: bytes, version: int) -> Any:
        expected = self.expected(cls, frame, version)
        expected.node_endpoints = _at_gateway(expected.node_endpoints, "node_id")
        got = self.rewritten(rewriter, cls, frame, version)
        self.assertEqual(got, expected, f"{cls.name} v{version}")
        self.assertEqual([n.node_id for n in got.node_endpoints], [1, 2])
        return got

    def test_produce_with_node_endpoints(self) -> None:
        """Produce v10+: node endpoints get gateway addresses; the leader hint keeps its id."""
        for version in range(10, ProduceResponse.max_version + 1):
            got = self.assertNodeEndpoints(
                rewrite_produce, ProduceResponse, produce_response(version), version
            )
            partition = got.responses[0].partition_responses[0]
            self.assertEqual(partition.current_leader.leader_id, 2)
            self.assertEqual((partition.error_code, partition.error_message), (6, "moved"))
            self.assertEqual(got.responses[0].partition_responses[1].base_offset, 4711)
            self.assertEqual(got.throttle_time_ms, 17)
        self.assertEqual(ProduceResponse.max_version, 13)

    def test_produce_before_v10_untouched(self) -> None:
        """Before v10 there are no addresses: the very same bytes go on."""
        for version in range(10):
            frame = produce_response(version)
            self.assertIs(rewrite_produce(frame, version, mapper().mapping()), frame)

    def test_produce_without_node_endpoints_untouched(self) -> None:
        """No node endpoints (the usual case): the very same bytes go on."""
        for version in range(10, ProduceResponse.max_version + 1):
            frame = produce_response(version, node_ids=())
            self.assertIs(rewrite_produce(frame, version, mapper().mapping()), frame)

    def test_produce_all_endpoints_off_plan(self) -> None:
        """Endpoints without a gateway port are dropped, not leaked."""
        frame = produce_response(12, node_ids=(OFF_PLAN,))
        got = self.rewritten(rewrite_produce, ProduceResponse, frame, 12)
        self.assertFalse(got.node_endpoints)

    def test_fetch_with_node_endpoints(self) -> None:
        """Fetch v16+: node endpoints get gateway addresses; records are the same bytes."""
        for version in range(16, FetchResponse.max_version + 1):
            got = self.assertNodeEndpoints(
                rewrite_fetch, FetchResponse, fetch_response(version), version
            )
            partitions = got.responses[0].partitions
            self.assertEqual(bytes(partitions[0].records), RECORDS)
            self.assertIsNone(partitions[1].records)
            self.assertEqual(partitions[1].current_leader.leader_id, 2)
            self.assertEqual(partitions[0].aborted_transactions[0].producer_id, 5)
            self.assertEqual((got.session_id, got.throttle_time_ms), (123, 19))
        self.assertEqual(FetchResponse.max_version, 18)

    def test_fetch_before_v16_untouched(self) -> None:
        """Before v16 there are no addresses: the very same bytes go on."""
        for version in range(16):
            frame = fetch_response(version)
            self.assertIs(rewrite_fetch(frame, version, mapper().mapping()), frame)

    def test_fetch_without_node_endpoints_untouched(self) -> None:
        """No node endpoints: the very same bytes go on, records and all."""
        for version in range(16, FetchResponse.max_version + 1):
            frame = fetch_response(version, node_ids=())
            self.assertIs(rewrite_fetch(frame, version, mapper().mapping()), frame)

    def test_unknown_tags(self) -> None:
        """Top-level, topic, partition, node endpoint and leader hint tags survive."""
        for version in range(10, ProduceResponse.max_version + 1):
            self.assertTagsSurvive(
                rewrite_produce,
                ProduceResponse,
                produce_response(version),
                version,
                lambda m: [
                    m.responses[0],
                    m.responses[0].partition_responses[0],
                    m.responses[0].partition_responses[0].current_leader,
                    *m.node_endpoints,
                ],
                expect_nested=3 + 2,
            )
        for version in range(16, FetchResponse.max_version + 1):
            self.assertTagsSurvive(
                rewrite_fetch,
                FetchResponse,
                fetch_response(version),
                version,
                lambda m: [
                    m.responses[0],
                    m.responses[0].partitions[0],
                    m.responses[0].partitions[1].current_leader,
                    *m.node_endpoints,
                ],
                expect_nested=3 + 2,
            )

    def test_unknown_tag_inside_node_endpoint_from_the_wire(self) -> None:
        """
        A node endpoint with a tag of its own, as a newer broker would send it.

        Built by hand, so that it does not depend on the gateway's encoder.
        """
        host = b"b1.broker.internal"
        endpoint = (
            b"\x02"  # compact array of one
            + (1).to_bytes(4, "big")  # node_id
            + bytes([len(host) + 1])
            + host
            + (9092).to_bytes(4, "big")
            + b"\x00"  # rack: null
            + b"\x01"
            + bytes([98, 3])
            + b"abc"  # one unknown tag, 98
        )
        body = (
            CORRELATION_ID.to_bytes(4, "big")
            + b"\x00"  # response header tags
            + b"\x01"  # responses: empty compact array
            + (0).to_bytes(4, "big")  # throttle_time_ms
            + b"\x01"  # one tagged field
            + b"\x00"
            + bytes([len(endpoint)])
            + endpoint  # tag 0: node_endpoints
        )
        frame = len(body).to_bytes(4, "big") + body
        out = rewrite_produce(frame, 10, mapper().mapping())
        gateway = GATEWAY_HOST.encode()
        expected_endpoint = (
            b"\x02"
            + (1).to_bytes(4, "big")
            + bytes([len(gateway) + 1])
            + gateway
            + gateway_port(1).to_bytes(4, "big")
            + b"\x00"
            + b"\x01"
            + bytes([98, 3])
            + b"abc"
        )
        expected_body = (
            body[: -len(endpoint) - 1] + bytes([len(expected_endpoint)]) + expected_endpoint
        )
        self.assertEqual(out, len(expected_body).to_bytes(4, "big") + expected_body)


def streamed(
    kind: Any, frame: bytes, version: int, cuts: list[int], host: str
) -> tuple[bytes, Any]:
    """C{frame} passed through a L{HintsStream} in pieces cut at C{cuts}: the bytes, the outcome."""
    stream = HintsStream(kind, version, len(frame), FixedHostMapper(host, PLAN).mapping)
    bounds = [0, *cuts, len(frame)]
    out: list[bytes] = []
    for start, end in zip(bounds, bounds[1:], strict=False):
        out += [bytes(piece) for piece in stream.feed(frame[start:end], end == len(frame))]
    return b"".join(out), stream.outcome


class StreamedHintsTests(RewriteTestCase):
    """L{HintsStream}: the tags rewritten to the very length already announced."""

    def check(self, kind: Any, frame: bytes, version: int, host: str, cuts: list[int]) -> Any:
        got, outcome = streamed(kind, frame, version, cuts, host)
        self.assertEqual(len(got), len(frame), f"{kind.name} v{version} {host} {cuts}")
        self.assertEqual(got[:4], frame[:4])
        self.assertNotIn(BROKER_HOST_MARK, got)
        message = decode_frame(kind.cls, got, version)
        for endpoint in message.node_endpoints:
            self.assertEqual((endpoint.host, endpoint.port), (host, gateway_port(endpoint.node_id)))
        # Everything but the tags is the broker's, byte for byte.
        original = decode_response(kind.cls, frame, version)
        self.assertEqual(message.responses, original.responses)
        self.assertEqual(message.throttle_time_ms, original.throttle_time_ms)
        return message, outcome

    def test_shorter_gateway_host_padded(self) -> None:
        """A shorter address leaves room: padded with the unknown tag, every hint kept."""
        for kind, version in [(PRODUCE, v) for v in range(10, 14)] + [
            (FETCH, v) for v in (16, 17, 18)
        ]:
            frame = (produce_response if kind is PRODUCE else fetch_response)(version)
            message, outcome = self.check(kind, frame, version, "gw", [])
            self.assertEqual([n.node_id for n in message.node_endpoints], [1, 2])
            self.assertEqual(set(message.unknown_tags), {f"_{PAD_TAG}"})
            self.assertEqual((outcome.endpoints, outcome.mapped, outcome.kept), (3, 2, 2))

    def test_longer_gateway_host_drops_what_does_not_fit(self) -> None:
        """A longer address: the hints that fit stay, the rest are left out and counted."""
        host = "a-gateway-host-name-much-longer-than-the-brokers.example.com"
        message, outcome = self.check(FETCH, fetch_response(16), 16, host, [])
        self.assertEqual([n.node_id for n in message.node_endpoints], [1])
        self.assertEqual((outcome.mapped, outcome.kept), (2, 1))
        host = "x" * 200
        message, outcome = self.check(FETCH, fetch_response(16), 16, host, [])
        self.assertEqual(message.node_endpoints, [])
        self.assertEqual(outcome.kept, 0)

    def test_every_cut_and_host_length(self) -> None:
        """Cut anywhere, with host names around the brokers' length: always the same length."""
        frame = fetch_response(16)
        for length in range(1, 40):
            host = "h" * length
            for cut in range(1, len(frame), 1009):
                self.check(FETCH, frame, 16, host, [cut])
        frame = produce_response(12)
        for cut in range(1, len(frame)):
            self.check(PRODUCE, frame, 12, GATEWAY_HOST, [cut])
        self.check(PRODUCE, frame, 12, GATEWAY_HOST, list(range(1, len(frame))))

    def test_no_tags_pass_as_they_are(self) -> None:
        """No leader hints: the very same bytes, and no outcome."""
        frame = fetch_response(16, ())
        got, outcome = streamed(FETCH, frame, 16, [100, 5000], GATEWAY_HOST)
        self.assertEqual(got, frame)
        self.assertIsNone(outcome)

    def test_fit_exact_sizes(self) -> None:
        """Every size the padding must hit, from one byte shorter to many, is hit exactly."""
        frame = produce_response(12, node_ids=(1,))
        at = len(frame) - len(produce_response(12, node_ids=())) + 1
        section = frame[-(at):]
        for length in range(1, 60):
            fitted = fit_section(
                PRODUCE, section, 12, FixedHostMapper("h" * length, PLAN).mapping()
            )
            self.assertEqual(len(fitted.section), len(section), length)

    def test_truncated_response_is_an_error(self) -> None:
        frame = fetch_response(16)
        stream = HintsStream(FETCH, 16, len(frame) + 10, mapper().mapping)
        with self.assertRaises(FrameError):
            stream.feed(frame, True)


class PassesUnchangedTests(RewriteTestCase):
    """L{passes_unchanged}: Produce/Fetch without top-level tags pass as their pieces."""

    def test_passes_unchanged(self) -> None:
        frame = fetch_response(16, ())
        self.assertTrue(passes_unchanged(FETCH, [frame[:50], frame[50:]], 16))
        self.assertFalse(passes_unchanged(FETCH, [fetch_response(16)], 16))
        self.assertTrue(passes_unchanged(FETCH, [fetch_response(15)], 15))
        self.assertTrue(passes_unchanged(PRODUCE, [produce_response(9)], 9))
        self.assertFalse(passes_unchanged(PRODUCE, [produce_response(10)], 10))

    def test_malformed_does_not_pass(self) -> None:
        """A frame the skim cannot walk is left to the rewriter, which reports it."""
        frame = fetch_response(16, ())
        self.assertFalse(passes_unchanged(FETCH, [frame[:40]], 16))

    def test_hinted(self) -> None:
        self.assertIs(hinted(1, 16), FETCH)
        self.assertIsNone(hinted(1, 15))
        self.assertIs(hinted(0, 10), PRODUCE)
        self.assertIsNone(hinted(0, 9))
        self.assertIsNone(hinted(3, 12))
