"""
Walk a response's layout as its bytes arrive, to find where its top-level
tagged fields start, without decoding it and without holding it.

L{kgateway.protocol.skim} answers the same question for a frame that is all
there.  A Fetch response of many MiB arrives as dozens of reads and should
go on to the client read by read; its KIP-951 C{node_endpoints} sit in the
top-level tagged fields at its very end.  L{TopLevelTags} follows the
codec's schema (kafka-python's field objects: no layout is written here) as
a generator that asks for more bytes when it runs out: every byte it has
walked past can be passed on at once, and what it keeps is the few bytes
of a field cut between two reads, and at the end the tagged section itself.

The walk reads only lengths and counts; it skips records and fixed-width
fields by their sizes, so a read costs a few steps per partition in it.
"""

from __future__ import annotations

from collections.abc import Generator
from struct import Struct
from typing import Any

from kgateway.protocol.framing import FrameError
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

#: What the walk yields when it runs out: (where it is, how far it needs bytes).
Need = tuple[int, int]
Walk = Generator[Need, None, int]


_PLANS: dict[tuple[int, int], Plan] = {}


def frame_plan(cls: Any, version: int) -> Plan:
    """
    The walk of a framed flexible response of C{cls} up to its top-level tags:
    length prefix and correlation id, the response header's tags, the body.
    """
    key = (id(cls), version)
    plan = _PLANS.get(key)
    if plan is None:
        plan = _PLANS[key] = ((FIXED, 8), (TAGS, None), *body_plan(cls, version))
    return plan


class Window:
    """
    The bytes of one frame that arrived and were not passed on yet, by their
    position in the frame: from L{start} to L{end}.
    """

    __slots__ = ("_pieces", "_starts", "_index", "start", "end", "limit")

    def __init__(self, limit: int) -> None:
        self._pieces: list[bytes | memoryview] = []
        self._starts: list[int] = []
        self._index = 0
        #: Where the first byte held is in the frame.
        self.start = 0
        #: Where the bytes that arrived end.
        self.end = 0
        #: The frame's size: the walk never goes past it.
        self.limit = limit

    def add(self, piece: bytes) -> None:
        """The next bytes of the frame arrived."""
        self._starts.append(self.end)
        self._pieces.append(piece)
        self.end += len(piece)

    def _find(self, pos: int) -> int:
        starts = self._starts
        index = self._index
        if index >= len(starts) or starts[index] > pos:
            index = 0
        while index + 1 < len(starts) and starts[index + 1] <= pos:
            index += 1
        self._index = index
        return index

    def byte(self, pos: int) -> int:
        """The byte at C{pos} (it has arrived)."""
        index = self._find(pos)
        return self._pieces[index][pos - self._starts[index]]

    def read(self, pos: int, size: int) -> bytes:
        """The C{size} bytes at C{pos} (they have arrived)."""
        index = self._find(pos)
        start = self._starts[index]
        piece = self._pieces[index]
        if pos + size <= start + len(piece):
            return bytes(piece[pos - start : pos + size - start])
        out = bytearray()
        while len(out) < size:
            piece = self._pieces[index]
            offset = pos + len(out) - self._starts[index]
            out += piece[offset : offset + size - len(out)]
            index += 1
        return bytes(out)

    def release(self, upto: int) -> list[bytes | memoryview]:
        """
        Give up the bytes before C{upto} (or everything held, if less arrived):
        the pieces that held them, the last one cut where C{upto} falls.
        """
        out: list[bytes | memoryview] = []
        pieces, starts = self._pieces, self._starts
        while pieces and starts[0] < upto:
            piece = pieces[0]
            size = len(piece)
            if starts[0] + size <= upto:
                out.append(piece)
                pieces.pop(0)
                starts.pop(0)
                continue
            cut = upto - starts[0]
            view = memoryview(piece)
            out.append(view[:cut])
            pieces[0] = view[cut:]
            starts[0] = upto
            break
        self.start = starts[0] if starts else self.end
        self._index = 0
        return out


def _uvarint(w: Window, pos: int) -> Generator[Need, None, tuple[int, int]]:
    value = shift = 0
    while True:
        while w.end <= pos:
            yield pos, pos + 1
        byte = w.byte(pos)
        pos += 1
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value, pos
        shift += 7
        if shift > 28:
            raise FrameError("a varint longer than 5 bytes")


def _count(w: Window, pos: int, compact: bool) -> Generator[Need, None, tuple[int, int]]:
    if compact:
        count, pos = yield from _uvarint(w, pos)
        return count - 1, pos
    while w.end < pos + 4:
        yield pos, pos + 4
    (count,) = _INT32.unpack(w.read(pos, 4))
    return int(count), pos + 4


def _walk(plan: Plan, w: Window, pos: int) -> Walk:
    """Walk C{plan} from C{pos}; the position after it.  Yields when bytes are missing."""
    for kind, argument in plan:
        if kind == FIXED:
            pos += argument
        elif kind == COMPACT:
            while w.end <= pos:
                yield pos, pos + 1
            length = w.byte(pos)
            if length < 0x80:  # one-byte varint: strings and records under 127 bytes
                pos += length if length else 1
            else:
                length, pos = yield from _uvarint(w, pos)
                pos += length - 1
        elif kind == STRUCTS:
            count, pos = yield from _count(w, pos, True)
            for _ in range(count):
                pos = yield from _walk(argument, w, pos)
                if pos > w.limit:
                    raise FrameError(f"an array runs past the frame's {w.limit} bytes")
        elif kind == TAGS:
            while w.end <= pos:
                yield pos, pos + 1
            if w.byte(pos) == 0:  # almost always: no tags
                pos += 1
            else:
                count, pos = yield from _uvarint(w, pos)
                for _ in range(count):
                    _, pos = yield from _uvarint(w, pos)
                    size, pos = yield from _uvarint(w, pos)
                    pos += size
        elif kind == STRING:
            while w.end < pos + 2:
                yield pos, pos + 2
            (length,) = _INT16.unpack(w.read(pos, 2))
            pos += 2 + max(int(length), 0)
        elif kind == BYTES:
            while w.end < pos + 4:
                yield pos, pos + 4
            (length,) = _INT32.unpack(w.read(pos, 4))
            pos += 4 + max(int(length), 0)
        elif kind == SIMPLES:
            count, pos = yield from _count(w, pos, True)
            if argument[0] == FIXED:
                pos += max(count, 0) * argument[1]
            else:
                element = (argument,)
                for _ in range(count):
                    pos = yield from _walk(element, w, pos)
                    if pos > w.limit:
                        raise FrameError(f"an array runs past the frame's {w.limit} bytes")
        elif kind == STRUCT:
            pos = yield from _walk(argument, w, pos)
        else:  # NULLABLE_STRUCT
            while w.end <= pos:
                yield pos, pos + 1
            present = w.byte(pos)
            pos += 1
            if present != 0xFF:
                pos = yield from _walk(argument, w, pos)
    return pos


class TopLevelTags:
    """
    Follows one framed flexible response of C{cls} as its pieces arrive, up to
    its top-level tagged fields.

    L{feed} takes each piece and returns what may be passed on now: every
    byte before the walk's position.  Once the walk is done, L{tags_at} is
    where the tagged section starts; what L{feed} kept from there on is that
    section, which L{section} gives once the last piece is in.
    """

    __slots__ = ("_window", "_walk", "_cursor", "_need", "tags_at")

    def __init__(self, cls: Any, version: int, size: int) -> None:
        self._window = Window(size)
        self._walk: Walk | None = _walk(frame_plan(cls, version), self._window, 0)
        # Where the walk waits, and how far it needs bytes to go on.
        self._cursor = 0
        self._need = 0
        #: Where the top-level tagged section starts, once the walk got there.
        self.tags_at = -1

    def feed(self, piece: bytes) -> list[bytes | memoryview]:
        """The next piece of the frame: the bytes that may go on now."""
        window = self._window
        end = window.end
        if self._walk is not None and window.start == end and end + len(piece) <= self._cursor:
            # The usual read of a large response: all of it inside records the
            # walk skips over.  It goes on as it is, and nothing is kept.
            window.start = window.end = end + len(piece)
            return [piece]
        window.add(piece)
        if self._walk is not None and window.end >= self._need:
            self._advance(self._walk)
        # Everything before where the walk is (or before the tags) goes on.
        return window.release(self.tags_at if self._walk is None else self._cursor)

    def _advance(self, walk: Walk) -> None:
        limit = self._window.limit
        try:
            cursor, need = next(walk)
        except StopIteration as done:
            self._walk = None
            self.tags_at = at = done.value
            if at >= limit:
                raise FrameError(f"the walk ended at byte {at} of a {limit}-byte frame") from None
            return
        if need > limit:
            raise FrameError(f"a field runs past the frame's {limit} bytes")
        self._cursor, self._need = cursor, need

    def section(self) -> bytes:
        """The tagged section, once the frame's last piece was fed."""
        window = self._window
        if self._walk is not None or window.end != window.limit:
            raise FrameError("the frame ended before its top-level tagged fields")
        return b"".join(bytes(piece) for piece in window.release(window.limit))


def top_level_tags_at(cls: Any, frame: bytes, version: int) -> int:
    """Where the top-level tagged section of a whole framed response starts."""
    walk = TopLevelTags(cls, version, len(frame))
    walk.feed(frame)
    if walk.tags_at < 0:
        raise FrameError("the frame ended before its top-level tagged fields")
    return walk.tags_at
