"""Responses the gateway answers itself, without asking a broker."""

from __future__ import annotations

from kafka.protocol.api_key import ApiKey
from kafka.protocol.metadata import ApiVersionsResponse

from kgateway.protocol.codec import encode_response, has_field, response_classes
from kgateway.protocol.error_codes import ErrorCode
from kgateway.protocol.versions import REVIEWED


class CannotAnswer(Exception):
    """The codec cannot build an error response of this API and version."""


def unsupported_version(api_key: int, api_version: int, correlation_id: int) -> bytes:
    """
    An UNSUPPORTED_VERSION error response to a request above the offered version.

    ApiVersions gets what brokers send: a v0 body listing the versions offered,
    so the client can retry at a version both sides know.  Other APIs get their
    own response at the requested version with the top-level error code set,
    where the codec knows that version and the response has such a field.
    """
    if api_key == ApiKey.ApiVersions:
        return _api_versions_error(correlation_id)
    cls = response_classes().get(api_key)
    if cls is None or api_version > cls.max_version:
        raise CannotAnswer(f"the codec has no schema for api key {api_key} v{api_version}")
    versioned = cls[api_version]
    # The field must exist at this version: Metadata has one only from v13,
    # FindCoordinator only up to v3; elsewhere it would not be encoded.
    if not has_field(versioned, "error_code", api_version):
        raise CannotAnswer(f"{cls.name} v{api_version} has no top-level error code")
    message = versioned(error_code=ErrorCode.UNSUPPORTED_VERSION)
    return encode_response(message, correlation_id, api_version)


def _api_versions_error(correlation_id: int) -> bytes:
    body = ApiVersionsResponse[0]
    key = ApiKey.ApiVersions
    message = body(
        error_code=ErrorCode.UNSUPPORTED_VERSION,
        api_keys=[
            body.ApiVersion(api_key=key, min_version=0, max_version=REVIEWED[key].max_version)
        ],
    )
    return encode_response(message, correlation_id, 0)
