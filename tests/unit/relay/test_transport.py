"""
Tests for L{kgateway.relay.transport}: a real Twisted TCP transport over a
socket pair, with a memory reactor, so what reaches the socket at once and
what waits for Twisted's writer can both be seen.
"""

from __future__ import annotations

import socket

from twisted.internet import tcp
from twisted.internet.protocol import Protocol
from twisted.internet.testing import MemoryReactor, StringTransport
from twisted.trial.unittest import SynchronousTestCase

from kgateway.relay.transport import MAX_PIECES, no_delay, write_pieces


class Producer:
    """A streaming producer that records being paused and resumed."""

    def __init__(self) -> None:
        self.events: list[str] = []

    def pauseProducing(self) -> None:
        self.events.append("pause")

    def resumeProducing(self) -> None:
        self.events.append("resume")

    def stopProducing(self) -> None:
        self.events.append("stop")


class WritePiecesTests(SynchronousTestCase):
    def setUp(self) -> None:
        ours, self.peer = socket.socketpair()
        ours.setblocking(False)
        self.peer.setblocking(False)
        self.addCleanup(ours.close)
        self.addCleanup(self.peer.close)
        self.reactor = MemoryReactor()
        self.transport = tcp.Connection(ours, Protocol(), self.reactor)
        self.transport.connected = 1

    def received(self) -> bytes:
        out = b""
        while True:
            try:
                data = self.peer.recv(1 << 20)
            except BlockingIOError:
                return out
            if not data:
                return out
            out += data

    def drain(self) -> bytes:
        """Let Twisted's writer run until its queue is empty; what the peer got."""
        got = self.received()
        for _ in range(10_000):
            if self.transport not in self.reactor.getWriters():
                break
            self.transport.doWrite()
            got += self.received()
        return got

    def test_idle_transport_sends_at_once(self) -> None:
        """Nothing queued: the pieces reach the socket now, no writer is registered."""
        write_pieces(self.transport, [b"one", b"two", b"three"])
        self.assertEqual(self.received(), b"onetwothree")
        self.assertEqual(self.reactor.getWriters(), [])

    def test_after_queued_data(self) -> None:
        """Data Twisted has queued goes first: the pieces queue behind it."""
        self.transport.write(b"first")
        write_pieces(self.transport, [b"second", b"third"])
        self.assertEqual(self.received(), b"")
        self.assertEqual(self.drain(), b"firstsecondthird")

    def test_partial_send_queues_the_rest_in_order(self) -> None:
        """What the socket does not take is queued, starting mid-piece, and paces the producer."""
        producer = Producer()
        self.transport.registerProducer(producer, True)
        pieces = [bytes([n]) * 300_000 for n in range(1, 8)]
        write_pieces(self.transport, pieces)
        self.assertIn(self.transport, self.reactor.getWriters())
        self.assertEqual(producer.events, ["pause"])
        got = self.drain()
        self.assertEqual(got, b"".join(pieces))
        self.assertEqual(producer.events, ["pause", "resume"])
        # Once the queue is empty, writes go straight out again.
        write_pieces(self.transport, [b"again"])
        self.assertEqual(self.received(), b"again")

    def test_many_pieces(self) -> None:
        """More pieces than one sendmsg() takes: the rest follow, in order."""
        pieces = [b"%d," % n for n in range(MAX_PIECES * 2 + 5)]
        write_pieces(self.transport, pieces)
        self.assertEqual(self.drain(), b"".join(pieces))

    def test_disconnecting_transport_is_left_to_twisted(self) -> None:
        """After loseConnection() the pieces go through Twisted's queue, which decides."""
        self.transport.disconnecting = True
        write_pieces(self.transport, [b"late"])
        self.assertEqual(self.received(), b"")
        self.assertIn(self.transport, self.reactor.getWriters())
        self.transport.disconnecting = False  # let Twisted's writer send what it queued
        self.assertEqual(self.drain(), b"late")

    def test_broken_socket_left_to_twisted(self) -> None:
        """A send that fails queues the data, so Twisted's writer meets the error itself."""
        self.peer.close()
        write_pieces(self.transport, [b"x" * 10])
        self.assertIn(self.transport, self.reactor.getWriters())

    def test_other_transports_get_write_sequence(self) -> None:
        """A transport that is not plain TCP gets writeSequence, unchanged."""
        transport = StringTransport()
        write_pieces(transport, [b"a", b"b"])
        write_pieces(transport, [])
        self.assertEqual(transport.value(), b"ab")


class NoDelayTests(SynchronousTestCase):
    def test_sets_tcp_nodelay(self) -> None:
        """Nagle's algorithm is turned off on a TCP transport."""
        ours = socket.socket()
        self.addCleanup(ours.close)
        transport = tcp.Connection(ours, Protocol(), MemoryReactor())
        self.assertEqual(ours.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY), 0)
        no_delay(transport)
        self.assertNotEqual(ours.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY), 0)

    def test_other_transports(self) -> None:
        """A transport without setTcpNoDelay is left alone; one with it is told True."""
        transport = StringTransport()
        self.assertFalse(hasattr(transport, "setTcpNoDelay"))
        no_delay(transport)
        told: list[bool] = []
        transport.setTcpNoDelay = told.append  # type: ignore[attr-defined]
        no_delay(transport)
        self.assertEqual(told, [True])
