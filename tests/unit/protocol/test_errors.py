"""Tests for L{kgateway.protocol.errors}."""

from __future__ import annotations

from typing import Any

from kafka.protocol.admin import DescribeClusterResponse, ListGroupsResponse
from kafka.protocol.api_key import ApiKey
from kafka.protocol.consumer import FetchResponse, JoinGroupResponse, SyncGroupResponse
from kafka.protocol.metadata import ApiVersionsResponse, FindCoordinatorResponse, MetadataResponse
from twisted.trial.unittest import SynchronousTestCase

from kgateway.protocol.codec import response_class
from kgateway.protocol.error_codes import ErrorCode
from kgateway.protocol.errors import CannotAnswer, unsupported_version
from kgateway.protocol.versions import REVIEWED

from .builders import decode_frame


class ApiVersionsErrorTests(SynchronousTestCase):
    """ApiVersions above the offered version gets what a broker sends."""

    def test_v0_error_body(self) -> None:
        """A v0 body with error 35 listing ApiVersions' own range, header v0."""
        for asked in (5, 9, 127):
            out = unsupported_version(ApiKey.ApiVersions, asked, correlation_id=41)
            self.assertEqual(out[4:8], (41).to_bytes(4, "big"))
            # A v0 body however the client reads it (the codec switches on the error).
            for version in (0, 3, 4):
                message = decode_frame(ApiVersionsResponse, out, version)
                self.assertEqual(message.version, 0)
                self.assertEqual(message.error_code, ErrorCode.UNSUPPORTED_VERSION)
                self.assertEqual(message.header.correlation_id, 41)
                self.assertEqual(
                    [(a.api_key, a.min_version, a.max_version) for a in message.api_keys],
                    [(18, 0, REVIEWED[ApiKey.ApiVersions].max_version)],
                )
        self.assertEqual(ErrorCode.UNSUPPORTED_VERSION, 35)


class TopLevelErrorCodeTests(SynchronousTestCase):
    """APIs with a top-level error code get their own response, with error 35."""

    def assertAnswered(self, cls: Any, version: int) -> None:
        api_key = cls.API_KEY
        out = unsupported_version(api_key, version, correlation_id=-5)
        message = decode_frame(cls, out, version)
        self.assertEqual(message.error_code, ErrorCode.UNSUPPORTED_VERSION, f"{api_key} v{version}")
        self.assertEqual(message.header.correlation_id, -5)
        self.assertEqual(message.version, version)

    def test_group_apis(self) -> None:
        """JoinGroup, SyncGroup and ListGroups, every version the codec knows."""
        for cls in (JoinGroupResponse, SyncGroupResponse, ListGroupsResponse):
            for version in range(cls.max_version + 1):
                self.assertAnswered(cls, version)

    def test_describe_cluster(self) -> None:
        """DescribeCluster, every version."""
        for version in range(DescribeClusterResponse.max_version + 1):
            self.assertAnswered(DescribeClusterResponse, version)

    def test_versions_with_the_field(self) -> None:
        """Where the field came or went, the versions that have it are answered."""
        self.assertAnswered(MetadataResponse, 13)
        for version in range(4):
            self.assertAnswered(FindCoordinatorResponse, version)
        for version in range(7, FetchResponse.max_version + 1):
            self.assertAnswered(FetchResponse, version)

    def test_describe_quorum_above_the_cap(self) -> None:
        """DescribeQuorum v2, known to the codec but not offered, is answered."""
        cls = response_class(ApiKey.DescribeQuorum)
        self.assertFalse(REVIEWED[ApiKey.DescribeQuorum].max_version >= 2)
        self.assertAnswered(cls, 2)


class CannotAnswerTests(SynchronousTestCase):
    """Where no honest error response can be built, L{CannotAnswer} says so."""

    def test_no_top_level_error_code(self) -> None:
        """Produce has no top-level error code in any version."""
        for version in range(14):
            error = self.assertRaises(CannotAnswer, unsupported_version, ApiKey.Produce, version, 1)
            self.assertIn("ProduceResponse", str(error))

    def test_error_code_not_in_this_version(self) -> None:
        """
        A field added or removed in another version does not count.

        Metadata has a top-level error code only from v13, FindCoordinator only up
        to v3, Fetch from v7: a response built without it would read as success.
        """
        for version in range(13):
            self.assertRaises(CannotAnswer, unsupported_version, ApiKey.Metadata, version, 1)
        for version in range(4, FindCoordinatorResponse.max_version + 1):
            self.assertRaises(CannotAnswer, unsupported_version, ApiKey.FindCoordinator, version, 1)
        for version in range(7):
            self.assertRaises(CannotAnswer, unsupported_version, ApiKey.Fetch, version, 1)

    def test_unknown_to_the_codec(self) -> None:
        """An API kafka-python does not describe cannot be answered."""
        for key in (38, 68, 78, 999):
            error = self.assertRaises(CannotAnswer, unsupported_version, key, 0, 1)
            self.assertIn(f"api key {key} v0", str(error))

    def test_version_unknown_to_the_codec(self) -> None:
        """A version above what kafka-python describes cannot be answered."""
        error = self.assertRaises(
            CannotAnswer, unsupported_version, 11, JoinGroupResponse.max_version + 1, 1
        )
        self.assertIn(f"api key 11 v{JoinGroupResponse.max_version + 1}", str(error))
