"""PollService: a TimerService whose stop cancels the poll in flight."""

from __future__ import annotations

from twisted.internet.defer import CancelledError, Deferred, succeed
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from kgateway.cluster.polling import PollService


class PollServiceTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.clock = Clock()
        self.polls: list[Deferred[None]] = []
        self.answer_at_once = True

    def poll(self) -> Deferred[None]:
        self.polls.append(succeed(None) if self.answer_at_once else Deferred())
        return self.polls[-1]

    def test_polls_at_start_then_every_step(self) -> None:
        service = PollService(2.0, self.poll, self.clock)
        service.startService()
        self.assertEqual(len(self.polls), 1)
        self.clock.advance(1.9)
        self.assertEqual(len(self.polls), 1)
        self.clock.advance(0.1)
        self.assertEqual(len(self.polls), 2)
        self.successResultOf(service.stopService())
        self.clock.advance(10)
        self.assertEqual(len(self.polls), 2)
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_the_next_poll_waits_for_the_last(self) -> None:
        """As with TimerService, a slow poll delays the next one rather than overlapping it."""
        self.answer_at_once = False
        service = PollService(1.0, self.poll, self.clock)
        service.startService()
        self.addCleanup(service.stopService)
        self.clock.advance(5)
        self.assertEqual(len(self.polls), 1)
        self.polls[0].callback(None)
        self.clock.advance(1)
        self.assertEqual(len(self.polls), 2)

    def test_stop_cancels_the_poll_in_flight(self) -> None:
        """Stopping fires at once, cancelling the poll; the cancellation is no error."""
        self.answer_at_once = False
        service = PollService(1.0, self.poll, self.clock)
        service.startService()
        self.successResultOf(service.stopService())
        self.assertTrue(self.polls[0].called)
        self.assertEqual(self.flushLoggedErrors(CancelledError), [])
        self.assertFalse(service.running)
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_stop_before_start(self) -> None:
        service = PollService(1.0, self.poll, self.clock)
        self.successResultOf(service.stopService())
        self.assertEqual(self.polls, [])
