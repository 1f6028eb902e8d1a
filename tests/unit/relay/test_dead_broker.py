"""
Issue 16: a port whose broker is down still bootstraps.

The broker leg cannot connect to the port's broker (refused, timed out):
the client connection is relayed to the route's next fallback broker
instead, each tried at most once, and closed with one line naming them all
when none can be reached.  A fake connector stands for the brokers.
"""

from __future__ import annotations

import errno
from typing import Any

from twisted.internet.defer import Deferred, fail
from twisted.internet.error import ConnectBindError
from twisted.internet.error import TimeoutError as ConnectTimeout
from twisted.internet.protocol import Protocol
from twisted.trial.unittest import SynchronousTestCase

from kgateway.interfaces import BrokerInfo
from kgateway.net import HostPort
from kgateway.relay.client_protocol import ClientConnectionFactory
from kgateway.routing.mapping import FixedHostMapper
from kgateway.routing.ports import PortPlan
from kgateway.routing.router import PortRouter
from tests.unit.relay.fakes import (
    ClientSide,
    FakeBrokers,
    FixedRouter,
    catch_logs,
    metadata_request,
    metadata_response,
)
from tests.unit.routing.test_router import FakeDirectory

PLAN = PortPlan(start=7000, count=5, min_broker_id=0)
B1, B2, B3 = (HostPort(f"b{n}.kafka", 9092) for n in (1, 2, 3))


def factory_for(
    brokers: FakeBrokers, fallbacks: tuple[HostPort, ...] = (B2, B3)
) -> ClientConnectionFactory:
    """A listener whose connections are for broker 1 at B1, falling back on C{fallbacks}."""
    return ClientConnectionFactory(
        FixedRouter(1, B1, fallbacks), FixedHostMapper("gw", PLAN), brokers.connect
    )


def fallback_lines(lines: list[str]) -> list[str]:
    return [line for line in lines if "instead" in line]


class FallbackTests(SynchronousTestCase):
    def test_refused_connection_goes_to_the_next_broker(self) -> None:
        """
        Broker 1 refuses: the client's requests go to broker 2 unchanged, its
        answers come back rewritten, and one line says which broker and why.
        """
        brokers = FakeBrokers(down={B1})
        logs = catch_logs(self)
        client = ClientSide(factory_for(brokers))
        request = metadata_request(1)
        client.send(request)

        self.assertEqual(brokers.tried, [B1, B2])
        [broker] = brokers.opened
        self.assertEqual(broker.endpoint, B2)
        self.assertEqual(broker.requests(), [request])
        broker.answer(metadata_response(1, [(1, "b1.kafka", 9092), (2, "b2.kafka", 9092)]))
        [answer] = client.responses()
        self.assertIn(b"gw", answer)
        self.assertNotIn(b"b1.kafka", answer)
        self.assertTrue(client.open)

        [line] = fallback_lines(logs())
        self.assertIn("client 10.0.0.7:50000 on the port of broker 1", line)
        self.assertIn(f"cannot connect to broker at {B1}", line)
        self.assertIn("refused", line)
        self.assertIn(f"relaying it to {B2} instead", line)
        # The connection now says where it is relayed, and for which port.
        [connection] = client.wire.factory.connections
        view = connection.view()
        self.assertEqual((view.broker_id, view.upstream), (1, B2))

    def test_each_fallback_tried_once_in_order(self) -> None:
        brokers = FakeBrokers(down={B1, B2})
        logs = catch_logs(self)
        client = ClientSide(factory_for(brokers))
        self.assertEqual(brokers.tried, [B1, B2, B3])
        self.assertEqual([side.endpoint for side in brokers.opened], [B3])
        self.assertTrue(client.open)
        self.assertEqual(len(fallback_lines(logs())), 2)

    def test_timed_out_connection_falls_back(self) -> None:
        """A broker that does not answer at all (a host gone) is a failure like a refusal."""
        brokers = FakeBrokers(delayed=True)
        logs = catch_logs(self)
        client = ClientSide(factory_for(brokers))
        request = metadata_request(7)
        client.send(request)
        endpoint, _, attempt = brokers.waiting.pop(0)
        self.assertEqual(endpoint, B1)
        attempt.errback(ConnectTimeout())
        self.assertEqual([each for each, _, _ in brokers.waiting], [B2])
        side = brokers.open_next()
        self.assertEqual(side.requests(), [request])
        self.assertTrue(client.open)
        [line] = fallback_lines(logs())
        self.assertIn("no connection after", line)

    def test_all_brokers_down_closes_once_each_was_tried(self) -> None:
        brokers = FakeBrokers(down={B1, B2, B3})
        factory = factory_for(brokers)
        logs = catch_logs(self)
        client = ClientSide(factory)
        client.send(metadata_request(1))

        self.assertEqual(brokers.tried, [B1, B2, B3])
        self.assertEqual(brokers.opened, [])
        self.assertFalse(client.open)
        self.assertEqual(factory.connections, set())
        self.assertEqual(client.responses(), [])
        [closing] = [line for line in logs() if "no broker could be reached" in line]
        self.assertIn("on the port of broker 1", closing)
        for address in (B1, B2, B3):
            self.assertIn(f"cannot connect to broker at {address}", closing)
        self.assertTrue(closing.endswith("; closing"), closing)
        # The failures were counted; the budget holds nothing for the connection.
        self.assertEqual(factory.stats.upstream_connection_failures, 3)
        self.assertEqual(factory.budget.total, 0)

    def test_no_fallback_closes_at_once(self) -> None:
        brokers = FakeBrokers(down={B1})
        logs = catch_logs(self)
        client = ClientSide(factory_for(brokers, fallbacks=()))
        self.assertEqual(brokers.tried, [B1])
        self.assertFalse(client.open)
        self.assertEqual(fallback_lines(logs()), [])
        self.assertEqual(len([line for line in logs() if "no broker could be reached" in line]), 1)

    def test_client_leaving_during_a_fallback_cancels_it(self) -> None:
        brokers = FakeBrokers(delayed=True)
        client = ClientSide(factory_for(brokers))
        brokers.waiting.pop(0)[2].errback(ConnectTimeout())
        [(endpoint, _, attempt)] = brokers.waiting
        self.assertEqual(endpoint, B2)
        client.transport.loseConnection()
        self.assertTrue(attempt.called)  # cancelled: no further broker is tried
        self.assertEqual(brokers.tried, [B1, B2])

    def test_fallback_lines_are_rate_limited(self) -> None:
        """A dead broker's port under many clients: 20 lines per 10 s, then a count."""
        brokers = FakeBrokers(down={B1})
        factory = factory_for(brokers)
        logs = catch_logs(self)
        clients = [ClientSide(factory, port=50000 + n) for n in range(25)]
        self.assertTrue(all(client.open for client in clients))
        self.assertEqual(len(fallback_lines(logs())), 20)
        # Five fallback lines left out, and five of the "connected" lines.
        self.assertEqual(factory.logs.left_out, 10)


class OutOfDescriptorsTests(SynchronousTestCase):
    def test_no_fallback_when_this_node_is_out_of_descriptors(self) -> None:
        """
        A connection that fails here (EMFILE: no descriptor for the socket) is
        not the broker's fault: no other broker is tried, the node is told
        (its one warning, its readiness), and the client is closed without a
        line of its own.
        """
        tried: list[HostPort] = []
        told: list[tuple[int, str]] = []

        def connect(endpoint: HostPort, factory: Any) -> Deferred[Protocol]:
            tried.append(endpoint)
            return fail(ConnectBindError(errno.EMFILE, "Too many open files"))

        factory = ClientConnectionFactory(
            FixedRouter(1, B1, (B2, B3)),
            FixedHostMapper("gw", PLAN),
            connect,
            out_of_descriptors=lambda code, what: told.append((code, what)),
        )
        logs = catch_logs(self)
        client = ClientSide(factory)
        self.assertEqual(tried, [B1])
        self.assertFalse(client.open)
        self.assertEqual(told, [(errno.EMFILE, "connecting to a broker for 10.0.0.7:50000")])
        self.assertEqual(fallback_lines(logs()), [])
        self.assertEqual(factory.connections, set())


class PortRouterFallbackTests(SynchronousTestCase):
    def test_dead_brokers_port_bootstraps_through_a_live_one(self) -> None:
        """With the real port router: broker 1's port, broker 1 down, the others known."""
        directory = FakeDirectory(
            [
                BrokerInfo(1, "b1.kafka", 9092),
                BrokerInfo(2, "b2.kafka", 9092),
                BrokerInfo(3, "b3.kafka", 9092),
            ]
        )
        brokers = FakeBrokers(down={B1})
        factory = ClientConnectionFactory(
            PortRouter(PLAN, directory), FixedHostMapper("gw", PLAN), brokers.connect
        )
        first = ClientSide(factory, port=50001, gateway_port=7001)
        second = ClientSide(factory, port=50002, gateway_port=7001)
        self.assertTrue(first.open and second.open)
        # Both tried broker 1 first; the fallbacks take turns.
        self.assertEqual(brokers.tried, [B1, B2, B1, B3])
