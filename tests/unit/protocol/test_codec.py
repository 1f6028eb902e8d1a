"""Tests for L{kgateway.protocol.codec}: whole-frame helpers and unknown tags."""

from __future__ import annotations

from kafka.protocol.api_key import ApiKey
from kafka.protocol.metadata import ApiVersionsResponse, MetadataResponse
from kafka.protocol.producer import ProduceResponse
from twisted.trial.unittest import SynchronousTestCase

from kgateway.protocol.codec import (
    PreservingTaggedFields,
    decode_response,
    encode_response,
    field_paths,
    fields_at,
    has_field,
    preserve_unknown_tags,
    request_class,
    response_class,
    response_classes,
    schema,
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


class SchemaTests(SynchronousTestCase):
    """What the codec answers about its messages, so no other module reads its internals."""

    def test_classes_by_key(self) -> None:
        """Every response class by API key; the request and response classes agree."""
        classes = response_classes()
        self.assertEqual(classes[ApiKey.Metadata].name, MetadataResponse.name)
        self.assertEqual(response_class(ApiKey.Produce).name, ProduceResponse.name)
        self.assertEqual(request_class(ApiKey.Metadata).API_KEY, ApiKey.Metadata)
        for key, cls in classes.items():
            self.assertEqual(cls.API_KEY, key)
        self.assertRaises(KeyError, response_class, 9999)

    def test_has_field(self) -> None:
        """A field counts only at the versions that have it."""
        self.assertFalse(has_field(MetadataResponse, "error_code", 12))
        self.assertTrue(has_field(MetadataResponse, "error_code", 13))
        self.assertTrue(has_field(MetadataResponse[13], "error_code", 13))
        self.assertFalse(has_field(MetadataResponse, "no_such_field", 13))

    def test_fields_at(self) -> None:
        """A message's or nested struct's fields at a version, in schema order."""
        names = [f.name for f in fields_at(MetadataResponse, 0)]
        self.assertEqual(names, ["brokers", "topics"])
        message = decode_response(MetadataResponse, metadata_response(12), 12)
        self.assertEqual(
            [f.name for f in fields_at(message.brokers[0], 12)], ["node_id", "host", "port", "rack"]
        )

    def test_field_paths(self) -> None:
        """Nested fields as dotted paths, tagged ones included, only at their versions."""
        self.assertIn("brokers.host", list(field_paths(MetadataResponse, 0)))
        self.assertNotIn("brokers.rack", list(field_paths(MetadataResponse, 0)))
        self.assertIn("node_endpoints.port", list(field_paths(ProduceResponse, 10)))
        self.assertNotIn("node_endpoints", list(field_paths(ProduceResponse, 9)))


class UnknownTagTests(SynchronousTestCase):
    """Re-encoded messages keep tags the codec did not know, in tag order."""

    def test_installed(self) -> None:
        """The rewritten messages' structs, nested ones too, use the preserving encoder."""
        struct = schema(ProduceResponse)
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
