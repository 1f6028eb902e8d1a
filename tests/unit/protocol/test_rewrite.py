"""
Tests for L{kgateway.protocol.rewrite}.

Each rewritten frame is decoded again and compared with the broker's
response as it should look after the rewrite: gateway addresses, brokers off
the plan left out, everything else equal.  And no real broker host may be
anywhere in the bytes.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, cast

from kafka.protocol.admin import DescribeClusterResponse
from kafka.protocol.api_key import ApiKey
from kafka.protocol.metadata import ApiVersionsResponse, FindCoordinatorResponse, MetadataResponse
from twisted.logger import ILogObserver, globalLogPublisher
from twisted.trial.unittest import SynchronousTestCase

from kgateway.protocol.codec import (
    address_fields,
    decode_response,
    encode_response,
    field_paths,
    tagged_address_fields,
)
from kgateway.protocol.error_codes import ErrorCode
from kgateway.protocol.rewrite import (
    rewrite_api_versions,
    rewrite_describe_cluster,
    rewrite_find_coordinator,
    rewrite_metadata,
)
from kgateway.protocol.versions import REVIEWED

from .builders import (
    BROKER_HOST_MARK,
    CORRELATION_ID,
    GATEWAY_HOST,
    IN_PLAN,
    NESTED_TAG,
    OFF_PLAN,
    TOP_TAG,
    addresses,
    api_versions_response,
    decode_frame,
    describe_cluster_response,
    find_coordinator_response,
    gateway_port,
    mapper,
    metadata_response,
    with_unknown_tags,
)


class RewriteTestCase(SynchronousTestCase):
    """Checks every rewrite must pass; log events are collected for the tests."""

    def setUp(self) -> None:
        self.events: list[dict[str, Any]] = []
        observer = cast(ILogObserver, self.events.append)
        globalLogPublisher.addObserver(observer)
        self.addCleanup(globalLogPublisher.removeObserver, observer)

    def rewritten(self, rewriter: Any, cls: Any, frame: bytes, version: int) -> Any:
        """Rewrite C{frame}; check what every rewrite must hold; return it decoded."""
        out = rewriter(frame, version, mapper().mapping())
        self.assertIsInstance(out, bytes)
        self.assertNotIn(BROKER_HOST_MARK, out, f"{cls.name} v{version} leaks a broker host")
        message = decode_frame(cls, out, version)
        self.assertEqual(message.header.correlation_id, CORRELATION_ID)
        for node_id, host, port in addresses(message):
            if node_id == -1:
                self.assertEqual((host, port), ("", -1), f"{cls.name} v{version}")
                continue
            self.assertEqual(
                (host, port), (GATEWAY_HOST, gateway_port(node_id)), f"{cls.name} v{version}"
            )
            self.assertIn(node_id, IN_PLAN)
        return message

    def expected(self, cls: Any, frame: bytes, version: int) -> Any:
        """The broker's response, decoded, for the test to turn into the expected one."""
        return decode_frame(cls, frame, version)

    def assertTagsSurvive(
        self,
        rewriter: Any,
        cls: Any,
        frame: bytes,
        version: int,
        nested: Callable[[Any], list[Any]],
        expect_nested: int,
    ) -> None:
        """Unknown tags at top level and in nested structs are still there after rewriting."""
        tagged = with_unknown_tags(cls, frame, version, nested)
        # The frame really carries the tags, or this test would prove nothing.
        before = decode_frame(cls, tagged, version)
        self.assertEqual(before.unknown_tags, TOP_TAG)
        self.assertEqual(
            [item.unknown_tags for item in nested(before)], [NESTED_TAG] * len(nested(before))
        )
        after = self.rewritten(rewriter, cls, tagged, version)
        self.assertEqual(after.unknown_tags, TOP_TAG, f"{cls.name} v{version} top level")
        kept = [item.unknown_tags for item in nested(after)]
        self.assertEqual(kept, [NESTED_TAG] * expect_nested, f"{cls.name} v{version} nested")


def _at_gateway(items: list[Any], id_field: str) -> list[Any]:
    kept = [item for item in items if getattr(item, id_field) in IN_PLAN]
    for item in kept:
        item.host, item.port = GATEWAY_HOST, gateway_port(getattr(item, id_field))
    return kept


class MetadataTests(RewriteTestCase):
    """L{rewrite_metadata}, every version."""

    def test_every_version(self) -> None:
        """Brokers on the plan get gateway addresses, broker 7 is left out, the rest is equal."""
        for version in range(MetadataResponse.max_version + 1):
            frame = metadata_response(version)
            expected = self.expected(MetadataResponse, frame, version)
            expected.brokers = _at_gateway(expected.brokers, "node_id")
            got = self.rewritten(rewrite_metadata, MetadataResponse, frame, version)
            self.assertEqual(got, expected, f"v{version}")
            self.assertEqual([b.node_id for b in got.brokers], [1, 2, 3])
            # Leader and replica ids are node ids: never changed, even for broker 7.
            self.assertEqual(got.topics[0].partitions[0].leader_id, OFF_PLAN)
            self.assertEqual(got.topics[0].partitions[0].replica_nodes, [OFF_PLAN, 1, 2])
            if version >= 2:
                self.assertEqual(got.cluster_id, "cluster-A")
            if version >= 3:
                self.assertEqual(got.throttle_time_ms, 25)
        self.assertEqual(MetadataResponse.max_version, 13)

    def test_no_broker_on_the_plan(self) -> None:
        """When no broker has a gateway port the list is empty, not leaked."""
        frame = metadata_response(12, broker_ids=(OFF_PLAN, 8))
        got = self.rewritten(rewrite_metadata, MetadataResponse, frame, 12)
        self.assertEqual(got.brokers, [])

    def test_off_plan_broker_is_logged(self) -> None:
        """Leaving a broker out is an error an operator hears about."""
        self.rewritten(rewrite_metadata, MetadataResponse, metadata_response(1), 1)
        errors = [e for e in self.events if e.get("broker_id") == OFF_PLAN]
        self.assertEqual(len(errors), 1)

    def test_unknown_tags(self) -> None:
        """Flexible versions keep unknown tags: top level, broker, topic and partition."""
        for version in range(9, MetadataResponse.max_version + 1):
            self.assertTagsSurvive(
                rewrite_metadata,
                MetadataResponse,
                metadata_response(version),
                version,
                lambda m: [*m.brokers, m.topics[0], m.topics[0].partitions[1]],
                expect_nested=3 + 2,
            )


def _full_rewrite(cls: Any, frame: bytes, version: int, change: Callable[[Any], None]) -> bytes:
    """What the gateway did before the leading-fields rewrite: decode all, change, encode all."""
    message = decode_response(cls, frame, version)
    change(message)
    return encode_response(message, message.header.correlation_id, version)


class LeadingFieldsTests(RewriteTestCase):
    """
    Only the fields up to the broker list are decoded; the rest goes on as bytes.

    The output must be byte for byte what decoding, rewriting and encoding
    the whole response gave, at every version, topics or not, tags or not.
    """

    def test_metadata_equals_full_rewrite(self) -> None:
        """Metadata with 200 topics: the same bytes as the whole-message rewrite."""
        for version in range(MetadataResponse.max_version + 1):
            frame = metadata_response(version, extra_topics=200)
            if version >= 9:
                frame = with_unknown_tags(
                    MetadataResponse,
                    frame,
                    version,
                    lambda m: [m.brokers[0], m.topics[5], m.topics[5].partitions[1]],
                )

            def change(message: Any) -> None:
                message.brokers = _at_gateway(message.brokers, "node_id")

            expected = _full_rewrite(MetadataResponse, frame, version, change)
            got = rewrite_metadata(frame, version, mapper().mapping())
            self.assertEqual(got, expected, f"v{version}")
            # The topics are the broker's own bytes, not an encoding of them.
            topics_at = len(frame) - frame.find(b"orders") + 8
            self.assertEqual(got[-topics_at:], frame[-topics_at:], f"v{version}")

    def test_describe_cluster_equals_full_rewrite(self) -> None:
        """DescribeCluster: brokers mid-message; the operations after them are kept."""
        for version in range(DescribeClusterResponse.max_version + 1):
            for frame in (
                describe_cluster_response(version),
                with_unknown_tags(
                    DescribeClusterResponse,
                    describe_cluster_response(version),
                    version,
                    lambda m: m.brokers,
                ),
            ):

                def change(message: Any) -> None:
                    message.brokers = _at_gateway(message.brokers, "broker_id")

                expected = _full_rewrite(DescribeClusterResponse, frame, version, change)
                got = rewrite_describe_cluster(frame, version, mapper().mapping())
                self.assertEqual(got, expected, f"v{version}")

    def test_find_coordinator_equals_full_rewrite(self) -> None:
        """FindCoordinator: every version, single and batched."""
        for version in range(FindCoordinatorResponse.max_version + 1):
            frame = find_coordinator_response(version, node_id=2)
            if version >= 3:
                frame = with_unknown_tags(
                    FindCoordinatorResponse,
                    frame,
                    version,
                    (lambda m: m.coordinators) if version >= 4 else (lambda m: []),
                )

            def change(message: Any, version: int = version) -> None:
                items = message.coordinators if version >= 4 else [message]
                for item in items:
                    if item.node_id in IN_PLAN:
                        item.host, item.port = GATEWAY_HOST, gateway_port(item.node_id)
                    elif item.node_id >= 0:
                        item.error_code = ErrorCode.COORDINATOR_NOT_AVAILABLE
                        item.node_id, item.host, item.port = -1, "", -1

            expected = _full_rewrite(FindCoordinatorResponse, frame, version, change)
            got = rewrite_find_coordinator(frame, version, mapper().mapping())
            self.assertEqual(got, expected, f"v{version}")

    def test_addresses_are_all_in_the_decoded_fields(self) -> None:
        """
        Every broker address of these responses lies in the fields decoded
        (Metadata: C{brokers} only, v0-13; no KIP-951 tagged endpoints), so
        the bytes passed on carry none.
        """
        for cls in (MetadataResponse, FindCoordinatorResponse, DescribeClusterResponse):
            for version in range(cls.max_version + 1):
                decoded = {field.name for field in address_fields(cls, version)}
                ports = [p for p in field_paths(cls, version) if p.rsplit(".", 1)[-1] == "port"]
                self.assertTrue(ports, f"{cls.name} v{version}")
                for path in ports:
                    self.assertIn(path.split(".", 1)[0], decoded, f"{cls.name} v{version}")
                self.assertEqual(tagged_address_fields(cls, version), [], f"{cls.name} v{version}")
        for version in range(MetadataResponse.max_version + 1):
            ports = [p for p in field_paths(MetadataResponse, version) if p.endswith("port")]
            self.assertEqual(ports, ["brokers.port"], f"v{version}")
            self.assertEqual(address_fields(MetadataResponse, version)[-1].name, "brokers")

    def test_truncated_brokers_fail(self) -> None:
        """A frame cut inside the broker list is an error for the relay, not a guess."""
        frame = metadata_response(12)
        with self.assertRaises(ValueError):
            rewrite_metadata(frame[:30], 12, mapper().mapping())


class FindCoordinatorTests(RewriteTestCase):
    """L{rewrite_find_coordinator}, every version."""

    def test_single_coordinator(self) -> None:
        """v0-3: the coordinator on the plan gets a gateway address."""
        for version in range(4):
            frame = find_coordinator_response(version, node_id=2)
            expected = self.expected(FindCoordinatorResponse, frame, version)
            expected.host, expected.port = GATEWAY_HOST, gateway_port(2)
            got = self.rewritten(rewrite_find_coordinator, FindCoordinatorResponse, frame, version)
            self.assertEqual(got, expected, f"v{version}")
            self.assertEqual((got.node_id, got.error_code), (2, 0))

    def test_single_coordinator_off_plan(self) -> None:
        """v0-3: a coordinator without a gateway port becomes COORDINATOR_NOT_AVAILABLE."""
        for version in range(4):
            frame = find_coordinator_response(version, node_id=OFF_PLAN)
            got = self.rewritten(rewrite_find_coordinator, FindCoordinatorResponse, frame, version)
            self.assertEqual(
                (got.error_code, got.node_id, got.host, got.port),
                (ErrorCode.COORDINATOR_NOT_AVAILABLE, -1, "", -1),
                f"v{version}",
            )
            if version >= 1:
                self.assertEqual(got.throttle_time_ms, 11)

    def test_single_coordinator_none(self) -> None:
        """v0-3: node id -1 (no coordinator yet) is passed on as the broker said."""
        for version in range(4):
            frame = find_coordinator_response(
                version, node_id=-1, error_code=ErrorCode.COORDINATOR_NOT_AVAILABLE
            )
            expected = self.expected(FindCoordinatorResponse, frame, version)
            got = self.rewritten(rewrite_find_coordinator, FindCoordinatorResponse, frame, version)
            self.assertEqual(got, expected, f"v{version}")
            self.assertEqual((got.node_id, got.error_code), (-1, 15))

    def test_batched_coordinators(self) -> None:
        """v4+: each coordinator is rewritten; -1 is left alone; off the plan is error 15."""
        self.assertEqual(ErrorCode.COORDINATOR_NOT_AVAILABLE, 15)
        for version in range(4, FindCoordinatorResponse.max_version + 1):
            frame = find_coordinator_response(version)
            expected = self.expected(FindCoordinatorResponse, frame, version)
            a, b, c, d = expected.coordinators
            a.host, a.port = GATEWAY_HOST, gateway_port(1)
            b.error_code, b.node_id, b.host, b.port = (
                ErrorCode.COORDINATOR_NOT_AVAILABLE,
                -1,
                "",
                -1,
            )
            d.host, d.port = GATEWAY_HOST, gateway_port(3)
            got = self.rewritten(rewrite_find_coordinator, FindCoordinatorResponse, frame, version)
            self.assertEqual(got, expected, f"v{version}")
            self.assertEqual(
                [(x.key, x.node_id, x.error_code) for x in got.coordinators],
                [("group-a", 1, 0), ("group-b", -1, 15), ("group-c", -1, 15), ("group-d", 3, 0)],
            )
            self.assertEqual(got.coordinators[2].error_message, "loading")
        self.assertEqual(FindCoordinatorResponse.max_version, 6)

    def test_unknown_tags(self) -> None:
        """v3 keeps a top-level unknown tag; v4+ also one in each coordinator."""
        self.assertTagsSurvive(
            rewrite_find_coordinator,
            FindCoordinatorResponse,
            find_coordinator_response(3, node_id=1),
            3,
            lambda m: [],
            expect_nested=0,
        )
        for version in range(4, FindCoordinatorResponse.max_version + 1):
            self.assertTagsSurvive(
                rewrite_find_coordinator,
                FindCoordinatorResponse,
                find_coordinator_response(version),
                version,
                lambda m: m.coordinators,
                expect_nested=4,
            )


class DescribeClusterTests(RewriteTestCase):
    """L{rewrite_describe_cluster}, every version."""

    def test_every_version(self) -> None:
        """Brokers on the plan get gateway addresses, broker 7 is left out."""
        for version in range(DescribeClusterResponse.max_version + 1):
            frame = describe_cluster_response(version)
            expected = self.expected(DescribeClusterResponse, frame, version)
            expected.brokers = _at_gateway(expected.brokers, "broker_id")
            got = self.rewritten(rewrite_describe_cluster, DescribeClusterResponse, frame, version)
            self.assertEqual(got, expected, f"v{version}")
            self.assertEqual([b.broker_id for b in got.brokers], [1, 2])
            self.assertEqual(
                (got.cluster_id, got.controller_id, got.throttle_time_ms, got.error_code),
                ("cluster-A", OFF_PLAN, 13, 0),
            )
            self.assertEqual(got.authorized_operations, {1, 3})
            if version >= 2:
                self.assertEqual([b.is_fenced for b in got.brokers], [False, True])
        self.assertEqual(DescribeClusterResponse.max_version, 2)

    def test_unknown_tags(self) -> None:
        """Every version is flexible: top level and broker tags survive."""
        for version in range(DescribeClusterResponse.max_version + 1):
            self.assertTagsSurvive(
                rewrite_describe_cluster,
                DescribeClusterResponse,
                describe_cluster_response(version),
                version,
                lambda m: m.brokers,
                expect_nested=2,
            )


class ApiVersionsTests(RewriteTestCase):
    """L{rewrite_api_versions}: only what both the broker and the review allow."""

    #: A broker that knows more than the gateway reviewed, and some keys it refused.
    BROKER_KEYS = [(key, 0, 20) for key in range(0, 81)] + [(1000, 0, 1)]

    def test_every_version(self) -> None:
        """Every key kept is reviewed, capped at its reviewed version; the rest are gone."""
        for version in range(ApiVersionsResponse.max_version + 1):
            frame = api_versions_response(version, self.BROKER_KEYS)
            got = self.rewritten(rewrite_api_versions, ApiVersionsResponse, frame, version)
            offered = {a.api_key: (a.min_version, a.max_version) for a in got.api_keys}
            self.assertEqual(
                offered, {key: (0, review.max_version) for key, review in REVIEWED.items()}
            )
            for refused in (76, 77, 78, 79, 80, 1000):
                self.assertNotIn(refused, offered)
            self.assertEqual(offered[55], (0, 1))
            self.assertEqual(got.error_code, 0)
            if version >= 1:
                self.assertEqual(got.throttle_time_ms, 21)
            if version >= 3:
                self.assertEqual(got.finalized_features_epoch, 77)
                self.assertEqual([f.name for f in got.supported_features], ["metadata.version"])
                self.assertEqual(got.finalized_features[0].max_version_level, 20)
        self.assertEqual(ApiVersionsResponse.max_version, 4)

    def test_broker_ranges_are_intersected(self) -> None:
        """A broker lower than the review keeps its range; a range above it is removed."""
        keys = [(3, 1, 9), (0, 3, 15), (2, 12, 14), (18, 0, 3)]
        for version in range(ApiVersionsResponse.max_version + 1):
            frame = api_versions_response(version, keys)
            got = self.rewritten(rewrite_api_versions, ApiVersionsResponse, frame, version)
            self.assertEqual(
                [(a.api_key, a.min_version, a.max_version) for a in got.api_keys],
                [(3, 1, 9), (0, 3, 13), (18, 0, 3)],
            )

    def test_header_is_never_flexible(self) -> None:
        """ApiVersions responses use header v0 even at flexible versions."""
        frame = api_versions_response(4, [(18, 0, 4)])
        out = rewrite_api_versions(frame, 4, mapper().mapping())
        # Correlation id, then straight into error_code (no header tag byte).
        self.assertEqual(out[4:8], CORRELATION_ID.to_bytes(4, "big"))
        self.assertEqual(out[8:10], b"\x00\x00")

    def test_error_answer_stays_v0(self) -> None:
        """A broker's UNSUPPORTED_VERSION answer is a v0 body, whatever was asked."""
        frame = api_versions_response(
            0, [(18, 0, 5), (78, 0, 1)], error_code=ErrorCode.UNSUPPORTED_VERSION
        )
        for asked in range(ApiVersionsResponse.max_version + 1):
            out = rewrite_api_versions(frame, asked, mapper().mapping())
            got = decode_frame(ApiVersionsResponse, out, asked)
            self.assertEqual(got.version, 0)
            self.assertEqual(got.error_code, 35)
            self.assertEqual(got.header.correlation_id, CORRELATION_ID)
            self.assertEqual(
                [(a.api_key, a.min_version, a.max_version) for a in got.api_keys],
                [(18, 0, REVIEWED[ApiKey.ApiVersions].max_version)],
            )
            self.assertEqual(len(out), 4 + 4 + 2 + 4 + 6)

    def test_invalid_request_passes_as_sent(self) -> None:
        """
        INVALID_REQUEST (a bad client software name) is encoded at the version
        asked, not v0: it goes on as the very same bytes, so the client reads
        the broker's error instead of losing the connection.
        """
        for version in range(ApiVersionsResponse.max_version + 1):
            frame = api_versions_response(version, [], error_code=ErrorCode.INVALID_REQUEST)
            self.assertIs(rewrite_api_versions(frame, version, mapper().mapping()), frame)
        self.assertEqual(ErrorCode.INVALID_REQUEST, 42)

    def test_unknown_tags(self) -> None:
        """Flexible versions keep unknown tags: top level, api key and feature entries."""
        for version in range(3, ApiVersionsResponse.max_version + 1):
            self.assertTagsSurvive(
                rewrite_api_versions,
                ApiVersionsResponse,
                api_versions_response(version, [(3, 0, 13), (78, 0, 1), (18, 0, 4)]),
                version,
                lambda m: [*m.api_keys, *m.supported_features],
                expect_nested=2 + 1,
            )
