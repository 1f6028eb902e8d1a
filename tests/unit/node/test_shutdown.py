"""The broker-by-broker drain, with fake connections on a Clock."""

from __future__ import annotations

from twisted.internet.defer import Deferred
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase
from zope.interface import implementer

from kgateway.interfaces import ConnectionView, IRelayedConnection
from kgateway.node.shutdown import drain_broker_by_broker
from tests.unit.relay.fakes import catch_logs


@implementer(IRelayedConnection)
class FakeConnection:
    """Records when it was told to drain; closes when the test says."""

    def __init__(self, broker_id: int | None, drained: list[tuple[float, int | None]]) -> None:
        self.broker_id = broker_id
        self.peer = "10.0.0.7:5000"
        self.opened_at = 0.0
        self._drained = drained
        self.closed: Deferred[None] = Deferred()
        self.clock: Clock | None = None

    def drain(self) -> None:
        assert self.clock is not None
        self._drained.append((self.clock.seconds(), self.broker_id))

    def when_closed(self) -> Deferred[None]:
        return self.closed

    def view(self) -> ConnectionView:
        raise NotImplementedError("the drain never asks for a connection's view")


class DrainTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.clock = Clock()
        self.drained: list[tuple[float, int | None]] = []

    def connections(self, *broker_ids: int | None) -> list[FakeConnection]:
        made = [FakeConnection(b, self.drained) for b in broker_ids]
        for connection in made:
            connection.clock = self.clock
        return made

    def test_broker_by_broker_with_the_delay_between(self) -> None:
        """Unrouted connections first, then each broker's, in id order, a delay apart."""
        connections = self.connections(2, 1, None, 2)
        done = Deferred.fromCoroutine(
            drain_broker_by_broker(connections, self.clock, delay_seconds=1.5)
        )
        self.assertEqual(self.drained, [(0.0, None)])
        self.clock.advance(1.5)
        self.clock.advance(1.5)
        self.assertEqual(self.drained, [(0.0, None), (1.5, 1), (3.0, 2), (3.0, 2)])
        self.assertNoResult(done)
        for connection in connections:
            connection.closed.callback(None)
        self.successResultOf(done)
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_gives_up_waiting_after_the_timeout(self) -> None:
        logs = catch_logs(self)
        done = Deferred.fromCoroutine(
            drain_broker_by_broker(self.connections(0), self.clock, timeout_seconds=30.0)
        )
        self.clock.advance(29.9)
        self.assertNoResult(done)
        self.clock.advance(0.1)
        self.successResultOf(done)
        self.assertIn("Connections still draining after 30.0s; closing them", logs())

    def test_nothing_to_drain(self) -> None:
        self.successResultOf(Deferred.fromCoroutine(drain_broker_by_broker([], self.clock)))
        self.assertEqual(self.clock.getDelayedCalls(), [])
