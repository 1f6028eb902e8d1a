"""
Read the few header fields the gateway needs without decoding a message body.

A request frame starts with the length prefix, then api_key (int16),
api_version (int16) and correlation_id (int32) at fixed offsets in every
header version; a response frame starts with the correlation id.  That is all
the relay needs for most traffic.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from struct import Struct
from struct import error as StructError

from kafka.protocol.api_header import RequestHeader
from kafka.protocol.producer import ProduceRequest

from kgateway.protocol.framing import FrameError
from kgateway.protocol.skim import skip_tags, uvarint

_REQUEST_PREFIX = Struct(">ihhi")
_CORRELATION = Struct(">i")


@dataclass(frozen=True, slots=True)
class RequestInfo:
    """The fixed part of a request header."""

    api_key: int
    api_version: int
    correlation_id: int


def request_info(frame: bytes) -> RequestInfo:
    """Read api key, version and correlation id from a framed request."""
    if len(frame) < _REQUEST_PREFIX.size:
        raise FrameError(f"request frame of {len(frame) - 4} bytes is too short for a header")
    _, api_key, api_version, correlation_id = _REQUEST_PREFIX.unpack_from(frame, 0)
    if api_key < 0 or api_version < 0:
        raise FrameError(f"request header has api key {api_key} version {api_version}")
    return RequestInfo(api_key, api_version, correlation_id)


def response_correlation_id(frame: bytes) -> int:
    """Read the correlation id of a framed response."""
    if len(frame) < 8:
        raise FrameError(f"response frame of {len(frame) - 4} bytes has no correlation id")
    return int(_CORRELATION.unpack_from(frame, 4)[0])


def request_header(frame: bytes, flexible: bool) -> tuple[RequestHeader, int]:
    """Decode the whole request header; return it and the offset of the body."""
    stream = io.BytesIO(frame)
    stream.seek(4)
    try:
        header = RequestHeader.decode(stream, flexible=flexible)
    except Exception as e:
        raise FrameError(f"malformed request header: {e}") from e
    return header, stream.tell()


_INT16 = Struct(">h")

# Which Produce versions use flexible (compact, tagged) encoding, asked of the codec once.
_PRODUCE_FLEXIBLE = {
    version: bool(ProduceRequest.flexible_version_q(version))
    for version in range(ProduceRequest.max_version + 1)
}


def produce_acks(frame: bytes, api_version: int) -> int:
    """
    Read C{acks} from a framed Produce request without touching its records.

    C{acks=0} is the one request kind that gets no response, so the relay
    must know it to keep responses paired with requests.  Every Produce
    request is read here, so the few fields before C{acks} are skipped by
    their lengths instead of decoded with the codec (which builds a header
    object per request); the tests check this against the codec's decoding.
    """
    flexible = _PRODUCE_FLEXIBLE.get(api_version)
    if flexible is None:
        flexible = bool(ProduceRequest.flexible_version_q(api_version))
    try:
        # Request header v1/v2: key, version, correlation id, then the client
        # id, a nullable string with an int16 length in every header version.
        (size,) = _INT16.unpack_from(frame, 12)
        pos = 14 + max(size, 0)
        if flexible:
            pos = skip_tags(frame, pos)
        if api_version >= 3:  # transactional_id, a nullable string
            if flexible:
                size, pos = uvarint(frame, pos)
                pos += max(size - 1, 0)
            else:
                (size,) = _INT16.unpack_from(frame, pos)
                pos += 2 + max(size, 0)
        (acks,) = _INT16.unpack_from(frame, pos)
    except (StructError, IndexError) as e:
        raise FrameError(f"malformed Produce request: {e}") from e
    return int(acks)


_CLIENT_ID_LENGTH = Struct(">h")


def request_client_id(frame: bytes) -> str | None:
    """
    Read the client id: in every request header v1+ a plain (never compact)
    nullable string right after the correlation id.  None when absent.
    """
    if len(frame) < 14:
        return None
    (size,) = _CLIENT_ID_LENGTH.unpack_from(frame, 12)
    if size < 0 or 14 + size > len(frame):
        return None
    return bytes(frame[14 : 14 + size]).decode("utf-8", "replace")
