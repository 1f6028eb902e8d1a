"""
The broker directory with a fake fetch and a Clock, and fetch_brokers against
a fake broker that answers a real Metadata v12 response.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from kafka.protocol.metadata import MetadataRequest
from twisted.internet.defer import Deferred, TimeoutError, fail, succeed
from twisted.internet.error import ConnectionRefusedError
from twisted.internet.protocol import Factory, Protocol
from twisted.internet.task import Clock
from twisted.test.iosim import FakeTransport, IOPump, connect
from twisted.trial.unittest import SynchronousTestCase
from zope.interface.verify import verifyObject

from kgateway.cluster.brokers import METADATA_VERSION, BrokerDirectory, fetch_brokers
from kgateway.cluster.link import KafkaLink
from kgateway.interfaces import BrokerInfo, IBrokerDirectory
from kgateway.net import HostPort
from kgateway.protocol.framing import FrameReader
from tests.unit.relay.fakes import catch_logs, metadata_response

A, B, C = HostPort("a", 9092), HostPort("b", 9092), HostPort("c", 9092)


def never_connect(endpoint: HostPort, factory: Factory) -> Deferred[Protocol]:
    raise AssertionError("the fake fetch does not connect")


class FakeFetch:
    """
    Stands in for fetch_brokers: records each endpoint asked, and answers from
    C{answers[endpoint]}, a broker list or an exception (missing: refused).
    """

    def __init__(self) -> None:
        self.asked: list[HostPort] = []
        self.answers: dict[HostPort, list[BrokerInfo] | Exception] = {}

    def __call__(self, link: KafkaLink, endpoint: HostPort) -> Deferred[list[BrokerInfo]]:
        self.asked.append(endpoint)
        answer = self.answers.get(endpoint, ConnectionRefusedError(str(endpoint)))
        if isinstance(answer, Exception):
            return fail(answer)
        return succeed(list(answer))


class BrokerDirectoryTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.clock = Clock()
        self.fetch = FakeFetch()
        self.logs = catch_logs(self)
        self.directory = BrokerDirectory(
            KafkaLink((A, B, C), never_connect, self.clock, timeout_seconds=2.0),
            refresh_seconds=5.0,
            fetch=self.fetch,
        )
        self.addCleanup(lambda: self.directory.running and self.directory.stopService())

    def count(self, text: str) -> int:
        return sum(text in line for line in self.logs())

    def test_provides_interface(self) -> None:
        verifyObject(IBrokerDirectory, self.directory)
        self.assertEqual(self.directory.bootstrap_addresses(), [A, B, C])

    def test_ready_after_first_success(self) -> None:
        ready = self.directory.ready()
        self.assertNoResult(ready)
        self.fetch.answers[A] = [BrokerInfo(1, "k1", 9092, "r1")]
        self.directory.startService()
        self.assertIsNone(self.successResultOf(ready))
        self.assertEqual(self.directory.brokers(), {1: BrokerInfo(1, "k1", 9092, "r1")})
        self.assertEqual(self.directory.broker(1), BrokerInfo(1, "k1", 9092, "r1"))
        self.assertIsNone(self.directory.broker(2))
        # Later callers are told at once.
        self.successResultOf(self.directory.ready())

    def test_not_ready_while_unreachable(self) -> None:
        ready = self.directory.ready()
        self.directory.startService()
        self.assertNoResult(ready)
        self.fetch.answers[C] = [BrokerInfo(1, "k1", 9092)]
        self.clock.advance(5)
        self.successResultOf(ready)

    def test_fails_over_across_every_bootstrap_server_in_order(self) -> None:
        self.fetch.answers[C] = [BrokerInfo(7, "k7", 9092)]
        self.directory.startService()
        self.assertEqual(self.fetch.asked, [A, B, C])
        self.assertEqual(list(self.directory.brokers()), [7])

    def test_fails_over_to_known_brokers_after_bootstrap(self) -> None:
        self.fetch.answers[A] = [BrokerInfo(1, "k1", 9092), BrokerInfo(2, "k2", 9092)]
        self.directory.startService()
        del self.fetch.answers[A]
        self.fetch.answers[HostPort("k2", 9092)] = [BrokerInfo(2, "k2", 9092)]
        self.fetch.asked.clear()
        self.clock.advance(5)
        self.assertEqual(self.fetch.asked, [A, B, C, HostPort("k1", 9092), HostPort("k2", 9092)])
        self.assertEqual(list(self.directory.brokers()), [2])

    def test_logs_brokers_that_appear_change_and_disappear(self) -> None:
        self.fetch.answers[A] = [BrokerInfo(1, "k1", 9092, "r1"), BrokerInfo(2, "k2", 9092)]
        self.directory.startService()
        self.assertEqual(self.count("Broker 1 appeared at k1:9092 (rack r1)"), 1)
        self.assertEqual(self.count("Broker 2 appeared at k2:9092"), 1)

        self.fetch.answers[A] = [BrokerInfo(1, "k1", 9092, "r1"), BrokerInfo(3, "k3", 9092)]
        self.clock.advance(5)
        self.assertEqual(self.count("Broker 3 appeared at k3:9092"), 1)
        self.assertEqual(self.count("Broker 2 disappeared from the cluster metadata"), 1)

        self.fetch.answers[A] = [BrokerInfo(1, "k1-new", 9093, "r1"), BrokerInfo(3, "k3", 9092)]
        self.clock.advance(5)
        self.assertEqual(self.count("Broker 1 changed from k1:9092 to k1-new:9093"), 1)

        # Nothing new: nothing logged.
        before = len(self.logs())
        self.clock.advance(5)
        self.assertEqual(len(self.logs()), before)

    def test_unreachable_logged_once_and_back_once(self) -> None:
        self.directory.startService()
        self.clock.advance(5)
        self.clock.advance(5)
        self.assertEqual(self.count("Cannot reach any Kafka broker"), 1)
        [line] = [line for line in self.logs() if "Cannot reach any Kafka broker" in line]
        for endpoint in (A, B, C):
            self.assertIn(str(endpoint), line)

        self.fetch.answers[B] = [BrokerInfo(1, "k1", 9092)]
        self.clock.advance(5)
        self.clock.advance(5)
        self.assertEqual(self.count("Kafka is reachable again via b:9092"), 1)

        self.fetch.answers.clear()
        self.clock.advance(5)
        self.assertEqual(self.count("Cannot reach any Kafka broker"), 2)

    def test_refreshes_on_the_interval(self) -> None:
        self.fetch.answers[A] = [BrokerInfo(1, "k1", 9092)]
        self.directory.startService()
        self.assertEqual(len(self.fetch.asked), 1)
        self.clock.advance(4.9)
        self.assertEqual(len(self.fetch.asked), 1)
        self.clock.advance(0.1)
        self.assertEqual(len(self.fetch.asked), 2)
        self.clock.advance(5)
        self.assertEqual(len(self.fetch.asked), 3)

        self.directory.stopService()
        self.clock.advance(50)
        self.assertEqual(len(self.fetch.asked), 3)

    def test_stop_cancels_a_refresh_in_flight(self) -> None:
        """Stopping does not wait for a broker that does not answer, nor log it as unreachable."""
        hanging: list[Deferred[list[BrokerInfo]]] = []

        def hang(link: KafkaLink, endpoint: HostPort) -> Deferred[list[BrokerInfo]]:
            hanging.append(Deferred())
            return hanging[-1]

        directory = BrokerDirectory(KafkaLink((A, B), never_connect, self.clock), fetch=hang)
        directory.startService()
        self.assertEqual(len(hanging), 1)
        self.successResultOf(directory.stopService())
        self.assertTrue(hanging[0].called)  # cancelled
        self.assertEqual(len(hanging), 1)  # B was not asked instead
        self.assertEqual(self.count("Cannot reach any Kafka broker"), 0)
        self.assertEqual(self.clock.getDelayedCalls(), [])
        self.assertFalse(directory.running)

    def test_stop_before_start(self) -> None:
        self.successResultOf(self.directory.stopService())

    def test_known_addresses_are_a_links_failover(self) -> None:
        """The node's other connections try the brokers the directory knows after the bootstrap."""
        self.fetch.answers[A] = [BrokerInfo(2, "k2", 9092), BrokerInfo(1, "k1", 9093)]
        self.directory.startService()
        self.assertEqual(
            self.directory.known_addresses(), [HostPort("k2", 9092), HostPort("k1", 9093)]
        )
        link = KafkaLink((A,), never_connect, self.clock).also_trying(
            self.directory.known_addresses
        )
        self.assertEqual(link.addresses(), [A, HostPort("k2", 9092), HostPort("k1", 9093)])


class MetadataBroker(Protocol):
    """Answers one Metadata v12 request with a fixed broker list, recording the request."""

    def __init__(self, brokers: list[tuple[int, str, int]]) -> None:
        self.brokers = brokers
        self.reader = FrameReader()
        self.requests: list[Any] = []
        self.lost = False

    def dataReceived(self, data: bytes) -> None:
        for frame in self.reader.feed(data):
            request = MetadataRequest.decode(
                memoryview(frame)[4:], version=METADATA_VERSION, header=True
            )
            self.requests.append(request)
            assert self.transport is not None
            self.transport.write(metadata_response(request.header.correlation_id, self.brokers))

    def connectionLost(self, reason: object = None) -> None:
        self.lost = True


class FetchBrokersTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.clock = Clock()
        self.pumps: list[IOPump] = []
        self.connected_to: list[HostPort] = []

    def link(self, connect: Callable[[HostPort, Factory], Deferred[Protocol]]) -> KafkaLink:
        return KafkaLink((A,), connect, self.clock, timeout_seconds=5)

    def connector(self, broker: Protocol) -> Callable[[HostPort, Factory], Deferred[Protocol]]:
        def connect_broker(endpoint: HostPort, factory: Factory) -> Deferred[Protocol]:
            self.connected_to.append(endpoint)
            client = factory.buildProtocol(None)
            assert isinstance(client, Protocol)
            self.client_transport = FakeTransport(client, isServer=False)
            self.pumps.append(
                connect(
                    broker,
                    FakeTransport(broker, isServer=True),
                    client,
                    self.client_transport,
                    greet=False,
                )
            )
            return succeed(client)

        return connect_broker

    def test_reads_the_broker_list(self) -> None:
        broker = MetadataBroker([(1, "k1", 9092), (2, "k2", 9093)])
        result = fetch_brokers(self.link(self.connector(broker)), A)
        self.assertNoResult(result)
        self.pumps[0].flush()

        self.assertEqual(
            self.successResultOf(result),
            [BrokerInfo(1, "k1", 9092, "rack-1"), BrokerInfo(2, "k2", 9093, "rack-2")],
        )
        self.assertEqual(self.connected_to, [A])
        [request] = broker.requests
        self.assertEqual(request.header.client_id, "kgateway")
        self.assertEqual(request.topics, [])
        self.assertFalse(request.allow_auto_topic_creation)
        self.assertTrue(broker.lost)  # the gateway hung up
        self.assertEqual(self.clock.getDelayedCalls(), [])  # timeout cancelled

    def test_times_out_and_hangs_up(self) -> None:
        silent = Protocol()
        result = fetch_brokers(self.link(self.connector(silent)), A)
        self.pumps[0].flush()
        self.assertNoResult(result)
        self.clock.advance(5)
        self.failureResultOf(result, TimeoutError)
        self.assertTrue(self.client_transport.disconnecting)

    def test_connect_failure(self) -> None:
        def refuse(endpoint: HostPort, factory: Factory) -> Deferred[Protocol]:
            return fail(ConnectionRefusedError("nope"))

        result = fetch_brokers(self.link(refuse), A)
        self.failureResultOf(result, ConnectionRefusedError)
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_timeout_while_connecting_cancels_the_attempt(self) -> None:
        attempts: list[Deferred[Protocol]] = []

        def hang(endpoint: HostPort, factory: Factory) -> Deferred[Protocol]:
            attempts.append(Deferred())
            return attempts[-1]

        result = fetch_brokers(self.link(hang), A)
        self.clock.advance(5)
        self.failureResultOf(result, TimeoutError)
        self.assertTrue(attempts[0].called)

    def test_directory_with_real_fetch(self) -> None:
        broker = MetadataBroker([(4, "k4", 9092)])
        directory = BrokerDirectory(self.link(self.connector(broker)))
        directory.startService()
        self.addCleanup(directory.stopService)
        ready = directory.ready()
        self.pumps[0].flush()
        self.successResultOf(ready)
        self.assertEqual(directory.brokers(), {4: BrokerInfo(4, "k4", 9092, "rack-4")})


class NotKafka(Protocol):
    """An HTTP server where the bootstrap server should be."""

    def dataReceived(self, data: bytes) -> None:
        assert self.transport is not None
        self.transport.write(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")


class NotKafkaTests(SynchronousTestCase):
    def test_wrong_port_fails_with_a_reason_not_a_traceback(self) -> None:
        clock = Clock()
        pumps: list[IOPump] = []
        transports: list[FakeTransport] = []

        def connect_http(endpoint: HostPort, factory: Factory) -> Deferred[Protocol]:
            client, server = factory.buildProtocol(None), NotKafka()
            assert isinstance(client, Protocol)
            transports.append(FakeTransport(client, isServer=False))
            pumps.append(
                connect(
                    server,
                    FakeTransport(server, isServer=True),
                    client,
                    transports[-1],
                    greet=False,
                )
            )
            return succeed(client)

        result = fetch_brokers(KafkaLink((A,), connect_http, clock, timeout_seconds=5), A)
        pumps[0].flush()
        failure = self.failureResultOf(result)
        self.assertIn("not a Kafka Metadata response", failure.getErrorMessage())
        self.assertIn("over the limit", failure.getErrorMessage())
        self.assertTrue(transports[0].disconnecting)
