"""
KIP-951 leader hints: the broker addresses at the end of Produce (v10+) and
Fetch (v16+) responses.

A leader that moved is named in the response's top-level tagged field
C{node_endpoints}, which sits after everything else, records included.
Only that tagged section is ever decoded: the walk of
L{kgateway.protocol.resumable_skim} finds where it starts without copying
the records, and the rest of the response goes on as its own bytes.

A response that is all there is rewritten freely (L{rewrite_hinted}): its
length prefix is written anew.  A response passed on as it arrives
(L{HintsStream}) has sent its length prefix long before its tags arrive, so
the section is rewritten to the same length (L{fit_section}): a shorter
rewrite is padded with an unknown tagged field, which KIP-482 obliges every
receiver to skip; endpoints that do not fit are left out (the client then
refreshes its metadata, as it does without KIP-951).  The gateway never
leaks a broker address: an endpoint without a gateway address is always
left out.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from kafka.protocol.api_key import ApiKey
from kafka.protocol.consumer import FetchResponse
from kafka.protocol.producer import ProduceResponse

from kgateway.interfaces import IAddressMap
from kgateway.protocol.codec import preserve_unknown_tags, schema
from kgateway.protocol.framing import FrameError
from kgateway.protocol.resumable_skim import TopLevelTags, top_level_tags_at
from kgateway.protocol.skim import has_top_level_tags

#: The unknown tag a shortened section is padded with: far above any tag
#: Kafka assigns (they count up from 0), and a two-byte varint.
PAD_TAG = 0x3FFF
_PAD_NAME = f"_{PAD_TAG}"
_UNKNOWN_PREFIX = "_"


@dataclass(frozen=True, slots=True)
class HintedResponse:
    """A response whose top-level tags may carry KIP-951 node endpoints."""

    api_key: int
    cls: Any
    #: The first version with C{node_endpoints}.
    first_version: int

    @property
    def name(self) -> str:
        """The API's name (C{Fetch})."""
        return str(self.cls.name)


PRODUCE = HintedResponse(int(ApiKey.Produce), ProduceResponse, 10)
FETCH = HintedResponse(int(ApiKey.Fetch), FetchResponse, 16)

#: The hinted responses by API key (plain ints: the data path looks every request up).
HINTED: dict[int, HintedResponse] = {kind.api_key: kind for kind in (PRODUCE, FETCH)}

# The tagged sections are decoded and encoded with the codec's unknown tags kept.
preserve_unknown_tags([ProduceResponse, FetchResponse])


def hinted(api_key: int, version: int) -> HintedResponse | None:
    """The hinted response a request of this key and version gets, or None."""
    kind = HINTED.get(api_key)
    if kind is None or version < kind.first_version:
        return None
    return kind


def _decode_section(kind: HintedResponse, section: bytes, version: int) -> dict[str, Any]:
    tags = schema(kind.cls).tagged_fields(version)
    try:
        decoded: dict[str, Any] = tags.decode(io.BytesIO(section), version)
    except Exception as e:
        raise FrameError(f"cannot read the {kind.name} v{version} response's tags: {e}") from e
    return decoded


def _at_gateway(endpoints: Sequence[Any], mapping: IAddressMap) -> list[Any]:
    kept = []
    for endpoint in endpoints:
        address = mapping.address_for(endpoint.node_id)
        if address is not None:
            endpoint.host, endpoint.port = address.host, address.port
            kept.append(endpoint)
    return kept


def _item(decoded: dict[str, Any], endpoints: list[Any], pad: bytes | None) -> dict[str, Any]:
    unknown = {k: v for k, v in decoded.items() if k.startswith(_UNKNOWN_PREFIX)}
    if pad is not None:
        unknown[_PAD_NAME] = pad
    # The list is always given: a missing one would be encoded as a null array.
    return {"node_endpoints": endpoints, "unknown_tags": unknown}


def rewrite_section(
    kind: HintedResponse, section: bytes, version: int, mapping: IAddressMap
) -> bytes:
    """The tagged section with gateway addresses (any length)."""
    decoded = _decode_section(kind, section, version)
    endpoints = decoded.get("node_endpoints") or []
    tags = schema(kind.cls).tagged_fields(version)
    return bytes(tags.encode(_item(decoded, _at_gateway(endpoints, mapping), None), version))


@dataclass(frozen=True, slots=True)
class Fitted:
    """A tagged section rewritten to the length of the original."""

    section: bytes
    #: Node endpoints in the original, how many have a gateway address, and
    #: how many of those fit in C{section}.
    endpoints: int
    mapped: int
    kept: int


def fit_section(kind: HintedResponse, section: bytes, version: int, mapping: IAddressMap) -> Fitted:
    """
    The tagged section with gateway addresses, exactly as long as C{section}.

    Endpoints are kept in order while they fit; a section left shorter is
    padded with the unknown tag L{PAD_TAG}.  Dropping every endpoint always
    fits: a field of at least three bytes (tag, size, empty array) goes, and
    a pad field is three bytes at least.
    """
    decoded = _decode_section(kind, section, version)
    original = list(decoded.get("node_endpoints") or [])
    endpoints = _at_gateway(original, mapping)
    tags = schema(kind.cls).tagged_fields(version)
    size = len(section)
    for keep in range(len(endpoints), -1, -1):
        fitted = _padded(tags, decoded, endpoints[:keep], size, version)
        if fitted is not None:
            return Fitted(fitted, len(original), len(endpoints), keep)
    raise FrameError(f"cannot fit the {kind.name} v{version} response's tags into {size} bytes")


def _padded(
    tags: Any, decoded: dict[str, Any], endpoints: list[Any], size: int, version: int
) -> bytes | None:
    bare = bytes(tags.encode(_item(decoded, endpoints, None), version))
    if len(bare) == size:
        return bare
    # A pad field is its tag (2 bytes), its size (a varint) and that many zeros;
    # the varints (count, size) may grow by a byte, so try the sizes around.
    room = size - len(bare) - 3
    for pad in (room, room - 1, room - 2, room + 1):
        if pad < 0:
            continue
        padded = bytes(tags.encode(_item(decoded, endpoints, bytes(pad)), version))
        if len(padded) == size:
            return padded
    return None


def rewrite_hinted(kind: HintedResponse, frame: bytes, version: int, mapping: IAddressMap) -> bytes:
    """
    A whole framed response with gateway addresses in its leader hints; the
    very same bytes when it has no top-level tags (the usual case).
    """
    if version < kind.first_version or not has_top_level_tags(kind.cls, frame, version):
        return frame
    at = top_level_tags_at(kind.cls, frame, version)
    old = bytes(frame[at:])
    new = rewrite_section(kind, old, version, mapping)
    if new == old:
        return frame
    body_size = at - 4 + len(new)
    return body_size.to_bytes(4, "big") + bytes(frame[4:at]) + new


def passes_unchanged(kind: HintedResponse, pieces: Sequence[bytes], version: int) -> bool:
    """
    Whether a whole response, held as the pieces it arrived in, has no
    top-level tags (so no leader hints) and goes on as it is.  False when it
    cannot tell (malformed: the rewrite meets it and reports it).
    """
    if version < kind.first_version:
        return True
    try:
        return not has_top_level_tags(kind.cls, pieces, version)
    except Exception:
        return False


def rewrite_produce(frame: bytes, version: int, mapping: IAddressMap) -> bytes:
    """Produce v10+: the KIP-951 node_endpoints leader hints."""
    return rewrite_hinted(PRODUCE, frame, version, mapping)


def rewrite_fetch(frame: bytes, version: int, mapping: IAddressMap) -> bytes:
    """Fetch v16+: the KIP-951 node_endpoints leader hints."""
    return rewrite_hinted(FETCH, frame, version, mapping)


class HintsStream:
    """
    One hinted response passed on as it arrives: every byte before its
    top-level tags goes on at once; the tags, which end it, are rewritten to
    the same length when the last piece is in.
    """

    __slots__ = ("_kind", "_version", "_walk", "_mapping", "outcome")

    def __init__(
        self,
        kind: HintedResponse,
        version: int,
        size: int,
        mapping: Callable[[], IAddressMap],
    ) -> None:
        self._kind = kind
        self._version = version
        self._walk = TopLevelTags(kind.cls, version, size)
        #: Asked for once, at the end, if the response has tags.
        self._mapping = mapping
        #: Once the last piece went: None (no tags), or what the rewrite did.
        self.outcome: Fitted | None = None

    def feed(self, piece: bytes, last: bool) -> list[bytes | memoryview]:
        """The response's next piece: what may go to the client now (all of it, when C{last})."""
        out = self._walk.feed(piece)
        if last:
            section = self._walk.section()
            if section != b"\x00":
                self.outcome = fitted = fit_section(
                    self._kind, section, self._version, self._mapping()
                )
                section = fitted.section
            out.append(section)
        return out
