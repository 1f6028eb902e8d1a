"""
The license topic: every node keeps polling it, as the members of a consumer
group do, and holds its latest records in memory.

The topic is compacted with one partition; a record's key names an entry and
its value is the entry.  Membership creates it (it is the topic the gateway
group subscribes to); this only reads it, with the shared
L{CompactedTopicReader}.

Nothing reads the reader's C{entries} yet: no feature checks a license
today.  The topic and its reader are part of the product (a node that
cannot read it says so in its log), so the reader runs, and the first
feature that needs a cluster-wide setting reads it here.
"""

from __future__ import annotations

from kgateway.cluster.link import KafkaLink
from kgateway.cluster.topics import CompactedTopicReader, LeaderFinder


def license_topic_reader(topic: str, link: KafkaLink) -> CompactedTopicReader:
    """A reader of the license topic, polling every 5 s (a license changes rarely)."""
    return CompactedTopicReader(
        topic=topic,
        finder=LeaderFinder(link),
        interval_seconds=5.0,
        description="license topic",
    )
