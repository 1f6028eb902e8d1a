"""
Responses that need no change go to the client as the pieces they arrived
in; the others, and every response an interceptor wants, go whole through
the answer path.
"""

from __future__ import annotations

from typing import Any

from kafka.protocol.consumer import FetchResponse
from twisted.internet.defer import Deferred
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from kgateway.interceptors.api import ResponseCall
from kgateway.protocol.codec import decode_response
from kgateway.protocol.headers import response_correlation_id
from kgateway.protocol.tail_rewrite import PAD_TAG
from kgateway.relay.client_protocol import ClientConnectionFactory
from tests.unit.interceptors.test_data_path import Recorder, interceptor_set
from tests.unit.protocol.builders import (
    BROKER_HOST_MARK,
    CORRELATION_ID,
    fetch_response,
)
from tests.unit.relay.fakes import (
    BrokerSide,
    ClientSide,
    FakeBrokers,
    list_offsets_request,
    list_offsets_response,
    raw_request,
)
from tests.unit.relay.test_client_connection import GATEWAY_HOST, make_factory


def fetch_request(correlation_id: int = CORRELATION_ID, version: int = 16) -> bytes:
    return raw_request(1, version, correlation_id)


def recording_writes(client: ClientSide) -> list[list[bytes]]:
    """Record every writeSequence() the gateway makes on the client's transport."""
    calls: list[list[bytes]] = []
    write_sequence = client.transport.writeSequence

    def record(pieces: Any) -> None:
        calls.append(list(pieces))
        write_sequence(pieces)

    client.transport.writeSequence = record  # type: ignore[method-assign]
    return calls


def answer_in_reads(broker: BrokerSide, data: bytes, cuts: list[int]) -> list[bytes]:
    """The broker writes C{data} in reads cut at C{cuts}; the reads."""
    bounds = [0, *cuts, len(data)]
    reads = [data[a:b] for a, b in zip(bounds, bounds[1:], strict=False)]
    for read in reads:
        broker.protocol.dataReceived(read)
    return reads


class PassThroughTests(SynchronousTestCase):
    def connected(
        self, factory: ClientConnectionFactory | None = None
    ) -> tuple[ClientSide, BrokerSide]:
        brokers = FakeBrokers()
        client = ClientSide(factory or make_factory(brokers))
        return client, brokers.opened[0]

    def test_fetch_without_hints_goes_on_read_by_read(self) -> None:
        """
        A large Fetch v16 response without leader hints goes to the client
        read by read, as those reads, once its header is in: the node never
        holds the response.
        """
        client, broker = self.connected()
        client.send(fetch_request())
        frame = fetch_response(16, ())
        writes = recording_writes(client)
        cuts = [3, 40, 1000, 5000, 9000]
        bounds = [0, *cuts, len(frame)]
        reads = [frame[a:b] for a, b in zip(bounds, bounds[1:], strict=False)]
        for index, read in enumerate(reads):
            broker.protocol.dataReceived(read)
            written = sum(len(piece) for call in writes for piece in call)
            if index == 0:
                # Three bytes: not even the length prefix yet.
                self.assertEqual(written, 0)
            else:
                # Everything that arrived went on, but for a field cut between
                # two reads, which the walk looking for the tags keeps.
                self.assertLessEqual(bounds[index + 1] - written, 8, f"read {index}")
        self.assertEqual(client.responses(), [frame])
        self.assertEqual(len(writes), len(reads) - 1)
        # Reads inside the records are written as the very objects that arrived.
        self.assertIs(writes[2][0], reads[3])
        self.assertIs(writes[3][0], reads[4])

    def test_fetch_with_hints_rewritten_wherever_cut(self) -> None:
        """
        Leader hints are found and rewritten however the response is cut.
        Held whole (its header not in the first read), its length changes;
        passed on as it arrives, it keeps its length: padded with an unknown
        tag, so the client decodes the same endpoints at gateway addresses.
        """
        frame = fetch_response(16)
        reference, broker = self.connected()
        reference.send(fetch_request())
        broker.answer(frame)
        [expected] = reference.responses()
        self.assertNotIn(BROKER_HOST_MARK, expected)
        message = decode_response(FetchResponse, expected, 16)
        self.assertEqual({n.host for n in message.node_endpoints}, {GATEWAY_HOST})
        for cut in list(range(1, 8)) + list(range(8, len(frame), 97)):
            client, broker = self.connected()
            client.send(fetch_request())
            answer_in_reads(broker, frame, [cut])
            [got] = client.responses()
            if cut < 8:
                self.assertEqual(got, expected, f"cut at {cut}")
                continue
            self.assertEqual(len(got), len(frame), f"cut at {cut}")
            self.assertNotIn(BROKER_HOST_MARK, got)
            streamed = decode_response(FetchResponse, got, 16)
            self.assertEqual(
                [(n.node_id, n.host, n.port) for n in streamed.node_endpoints],
                [(n.node_id, n.host, n.port) for n in message.node_endpoints],
                f"cut at {cut}",
            )
            self.assertEqual(set(streamed.unknown_tags), {f"_{PAD_TAG}"})
            self.assertEqual(streamed.responses, message.responses)

    def test_responses_in_one_read_and_order(self) -> None:
        """Pass-through and rewritten responses in one read leave in request order."""
        client, broker = self.connected()
        client.send(
            list_offsets_request(1),
            fetch_request(2),
            raw_request(18, 9, 3),  # ApiVersions v9: answered by the gateway, behind 2
            list_offsets_request(4),
        )
        plain = fetch_response(16, ())
        plain = plain[:4] + (2).to_bytes(4, "big") + plain[8:]
        writes = recording_writes(client)
        data = list_offsets_response(1) + plain + list_offsets_response(4)
        answer_in_reads(broker, data, [len(data) - 9])
        self.assertEqual([response_correlation_id(f) for f in client.responses()], [1, 2, 3, 4])
        # The first read's three answers (two relayed, one local) went in one
        # write; the fourth, whose correlation id the read cut, went on as its
        # two pieces once whole.
        self.assertEqual([len(call) for call in writes], [3, 2])

    def test_counted_like_any_response(self) -> None:
        """Bytes to the client and latency are counted for a passed-through response."""
        client, broker = self.connected()
        client.send(fetch_request())
        frame = fetch_response(16, ())
        answer_in_reads(broker, frame, [100])
        stats = client.wire.factory.stats
        self.assertEqual(stats.bytes_to_client, len(frame))
        self.assertEqual(client.wire.view().bytes_to_client, len(frame))
        self.assertEqual(sum(stats.apis[1].buckets), 1)

    def test_interceptor_gets_the_whole_frame(self) -> None:
        """A response an interceptor wants reaches it as one bytes object, however it arrived."""
        seen: list[bytes] = []

        def look(call: Any) -> None:
            if isinstance(call, ResponseCall):
                seen.append(call.frame)

        recorder = Recorder(set(), {1}, look)
        brokers = FakeBrokers()
        client = ClientSide(
            make_factory_with(brokers, interceptor_set(Clock(), ("r", 1, recorder, None)))
        )
        broker = brokers.opened[0]
        client.send(fetch_request())
        frame = fetch_response(16, ())
        answer_in_reads(broker, frame, [5, 50, 500])
        self.assertEqual(seen, [frame])
        self.assertIsInstance(seen[0], bytes)
        self.assertEqual(client.responses(), [frame])

    def test_waits_behind_a_response_an_interceptor_holds(self) -> None:
        """A response that could pass waits while an earlier one is with an interceptor."""
        decision: Deferred[None] = Deferred()
        recorder = Recorder(set(), {2}, lambda call: decision)
        brokers = FakeBrokers()
        client = ClientSide(
            make_factory_with(brokers, interceptor_set(Clock(), ("r", 1, recorder, None)))
        )
        broker = brokers.opened[0]
        client.send(list_offsets_request(1), fetch_request(2))
        plain = fetch_response(16, ())
        plain = plain[:4] + (2).to_bytes(4, "big") + plain[8:]
        answer_in_reads(broker, list_offsets_response(1), [])
        answer_in_reads(broker, plain, [20])
        self.assertEqual(client.responses(), [])
        decision.callback(None)
        self.assertEqual(client.responses(), [list_offsets_response(1), plain])


def make_factory_with(brokers: FakeBrokers, interceptors: Any) -> ClientConnectionFactory:
    """L{make_factory}'s port, with interceptors."""
    factory = make_factory(brokers)
    factory.interceptors = interceptors
    return factory
