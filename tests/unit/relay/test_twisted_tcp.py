"""
Tests for L{kgateway.relay._twisted_tcp}: the private Twisted attributes it
reads are pinned, and without them every write goes through Twisted's queue.
"""

from __future__ import annotations

import socket
from typing import Any

from twisted.internet import tcp
from twisted.internet.protocol import Protocol
from twisted.internet.testing import MemoryReactor
from twisted.trial.unittest import SynchronousTestCase

from kgateway.relay import _twisted_tcp, transport
from kgateway.relay.transport import write_pieces


class AttributesTests(SynchronousTestCase):
    def test_the_attribute_set_is_pinned(self) -> None:
        """
        Exactly these private attributes are read.  A change here means the
        write path reads something new of Twisted's: check it against every
        Twisted version pyproject.toml allows before changing this list.
        """
        self.assertEqual(
            set(_twisted_tcp.READS),
            {
                "connected",
                "disconnecting",
                "TLS",
                "_tempDataLen",
                "offset",
                "dataBuffer",
                "_writeDisconnecting",
                "_writeDisconnected",
                "socket",
            },
        )

    def test_the_installed_twisted_has_them(self) -> None:
        """The installed Twisted fits, so writes to an idle socket go straight out."""
        self.assertTrue(_twisted_tcp._supported())
        # (write_pieces reads the name it imported: transport does not export it)
        self.assertIs(transport.idle_socket, _twisted_tcp.choose_idle_socket(True))  # type: ignore[attr-defined]

    def test_write_queue_is_what_twisted_queues(self) -> None:
        """
        Twisted's write queue is still C{dataBuffer} from C{offset} plus
        C{_tempDataLen} bytes: a Twisted with another buffer fails here.
        """
        ours, peer = socket.socketpair()
        self.addCleanup(ours.close)
        self.addCleanup(peer.close)
        connection = tcp.Connection(ours, Protocol(), MemoryReactor())
        connection.connected = 1
        self.assertIsNotNone(_twisted_tcp.idle_socket(connection))
        connection.write(b"queued")
        self.assertEqual(
            len(connection.dataBuffer) - connection.offset + connection._tempDataLen, 6
        )
        self.assertIsNone(_twisted_tcp.idle_socket(connection))

    def test_a_twisted_without_one_is_not_supported(self) -> None:
        """A connection class missing any attribute read makes the check fail."""

        class Older(tcp.Connection):
            def __init__(self, skt: Any, protocol: Any, reactor: Any = None) -> None:
                # Skips FileDescriptor.__init__: no _tempDataLen, no socket.
                pass

        self.assertFalse(_twisted_tcp._supported(Older))

    def test_a_class_that_cannot_be_built_is_not_supported(self) -> None:
        """A connection class whose constructor changed makes the check fail, not crash."""

        class Changed(tcp.Connection):
            def __init__(self) -> None:
                pass

        self.assertFalse(_twisted_tcp._supported(Changed))


class FallbackTests(SynchronousTestCase):
    """Without the attributes, write_pieces is writeSequence."""

    def setUp(self) -> None:
        ours, self.peer = socket.socketpair()
        ours.setblocking(False)
        self.peer.setblocking(False)
        self.addCleanup(ours.close)
        self.addCleanup(self.peer.close)
        self.reactor = MemoryReactor()
        self.connection = tcp.Connection(ours, Protocol(), self.reactor)
        self.connection.connected = 1
        self.patch(transport, "idle_socket", _twisted_tcp.choose_idle_socket(False))

    def test_idle_transport_queues_through_twisted(self) -> None:
        """Nothing reaches the socket behind Twisted's back; its writer sends it."""
        write_pieces(self.connection, [b"one", b"two"])
        with self.assertRaises(BlockingIOError):
            self.peer.recv(100)
        self.assertIn(self.connection, self.reactor.getWriters())
        self.connection.doWrite()
        self.assertEqual(self.peer.recv(100), b"onetwo")

    def test_fallback_never_finds_a_socket(self) -> None:
        """The fallback reader answers None for any transport."""
        self.assertIsNone(_twisted_tcp.choose_idle_socket(False)(self.connection))
