"""
The client leg end to end: ClientConnectionFactory.buildProtocol on a fake client
transport, relayed through a real broker leg to a fake broker.
"""

from __future__ import annotations

import struct

from kafka.protocol.admin import DescribeQuorumRequest
from kafka.protocol.metadata import ApiVersionsResponse, MetadataResponse
from twisted.internet.testing import StringTransport
from twisted.trial.unittest import SynchronousTestCase

from kgateway.net import HostPort
from kgateway.protocol.codec import decode_response
from kgateway.protocol.error_codes import ErrorCode
from kgateway.protocol.framing import Cut, FrameStream
from kgateway.protocol.versions import REVIEWED
from kgateway.relay.client_protocol import ClientConnectionFactory
from kgateway.routing.mapping import FixedHostMapper
from kgateway.routing.ports import PortPlan
from kgateway.routing.router import Route
from tests.unit.relay.fakes import (
    ClientSide,
    FakeBrokers,
    FixedRouter,
    NoRouter,
    catch_logs,
    list_offsets_request,
    list_offsets_response,
    metadata_request,
    metadata_response,
    produce_request,
    produce_response,
    raw_request,
    raw_response,
)

GATEWAY_HOST = "gw.example.com"
PLAN = PortPlan(start=7000, count=5, min_broker_id=0)
BROKER_1 = HostPort("b1.kafka", 9092)


def make_factory(
    brokers: FakeBrokers, broker_id: int = 1, max_frame_bytes: int = 1024 * 1024
) -> ClientConnectionFactory:
    """A listener whose connections go to C{broker_id}, at B{b<id>.kafka:9092}."""
    return ClientConnectionFactory(
        FixedRouter(broker_id),
        FixedHostMapper(GATEWAY_HOST, PLAN),
        brokers.connect,
        max_frame_bytes=max_frame_bytes,
    )


def describe_quorum_v2(correlation_id: int) -> bytes:
    """DescribeQuorum v2: the codec knows it, the gateway's review stops at v1."""
    request = DescribeQuorumRequest[2](topics=[])
    request.with_header(correlation_id=correlation_id, client_id="test-client")
    return bytes(request.encode(header=True, framed=True))


class HoldAndForwardTests(SynchronousTestCase):
    """Client bytes wait for the broker connection, then go on unchanged."""

    def test_held_until_broker_opens(self) -> None:
        brokers = FakeBrokers(delayed=True)
        client = ClientSide(make_factory(brokers))
        self.assertEqual(client.transport.producerState, "paused")
        self.assertEqual([endpoint for endpoint, _, _ in brokers.waiting], [BROKER_1])

        request = metadata_request(1)
        client.send(request)
        self.assertEqual(brokers.opened, [])

        broker = brokers.open_next()
        self.assertEqual(broker.transport.value(), request)
        self.assertEqual(client.transport.producerState, "producing")

    def test_forwarded_byte_for_byte_across_reads(self) -> None:
        brokers = FakeBrokers()
        client = ClientSide(make_factory(brokers))
        stream = b"".join(
            [metadata_request(1), list_offsets_request(2), produce_request(3, acks=1)]
        )
        # Cut at awkward places: inside a length prefix, inside a header.
        for piece in (stream[:2], stream[2:9], stream[9:40], stream[40:]):
            client.send(piece)
        [broker] = brokers.opened
        self.assertEqual(broker.transport.value(), stream)

    def test_pipelined_requests_answered_in_order(self) -> None:
        brokers = FakeBrokers()
        client = ClientSide(make_factory(brokers))
        client.send(*[list_offsets_request(cid) for cid in range(100, 120)])
        [broker] = brokers.opened
        self.assertEqual(len(broker.requests()), 20)

        answers = [list_offsets_response(cid, throttle_ms=cid) for cid in range(100, 120)]
        broker.answer(*answers[:7])
        broker.answer(answers[7][:5])  # a response split across reads
        broker.answer(answers[7][5:], *answers[8:])
        self.assertEqual(client.responses(), answers)

    def test_metadata_rewritten_to_gateway_addresses(self) -> None:
        brokers = FakeBrokers()
        client = ClientSide(make_factory(brokers))
        logs = catch_logs(self)
        client.send(metadata_request(42))
        [broker] = brokers.opened
        broker.answer(
            metadata_response(
                42, [(0, "b0.kafka", 9092), (1, "b1.kafka", 9093), (9, "b9.kafka", 9099)]
            )
        )

        [frame] = client.responses()
        message = decode_response(MetadataResponse, frame, 12)
        self.assertEqual(message.header.correlation_id, 42)
        self.assertEqual(
            [(b.node_id, b.host, b.port, b.rack) for b in message.brokers],
            [(0, GATEWAY_HOST, 7000, "rack-0"), (1, GATEWAY_HOST, 7001, "rack-1")],
        )
        self.assertEqual([t.name for t in message.topics], ["orders"])
        self.assertEqual(message.topics[0].partitions[0].replica_nodes, [0, 1, 9])
        # Broker 9 is off the port plan: left out, with the fix in the log.
        self.assertTrue(
            any(
                "Broker 9 has no gateway port" in line and "GATEWAY_PORT_COUNT to 10" in line
                for line in logs()
            ),
            logs(),
        )

    def test_list_offsets_forwarded_identical(self) -> None:
        brokers = FakeBrokers()
        client = ClientSide(make_factory(brokers))
        client.send(list_offsets_request(5))
        answer = list_offsets_response(5, throttle_ms=77)
        brokers.opened[0].answer(answer)
        self.assertEqual(client.responses(), [answer])

    def test_api_the_codec_does_not_know_is_relayed_raw(self) -> None:
        # GetTelemetrySubscriptions (71) v0 is reviewed but not in kafka-python.
        self.assertFalse(REVIEWED[71].in_codec)
        brokers = FakeBrokers()
        client = ClientSide(make_factory(brokers))
        request = raw_request(71, 0, 8, body=b"\x11\x22\x33")
        client.send(request)
        [broker] = brokers.opened
        self.assertEqual(broker.transport.value(), request)
        answer = raw_response(8, b"\x00anything the broker says\xff")
        broker.answer(answer)
        self.assertEqual(client.responses(), [answer])


class ResponsePairingTests(SynchronousTestCase):
    """Which requests take a place in the response order."""

    def test_produce_acks_zero_expects_no_response(self) -> None:
        brokers = FakeBrokers()
        client = ClientSide(make_factory(brokers))
        client.send(produce_request(1, acks=0), list_offsets_request(2), produce_request(3, acks=1))
        [broker] = brokers.opened
        self.assertEqual(len(broker.requests()), 3)
        # The broker answers only the requests that expect it.
        answers = [list_offsets_response(2), produce_response(3)]
        broker.answer(*answers)
        self.assertEqual(client.responses(), answers)
        self.assertTrue(client.open)

    def test_unsupported_version_closes_after_the_answers_before_it(self) -> None:
        """
        A version above the offered one (not ApiVersions) is refused as a
        broker refuses it: the connection closes, but only once the answers
        to the requests before it are delivered; nothing after it is sent.
        """
        self.assertLess(REVIEWED[55].max_version, 2)
        brokers = FakeBrokers()
        client = ClientSide(make_factory(brokers))
        logs = catch_logs(self)
        client.send(
            list_offsets_request(1),
            produce_request(2, acks=1),
            describe_quorum_v2(3),
            list_offsets_request(4),
        )
        [broker] = brokers.opened
        # The two before it went on; the refused one and the one after did not.
        self.assertEqual(
            [f[8:12] for f in broker.requests()], [b"\x00\x00\x00\x01", b"\x00\x00\x00\x02"]
        )
        self.assertEqual(client.transport.producerState, "paused")
        self.assertTrue(client.open)

        broker.answer(list_offsets_response(1))
        self.assertEqual(client.responses(), [list_offsets_response(1)])
        self.assertTrue(client.open)
        broker.answer(produce_response(2))
        self.assertEqual(client.responses(), [list_offsets_response(1), produce_response(2)])
        # Closed in good order: what was written is sent, the broker leg goes too.
        self.assertFalse(client.open)
        self.assertFalse(client.transport.disconnected, "closed, not aborted")
        self.assertFalse(broker.transport.connected)
        self.assertTrue(
            any(
                "api key 55 v2 is above what the gateway offers" in line
                and "closing once the 2 requests before it are answered" in line
                for line in logs()
            ),
            logs(),
        )
        errors = client.wire.factory.stats.apis[55].errors
        self.assertEqual(errors, {"unsupported_version": 1})

    def test_unsupported_version_alone_closes_at_once(self) -> None:
        """Nothing before it: the connection closes as soon as it arrives."""
        brokers = FakeBrokers()
        client = ClientSide(make_factory(brokers))
        client.send(describe_quorum_v2(1))
        self.assertFalse(client.open)
        self.assertEqual(brokers.opened[0].transport.value(), b"")
        self.assertEqual(client.responses(), [])

    def test_api_versions_above_review_answered_in_its_place(self) -> None:
        """ApiVersions above the offered version is answered, behind earlier answers."""
        brokers = FakeBrokers()
        client = ClientSide(make_factory(brokers))
        client.send(list_offsets_request(1), raw_request(18, 9, 2, body=b"\x00\x00\x00"))
        [broker] = brokers.opened
        self.assertEqual(len(broker.requests()), 1)
        self.assertEqual(client.responses(), [])
        broker.answer(list_offsets_response(1))
        first, local = client.responses()
        self.assertEqual(first, list_offsets_response(1))
        message = decode_response(ApiVersionsResponse, local, 0)
        self.assertEqual(
            (message.header.correlation_id, message.error_code), (2, ErrorCode.UNSUPPORTED_VERSION)
        )
        self.assertTrue(client.open)

    def test_api_versions_above_review_gets_v0_error(self) -> None:
        brokers = FakeBrokers()
        client = ClientSide(make_factory(brokers))
        client.send(raw_request(18, 9, 77, body=b"\x07client\x021\x00"))
        [broker] = brokers.opened
        self.assertEqual(broker.transport.value(), b"")

        [frame] = client.responses()
        message = decode_response(ApiVersionsResponse, frame, 0)
        self.assertEqual(message.header.correlation_id, 77)
        self.assertEqual(message.error_code, ErrorCode.UNSUPPORTED_VERSION)
        self.assertEqual(
            [(a.api_key, a.min_version, a.max_version) for a in message.api_keys],
            [(18, 0, REVIEWED[18].max_version)],
        )
        self.assertTrue(client.open)

    def test_version_the_codec_does_not_know_closes_with_reason(self) -> None:
        """
        Metadata v99, with nothing before it: closed at once, saying why (as
        a Kafka broker closes the connection).
        """
        brokers = FakeBrokers()
        client = ClientSide(make_factory(brokers))
        logs = catch_logs(self)
        client.send(raw_request(3, 99, 9))
        self.assertFalse(client.open)
        self.assertEqual(client.responses(), [])
        self.assertFalse(brokers.opened[0].transport.connected)
        self.assertTrue(
            any("api key 3 v99 is above what the gateway offers" in line for line in logs()),
            logs(),
        )

    def test_correlation_mismatch_closes_with_reason(self) -> None:
        brokers = FakeBrokers()
        client = ClientSide(make_factory(brokers))
        logs = catch_logs(self)
        client.send(list_offsets_request(1))
        [broker] = brokers.opened
        broker.answer(list_offsets_response(2))
        self.assertFalse(client.open)
        self.assertTrue(client.transport.disconnected)  # aborted
        self.assertFalse(broker.transport.connected)
        self.assertEqual(client.responses(), [])
        self.assertTrue(
            any("broker answered correlation id 2, expected 1" in line for line in logs()),
            logs(),
        )

    def test_unasked_response_closes(self) -> None:
        brokers = FakeBrokers()
        client = ClientSide(make_factory(brokers))
        logs = catch_logs(self)
        client.send(produce_request(1, acks=0))
        brokers.opened[0].answer(produce_response(1))
        self.assertFalse(client.open)
        self.assertTrue(any("nobody asked for" in line for line in logs()), logs())

    def test_unreadable_rewritten_response_closes(self) -> None:
        brokers = FakeBrokers()
        client = ClientSide(make_factory(brokers))
        logs = catch_logs(self)
        client.send(metadata_request(1))
        brokers.opened[0].answer(raw_response(1, b"\xff\xff"))
        self.assertFalse(client.open)
        self.assertTrue(
            any("cannot rewrite the broker's api key 3 v12 response" in line for line in logs()),
            logs(),
        )


class BadFrameTests(SynchronousTestCase):
    """A bad frame closes its own connection and no other."""

    def assert_other_connection_works(
        self, factory: ClientConnectionFactory, brokers: FakeBrokers
    ) -> None:
        other = ClientSide(factory, port=50001)
        other.send(list_offsets_request(1))
        brokers.opened[-1].answer(list_offsets_response(1))
        self.assertEqual(other.responses(), [list_offsets_response(1)])
        self.assertTrue(other.open)

    def test_oversized_frame(self) -> None:
        brokers = FakeBrokers()
        factory = make_factory(brokers, max_frame_bytes=64)
        logs = catch_logs(self)
        client = ClientSide(factory)
        client.send(struct.pack(">i", 65) + b"\x00" * 10)
        self.assertFalse(client.open)
        self.assertFalse(brokers.opened[0].transport.connected)
        self.assertEqual(brokers.opened[0].transport.value(), b"")
        self.assertTrue(
            any(
                "bad frame from client: frame of 65 bytes is over the limit of 64" in line
                for line in logs()
            ),
            logs(),
        )
        self.assert_other_connection_works(factory, brokers)

    def test_frame_too_short_for_a_header(self) -> None:
        brokers = FakeBrokers()
        factory = make_factory(brokers)
        logs = catch_logs(self)
        client = ClientSide(factory)
        client.send(struct.pack(">i", 2) + b"\x00\x03")
        self.assertFalse(client.open)
        self.assertTrue(any("too short for a header" in line for line in logs()), logs())
        self.assert_other_connection_works(factory, brokers)

    def test_negative_length(self) -> None:
        brokers = FakeBrokers()
        factory = make_factory(brokers)
        client = ClientSide(factory)
        client.send(struct.pack(">i", -5))
        self.assertFalse(client.open)
        self.assert_other_connection_works(factory, brokers)

    def test_malformed_produce_request(self) -> None:
        brokers = FakeBrokers()
        factory = make_factory(brokers)
        logs = catch_logs(self)
        client = ClientSide(factory)
        client.send(raw_request(0, 9, 1, body=b"\x05"))
        self.assertFalse(client.open)
        self.assertEqual(brokers.opened[0].transport.value(), b"")
        self.assertTrue(any("malformed Produce request" in line for line in logs()), logs())
        self.assert_other_connection_works(factory, brokers)

    def test_bad_frame_from_broker(self) -> None:
        brokers = FakeBrokers()
        factory = make_factory(brokers, max_frame_bytes=64)
        logs = catch_logs(self)
        client = ClientSide(factory)
        client.send(list_offsets_request(1))
        brokers.opened[0].answer(struct.pack(">i", 1000))
        self.assertFalse(client.open)
        self.assertTrue(any("Broker sent a bad frame" in line for line in logs()), logs())
        self.assertTrue(
            any(f"broker {BROKER_1} closed the connection" in line for line in logs()), logs()
        )


class ClosingTests(SynchronousTestCase):
    """Either side closing closes the other, with a reason in the log."""

    def test_broker_closes(self) -> None:
        brokers = FakeBrokers()
        client = ClientSide(make_factory(brokers))
        logs = catch_logs(self)
        brokers.opened[0].hang_up()
        self.assertFalse(client.open)
        self.assertTrue(
            any(f"closing: broker {BROKER_1} closed the connection" in line for line in logs()),
            logs(),
        )

    def test_client_closes(self) -> None:
        brokers = FakeBrokers()
        factory = make_factory(brokers)
        client = ClientSide(factory)
        logs = catch_logs(self)
        client.send(list_offsets_request(1))
        self.assertEqual(factory.connections, {client.wire})
        client.transport.loseConnection()
        self.assertFalse(brokers.opened[0].transport.connected)
        self.assertEqual(factory.connections, set())
        self.assertTrue(any("client closed the connection" in line for line in logs()), logs())

    def test_client_closes_before_broker_opens(self) -> None:
        brokers = FakeBrokers(delayed=True)
        client = ClientSide(make_factory(brokers))
        client.transport.loseConnection()
        broker = brokers.open_next()
        self.assertFalse(broker.transport.connected)

    def test_broker_connect_fails(self) -> None:
        brokers = FakeBrokers(refuse=True)
        factory = make_factory(brokers)
        logs = catch_logs(self)
        client = ClientSide(factory)
        self.assertFalse(client.open)
        self.assertEqual(factory.connections, set())
        self.assertTrue(
            any(
                f"cannot connect to broker at {BROKER_1}" in line and "refused" in line
                for line in logs()
            ),
            logs(),
        )

    def test_no_broker_to_choose(self) -> None:
        brokers = FakeBrokers()
        factory = ClientConnectionFactory(
            NoRouter(), FixedHostMapper(GATEWAY_HOST, PLAN), brokers.connect
        )
        logs = catch_logs(self)
        client = ClientSide(factory)
        self.assertFalse(client.open)
        self.assertEqual(brokers.opened, [])
        self.assertEqual(factory.connections, set())
        self.assertEqual(factory.stats.client_connections_opened, 0)
        self.assertIn(
            "client 10.0.0.7:50000 on the port for broker 1: no broker is reachable; closing",
            logs(),
        )

    def test_closed_ignores_late_events(self) -> None:
        brokers = FakeBrokers()
        client = ClientSide(make_factory(brokers))
        [broker] = brokers.opened
        broker.hang_up()
        self.assertFalse(client.open)
        written = client.transport.value()

        leg = client.wire.machine
        leg.requests(Cut(None, False, [[list_offsets_request(1)]]))
        leg.responses(Cut(None, False, [[list_offsets_response(1)]]))
        leg.broker_lost("again")
        leg.client_lost("again")
        leg.drain()
        leg.abort("again")
        leg.refuse("again")
        leg.idle("again")
        leg.routed(Route(2, HostPort("b2.kafka", 9092)))
        leg.unroutable("again")
        self.assertEqual(client.transport.value(), written)
        self.assertEqual(broker.transport.value(), b"")
        self.assertEqual(len(brokers.opened), 1)  # a late route opens nothing

        # A broker connection that opens after the client is gone is hung up.
        late = RecordingBrokerLeg()
        leg.broker_ready(late, StringTransport(), FrameStream())  # type: ignore[arg-type]  # close() only
        self.assertEqual(late.closed, ["client already gone"])


class RecordingBrokerLeg:
    """Stands in for a broker leg; records what it is told."""

    def __init__(self) -> None:
        self.closed: list[str] = []

    def close(self, reason: str) -> None:
        self.closed.append(reason)


class DrainTests(SynchronousTestCase):
    """drain(): deliver what is in flight, then close."""

    def test_closes_after_responses_in_flight(self) -> None:
        brokers = FakeBrokers()
        factory = make_factory(brokers)
        client = ClientSide(factory)
        client.send(list_offsets_request(1), list_offsets_request(2))
        [broker] = brokers.opened
        closed = client.wire.when_closed()

        client.wire.drain()
        self.assertTrue(client.open)
        self.assertEqual(client.transport.producerState, "paused")

        # A request arriving now is not sent on; the client retries elsewhere.
        client.send(list_offsets_request(3))
        self.assertEqual(len(broker.requests()), 2)

        broker.answer(list_offsets_response(1))
        self.assertTrue(client.open)
        self.assertNoResult(closed)
        broker.answer(list_offsets_response(2))
        self.assertEqual(client.responses(), [list_offsets_response(1), list_offsets_response(2)])
        self.assertFalse(client.open)
        self.assertFalse(broker.transport.connected)
        self.assertIsNone(self.successResultOf(closed))
        self.assertEqual(factory.connections, set())

    def test_idle_connection_closes_at_once(self) -> None:
        brokers = FakeBrokers()
        client = ClientSide(make_factory(brokers))
        client.send(list_offsets_request(1))
        brokers.opened[0].answer(list_offsets_response(1))
        client.wire.drain()
        self.assertFalse(client.open)
        self.assertFalse(brokers.opened[0].transport.connected)
        self.successResultOf(client.wire.when_closed())

    def test_drain_before_broker_opens(self) -> None:
        brokers = FakeBrokers(delayed=True)
        client = ClientSide(make_factory(brokers))
        client.wire.drain()
        self.assertFalse(client.open)
        broker = brokers.open_next()
        self.assertFalse(broker.transport.connected)

    def test_drain_twice(self) -> None:
        brokers = FakeBrokers()
        client = ClientSide(make_factory(brokers))
        client.send(list_offsets_request(1))
        client.wire.drain()
        client.wire.drain()
        self.assertTrue(client.open)
        brokers.opened[0].answer(list_offsets_response(1))
        self.assertFalse(client.open)
