"""Tests for L{kgateway.protocol.framing}."""

from __future__ import annotations

from struct import pack

from twisted.trial.unittest import SynchronousTestCase

from kgateway.protocol.framing import DEFAULT_MAX_FRAME_BYTES, FrameError, FrameReader, FrameStream


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


def joined(frames: list[list[bytes]]) -> list[bytes]:
    """Each frame's pieces joined, after checking that no piece is empty."""
    for pieces in frames:
        assert pieces and all(pieces), pieces
    return [b"".join(pieces) for pieces in frames]


class FeedPiecesTests(SynchronousTestCase):
    """L{FrameReader.feed_pieces} gives each frame as the pieces it arrived in."""

    def test_frame_inside_one_read_is_one_piece(self) -> None:
        """A frame that is the whole read is that very object: nothing is copied."""
        reader = FrameReader()
        data = frame(b"hello kafka")
        [[piece]] = reader.feed_pieces(data)
        self.assertIs(piece, data)

    def test_frames_in_one_read(self) -> None:
        """Several frames in one read are one piece each, in order."""
        got = FrameReader().feed_pieces(STREAM)
        self.assertEqual(got, [[each] for each in FRAMES])

    def test_split_at_every_boundary(self) -> None:
        """Cut anywhere, prefixes included, the pieces join into the same frames."""
        for cut in range(len(STREAM) + 1):
            reader = FrameReader()
            got = reader.feed_pieces(STREAM[:cut]) + reader.feed_pieces(STREAM[cut:])
            self.assertEqual(joined(got), FRAMES, f"cut at byte {cut}")
            self.assertEqual(reader.buffered, 0, f"cut at byte {cut}")

    def test_split_twice_at_every_pair_of_boundaries(self) -> None:
        """Three reads cut at any two places give the same frames; each read is one piece."""
        for first in range(len(STREAM) + 1):
            for second in range(first, len(STREAM) + 1):
                reader = FrameReader()
                reads = [STREAM[:first], STREAM[first:second], STREAM[second:]]
                got = [pieces for read in reads for pieces in reader.feed_pieces(read)]
                self.assertEqual(joined(got), FRAMES, f"cuts at {first} and {second}")
                # A frame has at most one piece per read it spans.
                for pieces in got:
                    self.assertLessEqual(len(pieces), 3)

    def test_one_byte_at_a_time(self) -> None:
        """Fed byte by byte, every frame still comes out whole and in order."""
        reader = FrameReader()
        got = []
        for index in range(len(STREAM)):
            got += reader.feed_pieces(STREAM[index : index + 1])
        self.assertEqual(joined(got), FRAMES)

    def test_large_frame_keeps_its_reads(self) -> None:
        """A 1 MiB frame fed in 4 KiB reads is handed back as those reads, not joined."""
        payload = bytes(range(256)) * 4096
        big = frame(payload)
        data = big + frame(b"next")
        reader = FrameReader()
        reads = [data[start : start + 4096] for start in range(0, len(data), 4096)]
        got = []
        for read in reads:
            got += reader.feed_pieces(read)
        self.assertEqual(joined(got), [big, frame(b"next")])
        pieces = got[0]
        self.assertEqual(len(pieces), len(big) // 4096 + 1)
        # Every read the frame filled entirely is passed on as the same object.
        for piece, read in zip(pieces[:-1], reads, strict=False):
            self.assertIs(piece, read)

    def test_feed_and_feed_pieces_agree(self) -> None:
        """feed() is feed_pieces() with each frame joined."""
        for cut in range(len(STREAM) + 1):
            whole, pieces = FrameReader(), FrameReader()
            self.assertEqual(
                whole.feed(STREAM[:cut]) + whole.feed(STREAM[cut:]),
                joined(pieces.feed_pieces(STREAM[:cut]) + pieces.feed_pieces(STREAM[cut:])),
            )

    def test_limit_checked_when_the_prefix_completes(self) -> None:
        """A length over the limit is refused as soon as its prefix is whole, however cut."""
        data = pack(">i", 101) + b"x" * 10
        for cut in range(1, 4):
            reader = FrameReader(max_frame_bytes=100)
            self.assertEqual(reader.feed_pieces(data[:cut]), [])
            self.assertRaises(FrameError, reader.feed_pieces, data[cut:])


class FrameStreamTests(SynchronousTestCase):
    """L{FrameStream}: a frame still arriving may be passed on as it arrives."""

    def test_offered_then_passed_on_at_every_cut(self) -> None:
        """Wherever the reads are cut, passed pieces and whole frames give back the stream."""
        data = frame(b"x" * 50) + STREAM + frame(b"y" * 30)
        for cut in range(1, len(data)):
            for second in (cut, min(cut + 9, len(data))):
                reader = FrameStream()
                out = b""
                for start, end in ((0, cut), (cut, second), (second, len(data))):
                    got = reader.feed(data[start:end])
                    if got.tail is not None:
                        out += got.tail
                    out += b"".join(b"".join(pieces) for pieces in got.frames)
                    if reader.undecided:
                        out += b"".join(reader.pass_on())
                self.assertEqual(out, data, f"cuts {cut}, {second}")
                self.assertFalse(reader.in_frame)

    def test_kept_whole_is_not_offered_again(self) -> None:
        reader = FrameStream()
        data = frame(b"z" * 20)
        reader.feed(data[:10])
        self.assertTrue(reader.undecided)
        self.assertEqual(reader.head(), data[:10])
        self.assertEqual(reader.frame_size, len(data))
        reader.keep_whole()
        self.assertFalse(reader.undecided)
        reader.feed(data[10:15])
        self.assertFalse(reader.undecided)
        self.assertEqual(reader.buffered, 15)
        self.assertEqual(reader.feed(data[15:]).frames, [[data[:10], data[10:15], data[15:]]])

    def test_bad_length_after_good_frames(self) -> None:
        """The frames before a bad length come back; the error is kept, nothing more is taken."""
        reader = FrameStream(max_frame_bytes=100)
        got = reader.feed(FRAMES[0] + FRAMES[1] + pack(">i", 101) + b"more")
        self.assertEqual(got.frames, [[FRAMES[0]], [FRAMES[1]]])
        self.assertIn("over the limit of 100 bytes (GATEWAY_MAX_FRAME_BYTES)", reader.error or "")
        self.assertEqual(reader.feed(FRAMES[2]).frames, [])

    def test_limit_changed_while_connected(self) -> None:
        reader = FrameStream(max_frame_bytes=1000)
        reader.limit(10, "GATEWAY_MAX_PRE_AUTH_FRAME_BYTES")
        reader.feed(frame(b"z" * 11))
        self.assertIn("GATEWAY_MAX_PRE_AUTH_FRAME_BYTES", reader.error or "")
