"""Tests for L{kgateway.node.loop_lag}."""

from __future__ import annotations

from prometheus_client import CollectorRegistry
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from kgateway.node.loop_lag import LoopLag, LoopLagCollector
from tests.unit.relay.fakes import catch_logs


class LoopLagTests(SynchronousTestCase):
    def test_lag_measured_and_reported(self) -> None:
        clock = Clock()
        logs = catch_logs(self)
        lag = LoopLag(clock, interval=0.5, now=clock.seconds)
        registry = CollectorRegistry()
        registry.register(LoopLagCollector(lag))
        lag.startService()
        clock.advance(0.5)
        self.assertEqual(lag.last, 0.0)
        clock.advance(3.5)  # the loop woke 3 s late
        self.assertEqual(lag.last, 3.0)
        self.assertEqual(lag.stalls, 1)
        self.assertTrue(any("event loop ran 3.0 s late" in line for line in logs()), logs())
        self.assertEqual(registry.get_sample_value("kgateway_event_loop_lag_max_seconds"), 3.0)
        self.assertEqual(registry.get_sample_value("kgateway_event_loop_stalls_total"), 1)
        lag.stopService()
        self.assertEqual(clock.getDelayedCalls(), [])
