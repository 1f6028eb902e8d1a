"""
The in-flight queue: each request's stage, pairing, and what may leave when.
"""

from __future__ import annotations

from twisted.trial.unittest import SynchronousTestCase

from kgateway.protocol.framing import FrameError
from kgateway.relay.inflight import InFlight, Pending, Stage
from tests.unit.relay.fakes import list_offsets_response


def stages(inflight: InFlight) -> list[tuple[int, Stage]]:
    """Take everything left in the queue; each request's correlation id and stage."""
    return [(p.correlation_id, p.stage) for p in inflight.abandon()]


class StageTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.inflight = InFlight()

    def test_sent_to_the_broker_awaits_it(self) -> None:
        self.inflight.expect_broker(1, 2, 7, 10.0, None)
        self.assertEqual(len(self.inflight), 1)
        self.assertEqual(self.inflight.take_ready(), [])
        self.assertEqual(stages(self.inflight), [(1, Stage.AWAITING_BROKER)])

    def test_answered_locally_is_ready_in_its_turn(self) -> None:
        """A local answer waits behind an earlier request, then leaves."""
        self.inflight.expect_broker(1, 2, 7, 10.0, None)
        self.inflight.answer_locally(2, 55, 2, 10.0, b"local")
        self.assertEqual(self.inflight.take_ready(), [])

        pending = self.inflight.pair(list_offsets_response(1))
        self.assertIs(pending.stage, Stage.AWAITING_BROKER)
        self.inflight.ready(pending, b"broker's")
        taken = self.inflight.take_ready()
        self.assertEqual(
            [(p.correlation_id, p.stage, p.answer) for p in taken],
            [(1, Stage.READY, b"broker's"), (2, Stage.ANSWERED_LOCALLY, b"local")],
        )
        self.assertEqual(len(self.inflight), 0)

    def test_intercepted_answers_hold_later_ones(self) -> None:
        """An answer held by an interceptor is neither pairable nor ready; later ones wait."""
        self.inflight.expect_broker(1, 2, 7, 10.0, None)
        self.inflight.expect_broker(2, 2, 7, 10.0, None)
        first = self.inflight.pair(list_offsets_response(1))
        self.inflight.intercepted(first, list_offsets_response(1))
        self.assertIs(first.stage, Stage.INTERCEPTED)
        self.assertIsNone(first.answer)
        # The next broker response answers request 2, not the held one.
        second = self.inflight.pair(list_offsets_response(2))
        self.assertEqual(second.correlation_id, 2)
        self.inflight.ready(second, b"two")
        self.assertEqual(self.inflight.take_ready(), [])
        self.assertIsNone(self.inflight.awaiting_head())

        self.inflight.ready(first, b"one")
        self.assertEqual([p.answer for p in self.inflight.take_ready()], [b"one", b"two"])

    def test_pairing_skips_answered_requests(self) -> None:
        self.inflight.answer_locally(1, 55, 2, 10.0, b"local")
        self.inflight.expect_broker(2, 2, 7, 10.0, None)
        self.assertEqual(self.inflight.pair(list_offsets_response(2)).correlation_id, 2)

    def test_a_stranger_is_a_protocol_error(self) -> None:
        self.inflight.expect_broker(1, 2, 7, 10.0, None)
        with self.assertRaises(FrameError) as caught:
            self.inflight.pair(list_offsets_response(2))
        self.assertEqual(str(caught.exception), "broker answered correlation id 2, expected 1")

    def test_an_unasked_response_is_a_protocol_error(self) -> None:
        self.inflight.answer_locally(1, 55, 2, 10.0, b"local")
        with self.assertRaises(FrameError) as caught:
            self.inflight.pair(list_offsets_response(1))
        self.assertIn("nobody asked for", str(caught.exception))

    def test_passing_through_takes_the_head_and_what_is_ready_behind_it(self) -> None:
        self.inflight.expect_broker(1, 2, 7, 10.0, None)
        self.inflight.answer_locally(2, 55, 2, 10.0, b"two")
        self.inflight.answer_locally(3, 55, 2, 10.0, b"three")
        self.inflight.expect_broker(4, 2, 7, 10.0, None)
        head = self.inflight.awaiting_head()
        assert head is not None
        self.assertEqual(head.correlation_id, 1)
        done: list[Pending] = []
        answers: list[bytes | memoryview] = [b"one's pieces"]
        self.inflight.take_passed(done, answers)
        self.assertEqual([p.correlation_id for p in done], [1, 2, 3])
        self.assertEqual(answers, [b"one's pieces", b"two", b"three"])
        self.assertEqual(stages(self.inflight), [(4, Stage.AWAITING_BROKER)])

    def test_no_head_to_pass_when_empty_or_answered(self) -> None:
        self.assertIsNone(self.inflight.awaiting_head())
        self.inflight.answer_locally(1, 55, 2, 10.0, b"local")
        self.inflight.expect_broker(2, 2, 7, 10.0, None)
        self.assertIsNone(self.inflight.awaiting_head())

    def test_abandon_takes_everything(self) -> None:
        self.inflight.expect_broker(1, 2, 7, 10.0, None)
        self.inflight.answer_locally(2, 55, 2, 10.0, b"local")
        self.assertEqual([p.correlation_id for p in self.inflight.abandon()], [1, 2])
        self.assertEqual(len(self.inflight), 0)
        self.assertEqual(self.inflight.abandon(), [])
