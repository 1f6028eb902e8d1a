"""
Walk a response's layout without decoding it, to find its top-level tagged fields.

Fetch and Produce responses carry KIP-951 C{node_endpoints} as a top-level
tagged field, present only when a leader moved.  Decoding a whole Fetch
response to find out would copy every record batch; this walker follows the
codec's own schema (kafka-python's field objects, so no layout is written
here) and skips over values by their lengths.

The schema is turned once per (message, version) into a flat plan of skips
(L{kgateway.protocol.skim_plan}, shared with the walk of a frame still
arriving), because every Produce and Fetch response is walked.  A frame may
be walked as the pieces it arrived in (a multi-MiB Fetch response, without
joining it), since the walk reads only a few bytes per partition.
"""

from __future__ import annotations

from collections.abc import Sequence
from struct import Struct
from typing import Any, Protocol, overload

from kgateway.protocol.skim_plan import (
    BYTES,
    COMPACT,
    FIXED,
    SIMPLES,
    STRING,
    STRUCT,
    STRUCTS,
    TAGS,
    Plan,
    body_plan,
)

_INT16 = Struct(">h")
_INT32 = Struct(">i")


class Readable(Protocol):
    """What the walk needs of a frame: one byte at an index, and short slices."""

    @overload
    def __getitem__(self, key: int) -> int: ...

    @overload
    def __getitem__(self, key: slice) -> bytes | memoryview: ...


class Spread:
    """
    A frame held as the pieces it arrived in, read by position without joining it.

    Reads go forwards, so the piece last read from is tried first.
    """

    __slots__ = ("_pieces", "_starts", "_index", "_start", "_end", "size")

    def __init__(self, pieces: Sequence[bytes]) -> None:
        self._pieces = pieces
        starts = []
        total = 0
        for piece in pieces:
            starts.append(total)
            total += len(piece)
        self._starts = starts
        #: The frame's length, prefix included.
        self.size = total
        self._index = 0
        self._start = 0
        self._end = len(pieces[0]) if pieces else 0

    def _seek(self, pos: int) -> None:
        if pos < 0 or pos >= self.size:
            raise IndexError(f"position {pos} is outside a frame of {self.size} bytes")
        index = self._index
        starts = self._starts
        if pos < self._start:
            index = 0
        while index + 1 < len(starts) and starts[index + 1] <= pos:
            index += 1
        self._index = index
        self._start = starts[index]
        self._end = self._start + len(self._pieces[index])

    @overload
    def __getitem__(self, key: int) -> int: ...

    @overload
    def __getitem__(self, key: slice) -> bytes: ...

    def __getitem__(self, key: int | slice) -> int | bytes:
        if isinstance(key, int):
            if not self._start <= key < self._end:
                self._seek(key)
            return self._pieces[self._index][key - self._start]
        start, stop = key.start, key.stop
        if not self._start <= start < self._end:
            self._seek(start)
        if stop <= self._end:
            return self._pieces[self._index][start - self._start : stop - self._start]
        # A field cut across two reads: rare, and only a few bytes long.
        out = bytearray()
        pos = start
        while pos < stop:
            self._seek(pos)
            piece = self._pieces[self._index]
            take = min(stop, self._end) - pos
            out += piece[pos - self._start : pos - self._start + take]
            pos += take
        return bytes(out)


def uvarint(data: Readable, pos: int) -> tuple[int, int]:
    """Read an unsigned varint at C{pos}; return it and the position after it."""
    value = shift = 0
    while True:
        byte = data[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value, pos
        shift += 7


def skip_tags(data: Readable, pos: int) -> int:
    """Skip a tagged-field section at C{pos}; return the position after it."""
    count, pos = _uvarint(data, pos)
    for _ in range(count):
        _, pos = _uvarint(data, pos)
        size, pos = _uvarint(data, pos)
        pos += size
    return pos


_uvarint = uvarint
_skip_tags = skip_tags


def _count(data: Readable, pos: int, compact: bool) -> tuple[int, int]:
    if compact:
        count, pos = _uvarint(data, pos)
        return count - 1, pos
    (count,) = _INT32.unpack(data[pos : pos + 4])
    return int(count), pos + 4


def _walk(plan: Plan, data: Readable, pos: int, compact: bool) -> int:
    for kind, argument in plan:
        if kind == FIXED:
            pos += argument
        elif kind == COMPACT:
            length = data[pos]
            if length < 0x80:  # one-byte varint: strings and records under 127 bytes
                pos += length if length else 1
            else:
                length, pos = _uvarint(data, pos)
                pos += length - 1
        elif kind == STRUCTS:
            count, pos = _count(data, pos, compact)
            for _ in range(count):
                pos = _walk(argument, data, pos, compact)
        elif kind == TAGS:
            if data[pos]:
                pos = _skip_tags(data, pos)
            else:  # almost always: no tags
                pos += 1
        elif kind == STRING:
            (length,) = _INT16.unpack(data[pos : pos + 2])
            pos += 2 + max(int(length), 0)
        elif kind == BYTES:
            (length,) = _INT32.unpack(data[pos : pos + 4])
            pos += 4 + max(int(length), 0)
        elif kind == SIMPLES:
            count, pos = _count(data, pos, compact)
            if argument[0] == FIXED:
                pos += max(count, 0) * argument[1]
            else:
                element = (argument,)
                for _ in range(count):
                    pos = _walk(element, data, pos, compact)
        elif kind == STRUCT:
            pos = _walk(argument, data, pos, compact)
        else:  # NULLABLE_STRUCT
            present = data[pos]
            pos += 1
            if present != 0xFF:
                pos = _walk(argument, data, pos, compact)
    return pos


def has_top_level_tags(cls: Any, frame: bytes | Sequence[bytes], version: int) -> bool:
    """
    Whether a framed flexible response of C{cls} carries any top-level tagged field.

    C{frame} is the whole frame, or the list of pieces it arrived in.
    """
    data: Readable
    if isinstance(frame, bytes):
        data = memoryview(frame)
    elif len(frame) == 1:
        data = memoryview(frame[0])
    else:
        data = Spread(frame)
    # Length prefix, correlation id, then the response header's own tags.
    pos = _skip_tags(data, 8)
    pos = _walk(body_plan(cls, version), data, pos, True)
    count, _ = _uvarint(data, pos)
    return count > 0
