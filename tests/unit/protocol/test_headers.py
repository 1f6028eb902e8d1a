"""Tests for L{kgateway.protocol.headers}."""

from __future__ import annotations

import io
from struct import pack
from typing import Any

from kafka.protocol.api_key import ApiKey
from kafka.protocol.metadata import ApiVersionsRequest, MetadataRequest, MetadataResponse
from kafka.protocol.producer import ProduceRequest
from kafka.protocol.schemas.fields.codecs import Int16, String
from twisted.trial.unittest import SynchronousTestCase

from kgateway.protocol.framing import FrameError
from kgateway.protocol.headers import (
    RequestInfo,
    produce_acks,
    request_client_id,
    request_header,
    request_info,
    response_correlation_id,
)

from .builders import TOPIC_ID, framed, metadata_response


def request_frame(message: Any, correlation_id: int, client_id: str = "test-client") -> bytes:
    """Encode a request as a client sends it."""
    message.with_header(correlation_id=correlation_id, client_id=client_id)
    return bytes(message.encode(header=True, framed=True))


def produce_request(version: int, transactional_id: str | None, acks: int) -> bytes:
    """A Produce request with one topic and a batch of (opaque) records."""
    cls = ProduceRequest[version]
    topic = cls.TopicProduceData
    message = cls(
        transactional_id=transactional_id,
        acks=acks,
        timeout_ms=30000,
        topic_data=[
            topic(
                name="orders",
                topic_id=TOPIC_ID,
                partition_data=[topic.PartitionProduceData(index=0, records=b"\x00" * 61)],
            )
        ],
    )
    return request_frame(message, correlation_id=99)


class RequestInfoTests(SynchronousTestCase):
    """L{request_info} reads the fixed part of any request header."""

    def test_non_flexible(self) -> None:
        """A request with header v1 (Metadata v1)."""
        data = request_frame(MetadataRequest[1](topics=None), correlation_id=7)
        self.assertEqual(
            request_info(data), RequestInfo(api_key=3, api_version=1, correlation_id=7)
        )

    def test_flexible(self) -> None:
        """A request with header v2 and tagged fields (Metadata v12)."""
        message = MetadataRequest[12](
            topics=None, allow_auto_topic_creation=False, include_topic_authorized_operations=True
        )
        data = request_frame(message, correlation_id=-2_000_000_000)
        self.assertEqual(
            request_info(data),
            RequestInfo(api_key=3, api_version=12, correlation_id=-2_000_000_000),
        )

    def test_api_versions_flexible(self) -> None:
        """ApiVersions v3 (flexible request header, client software fields)."""
        message = ApiVersionsRequest[3](client_software_name="kcat", client_software_version="1.7")
        info = request_info(request_frame(message, correlation_id=1))
        self.assertEqual((info.api_key, info.api_version, info.correlation_id), (18, 3, 1))

    def test_produce(self) -> None:
        """The key of a Produce request is C{ApiKey.Produce}."""
        info = request_info(produce_request(9, None, 1))
        self.assertEqual((info.api_key, info.api_version), (ApiKey.Produce, 9))

    def test_too_short(self) -> None:
        """A frame shorter than length, key, version and correlation id is refused."""
        data = pack(">ihhi", 8, 3, 1, 5)
        for size in range(len(data)):
            self.assertRaises(FrameError, request_info, data[:size])

    def test_exactly_the_fixed_part(self) -> None:
        """Twelve bytes are enough to read the fixed part."""
        self.assertEqual(request_info(pack(">ihhi", 8, 3, 1, 5)), RequestInfo(3, 1, 5))

    def test_negative_key_or_version(self) -> None:
        """A negative api key or version is not a request header."""
        self.assertRaises(FrameError, request_info, pack(">ihhi", 8, -1, 0, 5))
        self.assertRaises(FrameError, request_info, pack(">ihhi", 8, 3, -1, 5))


class RequestHeaderTests(SynchronousTestCase):
    """L{request_header} decodes the whole header and finds the body."""

    def test_flexible_header(self) -> None:
        """Header v2: client id and tagged fields are read; the offset is the body's."""
        message = MetadataRequest[12](
            topics=None, allow_auto_topic_creation=True, include_topic_authorized_operations=False
        )
        data = request_frame(message, correlation_id=31, client_id="client-α")
        header, offset = request_header(data, flexible=True)
        self.assertEqual(
            (header.request_api_key, header.request_api_version, header.correlation_id),
            (3, 12, 31),
        )
        self.assertEqual(header.client_id, "client-α")
        body = MetadataRequest.decode(data[offset:], version=12)
        self.assertEqual(body.allow_auto_topic_creation, True)

    def test_non_flexible_header(self) -> None:
        """Header v1 ends after the client id."""
        data = request_frame(MetadataRequest[1](topics=None), correlation_id=4, client_id="c")
        header, offset = request_header(data, flexible=False)
        self.assertEqual(header.client_id, "c")
        self.assertEqual(offset, 4 + 2 + 2 + 4 + 2 + 1)

    def test_malformed(self) -> None:
        """A header cut short is a FrameError, not a codec exception."""
        data = request_frame(MetadataRequest[1](topics=None), correlation_id=4, client_id="client")
        self.assertRaises(FrameError, request_header, data[:16], False)


class ResponseCorrelationIdTests(SynchronousTestCase):
    """L{response_correlation_id} reads the first header field of a response."""

    def test_correlation_id(self) -> None:
        """The id a broker put in the header is read back."""
        self.assertEqual(response_correlation_id(metadata_response(1)), 0x1234ABCD)
        self.assertEqual(response_correlation_id(pack(">ii", 4, -7)), -7)

    def test_flexible_response(self) -> None:
        """A response header v1 starts with the correlation id too."""
        data = framed(MetadataResponse[12](brokers=[], topics=[]), 12, correlation_id=2**31 - 1)
        self.assertEqual(response_correlation_id(data), 2**31 - 1)

    def test_too_short(self) -> None:
        """Fewer than eight bytes hold no correlation id."""
        for size in range(8):
            self.assertRaises(FrameError, response_correlation_id, pack(">ii", 4, 1)[:size])


def codec_acks(frame: bytes, version: int) -> int:
    """acks as kafka-python's codec reads it: the reference for L{produce_acks}."""
    flexible = ProduceRequest.flexible_version_q(version)
    _, body = request_header(frame, flexible)
    stream = io.BytesIO(frame)
    stream.seek(body)
    if version >= 3:
        String().decode(stream, compact=flexible)
    return int(Int16.decode(stream))


class ProduceAcksTests(SynchronousTestCase):
    """L{produce_acks} reads acks, past the transactional id, in every version."""

    def test_every_version(self) -> None:
        """Versions 3-13, with and without a transactional id, acks 0, 1 and -1."""
        for version in range(3, ProduceRequest.max_version + 1):
            for transactional_id in (None, "", "tx-42", "τ" * 300):
                for acks in (0, 1, -1):
                    data = produce_request(version, transactional_id, acks)
                    self.assertEqual(
                        produce_acks(data, version),
                        acks,
                        f"v{version} transactional_id={transactional_id!r} acks={acks}",
                    )
        self.assertEqual(ProduceRequest.max_version, 13)

    def test_versions_without_transactional_id(self) -> None:
        """Before v3 acks follows the header directly."""
        for version in range(0, 3):
            for acks in (0, 1, -1):
                self.assertEqual(produce_acks(produce_request(version, None, acks), version), acks)

    def test_client_ids_and_header_tags(self) -> None:
        """No client id, an empty or a long one, and header tags: acks as the codec reads it."""
        for version in range(0, ProduceRequest.max_version + 1):
            flexible = ProduceRequest.flexible_version_q(version)
            for client_id in (None, "", "c" * 700):
                for acks in (0, 1, -1):
                    message = ProduceRequest[version](
                        transactional_id="tx", acks=acks, timeout_ms=5, topic_data=[]
                    )
                    message.with_header(correlation_id=7, client_id=client_id)
                    data = bytes(message.encode(header=True, framed=True))
                    frames = [data]
                    if flexible:
                        # The same request with two tags in its header.
                        _, end = request_header(data, flexible=True)
                        tags = b"\x02\x00\x03abc\x05\x01z"
                        body = data[4 : end - 1] + tags + data[end:]
                        frames.append(pack(">i", len(body)) + body)
                    for frame in frames:
                        self.assertEqual(
                            produce_acks(frame, version),
                            codec_acks(frame, version),
                            f"v{version} client_id={client_id!r} acks={acks}",
                        )
                        self.assertEqual(produce_acks(frame, version), acks)

    def test_malformed(self) -> None:
        """A Produce request cut inside the transactional id is a FrameError."""
        data = produce_request(9, "transactional", 1)
        header_end = request_header(data, flexible=True)[1]
        self.assertRaises(FrameError, produce_acks, data[: header_end + 3], 9)
        data = produce_request(3, "transactional", 1)
        header_end = request_header(data, flexible=False)[1]
        self.assertRaises(FrameError, produce_acks, data[: header_end + 5], 3)


class RequestClientIdTests(SynchronousTestCase):
    """The client id, read without decoding the header."""

    def test_flexible_and_not(self) -> None:
        flexible = request_frame(ApiVersionsRequest[3](), 1, client_id="rdkafka")
        plain = request_frame(MetadataRequest[1](topics=None), 2, client_id="app-ü")
        self.assertEqual(request_client_id(flexible), "rdkafka")
        self.assertEqual(request_client_id(plain), "app-ü")

    def test_null_and_truncated(self) -> None:
        null = pack(">ihhih", 10, 18, 0, 7, -1)
        self.assertIsNone(request_client_id(null))
        truncated = pack(">ihhih", 14, 18, 0, 7, 10) + b"abc"
        self.assertIsNone(request_client_id(truncated))
        self.assertIsNone(request_client_id(pack(">ihhi", 8, 18, 0, 7)))
