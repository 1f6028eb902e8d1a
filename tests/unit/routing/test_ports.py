"""Tests for L{kgateway.routing.ports}."""

from __future__ import annotations

from twisted.trial.unittest import SynchronousTestCase

from kgateway.routing.ports import PortPlan


class PortPlanTests(SynchronousTestCase):
    """L{PortPlan}: port = start + (broker id - min broker id), for count ports."""

    def test_ports(self) -> None:
        """The node listens on C{count} consecutive ports from C{start}."""
        self.assertEqual(list(PortPlan(9092, 3).ports), [9092, 9093, 9094])
        self.assertEqual(list(PortPlan(9092, 0).ports), [])

    def test_port_for(self) -> None:
        """Each broker id in the plan has its port."""
        plan = PortPlan(start=19092, count=3, min_broker_id=1)
        self.assertEqual([plan.port_for(n) for n in (1, 2, 3)], [19092, 19093, 19094])

    def test_port_for_default_min(self) -> None:
        """Broker ids start at 0 unless told otherwise."""
        plan = PortPlan(start=9092, count=2)
        self.assertEqual((plan.port_for(0), plan.port_for(1)), (9092, 9093))
        self.assertIsNone(plan.port_for(2))

    def test_port_for_outside(self) -> None:
        """Ids below the minimum or past the last port have none."""
        plan = PortPlan(start=19092, count=3, min_broker_id=1)
        for broker_id in (-1, 0, 4, 7, 1000):
            self.assertIsNone(plan.port_for(broker_id), broker_id)

    def test_broker_for(self) -> None:
        """Each port stands for one broker id, the inverse of C{port_for}."""
        plan = PortPlan(start=19092, count=3, min_broker_id=100)
        for port in plan.ports:
            broker_id = plan.broker_for(port)
            self.assertEqual(plan.port_for(broker_id), port)
        self.assertEqual(plan.broker_for(19092), 100)
        self.assertEqual(plan.broker_for(19094), 102)

    def test_out_of_range_fix_above(self) -> None:
        """An id past the last port needs a larger port count, exactly large enough."""
        plan = PortPlan(start=19092, count=3, min_broker_id=1)
        self.assertEqual(plan.out_of_range_fix(7), "set GATEWAY_PORT_COUNT to 7 or more")
        self.assertEqual(plan.out_of_range_fix(4), "set GATEWAY_PORT_COUNT to 4 or more")
        fixed = PortPlan(start=19092, count=7, min_broker_id=1)
        self.assertEqual(fixed.port_for(7), 19098)

    def test_out_of_range_fix_below(self) -> None:
        """An id below the minimum needs a lower minimum."""
        plan = PortPlan(start=19092, count=3, min_broker_id=10)
        self.assertEqual(plan.out_of_range_fix(4), "set GATEWAY_MIN_BROKERID to 4 or lower")
        self.assertEqual(plan.out_of_range_fix(-1), "set GATEWAY_MIN_BROKERID to -1 or lower")
