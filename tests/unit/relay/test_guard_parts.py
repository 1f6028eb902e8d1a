"""The parts of the relay's limits on their own: the read gate, the budget, the timer."""

from __future__ import annotations

from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport
from twisted.trial.unittest import SynchronousTestCase

from kgateway.relay.budget import MemoryBudget
from kgateway.relay.deadlines import ConnectionTimer
from kgateway.relay.read_gate import ReadGate, Reason


class ReadGateTests(SynchronousTestCase):
    def test_each_reason_lifts_only_itself(self) -> None:
        transport = StringTransport()
        gate = ReadGate(transport, int(Reason.ROUTING))
        self.assertEqual(transport.producerState, "paused")
        gate.pause(Reason.BUDGET)
        gate.resume(Reason.ROUTING)
        self.assertEqual(transport.producerState, "paused")
        gate.pauseProducing()  # the other side's buffer is full
        gate.resume(Reason.BUDGET)
        self.assertEqual(transport.producerState, "paused")
        self.assertEqual(gate.reasons, Reason.BACKPRESSURE)
        gate.resumeProducing()
        self.assertEqual(transport.producerState, "producing")
        gate.resume(Reason.HELD)  # not in force: nothing happens
        self.assertEqual(transport.producerState, "producing")
        gate.stopProducing()
        self.assertEqual(transport.producerState, "stopped")


class BudgetTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.budget = MemoryBudget(limit=1000, resume_fraction=0.5)
        self.gates = [ReadGate(StringTransport()) for _ in range(4)]
        self.holdings = [self.budget.holding(f"c{n}", [g]) for n, g in enumerate(self.gates)]

    def test_crossing_pauses_those_above_the_average(self) -> None:
        big, medium, small, idle = self.holdings
        small.set(50)
        medium.set(400)
        big.set(700)  # 1150 > 1000: the average of the three holders is 383
        self.assertEqual([h.paused for h in self.holdings], [True, True, False, False])
        self.assertEqual(self.budget.paused_connections, 2)
        # Still over: a holder growing past the average is paused as it grows.
        small.set(500)  # 1600: the average is 533, it is under it and reads on
        self.assertFalse(small.paused)
        small.set(600)  # 1700: now over the average of 567
        self.assertTrue(small.paused)
        # The idle one holding nothing is never paused.
        self.assertFalse(idle.paused)

    def test_resumed_under_the_low_mark(self) -> None:
        big, medium, _, _ = self.holdings
        big.set(800)
        medium.set(300)
        self.assertTrue(big.paused)
        big.set(300)  # 600: under the limit, not yet under half of it
        self.assertTrue(big.paused)
        big.release()  # 300
        self.assertFalse(medium.paused)
        self.assertEqual(self.budget.total, 300)
        self.assertEqual(self.budget.peak, 1100)

    def test_gate_added_later_is_paused_too(self) -> None:
        holding = self.holdings[0]
        holding.set(2000)
        late = ReadGate(StringTransport())
        holding.add_gate(late)
        self.assertTrue(late.paused)


class Owner:
    def __init__(self) -> None:
        self.busy_now = False
        self.expired: list[tuple[str, str]] = []

    def busy(self) -> bool:
        return self.busy_now

    def idle_expired(self, reason: str) -> None:
        self.expired.append(("idle", reason))

    def frame_expired(self, reason: str) -> None:
        self.expired.append(("frame", reason))


class ConnectionTimerTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.clock = Clock()
        self.owner = Owner()
        self.timer = ConnectionTimer(self.clock, self.clock.seconds, 600.0, 30.0, self.owner)

    def test_activity_only_records_the_time(self) -> None:
        """Requests move no timer: the one call looks at the time when it comes."""
        [call] = self.clock.getDelayedCalls()
        for _ in range(1, 500):
            self.clock.advance(1)
            self.timer.last_active = self.clock.seconds()
        self.assertEqual(self.clock.getDelayedCalls(), [call])
        self.clock.advance(101)  # the call comes at 600 and sets itself for 1099
        self.assertEqual(self.owner.expired, [])
        self.clock.advance(499)
        self.assertEqual([kind for kind, _ in self.owner.expired], ["idle"])

    def test_frame_deadline_moves_the_call_sooner(self) -> None:
        self.clock.advance(10)
        self.timer.frame_began(self.clock.seconds())
        self.assertEqual([c.getTime() for c in self.clock.getDelayedCalls()], [40.0])
        self.clock.advance(30)
        [(kind, reason)] = self.owner.expired
        self.assertEqual(kind, "frame")
        self.assertIn("started 30.0 s ago", reason)

    def test_frame_done_in_time(self) -> None:
        self.timer.frame_began(0.0)
        self.clock.advance(5)
        self.timer.frame_started = -1.0
        self.timer.last_active = 5.0
        self.clock.advance(25)
        self.assertEqual(self.owner.expired, [])
        self.assertEqual([c.getTime() for c in self.clock.getDelayedCalls()], [605.0])

    def test_busy_is_never_idle(self) -> None:
        self.owner.busy_now = True
        self.clock.advance(6000)
        self.assertEqual(self.owner.expired, [])

    def test_stop(self) -> None:
        self.timer.stop()
        self.assertEqual(self.clock.getDelayedCalls(), [])


class DrainedTests(SynchronousTestCase):
    def test_told_once_a_burst_drained(self) -> None:
        told: list[int] = []
        budget = MemoryBudget(limit=400 << 20, on_drained=lambda: told.append(budget.total))
        holding = budget.holding("c", [ReadGate(StringTransport())])
        holding.set(50 << 20)
        holding.set(10 << 20)
        self.assertEqual(told, [])  # no burst: never reached a quarter of the budget
        holding.set(150 << 20)
        holding.set(60 << 20)
        self.assertEqual(told, [])  # not yet under an eighth
        holding.release()
        self.assertEqual(told, [0])
