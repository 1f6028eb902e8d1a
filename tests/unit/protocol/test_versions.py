"""
Tests for L{kgateway.protocol.versions}.

The first test is the review gate: it fails when the installed kafka-python
describes an API or version the gateway has not reviewed, and says what to
review.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import kafka
from kafka.protocol.api_key import ApiKey
from twisted.trial.unittest import SynchronousTestCase

from kgateway.protocol.codec import field_paths, response_class, response_classes
from kgateway.protocol.rewrite import REWRITERS
from kgateway.protocol.tail_rewrite import HINTED
from kgateway.protocol.versions import (
    CODEC_VERSIONS_REVIEWED,
    REFUSED,
    REVIEWED,
    REVIEWS,
    Review,
    VersionRange,
    is_offered,
    offered_range,
)

WHERE = "kgateway/protocol/versions.py"


def unreviewed(
    registry: Mapping[int, Any],
    reviewed: Mapping[int, Review],
    refused: Mapping[int, str],
    codec_versions: Mapping[int, int],
) -> list[str]:
    """One line per API key or version the codec knows and nobody reviewed."""
    problems = []
    for key, cls in sorted(registry.items()):
        name = cls.name.removesuffix("Response")
        if key in refused:
            continue
        if key not in reviewed:
            problems.append(
                f"{name} (key {key}) v0-{cls.max_version} is new in kafka-python: review whether "
                f"its responses carry broker addresses, then add it to REVIEWED or REFUSED "
                f"in {WHERE}"
            )
            continue
        known = codec_versions.get(key, -1)
        if known < cls.max_version:
            first = known + 1
            span = f"v{first}" if first == cls.max_version else f"v{first}-v{cls.max_version}"
            problems.append(
                f"{name} (key {key}): kafka-python describes up to v{cls.max_version}, the "
                f"review covered up to v{known}: review what {span} added for broker "
                f"addresses, then update REVIEWED and CODEC_VERSIONS_REVIEWED in {WHERE}"
            )
        elif known > cls.max_version:
            problems.append(
                f"{name} (key {key}): kafka-python describes only up to v{cls.max_version}, "
                f"below the reviewed v{known}: check REVIEWED and CODEC_VERSIONS_REVIEWED "
                f"in {WHERE} against the installed kafka-python"
            )
    return problems


class ReviewGateTests(SynchronousTestCase):
    """Every API and version the codec knows has been reviewed."""

    def test_installed_codec_is_reviewed(self) -> None:
        """
        The installed kafka-python knows no API or version the gateway has not reviewed.

        When this fails after upgrading kafka-python, the message names what to review.
        """
        registry = response_classes()
        self.assertGreater(len(registry), 40, "the kafka.protocol packages were not imported")
        problems = unreviewed(registry, REVIEWED, REFUSED, CODEC_VERSIONS_REVIEWED)
        if problems:
            self.fail(
                f"kafka-python {kafka.__version__} knows protocol versions the gateway has not "
                "reviewed:\n  " + "\n  ".join(problems)
            )

    def test_gate_names_a_new_version(self) -> None:
        """A codec that learned a version makes the gate say which one to review."""

        class Newer:
            name = "MetadataResponse"
            max_version = 14

        problems = unreviewed({3: Newer}, REVIEWED, REFUSED, CODEC_VERSIONS_REVIEWED)
        self.assertEqual(len(problems), 1)
        self.assertIn("Metadata (key 3)", problems[0])
        self.assertIn("up to v14", problems[0])
        self.assertIn("review what v14 added", problems[0])
        self.assertIn(WHERE, problems[0])

    def test_gate_names_several_new_versions(self) -> None:
        """Two new versions are named as a span."""

        class Newer:
            name = "FetchResponse"
            max_version = 20

        (problem,) = unreviewed({1: Newer}, REVIEWED, REFUSED, CODEC_VERSIONS_REVIEWED)
        self.assertIn("review what v19-v20 added", problem)

    def test_gate_notices_an_older_codec(self) -> None:
        """A codec older than the review is reported too: the table no longer matches it."""

        class Older:
            name = "FetchResponse"
            max_version = 17

        (problem,) = unreviewed({1: Older}, REVIEWED, REFUSED, CODEC_VERSIONS_REVIEWED)
        self.assertIn("only up to v17, below the reviewed v18", problem)

    def test_gate_names_a_new_api(self) -> None:
        """A codec that learned an API makes the gate name it."""

        class Unheard:
            name = "ShinyNewThingResponse"
            max_version = 2

        problems = unreviewed({90: Unheard}, REVIEWED, REFUSED, CODEC_VERSIONS_REVIEWED)
        self.assertEqual(len(problems), 1)
        self.assertIn("ShinyNewThing (key 90) v0-2 is new", problems[0])
        self.assertIn("REVIEWED or REFUSED", problems[0])

    def test_refused_keys_pass_the_gate(self) -> None:
        """A refused key is a decision, whatever its version."""

        class ShareFetch:
            name = "ShareFetchResponse"
            max_version = 9

        self.assertEqual(unreviewed({78: ShareFetch}, REVIEWED, REFUSED, {}), [])

    def test_codec_versions_cover_the_codec(self) -> None:
        """A key said to be in the codec is in it, and no other reviewed key is."""
        registry = response_classes()
        for key, review in REVIEWED.items():
            self.assertEqual(key in registry, review.in_codec, f"{review.name} (key {key})")
            self.assertEqual(key in CODEC_VERSIONS_REVIEWED, review.in_codec, review.name)
            if review.in_codec:
                self.assertEqual(registry[key].name, review.name + "Response")
                self.assertLessEqual(review.max_version, registry[key].max_version, review.name)

    def test_one_row_per_api(self) -> None:
        """No API is reviewed twice (a second row would silently win)."""
        self.assertEqual(len(REVIEWED), len(REVIEWS))

    def test_reviewed_and_refused_are_apart(self) -> None:
        """No key is both offered and refused."""
        self.assertEqual(set(REVIEWED) & set(REFUSED), set())


def address_versions(cls: Any, versions: range) -> list[int]:
    """
    The versions of response class C{cls} that carry a broker address.

    A broker address is a C{port} field anywhere in the response (a host
    alone, as in the ACL APIs, is a client's address, not a broker's).
    """
    return [
        version
        for version in versions
        if any(path.rsplit(".", 1)[-1] == "port" for path in field_paths(cls, version))
    ]


class AddressCarryingTests(SynchronousTestCase):
    """APIs whose responses carry broker addresses are rewritten or not offered."""

    def test_address_versions(self) -> None:
        """The schema walk finds the addresses where they are, and only there."""
        metadata = response_class(ApiKey.Metadata)
        self.assertEqual(address_versions(metadata, range(14)), list(range(14)))
        self.assertEqual(
            address_versions(response_class(ApiKey.Produce), range(14)), [10, 11, 12, 13]
        )
        self.assertEqual(address_versions(response_class(ApiKey.DescribeQuorum), range(3)), [2])
        self.assertEqual(address_versions(response_class(ApiKey.DescribeAcls), range(4)), [])

    def test_offered_addresses_are_rewritten(self) -> None:
        """Every API offered at a version whose responses carry a broker address has a rewriter."""
        for key, review in REVIEWED.items():
            if not review.in_codec:
                continue
            offered = range(review.max_version + 1)
            versions = address_versions(response_class(key), offered)
            if not versions:
                continue
            hints = HINTED.get(key)
            if hints is not None:
                # Leader hints only: rewritten from the version that has them.
                self.assertEqual(min(versions), hints.first_version, review.name)
            else:
                self.assertIn(key, REWRITERS, f"{review.name} carries broker addresses")

    def test_rewriters_have_a_reason(self) -> None:
        """Each rewriter is for an offered API with broker addresses, or ApiVersions."""
        for key in REWRITERS:
            review = REVIEWED[key]
            if key == ApiKey.ApiVersions:
                continue  # rewritten to offer only this table
            if key == ApiKey.DescribeConfigs:
                continue  # its addresses are in config values, not host/port fields
            offered = range(review.max_version + 1)
            self.assertNotEqual(
                address_versions(response_class(key), offered), [], f"{review.name} has none"
            )

    def test_rewriters_keyed_by_the_wire_ints(self) -> None:
        """The data path looks a frame's plain int key up: the tables are keyed by plain ints."""
        for table in (REVIEWED, REWRITERS, HINTED):
            self.assertEqual({type(key) for key in table}, {int})

    def test_describe_quorum_capped(self) -> None:
        """DescribeQuorum v2 carries controller listeners: it is not offered."""
        self.assertEqual(ApiKey.DescribeQuorum, 55)
        self.assertLess(REVIEWED[55].max_version, 2)
        self.assertEqual(CODEC_VERSIONS_REVIEWED[55], 2)
        self.assertTrue(is_offered(55, 1))
        self.assertFalse(is_offered(55, 2))
        self.assertEqual(offered_range(55, 0, 2), VersionRange(55, 0, 1))

    def test_share_apis_never_offered(self) -> None:
        """ShareFetch and ShareAcknowledge (and share groups) are refused."""
        for key in (76, 77, 78, 79):
            self.assertIn(key, REFUSED)
            self.assertNotIn(key, REVIEWED)
            self.assertIsNone(offered_range(key, 0, 1))
            self.assertFalse(is_offered(key, 0))

    def test_unknown_keys_never_offered(self) -> None:
        """A key nobody reviewed is neither offered nor accepted."""
        for key in (4, 5, 6, 7, 52, 67, 80, 1000, 32767):
            self.assertIsNone(offered_range(key, 0, 5), key)
            self.assertFalse(is_offered(key, 0), key)


class OfferedRangeTests(SynchronousTestCase):
    """L{offered_range} intersects a broker's range with the review."""

    def test_broker_lower(self) -> None:
        """A broker below the review keeps its own range."""
        self.assertEqual(offered_range(3, 0, 9), VersionRange(3, 0, 9))
        self.assertEqual(offered_range(0, 3, 8), VersionRange(0, 3, 8))

    def test_reviewed_lower(self) -> None:
        """A broker above the review is capped at the reviewed version."""
        self.assertEqual(offered_range(3, 0, 99), VersionRange(3, 0, REVIEWED[3].max_version))
        self.assertEqual(offered_range(1, 4, 18), VersionRange(1, 4, 18))
        self.assertEqual(offered_range(1, 4, 19), VersionRange(1, 4, 18))

    def test_equal(self) -> None:
        """A broker exactly at the review is offered as is."""
        self.assertEqual(offered_range(18, 0, 4), VersionRange(18, 0, 4))

    def test_single_version_overlap(self) -> None:
        """The broker's lowest version equal to the reviewed top leaves one version."""
        self.assertEqual(offered_range(3, 13, 20), VersionRange(3, 13, 13))

    def test_empty_intersection(self) -> None:
        """A broker whose lowest version is above the review loses the key."""
        self.assertIsNone(offered_range(3, 14, 20))
        self.assertIsNone(offered_range(46, 1, 1))

    def test_is_offered(self) -> None:
        """A request is accepted up to the reviewed version."""
        for key, review in REVIEWED.items():
            self.assertTrue(is_offered(key, 0), review.name)
            self.assertTrue(is_offered(key, review.max_version), review.name)
            self.assertFalse(is_offered(key, review.max_version + 1), review.name)
