"""Tests for L{kgateway.routing.mapping}."""

from __future__ import annotations

from typing import Any, cast

from twisted.logger import ILogObserver, LogLevel, formatEvent, globalLogPublisher
from twisted.trial.unittest import SynchronousTestCase
from zope.interface.verify import verifyObject

from kgateway.interfaces import IAddressMap, IAddressPlanner
from kgateway.net import HostPort
from kgateway.routing.mapping import FixedHostMapper
from kgateway.routing.ports import PortPlan

PLAN = PortPlan(start=19092, count=3, min_broker_id=1)


class FixedHostMapperTests(SynchronousTestCase):
    """L{FixedHostMapper}: one host for every broker, at the broker's port."""

    def setUp(self) -> None:
        self.events: list[dict[str, Any]] = []
        observer = cast(ILogObserver, self.events.append)
        globalLogPublisher.addObserver(observer)
        self.addCleanup(globalLogPublisher.removeObserver, observer)
        self.mapper = FixedHostMapper("gateway.test", PLAN)

    def errors(self) -> list[dict[str, Any]]:
        """The error events logged by the mapping module."""
        return [
            event
            for event in self.events
            if event.get("log_level") is LogLevel.error
            and event.get("log_namespace") == "kgateway.routing.mapping"
        ]

    def test_interfaces(self) -> None:
        """The mapper and its mappings provide the interfaces the relay uses."""
        self.assertTrue(verifyObject(IAddressPlanner, self.mapper))
        self.assertTrue(verifyObject(IAddressMap, self.mapper.mapping()))

    def test_endpoint_for(self) -> None:
        """A broker on the plan is at the fixed host, on its port."""
        mapping = self.mapper.mapping()
        self.assertEqual(mapping.address_for(1), HostPort("gateway.test", 19092))
        self.assertEqual(mapping.address_for(3), HostPort("gateway.test", 19094))
        self.assertEqual(self.errors(), [])

    def test_off_plan_is_none_and_logged(self) -> None:
        """A broker off the plan has no address, and the error says how to fix it."""
        self.assertIsNone(self.mapper.mapping().address_for(7))
        (event,) = self.errors()
        self.assertEqual(event["broker_id"], 7)
        text = formatEvent(event)
        self.assertIn("Broker 7 has no gateway port", text)
        self.assertIn("ports 19092-19094 cover broker ids 1-3", text)
        self.assertIn("set GATEWAY_PORT_COUNT to 7 or more", text)

    def test_below_plan_is_logged_with_its_fix(self) -> None:
        """A broker below the minimum id gets the other fix."""
        self.assertIsNone(self.mapper.mapping().address_for(0))
        (event,) = self.errors()
        self.assertIn("set GATEWAY_MIN_BROKERID to 0 or lower", formatEvent(event))

    def test_logged_once_per_broker(self) -> None:
        """Each broker id is logged once per mapper, across every mapping it makes."""
        for _ in range(3):
            mapping = self.mapper.mapping()
            self.assertIsNone(mapping.address_for(7))
            self.assertIsNone(mapping.address_for(7))
            self.assertIsNone(mapping.address_for(9))
        self.assertEqual([event["broker_id"] for event in self.errors()], [7, 9])

    def test_each_mapper_logs_for_itself(self) -> None:
        """Another mapper has not warned yet, so it logs again."""
        self.mapper.mapping().address_for(7)
        FixedHostMapper("gateway.test", PLAN).mapping().address_for(7)
        self.assertEqual([event["broker_id"] for event in self.errors()], [7, 7])

    def test_candidates(self) -> None:
        """The one candidate is the fixed host at the broker's port; none off the plan."""
        self.assertEqual(self.mapper.candidates(2), [HostPort("gateway.test", 19093)])
        self.assertEqual(self.mapper.candidates(7), [])
