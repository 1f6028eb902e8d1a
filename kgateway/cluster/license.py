"""
The license topic: every node keeps polling it, as the members of a consumer
group do, and holds its latest records in memory.

The topic is compacted with one partition; a record's key names an entry and
its value is the entry (a license, or any cluster-wide setting a later
feature stores there).  Membership creates it; this only reads it, with the
shared L{CompactedTopicReader}.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from twisted.internet.interfaces import IReactorTime

from kgateway.cluster.topics import CompactedTopicReader, LeaderFinder
from kgateway.net import Connector, HostPort


def license_topic_reader(
    topic: str,
    brokers: Callable[[], Sequence[HostPort]],
    connect: Connector,
    clock: IReactorTime,
    timeout_seconds: float = 10.0,
) -> CompactedTopicReader:
    """A reader of the license topic, polling every 5 s (a license changes rarely)."""
    return CompactedTopicReader(
        topic=topic,
        finder=LeaderFinder(brokers, connect, clock, timeout_seconds),
        clock=clock,
        interval_seconds=5.0,
        timeout_seconds=timeout_seconds,
        description="license topic",
    )
