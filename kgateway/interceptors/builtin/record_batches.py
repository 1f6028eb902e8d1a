"""
Add headers to the records of a Produce request's record batches (message format v2).

kafka-python's L{DefaultRecordBatchBuilder} cannot rewrite a producer's batch
faithfully: it writes base offset 0 and partition leader epoch 0, never sets
the log-append-time bit, recomputes the max timestamp, and sends the batch
uncompressed when compressing did not make it smaller.  A broker validates an
idempotent or transactional batch by its producer id, epoch and sequence, so
this module keeps the batch header as it came and rewrites only the records:
each record keeps its attributes, timestamp delta, offset delta, key, value
and headers, and gets the new headers appended.  The body is compressed again
with the batch's own codec (kafka-python's codecs, the ones its producer uses)
and the CRC-32C is computed over the new batch.  kafka-python's
L{DefaultRecordBatch} reads the result back in the tests, CRC checked.

Legacy batches (magic 0 and 1) have no record headers: a records blob
starting with one is left as it is.  Control batches (transaction markers,
written by brokers) are never touched.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Sequence

from kafka import codec
from kafka.record.default_records import DefaultRecordBase
from kafka.record.util import calc_crc32c, decode_varint

_HEADER = DefaultRecordBase.HEADER_STRUCT
_HEADER_SIZE = _HEADER.size
_LENGTH = struct.Struct(">qi")
#: Where the magic byte is, and where the CRC'd part of a batch starts.
_MAGIC_OFFSET = DefaultRecordBase.CRC_OFFSET - 1
_ATTRIBUTES_OFFSET = DefaultRecordBase.ATTRIBUTES_OFFSET
_CODEC_MASK = DefaultRecordBase.CODEC_MASK
_CONTROL_MASK = DefaultRecordBase.CONTROL_MASK


def _gzip(data: bytes) -> bytes:
    # zlib's default level, as Java producers use; kafka-python's default of 9
    # is several times slower on repetitive data for a fraction of a percent.
    return bytes(codec.gzip_encode(data, 6))


_COMPRESS: dict[int, Callable[[bytes], bytes]] = {
    1: _gzip,
    2: codec.snappy_encode,
    3: codec.lz4_encode,
    4: codec.zstd_encode,
}
_DECOMPRESS: dict[int, Callable[[bytes], bytes]] = {
    1: codec.gzip_decode,
    2: codec.snappy_decode,
    3: codec.lz4_decode,
    4: codec.zstd_decode,
}


class BadBatch(Exception):
    """A record batch that cannot be read (truncated, or a codec this gateway lacks)."""


class LegacyRecords(Exception):
    """Message format v0/v1: no record headers exist there."""


def varint(value: int) -> bytes:
    """Kafka's zig-zag varint encoding of C{value}."""
    value = (value << 1) ^ (value >> 63)
    out = bytearray()
    while value > 0x7F:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def encode_headers(headers: Sequence[tuple[str, bytes | None]]) -> bytes:
    """Record headers in the v2 record layout (no count)."""
    parts = []
    for name, value in headers:
        key = name.encode("utf-8")
        parts += [varint(len(key)), key]
        parts += [varint(-1)] if value is None else [varint(len(value)), value]
    return b"".join(parts)


def add_headers(
    records: bytes, headers: Sequence[tuple[str, bytes]], replace: bool = True
) -> bytes:
    """
    C{records} (one or more batches) with C{headers} added to every record.

    With C{replace}, a record's existing headers of the same names are
    dropped first, so the gateway's value is the only one.  Raises
    L{LegacyRecords} for v0/v1 batches, L{BadBatch} for unreadable ones.
    """
    added = encode_headers(headers)
    names = {name.encode("utf-8") for name, _ in headers} if replace else set()
    view = memoryview(records)
    out: list[bytes | memoryview] = []
    pos = 0
    while pos < len(view):
        # The magic byte is at the same place in every message format.
        if len(view) - pos > _MAGIC_OFFSET and view[pos + _MAGIC_OFFSET] < 2:
            raise LegacyRecords("message format v0/v1 has no record headers")
        if len(view) - pos < _HEADER_SIZE:
            raise BadBatch(f"a record batch is truncated at byte {pos}")
        _, length = _LENGTH.unpack_from(view, pos)
        end = pos + 12 + length
        if end > len(view) or length < _HEADER_SIZE - 12:
            raise BadBatch(f"a record batch at byte {pos} claims {length} bytes")
        batch = view[pos:end]
        attributes = struct.unpack_from(">h", batch, _ATTRIBUTES_OFFSET)[0]
        if attributes & _CONTROL_MASK:
            out.append(batch)
        else:
            out.append(_rewrite_batch(batch, attributes & _CODEC_MASK, len(headers), added, names))
        pos = end
    return b"".join(out)


def _rewrite_batch(
    batch: memoryview, compression: int, count: int, added: bytes, names: set[bytes]
) -> bytes:
    fields = list(_HEADER.unpack_from(batch, 0))
    records_count = fields[-1]
    body: bytes | memoryview = batch[_HEADER_SIZE:]
    if compression:
        decompress = _DECOMPRESS.get(compression)
        if decompress is None:
            raise BadBatch(f"unknown compression codec {compression}")
        try:
            body = decompress(bytes(body))
        except Exception as e:  # a missing codec library, or corrupt data
            raise BadBatch(f"cannot decompress a batch (codec {compression}): {e!r}") from e
    rewritten = _rewrite_records(body, records_count, count, added, names)
    if compression:
        # The same codec even when it does not pay: the producer chose it.
        rewritten = _COMPRESS[compression](rewritten)
    fields[1] = _HEADER_SIZE - 12 + len(rewritten)  # Length: from after the length field
    fields[4] = 0
    out = bytearray(_HEADER_SIZE + len(rewritten))
    _HEADER.pack_into(out, 0, *fields)
    out[_HEADER_SIZE:] = rewritten
    crc = calc_crc32c(memoryview(out)[_ATTRIBUTES_OFFSET:])
    struct.pack_into(">I", out, DefaultRecordBase.CRC_OFFSET, crc)
    return bytes(out)


def _rewrite_records(
    body: bytes | memoryview, records_count: int, count: int, added: bytes, names: set[bytes]
) -> bytes:
    parts: list[bytes | memoryview] = []
    view = memoryview(body)
    pos = 0
    for _ in range(records_count):
        length, pos = decode_varint(view, pos)
        start, end = pos, pos + length
        if end > len(view):
            raise BadBatch("a record runs past the end of its batch")
        p = start + 1  # attributes: one byte
        _, p = decode_varint(view, p)  # timestamp delta
        _, p = decode_varint(view, p)  # offset delta
        key_length, p = decode_varint(view, p)
        p += max(key_length, 0)
        value_length, p = decode_varint(view, p)
        p += max(value_length, 0)
        fixed_end = p
        header_count, p = decode_varint(view, p)
        kept: bytes | memoryview = view[p:end]
        if names and header_count:
            kept, header_count = _without(view, p, end, header_count, names)
        tail = varint(header_count + count)
        new_length = (fixed_end - start) + len(tail) + len(kept) + len(added)
        parts += [varint(new_length), view[start:fixed_end], tail, kept, added]
        pos = end
    if pos != len(view):
        raise BadBatch("a batch has bytes after its last record")
    return b"".join(parts)


def _without(
    view: memoryview, pos: int, end: int, header_count: int, names: set[bytes]
) -> tuple[bytes, int]:
    """The headers from C{pos} without those named in C{names}, and how many are left."""
    kept: list[memoryview] = []
    left = 0
    for _ in range(header_count):
        start = pos
        key_length, pos = decode_varint(view, pos)
        key = view[pos : pos + key_length]
        pos += key_length
        value_length, pos = decode_varint(view, pos)
        pos += max(value_length, 0)
        if bytes(key) not in names:
            kept.append(view[start:pos])
            left += 1
    if pos > end:
        raise BadBatch("a record's headers run past its end")
    return b"".join(kept), left
