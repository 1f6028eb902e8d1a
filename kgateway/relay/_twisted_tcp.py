"""
The one reader of Twisted's private C{tcp.Connection} attributes.

Twisted's C{write}/C{writeSequence} only queue: the bytes leave on the next
reactor turn, after an epoll registration, with the queue joined into one
new bytes object first, and the registration is dropped again once the
queue is empty.  For a relay that is two C{epoll_ctl} calls, a join and a
loop turn of latency per burst of frames.  When nothing is queued on the
transport, the frames can go straight to its socket with C{sendmsg}
(L{kgateway.relay.transport.write_pieces}); only Twisted's own attributes
say whether anything is queued.

Those attributes are not part of Twisted's API, so they are read here and
nowhere else, and only if the installed Twisted has every one of them
(L{READS}, checked once by L{_supported}).  On a Twisted that lacks one,
L{idle_socket} always answers None and every write goes through
C{writeSequence}: slower, never wrong.  A test pins the attribute set, so a
Twisted that adds a buffer of its own fails it instead of reordering bytes.
"""

from __future__ import annotations

import socket
from collections.abc import Callable
from typing import Any

from twisted.internet import tcp

#: Every attribute of a C{tcp.Connection} that L{idle_socket} reads: the
#: connection's state, and Twisted's write queue (the unsent rest of
#: C{dataBuffer} from C{offset}, then C{_tempDataBuffer} of C{_tempDataLen} bytes).
READS = (
    "connected",
    "disconnecting",
    "TLS",
    "_tempDataLen",
    "offset",
    "dataBuffer",
    "_writeDisconnecting",
    "_writeDisconnected",
    "socket",
)


class _NoSocket:
    """Enough of a socket for C{tcp.Connection.__init__}, which only stores it."""

    def setblocking(self, flag: bool) -> None:
        """Nothing to set."""

    def fileno(self) -> int:
        """No descriptor."""
        return -1


def _supported(connection_class: type[Any] = tcp.Connection) -> bool:
    """
    Whether C{connection_class} has every attribute in L{READS}.

    Some are set only by C{__init__}, so a throwaway instance is built on a
    stand-in socket (nothing is opened, nothing registers with a reactor).
    """
    try:
        probe = connection_class(_NoSocket(), None, reactor=object())
    except Exception:
        return False
    return all(hasattr(probe, name) for name in READS)


def _idle_tcp_socket(transport: Any) -> socket.socket | None:
    """The transport's socket if it is plain TCP, open, and has nothing queued; else None."""
    if (
        isinstance(transport, tcp.Connection)
        and transport.connected
        and not transport.disconnecting
        and not transport.TLS
        and not transport._tempDataLen
        and transport.offset == len(transport.dataBuffer)
        and not transport._writeDisconnecting
        and not transport._writeDisconnected
    ):
        return transport.socket
    return None


def _never_idle(transport: Any) -> socket.socket | None:
    """The fallback: no socket is written behind Twisted's back."""
    return None


def _tcp_queued(transport: Any) -> int:
    """Bytes queued on a plain TCP transport, from the same attributes (0 for other transports)."""
    if isinstance(transport, tcp.Connection):
        return len(transport.dataBuffer) - transport.offset + transport._tempDataLen
    return 0


def _nothing_queued(transport: Any) -> int:
    """The fallback: the queue cannot be read, so it is not counted."""
    return 0


def choose_idle_socket(supported: bool) -> Callable[[Any], socket.socket | None]:
    """The reader of a transport's idle socket for a Twisted that does or does not fit."""
    return _idle_tcp_socket if supported else _never_idle


_SUPPORTED = _supported()

#: The transport's socket when nothing is queued on it, or None (then use writeSequence).
idle_socket = choose_idle_socket(_SUPPORTED)

#: The bytes Twisted has queued to send on a transport (0 where that cannot be read).
queued: Callable[[Any], int] = _tcp_queued if _SUPPORTED else _nothing_queued
