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

    L{feed} gives each frame as one bytes object: a frame inside one read is
    a slice of it, a frame that spanned reads is joined once, when complete.
    L{feed_pieces} gives each frame as the pieces it arrived in instead, so a
    frame that is only passed on is never copied in user space.
    """

    __slots__ = ("_max", "_pieces", "_buffered", "_need")

    def __init__(self, max_frame_bytes: int = DEFAULT_MAX_FRAME_BYTES) -> None:
        self._max = max_frame_bytes
        self._pieces: list[bytes] = []
        self._buffered = 0
        # Total size (prefix included) of the frame being assembled, once known.
        self._need = -1

    @property
    def buffered(self) -> int:
        """How many bytes of an incomplete frame are held."""
        return self._buffered

    def feed(self, data: bytes) -> list[bytes]:
        """Add C{data}; return every frame it completes, in order."""
        return [
            pieces[0] if len(pieces) == 1 else b"".join(pieces) for pieces in self.feed_pieces(data)
        ]

    def feed_pieces(self, data: bytes) -> list[list[bytes]]:
        """
        Add C{data}; return every frame it completes, in order, each as its pieces.

        A frame's pieces are non-empty and in stream order; joined, they are
        the frame.  A frame inside one read is one piece.
        """
        frames: list[list[bytes]] = []
        pos = 0
        end = len(data)
        if self._pieces:
            if self._need < 0:
                # The length prefix itself was cut: complete it (a few bytes).
                take = 4 - self._buffered
                if end < take:
                    self._pieces.append(data)
                    self._buffered += end
                    return frames
                prefix = b"".join(self._pieces) + data[:take]
                self._need = self._size_of(prefix, 0)
                self._pieces = [prefix]
                self._buffered = 4
                pos = take
            missing = self._need - self._buffered
            if end - pos < missing:
                if pos < end:
                    self._pieces.append(data[pos:] if pos else data)
                    self._buffered += end - pos
                return frames
            if missing:
                whole = pos == 0 and missing == end
                self._pieces.append(data if whole else data[pos : pos + missing])
            frames.append(self._pieces)
            pos += missing
            self._pieces = []
            self._buffered = 0
            self._need = -1
        while end - pos >= 4:
            need = self._size_of(data, pos)
            if end - pos < need:
                break
            frames.append([data if (pos == 0 and need == end) else data[pos : pos + need]])
            pos += need
        if pos < end:
            rest = data[pos:] if pos else data
            self._pieces = [rest]
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
