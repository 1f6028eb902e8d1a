"""Tests for L{kgateway.protocol.skim}."""

from __future__ import annotations

from typing import Any

from kafka.protocol.consumer import FetchResponse
from kafka.protocol.producer import ProduceResponse
from twisted.trial.unittest import SynchronousTestCase

from kgateway.protocol.skim import Spread, has_top_level_tags
from tests.unit.protocol.builders import fetch_response, produce_response, with_unknown_tags


def cuts(frame: bytes, step: int = 1) -> list[list[bytes]]:
    """The frame cut into two pieces at every position (step apart), then into 3-byte pieces."""
    out = [[frame[:cut], frame[cut:]] for cut in range(1, len(frame), step)]
    out.append([frame[start : start + 3] for start in range(0, len(frame), 3)])
    return out


def top_level_only(message: Any) -> list[Any]:
    return []


class SkimTests(SynchronousTestCase):
    """The skim finds top-level tags the way decoding would, whole or in pieces."""

    def cases(self) -> list[tuple[Any, int, bytes, bool]]:
        """(class, version, frame, has top-level tags) for every flexible version."""
        found = []
        for version in range(9, ProduceResponse.max_version + 1):
            hints = version >= 10
            found.append((ProduceResponse, version, produce_response(version), hints))
            found.append((ProduceResponse, version, produce_response(version, ()), False))
            tagged = with_unknown_tags(
                ProduceResponse, produce_response(version, ()), version, top_level_only
            )
            found.append((ProduceResponse, version, tagged, True))
        for version in range(12, FetchResponse.max_version + 1):
            hints = version >= 16
            found.append((FetchResponse, version, fetch_response(version), hints))
            found.append((FetchResponse, version, fetch_response(version, ()), False))
            # with_unknown_tags always adds a top-level tag, nested ones here too.
            nested = with_unknown_tags(
                FetchResponse,
                fetch_response(version, ()),
                version,
                lambda m: [m.responses[0], m.responses[0].partitions[0]],
            )
            found.append((FetchResponse, version, nested, True))
        return found

    def test_whole_frames(self) -> None:
        """Leader hints and unknown top-level tags are found, nested tags skipped over."""
        for cls, version, frame, expected in self.cases():
            self.assertEqual(
                has_top_level_tags(cls, frame, version), expected, f"{cls.name} v{version}"
            )

    def test_pieces_cut_anywhere(self) -> None:
        """The same answer for the frame held as pieces, cut at every position."""
        for cls, version, frame, expected in self.cases():
            for pieces in cuts(frame, step=7):
                self.assertEqual(
                    has_top_level_tags(cls, pieces, version),
                    expected,
                    f"{cls.name} v{version} cut {[len(p) for p in pieces]}",
                )


class SpreadTests(SynchronousTestCase):
    """L{Spread} reads a frame held as pieces as if it were one bytes object."""

    def test_indexes_and_slices(self) -> None:
        data = bytes(range(40))
        for pieces in cuts(data):
            spread = Spread(pieces)
            self.assertEqual(spread.size, len(data))
            for pos in range(len(data)):
                self.assertEqual(spread[pos], data[pos])
            # Backwards and across pieces too.
            for start in range(len(data) - 1, -1, -1):
                for stop in (start + 1, start + 4, start + 9):
                    if stop <= len(data):
                        self.assertEqual(bytes(spread[start:stop]), data[start:stop])

    def test_out_of_range(self) -> None:
        spread = Spread([b"ab", b"cd"])
        self.assertRaises(IndexError, lambda: spread[4])
        self.assertRaises(IndexError, lambda: spread[-1])
