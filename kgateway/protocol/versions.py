"""
Which API versions the gateway offers clients, and why.

The gateway must never pass on a response that carries a broker address it
did not rewrite.  So it offers an API version only when someone has reviewed
that version: C{REVIEWED} lists, per API key, the highest version reviewed and
whether its responses carry broker addresses (those the gateway rewrites).
Everything else is removed from ApiVersions.  A test compares this table with
the installed kafka-python, so a codec that learns a new version is a visible
decision rather than a silent change of what clients may send.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum


class Handling(Enum):
    """What the gateway does with responses of an API."""

    FORWARD = "forwarded as the bytes that arrived"
    REWRITE = "decoded and rewritten: carries broker addresses"


@dataclass(frozen=True, slots=True)
class Review:
    """The outcome of reviewing one API key."""

    name: str
    max_version: int
    handling: Handling = Handling.FORWARD
    # Whether kafka-python describes the API, so that the gateway can build an
    # error response for it.  APIs it does not describe are still relayed.
    in_codec: bool = True
    note: str = ""


F, R = Handling.FORWARD, Handling.REWRITE

REVIEWED: dict[int, Review] = {
    0: Review("Produce", 13, R, note="v10+ node_endpoints (KIP-951)"),
    1: Review("Fetch", 18, R, note="v16+ node_endpoints (KIP-951)"),
    2: Review("ListOffsets", 11),
    3: Review("Metadata", 13, R, note="brokers[].host/port"),
    8: Review("OffsetCommit", 10),
    9: Review("OffsetFetch", 10),
    10: Review("FindCoordinator", 6, R, note="host/port; v4+ coordinators[]"),
    11: Review("JoinGroup", 9),
    12: Review("Heartbeat", 4),
    13: Review("LeaveGroup", 5),
    14: Review("SyncGroup", 5),
    15: Review("DescribeGroups", 6),
    16: Review("ListGroups", 5),
    17: Review("SaslHandshake", 1),
    18: Review("ApiVersions", 4, R, note="intersected with this table"),
    19: Review("CreateTopics", 7),
    20: Review("DeleteTopics", 6),
    21: Review("DeleteRecords", 2),
    22: Review("InitProducerId", 6),
    23: Review("OffsetForLeaderEpoch", 4),
    24: Review("AddPartitionsToTxn", 5),
    25: Review("AddOffsetsToTxn", 4),
    26: Review("EndTxn", 5),
    27: Review("WriteTxnMarkers", 2),
    28: Review("TxnOffsetCommit", 5),
    29: Review("DescribeAcls", 3),
    30: Review("CreateAcls", 3),
    31: Review("DeleteAcls", 3),
    32: Review("DescribeConfigs", 4),
    33: Review("AlterConfigs", 2),
    34: Review("AlterReplicaLogDirs", 2),
    35: Review("DescribeLogDirs", 5),
    36: Review("SaslAuthenticate", 2),
    37: Review("CreatePartitions", 3),
    38: Review("CreateDelegationToken", 3, in_codec=False),
    39: Review("RenewDelegationToken", 2, in_codec=False),
    40: Review("ExpireDelegationToken", 2, in_codec=False),
    41: Review("DescribeDelegationToken", 3, in_codec=False),
    42: Review("DeleteGroups", 2),
    43: Review("ElectLeaders", 2),
    44: Review("IncrementalAlterConfigs", 1),
    45: Review("AlterPartitionReassignments", 1),
    46: Review("ListPartitionReassignments", 0),
    47: Review("OffsetDelete", 0),
    48: Review("DescribeClientQuotas", 1),
    49: Review("AlterClientQuotas", 1),
    50: Review("DescribeUserScramCredentials", 0),
    51: Review("AlterUserScramCredentials", 0),
    # v2 adds nodes[].listeners (controller addresses), which the gateway
    # does not rewrite: capped below it.
    55: Review("DescribeQuorum", 1, note="capped: v2 carries controller listeners"),
    57: Review("UpdateFeatures", 2),
    60: Review("DescribeCluster", 2, R, note="brokers[].host/port"),
    61: Review("DescribeProducers", 0),
    65: Review("DescribeTransactions", 0),
    66: Review("ListTransactions", 2),
    68: Review("ConsumerGroupHeartbeat", 1, in_codec=False, note="KIP-848; no addresses"),
    69: Review("ConsumerGroupDescribe", 1, in_codec=False, note="KIP-848; no addresses"),
    71: Review("GetTelemetrySubscriptions", 0, in_codec=False),
    72: Review("PushTelemetry", 0, in_codec=False),
    74: Review("ListConfigResources", 1),
    75: Review("DescribeTopicPartitions", 0),
}

# Reviewed and refused: they carry addresses the gateway does not rewrite, or
# they only make sense with one that does.  Listed so that the review test
# sees them as decided.
REFUSED: dict[int, str] = {
    76: "ShareGroupHeartbeat: share groups need ShareFetch",
    77: "ShareGroupDescribe: share groups need ShareFetch",
    78: "ShareFetch: node_endpoints not rewritten",
    79: "ShareAcknowledge: node_endpoints not rewritten",
}

#: The version the codec knew for each key when the table was last reviewed.
CODEC_VERSIONS_REVIEWED: dict[int, int] = {
    key: review.max_version for key, review in REVIEWED.items() if review.in_codec
}
CODEC_VERSIONS_REVIEWED[55] = 2


@dataclass(frozen=True, slots=True)
class VersionRange:
    """An API key and the versions offered for it."""

    api_key: int
    min_version: int
    max_version: int


def offered_range(api_key: int, broker_min: int, broker_max: int) -> VersionRange | None:
    """Intersect a broker's range for one key with the reviewed table; None to remove it."""
    review = REVIEWED.get(api_key)
    if review is None:
        return None
    top = min(broker_max, review.max_version)
    if top < broker_min:
        return None
    return VersionRange(api_key, broker_min, top)


def is_offered(api_key: int, api_version: int) -> bool:
    """Whether a request of this key and version is within the reviewed table."""
    review = REVIEWED.get(api_key)
    return review is not None and api_version <= review.max_version
