"""Tests for L{kgateway.protocol.codec}: whole-frame helpers and unknown tags."""

from __future__ import annotations

from kafka.protocol.metadata import ApiVersionsResponse, MetadataResponse
from kafka.protocol.producer import ProduceResponse
from twisted.trial.unittest import SynchronousTestCase

from kgateway.protocol.codec import (
    PreservingTaggedFields,
    decode_response,
    encode_response,
    preserve_unknown_tags,
)

from .builders import CORRELATION_ID, decode_frame, framed, metadata_response


class FrameHelperTests(SynchronousTestCase):
    """L{decode_response} and L{encode_response} handle prefix and header."""

    def test_round_trip(self) -> None:
        """Decoding then encoding a broker's frame gives the same bytes back."""
        for version in range(MetadataResponse.max_version + 1):
            frame = metadata_response(version)
            message = decode_response(MetadataResponse, frame, version)
            self.assertEqual(message.header.correlation_id, CORRELATION_ID)
            self.assertEqual(
                encode_response(message, CORRELATION_ID, version), frame, f"v{version}"
            )

    def test_new_correlation_id(self) -> None:
        """A decoded message, header and all, can be encoded with another id and version."""
        message = decode_response(MetadataResponse, metadata_response(12), 12)
        out = encode_response(message, 77, 12)
        self.assertEqual(decode_frame(MetadataResponse, out, 12).header.correlation_id, 77)

    def test_api_versions_header(self) -> None:
        """ApiVersions keeps its v0 response header at flexible versions."""
        message = ApiVersionsResponse[3](error_code=0, api_keys=[])
        out = encode_response(message, 5, 3)
        self.assertEqual(out[4:8], (5).to_bytes(4, "big"))
        self.assertEqual(out[8:10], b"\x00\x00")  # error_code straight after the id


class UnknownTagTests(SynchronousTestCase):
    """Re-encoded messages keep tags the codec did not know, in tag order."""

    def test_installed(self) -> None:
        """The rewritten messages' structs, nested ones too, use the preserving encoder."""
        struct = ProduceResponse._struct
        self.assertIsInstance(struct.tagged_fields(10), PreservingTaggedFields)
        endpoints = struct.fields["node_endpoints"].array_of
        self.assertIsInstance(endpoints.tagged_fields(10), PreservingTaggedFields)

    def test_installing_twice(self) -> None:
        """Installing again changes nothing."""
        frame = metadata_response(12)
        preserve_unknown_tags([MetadataResponse])
        message = decode_response(MetadataResponse, frame, 12)
        self.assertEqual(encode_response(message, CORRELATION_ID, 12), frame)

    def test_merged_in_tag_order(self) -> None:
        """Unknown tags around a known one are written in ascending tag order."""
        cls = ProduceResponse[10]
        message = cls(
            responses=[],
            throttle_time_ms=0,
            node_endpoints=[cls.NodeEndpoint(node_id=1, host="h", port=1, rack=None)],
        )
        message.unknown_tags = {"_99": b"xyz", "_1": b"A"}
        out = encode_response(message, 1, 10)
        endpoint = (
            b"\x02" + b"\x00\x00\x00\x01" + b"\x02h" + b"\x00\x00\x00\x01" + b"\x00" + b"\x00"
        )
        self.assertEqual(
            out[4:],
            b"\x00\x00\x00\x01"  # correlation id
            + b"\x00"  # header tags
            + b"\x01"  # responses: empty
            + b"\x00\x00\x00\x00"  # throttle
            + b"\x03"  # three tags
            + b"\x00"
            + bytes([len(endpoint)])
            + endpoint
            + b"\x01\x01A"
            + b"\x63\x03xyz",
        )
        self.assertEqual(len(out) - 4, int.from_bytes(out[:4], "big"))
        again = decode_response(ProduceResponse, out, 10)
        self.assertEqual(again.unknown_tags, {"_1": b"A", "_99": b"xyz"})
        self.assertEqual(again.node_endpoints[0].host, "h")

    def test_without_unknown_tags_nested_sections_are_empty(self) -> None:
        """Without unknown tags, structs in tagged fields end in an empty section, as in Kafka."""
        cls = ProduceResponse[11]
        partition = cls.TopicProduceResponse.PartitionProduceResponse
        message = cls(
            responses=[
                cls.TopicProduceResponse(
                    name="t",
                    partition_responses=[
                        partition(
                            index=0,
                            error_code=6,
                            record_errors=[],
                            current_leader=partition.LeaderIdAndEpoch(leader_id=3, leader_epoch=4),
                        )
                    ],
                )
            ],
            throttle_time_ms=0,
            node_endpoints=[cls.NodeEndpoint(node_id=3, host="h3", port=9, rack="r")],
        )
        out = framed(message, 11)
        # The nested structs inside tagged fields end in an empty tag section (0x00).
        endpoint = (
            b"\x02" + b"\x00\x00\x00\x03" + b"\x03h3" + b"\x00\x00\x00\x09" + b"\x02r" + b"\x00"
        )
        self.assertTrue(out.endswith(b"\x01" + b"\x00" + bytes([len(endpoint)]) + endpoint))
        leader = b"\x00\x00\x00\x03" + b"\x00\x00\x00\x04" + b"\x00"
        self.assertIn(b"\x01\x00" + bytes([len(leader)]) + leader, out)
