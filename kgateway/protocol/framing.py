"""
Cut a TCP byte stream into Kafka frames.

Every Kafka request and response is a 4-byte big-endian length followed by
that many bytes.  This is the only place that looks at the stream as bytes;
everything above it receives frames, or the pieces of one frame that it
chose to pass on as they arrive.

L{FrameStream} is the relay's reader.  A frame that completes inside the
data it was given comes back whole.  A frame still arriving is offered to
the caller once its first bytes are in (L{FrameStream.undecided}, with
L{FrameStream.head}): the caller either keeps it whole (L{keep_whole}) or
passes it on (L{pass_on}), and then every later read brings the next piece
of it as L{Cut.tail}, ahead of the frames after it, without the reader
holding any of it.  L{FrameReader} is the plain reader for the node's own
Kafka connections: whole frames only, and an exception for a bad frame.
"""

from __future__ import annotations

from collections.abc import Callable
from struct import Struct
from typing import NamedTuple

DEFAULT_MAX_FRAME_BYTES = 100 * 1024 * 1024

#: The most of a frame's start the relay waits for before it decides whether
#: the frame can pass on as it arrives (a request's header with its client id
#: and Produce's acks fit in a few hundred bytes; one whose head does not fit
#: in this many is kept whole, within the frame limit and the memory budget).
HEAD_BYTES = 8 * 1024

_LENGTH = Struct(">i")


class FrameError(Exception):
    """The peer sent something that cannot be a Kafka frame; the connection must close."""


class Cut(NamedTuple):
    """What one read gave, in stream order: a passed frame's next piece, then whole frames."""

    #: The next piece of the frame being passed on, or None.
    tail: bytes | None
    #: Whether C{tail} is that frame's last piece.
    tail_ends: bool
    #: The frames the read completed, each as the pieces it arrived in.
    frames: list[list[bytes]]


_NOTHING = Cut(None, False, [])

#: Takes the pieces of a frame passed on: each piece, and whether it is the last.
Sink = Callable[[bytes, bool], None]


class FrameStream:
    """
    Cuts a stream into frames; a frame still arriving may be passed on as it arrives.

    A bad length (negative, or over the limit) is not raised: the frames cut
    before it are returned, L{error} says what was wrong, and the reader
    takes nothing more (the caller closes once the earlier frames are
    answered).
    """

    __slots__ = (
        "_max",
        "_limit_name",
        "_pieces",
        "_buffered",
        "_need",
        "_passing",
        "_sink",
        "_decided",
        "error",
        "new_frame",
    )

    def __init__(
        self,
        max_frame_bytes: int = DEFAULT_MAX_FRAME_BYTES,
        limit_name: str = "GATEWAY_MAX_FRAME_BYTES",
    ) -> None:
        self._max = max_frame_bytes
        self._limit_name = limit_name
        self._pieces: list[bytes] = []
        self._buffered = 0
        # Total size (prefix included) of the frame being held, once known.
        self._need = -1
        # Bytes still to come of a frame being passed on, and who takes them.
        self._passing = 0
        self._sink: Sink | None = None
        self._decided = False
        #: Why the stream stopped (a bad frame), or None.
        self.error: str | None = None
        #: Whether the last L{feed} left a frame that began in that very read incomplete.
        self.new_frame = False

    def limit(self, max_frame_bytes: int, name: str) -> None:
        """Frames from now on may be at most C{max_frame_bytes} (the setting C{name} says so)."""
        self._max = max_frame_bytes
        self._limit_name = name

    @property
    def max_frame_bytes(self) -> int:
        """The largest frame accepted now."""
        return self._max

    @property
    def buffered(self) -> int:
        """How many bytes of an incomplete frame are held (none of a frame being passed on)."""
        return self._buffered

    @property
    def passing(self) -> int:
        """How many bytes of the frame being passed on are still to come (0: none is)."""
        return self._passing

    @property
    def in_frame(self) -> bool:
        """Whether a frame has started to arrive and has not ended."""
        return bool(self._pieces) or self._passing > 0

    @property
    def frame_size(self) -> int:
        """The size (prefix included) of the incomplete frame held; -1 if not known yet."""
        return self._need

    @property
    def undecided(self) -> bool:
        """An incomplete frame of known size is held, and nobody said what to do with it."""
        return self._need > 0 and not self._decided

    def head(self, most: int = HEAD_BYTES) -> bytes:
        """The start of the incomplete frame held (up to C{most} bytes, or all of one piece)."""
        pieces = self._pieces
        if len(pieces) == 1:
            return pieces[0]
        out = bytearray()
        for piece in pieces:
            out += piece
            if len(out) >= most:
                break
        return bytes(out)

    def keep_whole(self) -> None:
        """The incomplete frame is held until it is whole (it is not offered again)."""
        self._decided = True

    def pass_on(self, sink: Sink | None = None) -> list[bytes]:
        """
        Pass the incomplete frame on as it arrives: the pieces held so far are
        returned (and no longer held); its later pieces go to C{sink} as they
        arrive (without the caller being asked: a multi-MiB frame costs the
        caller nothing per read), or come as L{Cut.tail} without one.
        """
        pieces = self._pieces
        self._sink = sink
        self._passing = self._need - self._buffered
        self._pieces = []
        self._buffered = 0
        self._need = -1
        self._decided = False
        return pieces

    def drop_sink(self) -> None:
        """The sink goes away: the rest of a passed frame comes as L{Cut.tail} again."""
        self._sink = None

    def stop(self, reason: str) -> None:
        """Take nothing more: drop what is held (the connection is closing)."""
        if self.error is None:
            self.error = reason
        self._pieces = []
        self._buffered = 0
        self._need = -1
        self._passing = 0
        self._sink = None

    def feed(self, data: bytes) -> Cut:
        """Add C{data}: the next piece of a passed frame, if any, then every frame it completes."""
        self.new_frame = False
        if self.error is not None:
            return _NOTHING
        end = len(data)
        pos = 0
        tail: bytes | None = None
        tail_ends = False
        passing = self._passing
        if passing:
            sink = self._sink
            if end <= passing:
                self._passing = left = passing - end
                if sink is None:
                    return Cut(data, left == 0, [])
                if not left:
                    self._sink = None
                sink(data, left == 0)
                return _NOTHING
            self._passing = 0
            pos = passing
            if sink is None:
                tail = data[:passing]
                tail_ends = True
            else:
                self._sink = None
                sink(data[:passing], True)
        frames: list[list[bytes]] = []
        try:
            if self._pieces:
                if self._need < 0:
                    # The length prefix itself was cut: complete it (a few bytes).
                    take = 4 - self._buffered
                    if end - pos < take:
                        self._pieces.append(data[pos:] if pos else data)
                        self._buffered += end - pos
                        return Cut(tail, tail_ends, frames)
                    prefix = b"".join(self._pieces) + data[pos : pos + take]
                    self._need = self._size_of(prefix, 0)
                    self._pieces = [prefix]
                    self._buffered = 4
                    pos += take
                missing = self._need - self._buffered
                if end - pos < missing:
                    if pos < end:
                        self._pieces.append(data[pos:] if pos else data)
                        self._buffered += end - pos
                    return Cut(tail, tail_ends, frames)
                if missing:
                    whole = pos == 0 and missing == end
                    self._pieces.append(data if whole else data[pos : pos + missing])
                frames.append(self._pieces)
                pos += missing
                self._pieces = []
                self._buffered = 0
                self._need = -1
                self._decided = False
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
                self.new_frame = True
                self._need = self._size_of(rest, 0) if len(rest) >= 4 else -1
        except FrameError as e:
            self.stop(str(e))
        return Cut(tail, tail_ends, frames)

    def _size_of(self, data: bytes, pos: int) -> int:
        (size,) = _LENGTH.unpack_from(data, pos)
        if size < 0:
            raise FrameError(f"negative frame length {size}")
        if size > self._max:
            raise FrameError(
                f"frame of {size} bytes is over the limit of {self._max} bytes ({self._limit_name})"
            )
        return int(size) + 4


def joined(frames: list[list[bytes]]) -> list[bytes]:
    """Each frame as one bytes object (a frame of one piece is that piece)."""
    return [pieces[0] if len(pieces) == 1 else b"".join(pieces) for pieces in frames]


class FrameReader:
    """
    Accumulate stream data and hand back complete frames (length prefix included).

    L{feed} gives each frame as one bytes object: a frame inside one read is
    a slice of it, a frame that spanned reads is joined once, when complete.
    L{feed_pieces} gives each frame as the pieces it arrived in instead, so a
    frame that is only passed on is never copied in user space.  A bad frame
    raises L{FrameError}.
    """

    __slots__ = ("_stream",)

    def __init__(self, max_frame_bytes: int = DEFAULT_MAX_FRAME_BYTES) -> None:
        self._stream = FrameStream(max_frame_bytes)
        # Every frame is held whole: nothing is ever offered.
        self._stream.keep_whole()

    @property
    def buffered(self) -> int:
        """How many bytes of an incomplete frame are held."""
        return self._stream.buffered

    def feed(self, data: bytes) -> list[bytes]:
        """Add C{data}; return every frame it completes, in order."""
        return joined(self.feed_pieces(data))

    def feed_pieces(self, data: bytes) -> list[list[bytes]]:
        """
        Add C{data}; return every frame it completes, in order, each as its pieces.

        A frame's pieces are non-empty and in stream order; joined, they are
        the frame.  A frame inside one read is one piece.
        """
        stream = self._stream
        frames = stream.feed(data).frames
        if stream.error is not None:
            raise FrameError(stream.error)
        # Never offered: every frame is kept whole.
        stream.keep_whole()
        return frames
