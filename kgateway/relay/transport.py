"""
What the relay needs of a connection's transport, and how it writes to one.

Twisted's TCP (and TLS) transports are an C{ITCPTransport}, an
C{IPushProducer} and an C{IConsumer} at once, but zope interfaces do not
combine into one static type.  L{Transport} says, as a C{typing.Protocol},
everything the relay calls on one, so it is checked instead of ignored.

L{write_pieces} writes frames as one gathered system call when nothing is
queued on the transport (the kernel gathers the pieces, so a multi-MiB Fetch
response held as its reads is never joined); whatever the socket does not
take is queued the ordinary way, so ordering, backpressure (producer
pausing) and error handling stay Twisted's.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Protocol, TypeAlias

from twisted.internet.interfaces import IAddress

from kgateway.relay._twisted_tcp import idle_socket, queued

#: Linux's limit on the pieces of one sendmsg() (IOV_MAX).
MAX_PIECES = 1024

#: A piece of a frame: bytes, or a view of part of a read (never copied to be sent).
Piece: TypeAlias = bytes | memoryview


class PushProducer(Protocol):
    """Something that can be told to stop and start sending (Twisted's C{IPushProducer})."""

    def pauseProducing(self) -> None:
        """Stop sending until resumed."""

    def resumeProducing(self) -> None:
        """Send again."""

    def stopProducing(self) -> None:
        """Stop for good."""


class Transport(PushProducer, Protocol):
    """A connection's transport, as the relay uses it (Twisted's TCP and TLS transports)."""

    def write(self, data: bytes) -> None:
        """Queue bytes to send."""

    def writeSequence(self, data: Iterable[bytes]) -> None:
        """Queue pieces to send, in order."""

    def registerProducer(self, producer: PushProducer, streaming: bool) -> None:
        """Pause C{producer} while this transport's send buffer is full."""

    def unregisterProducer(self) -> None:
        """Forget the registered producer."""

    def loseConnection(self) -> None:
        """Close once everything queued is sent."""

    def abortConnection(self) -> None:
        """Close at once, dropping what is queued."""

    def getPeer(self) -> IAddress:
        """The other end's address."""

    def getHost(self) -> IAddress:
        """This end's address (for an accepted connection: where it arrived)."""


def write_pieces(transport: Transport, pieces: Sequence[Piece]) -> None:
    """
    Write C{pieces} to C{transport}, in order, after anything written before.

    Straight to the socket when the transport has nothing queued; otherwise,
    and for whatever the socket does not take, through C{writeSequence}
    (as bytes: Twisted queues only bytes).
    """
    if not pieces:
        return
    sock = idle_socket(transport)
    if sock is None:
        transport.writeSequence(_as_bytes(pieces))
        return
    try:
        sent = sock.sendmsg(pieces[:MAX_PIECES])
    except OSError:
        # EAGAIN, or a broken connection: Twisted's own write path meets the
        # same condition on its next attempt and handles it as it always does.
        sent = 0
    rest: list[Piece] = []
    for index, piece in enumerate(pieces):
        size = len(piece)
        if sent >= size:
            sent -= size
            continue
        rest.append(piece[sent:] if sent else piece)
        rest.extend(pieces[index + 1 :])
        break
    if rest:
        transport.writeSequence(_as_bytes(rest))


def _as_bytes(pieces: Sequence[Piece]) -> Sequence[bytes]:
    for piece in pieces:
        if type(piece) is not bytes:
            return [bytes(piece) for piece in pieces]
    return pieces  # type: ignore[return-value]  # every piece is bytes


def queued_bytes(transport: object) -> int:
    """What Twisted still has queued to send on C{transport} (0 when it cannot say)."""
    return queued(transport)


def no_delay(transport: object) -> None:
    """
    Turn Nagle's algorithm off on a TCP transport (other transports: nothing).

    The relay writes whole frames, so there is nothing for Nagle to coalesce,
    and holding a small response back until the previous segment is
    acknowledged (40 ms with a delayed ACK) is added latency a direct client
    never sees: Kafka's brokers and clients set TCP_NODELAY on their sockets.
    """
    set_no_delay = getattr(transport, "setTcpNoDelay", None)
    if set_no_delay is not None:
        set_no_delay(True)
