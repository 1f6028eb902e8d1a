"""
The node's own small Kafka client: versions, correlation, cancellation,
connection loss, on a StringTransport; and KafkaLink.open against the fake
coordinator.
"""

from __future__ import annotations

import struct
from typing import Any

from kafka.protocol.consumer import HeartbeatRequest, HeartbeatResponse
from kafka.protocol.metadata import ApiVersionsRequest, FindCoordinatorRequest
from twisted.internet.defer import CancelledError, Deferred, TimeoutError
from twisted.internet.error import ConnectionDone, ConnectionLost
from twisted.internet.protocol import Factory, Protocol
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase

from kgateway.cluster.kafka_client import CLIENT_ID, KafkaClientProtocol, KafkaRequestError
from kgateway.cluster.link import KafkaLink
from kgateway.net import HostPort
from kgateway.protocol.codec import encode_response
from kgateway.protocol.framing import FrameReader
from kgateway.protocol.headers import request_info
from tests.unit.cluster.fake_coordinator import FakeGroupCoordinator

BROKER = HostPort("bootstrap", 9092)


def heartbeat(member_id: str) -> Any:
    return HeartbeatRequest[4](
        group_id="g", generation_id=1, member_id=member_id, group_instance_id=None
    )


def heartbeat_answer(correlation_id: int, error_code: int) -> bytes:
    return encode_response(
        HeartbeatResponse(throttle_time_ms=0, error_code=error_code), correlation_id, 4
    )


class VersionForTests(SynchronousTestCase):
    def client(self, versions: dict[int, tuple[int, int]]) -> KafkaClientProtocol:
        client = KafkaClientProtocol()
        client.versions = versions
        return client

    def test_highest_common_version(self) -> None:
        """The highest version both sides know: the codec's when the broker is newer..."""
        self.assertEqual(self.client({11: (0, 9)}).version_for(11, 7, 4), 7)

    def test_broker_older_than_codec(self) -> None:
        """...and the broker's when the broker is older."""
        self.assertEqual(self.client({11: (0, 5)}).version_for(11, 7, 4), 5)

    def test_exact_bounds(self) -> None:
        self.assertEqual(self.client({11: (4, 4)}).version_for(11, 7, 4), 4)
        self.assertEqual(self.client({11: (7, 9)}).version_for(11, 7, 4), 7)

    def test_broker_too_old(self) -> None:
        """A broker below the lowest version we accept."""
        with self.assertRaises(KafkaRequestError) as caught:
            self.client({11: (0, 3)}).version_for(11, 7, 4)
        self.assertEqual(str(caught.exception), "no version of api key 11 in common")

    def test_broker_too_new(self) -> None:
        """A broker that dropped every version the codec knows."""
        with self.assertRaises(KafkaRequestError) as caught:
            self.client({11: (8, 9)}).version_for(11, 7, 4)
        self.assertEqual(str(caught.exception), "no version of api key 11 in common")

    def test_api_not_offered(self) -> None:
        with self.assertRaises(KafkaRequestError) as caught:
            self.client({18: (0, 3)}).version_for(11, 7)
        self.assertEqual(str(caught.exception), "the broker does not offer api key 11")


class RequestTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.client = KafkaClientProtocol()
        self.transport = StringTransport()
        self.client.makeConnection(self.transport)

    def sent(self) -> list[tuple[int, int, int]]:
        """(api key, version, correlation id) of every request written."""
        return [
            (info.api_key, info.api_version, info.correlation_id)
            for info in map(request_info, FrameReader().feed(self.transport.value()))
        ]

    def test_opened(self) -> None:
        """C{opened} fires with the protocol once connected."""
        self.assertIs(self.successResultOf(self.client.opened), self.client)

    def test_request_frames_with_header_and_increasing_ids(self) -> None:
        self.client.request(heartbeat("a"))
        self.client.request(FindCoordinatorRequest[3](key="g", key_type=0))
        self.assertEqual(self.sent(), [(12, 4, 1), (10, 3, 2)])
        [first, _] = FrameReader().feed(self.transport.value())
        decoded = HeartbeatRequest.decode(memoryview(first)[4:], version=4, header=True)
        self.assertEqual(decoded.header.client_id, CLIENT_ID)
        self.assertEqual(decoded.member_id, "a")

    def test_responses_matched_by_correlation_id_out_of_order(self) -> None:
        first = self.client.request(heartbeat("a"))
        second = self.client.request(heartbeat("b"))
        self.client.dataReceived(heartbeat_answer(2, 27))
        self.assertNoResult(first)
        self.assertEqual(self.successResultOf(second).error_code, 27)
        self.client.dataReceived(heartbeat_answer(1, 0))
        self.assertEqual(self.successResultOf(first).error_code, 0)
        self.assertEqual(self.client.pending, {})

    def test_responses_in_pieces_and_together(self) -> None:
        """Responses split across reads, and two in one read, are all delivered."""
        answers = [self.client.request(heartbeat(str(n))) for n in range(3)]
        data = heartbeat_answer(1, 0) + heartbeat_answer(2, 22) + heartbeat_answer(3, 25)
        for byte in range(0, 10):
            self.client.dataReceived(data[byte : byte + 1])
        self.client.dataReceived(data[10:])
        self.assertEqual([self.successResultOf(a).error_code for a in answers], [0, 22, 25])

    def test_connection_loss_fails_pending_requests(self) -> None:
        first = self.client.request(heartbeat("a"))
        second = self.client.request(heartbeat("b"))
        self.client.connectionLost(Failure(ConnectionDone("bye")))
        self.failureResultOf(first, ConnectionLost)
        self.failureResultOf(second, ConnectionLost)
        self.assertIsNone(self.successResultOf(self.client.closed))
        self.assertEqual(self.client.pending, {})

    def test_unknown_correlation_id_hangs_up_and_fails_all(self) -> None:
        pending = self.client.request(heartbeat("a"))
        self.client.dataReceived(heartbeat_answer(99, 0))
        failure = self.failureResultOf(pending, KafkaRequestError)
        self.assertIn("bad response from the broker", str(failure.value))
        self.assertTrue(self.transport.disconnecting)

    def test_undecodable_response_fails_its_own_request(self) -> None:
        """A response the codec cannot read fails the request it answers, not just the rest."""
        broken = self.client.request(heartbeat("a"))
        other = self.client.request(heartbeat("b"))
        # Correlation id 1 and a body too short for a heartbeat response.
        self.client.dataReceived(struct.pack(">ii", 5, 1) + b"\x00")
        self.failureResultOf(broken, KafkaRequestError)
        self.failureResultOf(other, KafkaRequestError)
        self.assertTrue(self.transport.disconnecting)
        self.assertEqual(self.client.pending, {})

    def test_negative_frame_length_fails_all(self) -> None:
        pending = self.client.request(heartbeat("a"))
        self.client.dataReceived(struct.pack(">i", -1))
        self.failureResultOf(pending, KafkaRequestError)
        self.assertTrue(self.transport.disconnecting)

    def test_close(self) -> None:
        self.client.close()
        self.assertTrue(self.transport.disconnecting)

    def test_a_cancelled_request_keeps_the_connection_and_drops_its_answer(self) -> None:
        """A request given up on (a timeout, a machine that moved on) leaves the others be."""
        abandoned = self.client.request(heartbeat("a"))
        kept = self.client.request(heartbeat("b"))
        abandoned.cancel()
        self.failureResultOf(abandoned, CancelledError)
        self.client.dataReceived(heartbeat_answer(1, 0) + heartbeat_answer(2, 27))
        self.assertEqual(self.successResultOf(kept).error_code, 27)
        self.assertFalse(self.transport.disconnecting)
        self.assertEqual(self.client.pending, {})

    def test_abandoned_before_it_opens(self) -> None:
        """A client given up on while connecting hangs up as soon as it connects."""
        late = KafkaClientProtocol()
        late.abandon()
        transport = StringTransport()
        late.makeConnection(transport)
        self.assertTrue(transport.disconnecting)
        self.assertNoResult(late.opened)


class OpenTests(SynchronousTestCase):
    """KafkaLink.open: every connection the node opens for itself."""

    def setUp(self) -> None:
        self.clock = Clock()
        self.coordinator = FakeGroupCoordinator()

    def link(self, connect: Any) -> KafkaLink:
        return KafkaLink((BROKER,), connect, self.clock, timeout_seconds=5)

    def test_learns_the_broker_versions(self) -> None:
        self.coordinator.api_versions = {18: (0, 3), 11: (2, 5)}
        opening = self.link(self.coordinator.connector("n1")).open(BROKER)
        self.coordinator.flush()
        client = self.successResultOf(opening)
        self.assertEqual(client.versions, {18: (0, 3), 11: (2, 5)})
        [(node, request)] = self.coordinator.requests
        self.assertIsInstance(request, ApiVersionsRequest)
        self.assertEqual(request.API_VERSION, 3)
        self.assertEqual(request.client_software_name, "kgateway")
        self.assertEqual(self.coordinator.connections, [("n1", BROKER)])
        self.assertEqual(self.clock.getDelayedCalls(), [])  # both timeouts cancelled

    def test_connect_timeout(self) -> None:
        attempts: list[Deferred[Protocol]] = []

        def hang(endpoint: HostPort, factory: Factory) -> Deferred[Protocol]:
            attempts.append(Deferred())
            return attempts[-1]

        opening = self.link(hang).open(BROKER)
        self.clock.advance(5)
        self.failureResultOf(opening, TimeoutError)
        self.assertTrue(attempts[0].called)  # the attempt was cancelled

    def test_api_versions_timeout_hangs_up(self) -> None:
        self.coordinator.holding = {"ApiVersions"}
        opening = self.link(self.coordinator.connector("n1")).open(BROKER)
        self.coordinator.flush()
        self.assertNoResult(opening)
        self.clock.advance(5)
        self.failureResultOf(opening, TimeoutError)
        self.coordinator.flush()
        self.assertTrue(self.coordinator.servers[0].lost)

    def test_connection_refused(self) -> None:
        self.coordinator.refusing = {"n1"}
        opening = self.link(self.coordinator.connector("n1")).open(BROKER)
        failure = self.failureResultOf(opening)
        self.assertIn("refused", failure.getErrorMessage())

    def test_without_versions(self) -> None:
        """Asked not to learn the versions, it only connects."""
        opening = self.link(self.coordinator.connector("n1")).open(BROKER, learn_versions=False)
        self.coordinator.flush()
        client = self.successResultOf(opening)
        self.assertEqual(client.versions, {})
        self.assertEqual(self.coordinator.requests, [])

    def test_cancelled_while_connecting_hangs_up_a_late_connection(self) -> None:
        """A connector that cannot cancel: the connection that opens later is closed at once."""
        attempts: list[tuple[Factory, Deferred[Protocol]]] = []

        def slow(endpoint: HostPort, factory: Factory) -> Deferred[Protocol]:
            attempts.append((factory, Deferred()))
            return attempts[-1][1]

        opening = self.link(slow).open(BROKER)
        opening.cancel()
        self.failureResultOf(opening, CancelledError)
        [(factory, _)] = attempts
        late = self.coordinator.connector("n1")(BROKER, factory)
        self.coordinator.flush()
        self.successResultOf(late)
        self.assertTrue(self.coordinator.servers[0].lost)
        self.assertEqual(self.coordinator.requests, [])
        self.assertEqual(self.clock.getDelayedCalls(), [])


class AddressTests(SynchronousTestCase):
    def test_the_bootstrap_servers_then_the_known_brokers_each_once(self) -> None:
        """Where the node's own connections go: bootstrap first, then what the directory knows."""
        other = HostPort("k2", 9092)
        link = KafkaLink((BROKER,), FakeGroupCoordinator().connector("n1"), Clock())
        self.assertEqual(link.addresses(), [BROKER])
        self.assertEqual(link.also_trying(lambda: [other, BROKER]).addresses(), [BROKER, other])
