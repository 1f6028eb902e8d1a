"""
DescribeConfigs answers without the cluster's addresses in config values.

A broker describes its own configuration, and some values name hosts of
the Kafka cluster: C{listeners}, C{advertised.listeners} and
C{controller.quorum.voters} on every broker (measured on Kafka 4.1 with
C{kafka-configs --entity-type brokers --describe --all}),
C{controller.quorum.bootstrap.servers} on clusters that use it, and older
or other brokers' C{zookeeper.connect}, C{advertised.host.name} and
C{host.name}.  Any C{*bootstrap.servers} and C{*.url} value (OAuth token and
key endpoints, a schema registry's) names a host too.  The gateway hides
every such value as Kafka hides a password: the value becomes null and the
entry is marked sensitive, in the entry and in its synonyms, so tools print
C{advertised.listeners=null sensitive=true}.  Rewriting them to gateway
addresses was the alternative; it was not taken because the gateway's
listeners are not the broker's (their names, protocols and count differ),
and the addresses clients should use are already in Metadata and
DescribeCluster.  Everything else goes on as the broker sent it; a
response with nothing to hide goes on as the bytes that arrived.
"""

from __future__ import annotations

from typing import Any

from kafka.protocol.admin import DescribeConfigsResponse

from kgateway.interfaces import IAddressMap
from kgateway.protocol.codec import decode_response, encode_response

#: Config names whose values name hosts of the cluster.
ADDRESS_CONFIGS = frozenset(
    {
        "listeners",
        "advertised.listeners",
        "controller.quorum.voters",
        "controller.quorum.bootstrap.servers",
        "zookeeper.connect",
        "advertised.host.name",
        "host.name",
    }
)

#: Endings of config names whose values name hosts (C{*bootstrap.servers}, C{*.url}).
ADDRESS_SUFFIXES = ("bootstrap.servers", ".url")


def carries_address(name: str | None) -> bool:
    """Whether a config called C{name} has a value that names a host."""
    if not name:
        return False
    return name in ADDRESS_CONFIGS or name.endswith(ADDRESS_SUFFIXES)


def _hide(entry: Any) -> bool:
    changed = False
    # An unset or empty value names no host: left as it is.
    if carries_address(entry.name) and entry.value:
        entry.value = None
        entry.is_sensitive = True
        changed = True
    for synonym in getattr(entry, "synonyms", None) or ():
        if carries_address(synonym.name) and synonym.value:
            synonym.value = None
            changed = True
    return changed


def rewrite_describe_configs(frame: bytes, version: int, mapping: IAddressMap) -> bytes:
    """DescribeConfigs: values that name the cluster's hosts become null and sensitive."""
    message = decode_response(DescribeConfigsResponse, frame, version)
    changed = False
    for result in message.results:
        for entry in result.configs or ():
            changed = _hide(entry) or changed
    if not changed:
        return frame
    return encode_response(message, message.header.correlation_id, version)
