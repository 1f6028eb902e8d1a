"""
Put gateway addresses where a response carries broker addresses.

One function per API, each given the framed response, its version and the
one L{IAddressMap} used for the whole response.  A broker with no gateway
address is left out rather than leaked.  Responses are re-encoded only when
something in them changed; otherwise the original bytes go on.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from kafka.protocol.admin import DescribeClusterResponse
from kafka.protocol.api_key import ApiKey
from kafka.protocol.metadata import ApiVersionsResponse, FindCoordinatorResponse, MetadataResponse

from kgateway.interfaces import IAddressMap
from kgateway.protocol.codec import (
    decode_response,
    encode_response,
    preserve_unknown_tags,
    response_class,
)
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
    """Metadata: every broker in C{brokers} gets a gateway address."""
    message = decode_response(MetadataResponse, frame, version)
    message.brokers = _point_at_gateway(message.brokers, "node_id", mapping)
    return _reencode(message, version)


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
    message = decode_response(FindCoordinatorResponse, frame, version)
    if version < 4:
        _coordinator_at_gateway(message, mapping)
    else:
        for coordinator in message.coordinators:
            _coordinator_at_gateway(coordinator, mapping)
    return _reencode(message, version)


def rewrite_describe_cluster(frame: bytes, version: int, mapping: IAddressMap) -> bytes:
    """DescribeCluster: every broker gets a gateway address."""
    message = decode_response(DescribeClusterResponse, frame, version)
    message.brokers = _point_at_gateway(message.brokers, "broker_id", mapping)
    return _reencode(message, version)


def rewrite_api_versions(frame: bytes, version: int, mapping: IAddressMap) -> bytes:
    """ApiVersions: only what both the broker and the gateway's review allow."""
    message = decode_response(ApiVersionsResponse, frame, version)
    # An error answer (unsupported version) is always encoded as v0.
    wire_version = 0 if message.error_code != ErrorCode.NONE else version
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
    )
}

# Before anything encodes them: the codec captures the tagged-field encoder
# when it compiles one.
preserve_unknown_tags([response_class(key) for key in REWRITERS])
