"""
Tests for L{kgateway.protocol.resumable_skim}: the walk to a response's
top-level tags, fed the frame in pieces cut at every point.
"""

from __future__ import annotations

from typing import Any

from kafka.protocol.consumer import FetchResponse
from kafka.protocol.producer import ProduceResponse
from twisted.trial.unittest import SynchronousTestCase

from kgateway.protocol.framing import FrameError
from kgateway.protocol.resumable_skim import TopLevelTags, top_level_tags_at
from kgateway.protocol.skim import has_top_level_tags

from .builders import fetch_response, produce_response, with_unknown_tags


def cases() -> list[tuple[Any, int, bytes]]:
    """(class, version, frame): every flexible version, with and without tags, nested ones too."""
    found = []
    for version in range(9, ProduceResponse.max_version + 1):
        found.append((ProduceResponse, version, produce_response(version)))
        found.append((ProduceResponse, version, produce_response(version, ())))
    for version in range(12, FetchResponse.max_version + 1):
        found.append((FetchResponse, version, fetch_response(version)))
        plain = fetch_response(version, ())
        found.append((FetchResponse, version, plain))
        nested = with_unknown_tags(
            FetchResponse,
            plain,
            version,
            lambda m: [m.responses[0], m.responses[0].partitions[0]],
        )
        found.append((FetchResponse, version, nested))
    return found


def walk(cls: Any, version: int, frame: bytes, bounds: list[int]) -> tuple[TopLevelTags, list[int]]:
    """Feed the pieces between C{bounds}; the walk, and how much it kept after each piece."""
    tags = TopLevelTags(cls, version, len(frame))
    passed = 0
    kept = []
    out = b""
    for start, end in zip(bounds, bounds[1:], strict=False):
        released = b"".join(bytes(piece) for piece in tags.feed(frame[start:end]))
        out += released
        passed += len(released)
        kept.append(end - passed)
    assert out + tags.section() == frame
    return tags, kept


class TopLevelTagsTests(SynchronousTestCase):
    def test_whole(self) -> None:
        """A whole frame: the tags are where the codec's own encoding puts them."""
        for cls, version, frame in cases():
            at = top_level_tags_at(cls, frame, version)
            self.assertEqual(frame[at] != 0, has_top_level_tags(cls, frame, version))

    def test_two_pieces_cut_anywhere(self) -> None:
        """Cut at every point, the walk finds the same place and passes every other byte on."""
        for cls, version, frame in cases():
            at = top_level_tags_at(cls, frame, version)
            for cut in range(1, len(frame), 7):
                tags, kept = walk(cls, version, frame, [0, cut, len(frame)])
                self.assertEqual(tags.tags_at, at, f"{cls.name} v{version} cut {cut}")
                # After the first piece, the walk keeps at most a field cut in two.
                if cut < at:
                    self.assertLessEqual(kept[0], 8, f"{cls.name} v{version} cut {cut}")

    def test_byte_by_byte(self) -> None:
        """One byte at a time: nothing is kept but a field being read, then the tags."""
        for cls, version, frame in cases():
            at = top_level_tags_at(cls, frame, version)
            tags, kept = walk(cls, version, frame, list(range(len(frame) + 1)))
            self.assertEqual(tags.tags_at, at)
            self.assertLessEqual(max(kept[: at - 1]), 5, f"{cls.name} v{version}")

    def test_malformed(self) -> None:
        """An array or field running past the frame is an error, not a long walk."""
        frame = bytearray(fetch_response(16, ()))
        # The partitions' count (after the topic id) claims far more than there is.
        frame[4 + 4 + 1 + 4 + 2 + 4 + 1 + 16] = 0x7F
        with self.assertRaises(FrameError):
            top_level_tags_at(FetchResponse, bytes(frame), 16)
        # A frame that ends before its tags were reached has none to give.
        short = fetch_response(16, ())
        tags = TopLevelTags(FetchResponse, 16, len(short) + 1)
        tags.feed(short)
        self.assertRaises(FrameError, tags.section)
