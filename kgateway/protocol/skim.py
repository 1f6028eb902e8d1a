"""
Walk a response's layout without decoding it, to find its top-level tagged fields.

Fetch and Produce responses carry KIP-951 C{node_endpoints} as a top-level
tagged field, present only when a leader moved.  Decoding a whole Fetch
response to find out would copy every record batch; this walker follows the
codec's own schema (kafka-python's field objects, so no layout is written
here) and skips over values by their lengths.
"""

from __future__ import annotations

from struct import Struct
from typing import Any

_INT16 = Struct(">h")
_INT32 = Struct(">i")

_FIXED_WIDTH = {
    "int8": 1,
    "bool": 1,
    "int16": 2,
    "uint16": 2,
    "int32": 4,
    "bitfield": 4,
    "int64": 8,
    "float64": 8,
    "uuid": 16,
}


def _uvarint(data: memoryview, pos: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        byte = data[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value, pos
        shift += 7


def _skip_tags(data: memoryview, pos: int) -> int:
    count, pos = _uvarint(data, pos)
    for _ in range(count):
        _, pos = _uvarint(data, pos)
        size, pos = _uvarint(data, pos)
        pos += size
    return pos


def _skip_simple(type_str: str, data: memoryview, pos: int, compact: bool) -> int:
    width = _FIXED_WIDTH.get(type_str)
    if width is not None:
        return pos + width
    if compact:
        length, pos = _uvarint(data, pos)
        return pos + max(length - 1, 0)
    if type_str == "string":
        (length,) = _INT16.unpack_from(data, pos)
        return pos + 2 + max(int(length), 0)
    (length,) = _INT32.unpack_from(data, pos)  # bytes, records
    return pos + 4 + max(int(length), 0)


def _skip_struct(struct: Any, data: memoryview, pos: int, version: int, compact: bool) -> int:
    for field in struct.untagged_fields(version):
        pos = _skip_field(field, data, pos, version, compact)
    if compact:
        pos = _skip_tags(data, pos)
    return pos


def _skip_field(field: Any, data: memoryview, pos: int, version: int, compact: bool) -> int:
    if field.is_struct_array() or field.is_array():
        if compact:
            count, pos = _uvarint(data, pos)
            count -= 1
        else:
            (count,) = _INT32.unpack_from(data, pos)
            pos += 4
        inner = field.array_of
        for _ in range(max(count, 0)):
            if field.is_struct_array():
                pos = _skip_struct(inner, data, pos, version, compact)
            else:
                pos = _skip_simple(inner.type_str, data, pos, compact)
        return pos
    if field.is_struct():
        if field.nullable_for_version_q(version):
            present = data[pos]
            pos += 1
            if present == 0xFF:
                return pos
        return _skip_struct(field, data, pos, version, compact)
    return _skip_simple(field.type_str, data, pos, compact)


def has_top_level_tags(cls: Any, frame: bytes, version: int) -> bool:
    """Whether a framed flexible response of C{cls} carries any top-level tagged field."""
    data = memoryview(frame)
    # Length prefix, correlation id, then the response header's own tags.
    pos = _skip_tags(data, 8)
    pos = _skip_struct_untagged(cls._struct, data, pos, version)
    count, _ = _uvarint(data, pos)
    return count > 0


def _skip_struct_untagged(struct: Any, data: memoryview, pos: int, version: int) -> int:
    for field in struct.untagged_fields(version):
        pos = _skip_field(field, data, pos, version, True)
    return pos
