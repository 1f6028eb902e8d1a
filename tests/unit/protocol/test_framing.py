"""Tests for L{kgateway.protocol.framing}."""

from __future__ import annotations

from struct import pack

from twisted.trial.unittest import SynchronousTestCase

from kgateway.protocol.framing import DEFAULT_MAX_FRAME_BYTES, FrameError, FrameReader


def frame(payload: bytes) -> bytes:
    """A frame: the payload behind its 4-byte big-endian length."""
    return pack(">i", len(payload)) + payload


FRAMES = [frame(b"first"), frame(b""), frame(b"\x00\x01\x02 third frame \xff"), frame(b"4")]
STREAM = b"".join(FRAMES)


class FrameReaderTests(SynchronousTestCase):
    """L{FrameReader} cuts a byte stream into whole frames, prefix included."""

    def test_single_frame(self) -> None:
        """One whole frame in one chunk comes back as it is, and nothing is held."""
        reader = FrameReader()
        data = frame(b"hello kafka")
        self.assertEqual(reader.feed(data), [data])
        self.assertEqual(reader.buffered, 0)

    def test_many_frames_in_one_chunk(self) -> None:
        """Every frame in one chunk comes back, in order."""
        reader = FrameReader()
        self.assertEqual(reader.feed(STREAM), FRAMES)
        self.assertEqual(reader.buffered, 0)

    def test_split_at_every_boundary(self) -> None:
        """Cut anywhere, length prefixes included, the stream gives the same frames."""
        for cut in range(len(STREAM) + 1):
            reader = FrameReader()
            got = reader.feed(STREAM[:cut]) + reader.feed(STREAM[cut:])
            self.assertEqual(got, FRAMES, f"cut at byte {cut}")
            self.assertEqual(reader.buffered, 0, f"cut at byte {cut}")

    def test_split_twice_at_every_pair_of_boundaries(self) -> None:
        """Three chunks cut at any two places give the same frames."""
        for first in range(len(STREAM) + 1):
            for second in range(first, len(STREAM) + 1):
                reader = FrameReader()
                got = (
                    reader.feed(STREAM[:first])
                    + reader.feed(STREAM[first:second])
                    + reader.feed(STREAM[second:])
                )
                self.assertEqual(got, FRAMES, f"cuts at {first} and {second}")

    def test_one_byte_at_a_time(self) -> None:
        """Fed byte by byte, each frame comes out on the byte that completes it."""
        reader = FrameReader()
        got = []
        ends = []
        for index in range(len(STREAM)):
            out = reader.feed(STREAM[index : index + 1])
            if out:
                ends.append(index + 1)
            got += out
        self.assertEqual(got, FRAMES)
        expected_ends = []
        total = 0
        for each in FRAMES:
            total += len(each)
            expected_ends.append(total)
        self.assertEqual(ends, expected_ends)

    def test_large_frame_in_many_chunks(self) -> None:
        """A 1 MiB frame fed in 4 KiB reads is held, counted, then given back whole."""
        payload = bytes(range(256)) * 4096
        data = frame(payload) + frame(b"next")
        reader = FrameReader()
        got = []
        fed = 0
        for start in range(0, len(data), 4096):
            chunk = data[start : start + 4096]
            got += reader.feed(chunk)
            fed += len(chunk)
            if not got:
                self.assertEqual(reader.buffered, fed)
        self.assertEqual(got, [frame(payload), frame(b"next")])
        self.assertEqual(reader.buffered, 0)

    def test_negative_length(self) -> None:
        """A negative length is not a frame."""
        error = self.assertRaises(FrameError, FrameReader().feed, pack(">i", -1) + b"xxxx")
        self.assertIn("negative frame length -1", str(error))

    def test_negative_length_split_inside_prefix(self) -> None:
        """A negative length is found once its four bytes have arrived, however split."""
        reader = FrameReader()
        self.assertEqual(reader.feed(b"\xff\xff"), [])
        self.assertEqual(reader.feed(b"\xff"), [])
        self.assertRaises(FrameError, reader.feed, b"\xfe")

    def test_over_limit(self) -> None:
        """A length over the limit is refused, naming the limit and the setting."""
        reader = FrameReader(max_frame_bytes=100)
        error = self.assertRaises(FrameError, reader.feed, pack(">i", 101))
        self.assertIn("101", str(error))
        self.assertIn("limit of 100 bytes", str(error))
        self.assertIn("GATEWAY_MAX_FRAME_BYTES", str(error))

    def test_over_limit_after_a_good_frame(self) -> None:
        """The limit applies to a frame that follows another in the same chunk."""
        reader = FrameReader(max_frame_bytes=100)
        self.assertRaises(FrameError, reader.feed, frame(b"ok") + pack(">i", 500))

    def test_at_limit(self) -> None:
        """A frame of exactly the limit is accepted."""
        reader = FrameReader(max_frame_bytes=100)
        data = frame(b"x" * 100)
        self.assertEqual(reader.feed(data), [data])

    def test_default_limit(self) -> None:
        """Without a limit given, 100 MiB is the limit."""
        self.assertEqual(DEFAULT_MAX_FRAME_BYTES, 100 * 1024 * 1024)
        reader = FrameReader()
        self.assertEqual(reader.feed(pack(">i", DEFAULT_MAX_FRAME_BYTES)), [])
        self.assertRaises(FrameError, FrameReader().feed, pack(">i", DEFAULT_MAX_FRAME_BYTES + 1))

    def test_zero_length_frame(self) -> None:
        """A zero-length frame is its four length bytes, whole or split."""
        reader = FrameReader()
        self.assertEqual(reader.feed(b"\x00\x00\x00\x00"), [b"\x00\x00\x00\x00"])
        self.assertEqual(reader.feed(b"\x00\x00"), [])
        self.assertEqual(reader.feed(b"\x00\x00"), [b"\x00\x00\x00\x00"])
        self.assertEqual(reader.buffered, 0)

    def test_partial_data_is_retained(self) -> None:
        """What follows the last whole frame is held and completed by the next chunk."""
        reader = FrameReader()
        second = frame(b"second frame")
        self.assertEqual(reader.feed(FRAMES[0] + second[:7]), [FRAMES[0]])
        self.assertEqual(reader.buffered, 7)
        self.assertEqual(reader.feed(b""), [])
        self.assertEqual(reader.buffered, 7)
        self.assertEqual(reader.feed(second[7:10]), [])
        self.assertEqual(reader.buffered, 10)
        self.assertEqual(reader.feed(second[10:] + FRAMES[3][:2]), [second])
        self.assertEqual(reader.buffered, 2)
        self.assertEqual(reader.feed(FRAMES[3][2:]), [FRAMES[3]])
        self.assertEqual(reader.buffered, 0)

    def test_partial_prefix_is_retained(self) -> None:
        """Fewer than four bytes are held until the length can be read."""
        reader = FrameReader()
        data = frame(b"abc")
        self.assertEqual(reader.feed(data[:1]), [])
        self.assertEqual(reader.buffered, 1)
        self.assertEqual(reader.feed(data[1:3]), [])
        self.assertEqual(reader.buffered, 3)
        self.assertEqual(reader.feed(data[3:]), [data])
        self.assertEqual(reader.buffered, 0)

    def test_empty_feed(self) -> None:
        """Feeding nothing gives nothing."""
        reader = FrameReader()
        self.assertEqual(reader.feed(b""), [])
        self.assertEqual(reader.buffered, 0)
