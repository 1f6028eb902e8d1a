"""
Put gateway addresses where a response carries broker addresses.

One function per API, each given the framed response, its version and the
one L{IAddressMap} used for the whole response.  A broker with no gateway
address is left out rather than leaked.  Responses are re-encoded only when
something in them changed; otherwise the original bytes go on.

Metadata, FindCoordinator and DescribeCluster decode only their leading
fields, up to the last one that carries a broker address (the codec says
which from the schema: L{kgateway.protocol.codec.address_fields}); the
header and everything after those fields (a Metadata answer's topics and
partitions) go on as the bytes that arrived.  So a rewrite costs what the
cluster's brokers cost, not what its topics do: a Metadata answer for
100,000 topics is decoded as far as its broker list.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from kafka.protocol.admin import DescribeClusterResponse
from kafka.protocol.api_key import ApiKey
from kafka.protocol.metadata import ApiVersionsResponse, FindCoordinatorResponse, MetadataResponse

from kgateway.interfaces import IAddressMap
from kgateway.protocol.codec import (
    decode_fields,
    decode_leading,
    decode_response,
    encode_response,
    preserve_unknown_tags,
    response_class,
)
from kgateway.protocol.config_rewrite import rewrite_describe_configs
from kgateway.protocol.error_codes import ErrorCode
from kgateway.protocol.versions import offered_range

Rewriter = Callable[[bytes, int, IAddressMap], bytes]


def _reencode(message: Any, version: int) -> bytes:
    return encode_response(message, message.header.correlation_id, version)


def _point_at_gateway(items: list[Any], id_field: str, mapping: IAddressMap) -> list[Any]:
    kept = []
    for item in items:
        endpoint = mapping.address_for(getattr(item, id_field))
        if endpoint is not None:
            item.host, item.port = endpoint.host, endpoint.port
            kept.append(item)
    return kept


def rewrite_metadata(frame: bytes, version: int, mapping: IAddressMap) -> bytes:
    """Metadata: every broker in C{brokers} gets a gateway address; the topics go on as bytes."""
    leading = decode_leading(MetadataResponse, frame, version)
    leading.brokers = _point_at_gateway(leading.brokers, "node_id", mapping)
    return leading.splice()


def _coordinator_at_gateway(item: Any, mapping: IAddressMap) -> None:
    if item.node_id < 0:
        return
    endpoint = mapping.address_for(item.node_id)
    if endpoint is None:
        item.error_code = ErrorCode.COORDINATOR_NOT_AVAILABLE
        item.node_id, item.host, item.port = -1, "", -1
    else:
        item.host, item.port = endpoint.host, endpoint.port


def rewrite_find_coordinator(frame: bytes, version: int, mapping: IAddressMap) -> bytes:
    """FindCoordinator: the coordinator (v0-3) or each batched coordinator (v4+)."""
    leading = decode_leading(FindCoordinatorResponse, frame, version)
    if version < 4:
        _coordinator_at_gateway(leading, mapping)
    else:
        for coordinator in leading.coordinators:
            _coordinator_at_gateway(coordinator, mapping)
    return leading.splice()


def rewrite_describe_cluster(frame: bytes, version: int, mapping: IAddressMap) -> bytes:
    """DescribeCluster: every broker gets a gateway address."""
    leading = decode_leading(DescribeClusterResponse, frame, version)
    leading.brokers = _point_at_gateway(leading.brokers, "broker_id", mapping)
    return leading.splice()


def rewrite_api_versions(frame: bytes, version: int, mapping: IAddressMap) -> bytes:
    """
    ApiVersions: only what both the broker and the gateway's review allow.

    A broker's error answer goes on as the broker sent it, with one
    exception: UNSUPPORTED_VERSION, always a v0 body, keeps only the reviewed
    range of ApiVersions itself, so the client retries at a version the
    gateway offers.  Other errors (INVALID_REQUEST for a bad client software
    name) are encoded at the version asked and carry no API keys to narrow.
    """
    # error_code is the first field at every version; the header is never flexible.
    error = decode_fields(ApiVersionsResponse, frame, version, 1).error_code
    if error not in (ErrorCode.NONE, ErrorCode.UNSUPPORTED_VERSION):
        return frame
    # The codec decodes an error answer as v0, as brokers encode UNSUPPORTED_VERSION.
    message = decode_response(ApiVersionsResponse, frame, version)
    wire_version = 0 if error != ErrorCode.NONE else version
    kept = []
    for api in message.api_keys:
        offered = offered_range(api.api_key, api.min_version, api.max_version)
        if offered is not None:
            api.min_version, api.max_version = offered.min_version, offered.max_version
            kept.append(api)
    message.api_keys = kept
    return encode_response(message, message.header.correlation_id, wire_version)


#: The rewriter for each API key whose responses carry broker addresses, and
#: ApiVersions': what the gateway decodes and rewrites whole (Produce's and
#: Fetch's leader hints are L{kgateway.protocol.tail_rewrite.HINTED}).  Keyed
#: by plain ints, since the data path looks up every request's key here.
REWRITERS: dict[int, Rewriter] = {
    int(api): rewriter
    for api, rewriter in (
        (ApiKey.Metadata, rewrite_metadata),
        (ApiKey.FindCoordinator, rewrite_find_coordinator),
        (ApiKey.ApiVersions, rewrite_api_versions),
        (ApiKey.DescribeCluster, rewrite_describe_cluster),
        # issue 13: config values that name the cluster's hosts (config_rewrite.py)
        (ApiKey.DescribeConfigs, rewrite_describe_configs),
    )
}

# Before anything encodes them: the codec captures the tagged-field encoder
# when it compiles one.
preserve_unknown_tags([response_class(key) for key in REWRITERS])
