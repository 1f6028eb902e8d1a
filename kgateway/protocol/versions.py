"""
Which API versions the gateway offers clients, and why.

The gateway must never pass on a response that carries a broker address it
did not rewrite.  So it offers an API version only when someone has reviewed
that version: C{REVIEWED} lists, per API, the highest version reviewed and
what the review found.  Everything else is removed from ApiVersions.  A test
compares this table with the installed kafka-python, so a codec that learns a
new version is a visible decision rather than a silent change of what
clients may send.

Which APIs are rewritten is said once, by L{kgateway.protocol.rewrite.REWRITERS}:
that module imports this one (its ApiVersions rewriter offers what this table
allows), so the table cannot name the rewriters itself.
"""

from __future__ import annotations

from dataclasses import dataclass

from kafka.protocol.api_key import ApiKey


@dataclass(frozen=True, slots=True)
class Review:
    """The outcome of reviewing one API key."""

    api: ApiKey
    max_version: int
    # Whether kafka-python describes the API, so that the gateway can build an
    # error response for it.  APIs it does not describe are still relayed.
    in_codec: bool = True
    note: str = ""

    @property
    def name(self) -> str:
        """The API's name, as Kafka spells it (C{Metadata})."""
        return str(self.api.name)


#: One row per reviewed API.
REVIEWS: tuple[Review, ...] = (
    Review(ApiKey.Produce, 13, note="addresses: v10+ node_endpoints (KIP-951)"),
    Review(ApiKey.Fetch, 18, note="addresses: v16+ node_endpoints (KIP-951)"),
    Review(ApiKey.ListOffsets, 11),
    Review(ApiKey.Metadata, 13, note="addresses: brokers[].host/port"),
    Review(ApiKey.OffsetCommit, 10),
    Review(ApiKey.OffsetFetch, 10),
    Review(ApiKey.FindCoordinator, 6, note="addresses: host/port; v4+ coordinators[]"),
    Review(ApiKey.JoinGroup, 9),
    Review(ApiKey.Heartbeat, 4),
    Review(ApiKey.LeaveGroup, 5),
    Review(ApiKey.SyncGroup, 5),
    Review(ApiKey.DescribeGroups, 6),
    Review(ApiKey.ListGroups, 5),
    Review(ApiKey.SaslHandshake, 1),
    Review(ApiKey.ApiVersions, 4, note="intersected with this table"),
    Review(ApiKey.CreateTopics, 7),
    Review(ApiKey.DeleteTopics, 6),
    Review(ApiKey.DeleteRecords, 2),
    Review(ApiKey.InitProducerId, 6),
    Review(ApiKey.OffsetForLeaderEpoch, 4),
    Review(ApiKey.AddPartitionsToTxn, 5),
    Review(ApiKey.AddOffsetsToTxn, 4),
    Review(ApiKey.EndTxn, 5),
    Review(ApiKey.WriteTxnMarkers, 2),
    Review(ApiKey.TxnOffsetCommit, 5),
    Review(ApiKey.DescribeAcls, 3),
    Review(ApiKey.CreateAcls, 3),
    Review(ApiKey.DeleteAcls, 3),
    Review(ApiKey.DescribeConfigs, 4, note="addresses in values: hidden (config_rewrite)"),
    Review(ApiKey.AlterConfigs, 2),
    Review(ApiKey.AlterReplicaLogDirs, 2),
    Review(ApiKey.DescribeLogDirs, 5),
    Review(ApiKey.SaslAuthenticate, 2),
    Review(ApiKey.CreatePartitions, 3),
    Review(ApiKey.CreateDelegationToken, 3, in_codec=False),
    Review(ApiKey.RenewDelegationToken, 2, in_codec=False),
    Review(ApiKey.ExpireDelegationToken, 2, in_codec=False),
    Review(ApiKey.DescribeDelegationToken, 3, in_codec=False),
    Review(ApiKey.DeleteGroups, 2),
    Review(ApiKey.ElectLeaders, 2),
    Review(ApiKey.IncrementalAlterConfigs, 1),
    Review(ApiKey.AlterPartitionReassignments, 1),
    Review(ApiKey.ListPartitionReassignments, 0),
    Review(ApiKey.OffsetDelete, 0),
    Review(ApiKey.DescribeClientQuotas, 1),
    Review(ApiKey.AlterClientQuotas, 1),
    Review(ApiKey.DescribeUserScramCredentials, 0),
    Review(ApiKey.AlterUserScramCredentials, 0),
    # v2 adds nodes[].listeners (controller addresses), which the gateway
    # does not rewrite: capped below it.
    Review(ApiKey.DescribeQuorum, 1, note="capped: v2 carries controller listeners"),
    Review(ApiKey.UpdateFeatures, 2),
    Review(ApiKey.DescribeCluster, 2, note="addresses: brokers[].host/port"),
    Review(ApiKey.DescribeProducers, 0),
    Review(ApiKey.DescribeTransactions, 0),
    Review(ApiKey.ListTransactions, 2),
    Review(ApiKey.ConsumerGroupHeartbeat, 1, in_codec=False, note="KIP-848; no addresses"),
    Review(ApiKey.ConsumerGroupDescribe, 1, in_codec=False, note="KIP-848; no addresses"),
    Review(ApiKey.GetTelemetrySubscriptions, 0, in_codec=False),
    Review(ApiKey.PushTelemetry, 0, in_codec=False),
    Review(ApiKey.ListConfigResources, 1),
    Review(ApiKey.DescribeTopicPartitions, 0),
)

#: The reviewed APIs by API key, a plain int: the data path looks up every request here.
REVIEWED: dict[int, Review] = {int(review.api): review for review in REVIEWS}

# Reviewed and refused: they carry addresses the gateway does not rewrite, or
# they only make sense with one that does.  Listed so that the review test
# sees them as decided.
REFUSED: dict[int, str] = {
    ApiKey.ShareGroupHeartbeat: "share groups need ShareFetch",
    ApiKey.ShareGroupDescribe: "share groups need ShareFetch",
    ApiKey.ShareFetch: "node_endpoints not rewritten",
    ApiKey.ShareAcknowledge: "node_endpoints not rewritten",
}

#: The version the codec knew for each key when the table was last reviewed.
CODEC_VERSIONS_REVIEWED: dict[int, int] = {
    key: review.max_version for key, review in REVIEWED.items() if review.in_codec
}
CODEC_VERSIONS_REVIEWED[ApiKey.DescribeQuorum] = 2


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
