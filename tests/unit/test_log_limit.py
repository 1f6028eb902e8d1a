"""Tests for L{kgateway.log_limit}: lines a stranger can cause, bounded and counted."""

from __future__ import annotations

from twisted.internet.task import Clock
from twisted.logger import Logger
from twisted.trial.unittest import SynchronousTestCase

from kgateway.log_limit import LogLimiter
from tests.unit.relay.fakes import catch_logs


class LogLimiterTests(SynchronousTestCase):
    def test_burst_then_counted(self) -> None:
        clock = Clock()
        logs = catch_logs(self)
        limiter = LogLimiter(Logger(), burst=3, interval=10.0, now=clock.seconds)
        let = [limiter.warn("client {n} did a bad thing", n=n) for n in range(10)]
        self.assertEqual(let, [True] * 3 + [False] * 7)
        self.assertEqual(limiter.left_out, 7)
        # Another kind has a limit of its own.
        self.assertTrue(limiter.warn("something else {n}", n=1))
        clock.advance(10)
        self.assertTrue(limiter.warn("client {n} did a bad thing", n=99))
        lines = [line for line in logs() if "bad thing" in line]
        self.assertEqual(len(lines), 4)
        self.assertEqual(lines[-1], "client 99 did a bad thing (7 more like this were not logged)")
