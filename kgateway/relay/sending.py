"""
Write frames to a TCP connection at once, as one gathered system call.

Twisted's C{write}/C{writeSequence} only queue: the bytes leave on the next
reactor turn, after an epoll registration, with the queue joined into one
new bytes object first, and the registration is dropped again once the
queue is empty.  For a relay that is two C{epoll_ctl} calls, a join and a
loop turn of latency per burst of frames.  When nothing is queued on the
transport, the frames can go straight to the socket with C{sendmsg} (the
kernel gathers the pieces, so a multi-MiB Fetch response held as its reads
is never joined); whatever the socket does not take is queued the ordinary
way, so ordering, backpressure (producer pausing) and error handling stay
Twisted's.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from twisted.internet import tcp
from twisted.internet.interfaces import ITransport

#: Linux's limit on the pieces of one sendmsg() (IOV_MAX).
MAX_PIECES = 1024


def _idle_socket(transport: Any) -> Any:
    """The transport's socket if it is plain TCP, open, and has nothing queued; else None."""
    if (
        isinstance(transport, tcp.Connection)
        and transport.connected
        and not transport.disconnecting
        and not transport.TLS
        # Twisted's queue: the unsent rest of dataBuffer, then _tempDataBuffer.
        and not transport._tempDataLen
        and transport.offset == len(transport.dataBuffer)
        and not transport._writeDisconnecting
        and not transport._writeDisconnected
    ):
        return transport.socket
    return None


def write_pieces(transport: ITransport, pieces: Sequence[bytes]) -> None:
    """
    Write C{pieces} to C{transport}, in order, after anything written before.

    Straight to the socket when the transport has nothing queued; otherwise,
    and for whatever the socket does not take, through C{writeSequence}.
    """
    if not pieces:
        return
    sock = _idle_socket(transport)
    if sock is None:
        transport.writeSequence(pieces)
        return
    try:
        sent = sock.sendmsg(pieces[:MAX_PIECES])
    except OSError:
        # EAGAIN, or a broken connection: Twisted's own write path meets the
        # same condition on its next attempt and handles it as it always does.
        sent = 0
    rest: list[bytes] = []
    for index, piece in enumerate(pieces):
        size = len(piece)
        if sent >= size:
            sent -= size
            continue
        rest.append(piece[sent:] if sent else piece)
        rest.extend(pieces[index + 1 :])
        break
    if rest:
        transport.writeSequence(rest)


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
