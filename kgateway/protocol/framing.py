"""
Cut a TCP byte stream into Kafka frames.

Every Kafka request and response is a 4-byte big-endian length followed by
that many bytes.  This is the only place that looks at the stream as bytes;
everything above it receives whole frames.
"""

from __future__ import annotations

from struct import Struct

DEFAULT_MAX_FRAME_BYTES = 100 * 1024 * 1024

_LENGTH = Struct(">i")


class FrameError(Exception):
    """The peer sent something that cannot be a Kafka frame; the connection must close."""


class FrameReader:
    """
    Accumulate stream data and hand back complete frames (length prefix included).

    Partial frames are held as a list of chunks and joined once, when the
    frame is complete, so a large frame arriving in many reads costs one copy.
    """

    __slots__ = ("_max", "_chunks", "_buffered", "_need")

    def __init__(self, max_frame_bytes: int = DEFAULT_MAX_FRAME_BYTES) -> None:
        self._max = max_frame_bytes
        self._chunks: list[bytes] = []
        self._buffered = 0
        # Total size (prefix included) of the frame being assembled, once known.
        self._need = -1

    @property
    def buffered(self) -> int:
        """How many bytes of an incomplete frame are held."""
        return self._buffered

    def feed(self, data: bytes) -> list[bytes]:
        """Add C{data}; return every frame it completes, in order."""
        if self._chunks:
            self._chunks.append(data)
            self._buffered += len(data)
            if self._need < 0:
                if self._buffered < 4:
                    return []
                joined = b"".join(self._chunks)
                self._chunks = [joined]
                self._need = self._size_of(joined, 0)
            if self._buffered < self._need:
                return []
            data = b"".join(self._chunks)
            self._chunks = []
            self._buffered = 0
            self._need = -1
        frames: list[bytes] = []
        pos = 0
        end = len(data)
        while end - pos >= 4:
            need = self._size_of(data, pos)
            if end - pos < need:
                break
            frames.append(data if (pos == 0 and need == end) else data[pos : pos + need])
            pos += need
        if pos < end:
            rest = data[pos:] if pos else data
            self._chunks = [rest]
            self._buffered = len(rest)
            self._need = self._size_of(rest, 0) if len(rest) >= 4 else -1
        return frames

    def _size_of(self, data: bytes, pos: int) -> int:
        (size,) = _LENGTH.unpack_from(data, pos)
        if size < 0:
            raise FrameError(f"negative frame length {size}")
        if size > self._max:
            raise FrameError(
                f"frame of {size} bytes is over the limit of {self._max} bytes "
                "(GATEWAY_MAX_FRAME_BYTES)"
            )
        return int(size) + 4
