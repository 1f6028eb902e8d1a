"""
Issue 12: the listen backlog, and a node at its file-descriptor limit.

L{Saturation} with a fake clock and a fake descriptor check; L{WatchedPort}
on a real loopback socket whose accepts a fake makes fail (EMFILE, ENFILE),
under a memory reactor, so Twisted's own accept loop (and its recovery with
the reserved descriptor) runs as in production; the node reporting it on
its readiness.
"""

from __future__ import annotations

import errno
import socket
from typing import Any

from twisted.internet import tcp
from twisted.internet.protocol import Factory, Protocol
from twisted.internet.task import Clock
from twisted.internet.testing import MemoryReactorClock
from twisted.trial.unittest import SynchronousTestCase

from kgateway.api.status import NodeStatus
from kgateway.interfaces import BrokerInfo
from kgateway.node.accepting import (
    Saturation,
    WatchedPort,
    WatchedSocket,
    listen,
    watch_admin_port,
)
from tests.unit.node.reactors import NodeMemoryReactor
from tests.unit.node.test_service import make_node
from tests.unit.relay.fakes import catch_logs


class FreeDescriptors:
    """The descriptor check, answered by the test."""

    def __init__(self) -> None:
        self.free = False
        self.asked: list[int] = []

    def __call__(self, count: int) -> bool:
        self.asked.append(count)
        return self.free


def warnings(lines: list[str]) -> list[str]:
    return [line for line in lines if line.startswith("Out of file descriptors")]


class SaturationTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.clock = Clock()
        self.free = FreeDescriptors()
        self.saturation = Saturation(self.clock, self.free)
        self.logs = catch_logs(self)

    def test_not_saturated_at_first(self) -> None:
        self.assertIsNone(self.saturation.problem())
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_one_warning_per_interval_not_per_client(self) -> None:
        saturation = self.saturation
        for _ in range(500):
            saturation.out_of_descriptors(errno.EMFILE, "accepting a client on port 7001")
            saturation.closed_unserved(2)
        [line] = warnings(self.logs())
        self.assertIn("(EMFILE) accepting a client on port 7001", line)
        self.assertIn("0 closed unserved so far", line)
        self.assertIn("ulimit -n", line)

        self.clock.advance(10)  # the checks find nothing free
        saturation.broker_connect_failed(errno.EMFILE, "connecting to a broker for x")
        second = warnings(self.logs())[1:]
        self.assertEqual(len(second), 1)
        self.assertIn("(EMFILE) connecting to a broker for x", second[0])
        self.assertIn("1000 closed unserved so far", second[0])
        self.assertEqual(saturation.turned_away, 1001)
        self.assertEqual(saturation.episodes, 1)

    def test_saturated_until_descriptors_are_free_again(self) -> None:
        saturation = self.saturation
        saturation.out_of_descriptors(errno.ENFILE, "accepting a client on port 7000")
        saturation.closed_unserved(3)
        self.clock.pump([1, 1, 0.5])
        problem = saturation.problem()
        assert problem is not None
        self.assertTrue(problem.startswith("saturated: out of file descriptors (ENFILE)"), problem)
        self.assertIn("for 2.5 s, 3 clients closed unserved", problem)
        # Checked once a second, for the headroom.
        self.assertEqual(self.free.asked, [16, 16])

        self.free.free = True
        self.clock.advance(0.5)
        self.assertIsNone(saturation.problem())
        self.assertEqual(self.clock.getDelayedCalls(), [])
        [line] = [line for line in self.logs() if line.startswith("File descriptors free again")]
        self.assertIn("after 3.0 s", line)
        self.assertIn("3 were closed unserved", line)

        # Saturated again within the interval: saturated, counted afresh, no new line.
        saturation.out_of_descriptors(errno.EMFILE, "accepting a client on port 7000")
        self.assertIsNotNone(saturation.problem())
        self.assertEqual(len(warnings(self.logs())), 1)
        self.assertEqual((saturation.episodes, saturation.turned_away), (2, 0))
        self.assertEqual(saturation.turned_away_total, 3)
        # Once the interval is over, the next beginning is a line again.
        self.free.free = True
        self.clock.advance(10)
        saturation.out_of_descriptors(errno.EMFILE, "accepting a client on port 7000")
        self.assertEqual(len(warnings(self.logs())), 2)

    def test_stop_cancels_the_check(self) -> None:
        self.saturation.out_of_descriptors(errno.EMFILE, "accepting a client on port 7000")
        self.saturation.stop()
        self.assertEqual(self.clock.getDelayedCalls(), [])


class FailingAccepts:
    """A listening socket whose next C{failures} accepts fail with C{code}."""

    def __init__(self, inner: Any, code: int, failures: int) -> None:
        self.inner = inner
        self.code = code
        self.failures = failures

    def accept(self) -> Any:
        if self.failures:
            self.failures -= 1
            raise OSError(self.code, "fake")
        return self.inner.accept()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


class WatchedPortTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.reactor = MemoryReactorClock()
        self.saturation = Saturation(self.reactor, lambda count: False)
        self.addCleanup(self.saturation.stop)
        self.served: list[Protocol] = []
        factory = Factory.forProtocol(Protocol)
        build = factory.buildProtocol

        def recording(addr: Any) -> Protocol | None:
            protocol = build(addr)
            assert protocol is not None
            self.served.append(protocol)
            return protocol

        factory.buildProtocol = recording  # type: ignore[method-assign]
        self.port = WatchedPort(0, factory, 50, "127.0.0.1", self.reactor, self.saturation)
        self.port.startListening()
        self.addCleanup(self._close)
        self.clients: list[socket.socket] = []
        self.logs = catch_logs(self)

    def _close(self) -> None:
        for protocol in self.served:
            assert protocol.transport is not None
            protocol.transport.socket.close()  # type: ignore[attr-defined]
        for client in self.clients:
            client.close()
        self.port.stopListening()
        self.reactor.advance(0)

    def connect(self, count: int) -> None:
        for _ in range(count):
            client = socket.create_connection(("127.0.0.1", self.port.getHost().port), timeout=2)
            self.clients.append(client)

    def fail_accepts(self, code: int, failures: int = 1) -> None:
        listening = self.port.socket
        assert isinstance(listening, WatchedSocket)
        listening.inner = FailingAccepts(listening.inner, code, failures)

    def test_accepts_and_serves(self) -> None:
        self.connect(2)
        self.port.doRead()
        self.assertEqual(len(self.served), 2)
        self.assertIsNone(self.saturation.problem())

    def test_emfile_closes_the_waiting_clients_and_warns_once(self) -> None:
        """
        Twisted frees its reserved descriptor and closes every waiting client
        at once (they learn now, not at a timeout); the port reports them, and
        the log has one warning instead of Twisted's line per client.
        """
        self.connect(3)
        self.fail_accepts(errno.EMFILE)
        self.port.doRead()
        self.assertEqual(self.served, [])
        for client in self.clients:
            self.assertEqual(client.recv(1), b"")  # closed by the node
        self.assertEqual(self.saturation.turned_away, 3)
        problem = self.saturation.problem()
        assert problem is not None
        self.assertIn("(EMFILE)", problem)
        lines = self.logs()
        self.assertEqual(len(warnings(lines)), 1, lines)
        self.assertFalse([line for line in lines if "EMFILE" in line and "recover" in line], lines)

        # Later clients are served (a descriptor was freed) while the node
        # still says it is saturated until the check finds headroom.
        self.connect(1)
        self.port.doRead()
        self.assertEqual(len(self.served), 1)
        self.assertIsNotNone(self.saturation.problem())

    def test_enfile_leaves_clients_waiting_and_warns_once(self) -> None:
        self.connect(1)
        self.fail_accepts(errno.ENFILE, failures=5)
        for _ in range(5):
            self.port.doRead()
        self.assertEqual(self.served, [])
        lines = self.logs()
        self.assertEqual(len(warnings(lines)), 1, lines)
        self.assertFalse([line for line in lines if "Could not accept" in line], lines)
        # The system has descriptors again: the waiting client is served.
        self.port.doRead()
        self.assertEqual(len(self.served), 1)

    def test_other_accept_errors_are_still_logged(self) -> None:
        self.fail_accepts(errno.ECONNABORTED)
        self.port.doRead()
        self.assertIsNone(self.saturation.problem())
        self.assertIn("Could not accept new connection (ECONNABORTED)", self.logs())


class AdminPortTests(SynchronousTestCase):
    """The admin API's port (Twisted's own, from its endpoint), watched once listening."""

    def test_emfile_reports_saturation_without_a_line_per_request(self) -> None:
        reactor = MemoryReactorClock()
        saturation = Saturation(reactor, lambda count: False)
        self.addCleanup(saturation.stop)
        logs = catch_logs(self)
        port = tcp.Port(0, Factory.forProtocol(Protocol), 50, "127.0.0.1", reactor)
        port.startListening()
        self.addCleanup(port.stopListening)
        watch_admin_port(port, saturation.out_of_descriptors)
        number = port.getHost().port
        clients = [socket.create_connection(("127.0.0.1", number), timeout=2) for _ in range(3)]
        for client in clients:
            self.addCleanup(client.close)
        listening = port.socket
        assert isinstance(listening, WatchedSocket)
        listening.inner = FailingAccepts(listening.inner, errno.EMFILE, 1)

        port.doRead()
        for client in clients:
            self.assertEqual(client.recv(1), b"")  # closed at once, as Twisted does
        problem = saturation.problem()
        assert problem is not None
        self.assertIn("(EMFILE)", problem)
        lines = logs()
        [warning] = warnings(lines)
        self.assertIn(f"accepting an admin API request on port {number}", warning)
        self.assertFalse([line for line in lines if "EMFILE" in line and "recover" in line], lines)
        self.assertFalse([line for line in lines if "Could not accept" in line], lines)


class ListenTests(SynchronousTestCase):
    def test_backlog_on_a_reactor_that_is_not_posix(self) -> None:
        reactor = NodeMemoryReactor()
        factory = Factory.forProtocol(Protocol)
        self.successResultOf(listen(reactor, "127.0.0.2", 7000, factory, 1024, Saturation(reactor)))
        [(port, used, backlog, host)] = reactor.tcpServers
        self.assertEqual((port, used, backlog, host), (7000, factory, 1024, "127.0.0.2"))

    def test_node_listens_with_its_backlog_and_reports_saturation(self) -> None:
        node, reactor, fetch, _ = make_node(None, listen_backlog=4096)
        fetch.brokers = [BrokerInfo(1, "k1", 9092)]
        node.startService()
        self.addCleanup(node.stopService)
        self.successResultOf(node.listening)
        self.assertEqual({s[2] for s in reactor.tcpServers}, {4096})
        status = NodeStatus(node.settings, node)
        self.assertFalse([r for r in status.readiness() if "saturated" in r])

        node.saturation.out_of_descriptors(errno.EMFILE, "accepting a client on port 7001")
        [reason] = [r for r in status.readiness() if "saturated" in r]
        self.assertIn("out of file descriptors (EMFILE)", reason)
